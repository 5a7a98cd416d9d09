package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// recorder collects the changes one listener receives.
type recorder struct {
	mu      sync.Mutex
	changes []contracts.Change
	signal  chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) record(c contracts.Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []contracts.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]contracts.Change(nil), r.changes...)
}

func (r *recorder) ids(taskID string) []contracts.EventID {
	var out []contracts.EventID
	for _, c := range r.snapshot() {
		if !c.Resync && c.TaskID == taskID {
			out = append(out, c.LastEventID)
		}
	}
	return out
}

func (r *recorder) resyncs() int {
	n := 0
	for _, c := range r.snapshot() {
		if c.Resync {
			n++
		}
	}
	return n
}

func (r *recorder) has(taskID string, id contracts.EventID) bool {
	for _, got := range r.ids(taskID) {
		if got == id {
			return true
		}
	}
	return false
}

// waitFor waits until cond holds, re-checking after every change, and
// fails the test when ctx ends first.
func (r *recorder) waitFor(tb testing.TB, ctx context.Context, what string, cond func() bool) {
	tb.Helper()
	for !cond() {
		select {
		case <-r.signal:
		case <-ctx.Done():
			require.Failf(tb, "change feed", "%s: not seen before the deadline; got %v", what, r.snapshot())
		}
	}
}

// listen runs store.Listen on a goroutine that the returned stop function
// cancels and joins (also at cleanup); stop reports Listen's error.
func listen(tb testing.TB, store contracts.EventStore) (*recorder, func() error) {
	tb.Helper()
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- store.Listen(ctx, rec.record) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				err = errors.New("Listen did not return after its context was cancelled")
			}
		})
		return err
	}
	tb.Cleanup(func() {
		if err := stop(); !errors.Is(err, context.Canceled) {
			tb.Errorf("Listen returned %v, want context.Canceled", err)
		}
	})
	return rec, stop
}

// awaitLive appends probe events through via until rec receives one: the
// subscription is then demonstrably up.
func awaitLive(tb testing.TB, ctx context.Context, via contracts.EventStore, recs ...*recorder) {
	tb.Helper()
	probe := fmt.Sprintf("probe-%p", recs[0])
	for _, rec := range recs {
		wait := 10 * time.Millisecond
		for {
			ev, err := via.Append(ctx, probe, contracts.Started("probe"))
			require.NoError(tb, err)
			pctx, cancel := context.WithTimeout(ctx, wait)
			for !rec.has(probe, ev.EventID) && pctx.Err() == nil {
				select {
				case <-rec.signal:
				case <-pctx.Done():
				}
			}
			cancel()
			if rec.has(probe, ev.EventID) {
				break
			}
			require.NoError(tb, ctx.Err(), "the listener never received a probe")
			wait = min(2*wait, 500*time.Millisecond)
		}
	}
}

// numSub returns how many connections subscribe to the change channel.
func numSub(tb testing.TB, c redis.UniversalClient, prefix string) int64 {
	tb.Helper()
	m, err := c.PubSubNumSub(context.Background(), prefix+"changes").Result()
	require.NoError(tb, err)
	return m[prefix+"changes"]
}

// TestFeedOneSubscriptionPerStore: any number of listeners share one
// subscription connection, opened by the first Listen and closed after
// the last one returns.
func TestFeedOneSubscriptionPerStore(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, p := newStores(t, redisstore.Options{})
	assert.EqualValues(t, 0, numSub(t, c, p))

	recs := make([]*recorder, 5)
	stops := make([]func() error, 5)
	for i := range recs {
		recs[i], stops[i] = listen(t, s.Events)
	}
	awaitLive(t, ctx, s.Events, recs...)
	assert.EqualValues(t, 1, numSub(t, c, p), "five listeners, one subscription")

	ev, err := s.Events.Append(ctx, "task", contracts.Started(""))
	require.NoError(t, err)
	for _, rec := range recs {
		rec.waitFor(t, ctx, "the append", func() bool { return rec.has("task", ev.EventID) })
	}

	for _, stop := range stops[:4] {
		require.ErrorIs(t, stop(), context.Canceled)
	}
	assert.EqualValues(t, 1, numSub(t, c, p), "one listener left")
	ev, err = s.Events.Append(ctx, "task", contracts.Started(""))
	require.NoError(t, err)
	recs[4].waitFor(t, ctx, "the second append", func() bool { return recs[4].has("task", ev.EventID) })
	assert.False(t, recs[0].has("task", ev.EventID), "a stopped listener is not called")

	require.ErrorIs(t, stops[4](), context.Canceled)
	require.Eventually(t, func() bool { return numSub(t, c, p) == 0 }, 5*time.Second, 10*time.Millisecond,
		"the subscription closes with the last listener")

	// A new Listen opens a new subscription.
	rec, _ := listen(t, s.Events)
	awaitLive(t, ctx, s.Events, rec)
	assert.EqualValues(t, 1, numSub(t, c, p))
}

