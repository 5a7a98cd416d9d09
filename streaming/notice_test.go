package streaming_test

import (
	"context"
	"net"
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

// gatedStore holds the armed Read of a task, after it has read the store,
// until released: it stretches the window between a stream's first read
// and its registration in the hub, or a long-poll's read and its wait.
type gatedStore struct {
	contracts.EventStore
	mu      sync.Mutex
	task    string
	held    chan struct{}
	release chan struct{}
}

// arm holds the next Read of taskID; held is closed once that read has
// read the store, release lets it return (also at the end of the test).
func (g *gatedStore) arm(t testing.TB, taskID string) (held <-chan struct{}, release func()) {
	t.Helper()
	g.mu.Lock()
	g.task, g.held, g.release = taskID, make(chan struct{}), make(chan struct{})
	h, r := g.held, g.release
	g.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(r) }) }
	t.Cleanup(release)
	return h, release
}

func (g *gatedStore) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	page, err := g.EventStore.Read(ctx, taskID, after, limit)
	g.mu.Lock()
	armed := g.task != "" && g.task == taskID
	held, release := g.held, g.release
	if armed {
		g.task = ""
	}
	g.mu.Unlock()
	if armed {
		close(held)
		<-release
	}
	return page, err
}

func waitHeld(t testing.TB, held <-chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatal("the stream's first read did not happen")
	}
}

// TestEventBetweenFirstReadAndRegistration: an event appended after a
// stream's first read and before the stream is registered in the hub is
// announced while no local stream follows the task, so the notice finds
// nobody to record it. The stream must still receive it and, since it is
// the terminal event, end. Regression: the stream waited for a next
// notice that never came, and never ended. Covers the first page read by
// the caller (as fiberbridge does with SubscriptionService.Replay) and by
// ServeSSE, and the WebSocket handshake's read under AttachWebSocket and
// ServeWebSocket, in both connection modes.
func TestEventBetweenFirstReadAndRegistration(t *testing.T) {
	t.Parallel()
	type opener func(t *testing.T, e *env, gate *gatedStore, taskID string, appended func()) streamReader
	sse := func(path string) opener {
		return func(t *testing.T, e *env, gate *gatedStore, taskID string, appended func()) streamReader {
			held, release := gate.arm(t, taskID)
			finish := requestSSE(t, &net.Dialer{}, e.addr, path+taskID, nil)
			waitHeld(t, held)
			appended()
			release()
			return sseReader{finish()}
		}
	}
	ws := func(path string) opener {
		return func(t *testing.T, e *env, gate *gatedStore, taskID string, appended func()) streamReader {
			c := dialWSPath(t, &net.Dialer{}, e.addr, path)
			held, release := gate.arm(t, taskID)
			c.subscribe(taskID, nil)
			waitHeld(t, held)
			appended()
			release()
			c.confirmation(wait)
			return wsReader{c}
		}
	}
	cases := []struct {
		name string
		open opener
	}{
		{name: "sse/first page read by the caller", open: sse("/sse-initial/")},
		{name: "sse/first page read by ServeSSE", open: sse("/sse/")},
		{name: "ws/AttachWebSocket", open: ws("/ws")},
		{name: "ws/ServeWebSocket", open: ws("/ws-blocking")},
	}
	for _, m := range connModes {
		for _, tc := range cases {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				gate := &gatedStore{}
				e := newEnv(t, streaming.Options{}, m.opt, withStore(func(s contracts.EventStore) contracts.EventStore {
					gate.EventStore = s
					return gate
				}))
				const task = "n1"
				first := e.append(task, contracts.Started(""))
				var last []contracts.TaskEvent
				r := tc.open(t, e, gate, task, func() {
					// memstore notifies synchronously: when Append returns,
					// the hub has seen (and, before the fix, dropped) the notice.
					last = e.append(task, completed(t))
				})
				got := []contracts.TaskEvent{r.nextEvent(t), r.nextEvent(t)}
				assert.Equal(t, ids(append(first, last...)), ids(got))
				r.expectEnd(t)
			})
		}
	}
}

// streamReader reads one SSE or WebSocket stream in a test.
type streamReader interface {
	nextEvent(t *testing.T) contracts.TaskEvent
	expectEnd(t *testing.T)
}

type sseReader struct{ s *sseStream }

func (r sseReader) nextEvent(t *testing.T) contracts.TaskEvent {
	t.Helper()
	ev, err := r.s.nextEvent(wait)
	require.NoError(t, err, "the event appended during the first read must arrive")
	return ev
}

func (r sseReader) expectEnd(*testing.T) { r.s.expectEnd(wait) }

type wsReader struct{ c *wsClient }

func (r wsReader) nextEvent(t *testing.T) contracts.TaskEvent {
	t.Helper()
	ev, err := r.c.nextEvent(wait)
	require.NoError(t, err, "the event appended during the first read must arrive")
	return ev
}

func (r wsReader) expectEnd(t *testing.T) {
	t.Helper()
	code, _ := r.c.expectClose(wait)
	assert.Equal(t, websocket.CloseNormalClosure, code)
}

// TestLongPollWokenByEventDuringItsRead: a long-poll waiting on the hub
// registers its watch before reading, so an event appended while its read
// is in flight (after the store was read) wakes it at once; the poll
// returns that event instead of an empty page at its deadline.
func TestLongPollWokenByEventDuringItsRead(t *testing.T) {
	t.Parallel()
	gate := &gatedStore{}
	e := newEnv(t, streaming.Options{}, withStore(func(s contracts.EventStore) contracts.EventStore {
		gate.EventStore = s
		return gate
	}))
	stores := memstore.New(memstore.Options{})
	registry := stores.Tasks
	stores.Events = gate
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, Waiter: e.hub})
	require.NoError(t, err)
	t.Cleanup(func() { _ = exec.Close(context.Background()) })
	svc, err := orchestration.NewServices(orchestration.Options{Stores: stores, Executor: exec, Waiter: e.hub})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	ctx := context.Background()
	_, _, err = registry.Create(ctx, contracts.TaskRecord{
		TaskID: "lp1", OwnerID: "alice", ClientRequestID: "r", TaskType: "x", Status: contracts.StatusAccepted,
	})
	require.NoError(t, err)
	first := e.append("lp1", contracts.Started(""))

	held, release := gate.arm(t, "lp1")
	type result struct {
		res contracts.PollResult
		err error
	}
	done := make(chan result, 1)
	pollCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	go func() {
		res, err := svc.Polling.Poll(pollCtx, contracts.PollQuery{
			Auth: contracts.AuthContext{Subject: "alice"}, TaskID: "lp1", After: first[0].EventID, Limit: 10, Wait: time.Minute,
		})
		done <- result{res, err}
	}()
	waitHeld(t, held) // the poll read [] after STARTED and is about to wait
	next := e.append("lp1", progress(t, 10))
	release()
	var r result
	select {
	case r = <-done:
	case <-time.After(wait):
		t.Fatal("the long-poll did not answer")
	}
	require.NoError(t, r.err)
	assert.Equal(t, ids(next), ids(r.res.Events), "woken by the append, not by its deadline")
}
