package streaming_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWatchWakesOnChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	ch, release := e.hub.Watch("p1")
	other, releaseOther := e.hub.Watch("p2")
	assert.False(t, closed(ch))
	e.append("p1", contracts.Started(""))
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatal("watch not woken by an append")
	}
	assert.False(t, closed(other), "another task's watch stays open")
	release()
	release() // idempotent
	releaseOther()
	assert.Equal(t, 0, e.hub.TrackedTasks(), "released watches leave no state")
}

func TestWatchWokenByResyncAndShutdown(t *testing.T) {
	t.Parallel()
	feed := &resyncFeed{trigger: make(chan struct{})}
	e := newEnv(t, streaming.Options{}, withStore(func(s contracts.EventStore) contracts.EventStore {
		feed.EventStore = s
		return feed
	}))
	ch, release := e.hub.Watch("p3")
	defer release()
	feed.trigger <- struct{}{}
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatal("watch not woken by a resync")
	}

	ch2, release2 := e.hub.Watch("p3")
	defer release2()
	e.shutdown()
	assert.True(t, closed(ch2), "shutdown wakes watchers")
	ch3, release3 := e.hub.Watch("p3")
	release3()
	assert.True(t, closed(ch3), "a closed hub returns a closed channel")
}

// resyncFeed sends a Resync change whenever trigger receives.
type resyncFeed struct {
	contracts.EventStore
	trigger chan struct{}
}

func (f *resyncFeed) Listen(ctx context.Context, fn func(contracts.Change)) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.EventStore.Listen(lctx, fn) }()
	for {
		select {
		case <-f.trigger:
			fn(contracts.Change{Resync: true})
		case err := <-done:
			return err
		}
	}
}

func TestResyncRereadsWatchedTasks(t *testing.T) {
	t.Parallel()
	// A feed that drops notices and resyncs: the stream still gets the event.
	mem := memstore.NewEventStore(memstore.Options{})
	feed := &resyncFeed{EventStore: silentFeed{mem}, trigger: make(chan struct{})}
	e := newEnv(t, streaming.Options{}, withSilentFeed(), withStore(func(contracts.EventStore) contracts.EventStore { return feed }))
	_, err := mem.Append(context.Background(), "p4", contracts.Started(""))
	require.NoError(t, err)
	s := dialSSE(t, e.addr, "/sse/p4", nil)
	_, err = s.nextEvent(wait)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("p4") == 1 }, wait, time.Millisecond)
	ev, err := mem.Append(context.Background(), "p4", progress(t, 9))
	require.NoError(t, err)
	feed.trigger <- struct{}{}
	got, err := s.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, ev.EventID, got.EventID)
}

// silentFeed is a store whose feed never notifies.
type silentFeed struct{ contracts.EventStore }

