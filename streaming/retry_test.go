package streaming_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// flakyStore fails the reads made after a cursor (fan-out and catch-up
// reads, not a first read from the start of a task) while failures are
// left: a positive count fails that many such reads, then the store
// recovers; a negative count fails them all.
type flakyStore struct {
	contracts.EventStore
	failures atomic.Int64
	failed   atomic.Int64
}

func (s *flakyStore) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	for !after.IsZero() {
		n := s.failures.Load()
		if n == 0 {
			break
		}
		if n < 0 || s.failures.CompareAndSwap(n, n-1) {
			s.failed.Add(1)
			return contracts.EventPage{}, errInjected
		}
	}
	return s.EventStore.Read(ctx, taskID, after, limit)
}

// outageFeed passes the store's change notices on, drops them while muted
// (the feed is down), and sends a Resync when resync receives (the feed
// has resubscribed), as the Redis feed does after a restart.
type outageFeed struct {
	contracts.EventStore
	muted  atomic.Bool
	resync chan struct{}
}

func (f *outageFeed) Listen(ctx context.Context, fn func(contracts.Change)) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- f.EventStore.Listen(lctx, func(c contracts.Change) {
			if !f.muted.Load() {
				fn(c)
			}
		})
	}()
	for {
		select {
		case <-f.resync:
			fn(contracts.Change{Resync: true})
		case err := <-done:
			return err
		}
	}
}

// newOutageEnv is an env whose hub reads through a flakyStore behind an
// outageFeed.
func newOutageEnv(t testing.TB, opts streaming.Options, options ...envOption) (*env, *flakyStore, *outageFeed) {
	t.Helper()
	flaky := &flakyStore{}
	feed := &outageFeed{resync: make(chan struct{})}
	options = append(options, withStore(func(s contracts.EventStore) contracts.EventStore {
		flaky.EventStore = s
		feed.EventStore = flaky
		return feed
	}))
	return newEnv(t, opts, options...), flaky, feed
}

// liveStreams opens an SSE and a WebSocket stream of taskID, reads its
// first event on both and waits until both receive live batches.
func liveStreams(t testing.TB, e *env, taskID string) (*sseStream, *wsClient) {
	t.Helper()
	s := dialSSE(t, e.addr, "/sse/"+taskID, nil)
	_, err := s.nextEvent(wait)
	require.NoError(t, err)
	c := dialWS(t, e.addr)
	c.subscribe(taskID, nil)
	c.confirmation(wait)
	_, err = c.nextEvent(wait)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers(taskID) == 2 }, wait, time.Millisecond)
	return s, c
}

// readRestSSE reads events until the stream's end and requires a clean one
// (SSE: the final chunk; WebSocket: close code).
func readRestSSE(t testing.TB, s *sseStream) []contracts.TaskEvent {
	t.Helper()
	var got []contracts.TaskEvent
	for {
		ev, err := s.nextEvent(wait)
		if err != nil {
			require.ErrorIs(t, err, io.EOF, "the SSE body must end cleanly")
			return got
		}
		got = append(got, ev)
	}
}

func readRestWS(t testing.TB, c *wsClient, code int) []contracts.TaskEvent {
	t.Helper()
	var got []contracts.TaskEvent
	for {
		ev, err := c.nextEvent(wait)
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, code, ce.Code, "close reason %q", ce.Text)
			return got
		}
		got = append(got, ev)
	}
}

// TestStoreOutageWithinBudget: fan-out reads that fail for a while (a few
// failures, then the store is back) are retried; the live streams stay
// open, receive every event without a gap, and end normally after the
// terminal event. Both ways a store outage shows: a failed read after a
// change notice, and failed re-reads after the feed's Resync (the Redis
// restart case, where notices were lost while the feed was down).
func TestStoreOutageWithinBudget(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		for _, how := range []string{"notice", "resync"} {
			t.Run(m.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				e, flaky, feed := newOutageEnv(t, streaming.Options{StoreRetryBudget: time.Minute}, m.opt)
				want := e.append("o1", contracts.Started(""))
				s, c := liveStreams(t, e, "o1")

				flaky.failures.Store(3)
				if how == "resync" {
					feed.muted.Store(true)
				}
				want = append(want, e.append("o1", progress(t, 10), progress(t, 20))...)
				if how == "resync" {
					feed.muted.Store(false)
					feed.resync <- struct{}{}
				}
				for _, w := range want[1:] {
					ev, err := s.nextEvent(wait)
					require.NoError(t, err)
					assert.Equal(t, w.EventID, ev.EventID)
					ev, err = c.nextEvent(wait)
					require.NoError(t, err)
					assert.Equal(t, w.EventID, ev.EventID)
				}
				assert.EqualValues(t, 3, flaky.failed.Load(), "the failed reads were retried")
				assert.Equal(t, 2, e.hub.OpenStreams(), "no stream ended")

				want = append(want, e.append("o1", completed(t))...)
				assert.Equal(t, ids(want[3:]), ids(readRestSSE(t, s)))
				assert.Equal(t, ids(want[3:]), ids(readRestWS(t, c, websocket.CloseNormalClosure)))
			})
		}
	}
}