// TestFeedAcrossInstances: appends made through one instance's store reach
// the listeners of another instance sharing the Redis and prefix, in order.
func TestFeedAcrossInstances(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a, _, p := newStores(t, redisstore.Options{})
	b := check(redisstore.New(newClient(t), redisstore.Options{KeyPrefix: p}))(t).Events
	rec, _ := listen(t, b)
	awaitLive(t, ctx, a.Events, rec)

	var want []contracts.EventID
	for i := range 20 {
		ev, err := a.Events.Append(ctx, "shared", contracts.Started(fmt.Sprint(i)))
		require.NoError(t, err)
		want = append(want, ev.EventID)
	}
	rec.waitFor(t, ctx, "twenty appends", func() bool { return len(rec.ids("shared")) >= len(want) })
	assert.Equal(t, want, rec.ids("shared"))

	page, err := b.Read(ctx, "shared", want[9], 100)
	require.NoError(t, err)
	assert.Equal(t, want[10:], eventIDsOf(page.Events))
}

// TestFeedFirstResync: a listener registered before the subscription is
// confirmed may have missed notices, so it is told to resync once.
func TestFeedFirstResync(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _, _ := newStores(t, redisstore.Options{})
	rec, _ := listen(t, s.Events) // the first listener starts the feed: it cannot be live yet
	rec.waitFor(t, ctx, "the first Resync", func() bool { return rec.resyncs() == 1 })
	first := rec.snapshot()[0]
	assert.Equal(t, contracts.Change{Resync: true}, first)
	awaitLive(t, ctx, s.Events, rec)
	assert.Equal(t, 1, rec.resyncs())
}

// TestFeedIgnoresMalformedNotices: garbage on the channel is logged and
// skipped; the feed goes on.
func TestFeedIgnoresMalformedNotices(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	core, logs := observer.New(zap.WarnLevel)
	s, c, p := newStores(t, redisstore.Options{Logger: zap.New(core)})
	rec, _ := listen(t, s.Events)
	awaitLive(t, ctx, s.Events, rec)
	for _, msg := range []string{"", "no-id", "task not-an-id", " 1-1"} {
		require.NoError(t, c.Publish(ctx, p+"changes", msg).Err())
	}
	ev, err := s.Events.Append(ctx, "after", contracts.Started(""))
	require.NoError(t, err)
	rec.waitFor(t, ctx, "the append after the garbage", func() bool { return rec.has("after", ev.EventID) })
	for _, ch := range rec.snapshot() {
		if !ch.Resync && ch.TaskID != "after" {
			assert.True(t, strings.HasPrefix(ch.TaskID, "probe-"), "unexpected change %+v", ch)
		}
	}
	assert.Equal(t, 4, logs.FilterMessage("redisstore: malformed change notice ignored").Len())
}

// TestListenArguments: a nil callback is an error, an ended context
// returns at once.
func TestListenArguments(t *testing.T) {
	t.Parallel()
	s, _, _ := newStores(t, redisstore.Options{})
	require.Error(t, s.Events.Listen(context.Background(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, s.Events.Listen(ctx, func(contracts.Change) {}), context.Canceled)
}

// TestTaskIDsWithSpacesAndBraces: a notice is split at its last space and
// hash-tag characters in task ids keep every key of the task together.
func TestTaskIDsWithSpacesAndBraces(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _, _ := newStores(t, redisstore.Options{})
	rec, _ := listen(t, s.Events)
	awaitLive(t, ctx, s.Events, rec)
	for _, id := range []string{"a b c", "x}y{z", "{", "}"} {
		ev, err := s.Events.Append(ctx, id, contracts.Started(""))
		require.NoError(t, err, id)
		done, err := s.Events.Append(ctx, id, must(t)(contracts.Completed(nil)))
		require.NoError(t, err, id)
		page, err := s.Events.Read(ctx, id, contracts.EventID{}, 10)
		require.NoError(t, err, id)
		assert.Equal(t, []contracts.EventID{ev.EventID, done.EventID}, eventIDsOf(page.Events), id)
		assert.True(t, page.Ended, id)
		rec.waitFor(t, ctx, id, func() bool { return rec.has(id, done.EventID) })
	}
}

// TestListenEndsWhenClientCloses: closing the client under a listener ends
// Listen with an error wrapping redis.ErrClosed, and so does a Listen on a
// closed client, instead of retrying forever.
func TestListenEndsWhenClientCloses(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t)
	events := check(redisstore.New(c, redisstore.Options{KeyPrefix: uniquePrefix(t, newClient(t))}))(t).Events
	rec := newRecorder()
	done := make(chan error, 1)
	go func() { done <- events.Listen(ctx, rec.record) }()
	awaitLive(t, ctx, events, rec)
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, redis.ErrClosed)
	case <-ctx.Done():
		t.Fatal("Listen did not return after its client was closed")
	}
	require.ErrorIs(t, events.Listen(ctx, rec.record), redis.ErrClosed)
}