func (silentFeed) Listen(ctx context.Context, _ func(contracts.Change)) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestShutdownEndsOpenStreams(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			e.append("s1", contracts.Started(""))
			const n = 40
			results := make(chan string, 2*n)
			var wg sync.WaitGroup
			for i := range n {
				s := dialSSE(t, e.addr, "/sse/s1", nil)
				_, err := s.nextEvent(wait)
				require.NoError(t, err)
				c := dialWS(t, e.addr)
				c.subscribe("s1", nil)
				c.confirmation(wait)
				_, err = c.nextEvent(wait)
				require.NoError(t, err)
				wg.Add(2)
				go func() {
					defer wg.Done()
					for {
						if _, err := s.next(wait); err != nil {
							if errors.Is(err, io.EOF) {
								results <- "sse clean end"
							} else {
								results <- "sse: " + err.Error()
							}
							return
						}
					}
				}()
				go func() {
					defer wg.Done()
					for {
						if _, err := c.read(wait); err != nil {
							var ce *websocket.CloseError
							if errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway {
								results <- "ws going away"
							} else {
								results <- "ws: " + err.Error()
							}
							return
						}
					}
				}()
				_ = i
			}
			ch, release := e.hub.Watch("s1")
			defer release()
			require.Equal(t, 2*n, e.hub.OpenStreams())
			e.requireMode(2 * n)

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			require.NoError(t, e.hub.Shutdown(ctx), "Shutdown must return before its 2 s deadline")
			wg.Wait()
			close(results)
			counts := map[string]int{}
			for r := range results {
				counts[r]++
			}
			assert.Equal(t, map[string]int{"sse clean end": n, "ws going away": n}, counts)
			assert.True(t, closed(ch))
			assert.Equal(t, 0, e.hub.OpenStreams())
			select {
			case err := <-e.runDone:
				assert.NoError(t, err, "Run returns nil after Shutdown")
				e.runDone <- nil
			case <-time.After(wait):
				t.Fatal("Run did not return")
			}

			// New streams are refused.
			s := dialSSE(t, e.addr, "/sse/s1", nil)
			assert.Equal(t, http.StatusServiceUnavailable, s.resp.StatusCode)
			c := dialWS(t, e.addr)
			code, _ := c.expectClose(wait)
			assert.Equal(t, websocket.CloseGoingAway, code)

		})
	}
}

func TestFeedFailureEndsStreams(t *testing.T) {
	t.Parallel()
	feed := &failingFeed{fail: make(chan struct{})}
	e := newEnv(t, streaming.Options{}, withStore(func(s contracts.EventStore) contracts.EventStore {
		feed.EventStore = s
		return feed
	}))
	e.append("f1", contracts.Started(""))
	s := dialSSE(t, e.addr, "/sse/f1", nil)
	_, err := s.nextEvent(wait)
	require.NoError(t, err)
	c := dialWS(t, e.addr)
	c.subscribe("f1", nil)
	c.confirmation(wait)
	close(feed.fail)
	s.expectEnd(wait)
	code, _ := c.expectClose(wait)
	assert.Equal(t, websocket.CloseInternalServerErr, code)
	select {
	case err := <-e.runDone:
		assert.ErrorIs(t, err, errInjected)
		e.runDone <- nil
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
}

func TestRunOnce(t *testing.T) {
	t.Parallel()
	h, err := streaming.NewHub(memstore.NewEventStore(memstore.Options{}), streaming.Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, h.Run(ctx), context.Canceled)
	assert.ErrorIs(t, h.Run(context.Background()), streaming.ErrHubClosed, "Run may be called once")

	h2, err := streaming.NewHub(memstore.NewEventStore(memstore.Options{}), streaming.Options{})
	require.NoError(t, err)
	require.NoError(t, h2.Shutdown(context.Background()))
	assert.ErrorIs(t, h2.Run(context.Background()), streaming.ErrHubClosed)
}

// TestCursorBeyondTheEnd: a client whose cursor lies beyond the store's last
// event joins first; a client behind it still gets every live event.
func TestCursorBeyondTheEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	evs := e.append("b1", contracts.Started(""))
	ahead := dialSSE(t, e.addr, "/sse/b1", http.Header{"Last-Event-ID": {"99999999999999-0"}})
	require.Equal(t, http.StatusOK, ahead.resp.StatusCode)
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("b1") == 1 }, wait, time.Millisecond)

	behind := dialSSE(t, e.addr, "/sse/b1", nil)
	ev, err := behind.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, evs[0].EventID, ev.EventID)
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("b1") == 2 }, wait, time.Millisecond)

	live := e.append("b1", progress(t, 1), progress(t, 2))
	for _, want := range live {
		ev, err := behind.nextEvent(wait)
		require.NoError(t, err)
		assert.Equal(t, want.EventID, ev.EventID)
	}
}

// The hub is the orchestration Waiter of long-polls (checked here, so the
// package itself does not depend on orchestration).
var _ orchestration.Waiter = (*streaming.Hub)(nil)