// TestStoreOutageWithinBudgetCatchUp: a stream's own catch-up reads (here
// the replay after its first page) that fail for a while are retried, and
// the stream replays everything in order.
func TestStoreOutageWithinBudgetCatchUp(t *testing.T) {
	t.Parallel()
	e, flaky, _ := newOutageEnv(t, streaming.Options{StoreRetryBudget: time.Minute, ReplayBatchSize: 1})
	want := e.append("o2", contracts.Started(""), progress(t, 10), progress(t, 20))
	flaky.failures.Store(4) // the first page is read from the start and does not fail
	s := dialSSE(t, e.addr, "/sse/o2", nil)
	c := dialWS(t, e.addr)
	c.subscribe("o2", nil)
	c.confirmation(wait)
	for _, w := range want {
		ev, err := s.nextEvent(wait)
		require.NoError(t, err)
		assert.Equal(t, w.EventID, ev.EventID)
		ev, err = c.nextEvent(wait)
		require.NoError(t, err)
		assert.Equal(t, w.EventID, ev.EventID)
	}
	assert.EqualValues(t, 4, flaky.failed.Load())
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("o2") == 2 }, wait, time.Millisecond)
	last := e.append("o2", completed(t))
	assert.Equal(t, ids(last), ids(readRestSSE(t, s)))
	assert.Equal(t, ids(last), ids(readRestWS(t, c, websocket.CloseNormalClosure)))
}

// TestStoreOutagePastBudgetEndsStreams: when the store stays unavailable
// for the whole retry budget, the streams end cleanly (SSE: the final
// chunk; WebSocket: 1011 "store unavailable"), live ones and catching-up
// ones alike, and not before the budget has passed.
func TestStoreOutagePastBudgetEndsStreams(t *testing.T) {
	t.Parallel()
	const budget = 300 * time.Millisecond
	t.Run("live", func(t *testing.T) {
		t.Parallel()
		e, flaky, _ := newOutageEnv(t, streaming.Options{StoreRetryBudget: budget})
		e.append("o3", contracts.Started(""))
		s, c := liveStreams(t, e, "o3")
		flaky.failures.Store(-1)
		start := time.Now()
		e.append("o3", progress(t, 10))
		assert.Empty(t, readRestSSE(t, s))
		assert.Empty(t, readRestWS(t, c, websocket.CloseInternalServerErr))
		assert.GreaterOrEqual(t, time.Since(start), budget, "streams end only once the budget is spent")
		assert.Greater(t, flaky.failed.Load(), int64(1), "the read was retried")
	})
	t.Run("catch-up", func(t *testing.T) {
		t.Parallel()
		e, flaky, _ := newOutageEnv(t, streaming.Options{StoreRetryBudget: budget, ReplayBatchSize: 1})
		first := e.append("o4", contracts.Started(""), progress(t, 10))[0]
		flaky.failures.Store(-1)
		start := time.Now()
		s := dialSSE(t, e.addr, "/sse/o4", nil)
		c := dialWS(t, e.addr)
		c.subscribe("o4", nil)
		c.confirmation(wait)
		assert.Equal(t, []string{first.EventID.String()}, ids(readRestSSE(t, s)))
		assert.Equal(t, []string{first.EventID.String()}, ids(readRestWS(t, c, websocket.CloseInternalServerErr)))
		assert.GreaterOrEqual(t, time.Since(start), budget)
		assert.Greater(t, flaky.failed.Load(), int64(2), "each stream retried")
		require.Eventually(t, func() bool { return e.hub.OpenStreams() == 0 }, wait, time.Millisecond)
	})
}

// TestShutdownDuringStoreOutage: streams waiting to retry a read end at
// once on Shutdown (SSE final chunk, WebSocket 1001), long before their
// budget, and no retry timer outlives the hub (goleak in TestMain).
func TestShutdownDuringStoreOutage(t *testing.T) {
	t.Parallel()
	e, flaky, _ := newOutageEnv(t, streaming.Options{StoreRetryBudget: time.Hour, ReplayBatchSize: 1})
	e.append("o5", contracts.Started(""))
	s, c := liveStreams(t, e, "o5")
	e.append("o6", contracts.Started(""), progress(t, 1))
	flaky.failures.Store(-1)
	catching := dialSSE(t, e.addr, "/sse/o6", nil) // catch-up read after its first page fails
	_, err := catching.nextEvent(wait)
	require.NoError(t, err)
	e.append("o5", progress(t, 10)) // the fan-out read fails
	require.Eventually(t, func() bool { return flaky.failed.Load() >= 2 }, wait, time.Millisecond)

	// The retries would go on for the hour of the budget; Shutdown ends
	// them and the streams instead. Its deadline is a hang guard, far
	// below the budget, not a speed requirement: on a loaded machine
	// closing three streams can take seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.hub.Shutdown(ctx), "Shutdown must not wait for the retry budget")
	assert.Empty(t, readRestSSE(t, s))
	assert.Empty(t, readRestSSE(t, catching))
	assert.Empty(t, readRestWS(t, c, websocket.CloseGoingAway))
}
