package streaming_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

const wait = 5 * time.Second

func TestSSEReplayLiveAndTerminalEnd(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			metrics := newCounterSink()
			e := newEnv(t, streaming.Options{Metrics: metrics}, m.opt)
			first := e.append("t1", contracts.Started("go"), progress(t, 10))

			s := dialSSE(t, e.addr, "/sse/t1", nil)
			require.Equal(t, http.StatusOK, s.resp.StatusCode)
			e.requireMode(1)
			assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
			assert.Equal(t, "no-cache, no-transform", s.resp.Header.Get("Cache-Control"))
			assert.Equal(t, "no", s.resp.Header.Get("X-Accel-Buffering"))
			// The stream's end closes the connection: clients must not pool
			// it (Go's client reads "Connection: close" into resp.Close).
			assert.True(t, s.resp.Close)
			assert.Equal(t, []string{"chunked"}, s.resp.TransferEncoding)

			var got []contracts.TaskEvent
			for range first {
				ev, err := s.nextEvent(wait)
				require.NoError(t, err)
				got = append(got, ev)
			}
			assert.Equal(t, ids(first), ids(got))

			live := e.append("t1", progress(t, 50), message(t, "half"), completed(t))
			got = got[:0]
			for range live {
				ev, err := s.nextEvent(wait)
				require.NoError(t, err)
				got = append(got, ev)
			}
			assert.Equal(t, ids(live), ids(got))
			s.expectEnd(wait)

			require.Eventually(t, func() bool { return e.hub.OpenStreams() == 0 }, wait, 5*time.Millisecond)
			assert.Equal(t, float64(5), metrics.get(observe.MetricEventsDelivered, "sse"))
			assert.Equal(t, float64(0), metrics.get(observe.MetricStreamsActive, "sse"), "gauge back to zero")

		})
	}
}

func TestSSECursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	evs := e.append("t2", contracts.Started(""), progress(t, 1), progress(t, 2), progress(t, 3))

	tests := []struct {
		name   string
		path   string
		header http.Header
		want   []contracts.TaskEvent
	}{
		{name: "no cursor replays everything", path: "/sse/t2", want: evs},
		{name: "Last-Event-ID header", path: "/sse/t2", header: http.Header{"Last-Event-ID": {evs[1].EventID.String()}}, want: evs[2:]},
		{name: "lastEventId query", path: "/sse/t2?lastEventId=" + evs[2].EventID.String(), want: evs[3:]},
		{name: "header wins over query", path: "/sse/t2?lastEventId=" + evs[0].EventID.String(), header: http.Header{"Last-Event-ID": {evs[2].EventID.String()}}, want: evs[3:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := dialSSE(t, e.addr, tc.path, tc.header)
			require.Equal(t, http.StatusOK, s.resp.StatusCode)
			for _, want := range tc.want {
				ev, err := s.nextEvent(wait)
				require.NoError(t, err)
				assert.Equal(t, want.EventID, ev.EventID)
			}
			// Nothing more until a new event: the next frame is the live one.
			_ = s.conn.Close()
		})
	}
}

func TestSSEEndedTaskAnswers204(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	evs := e.append("t3", contracts.Started(""), completed(t))
	terminal := evs[1].EventID

	for _, cursor := range []string{terminal.String(), terminal.Next().String(), "99999999999999-0"} {
		t.Run("cursor "+cursor, func(t *testing.T) {
			s := dialSSE(t, e.addr, "/sse/t3", http.Header{"Last-Event-ID": {cursor}})
			assert.Equal(t, http.StatusNoContent, s.resp.StatusCode)
			body, err := io.ReadAll(s.resp.Body)
			require.NoError(t, err)
			assert.Empty(t, body)
		})
	}
	t.Run("cursor before terminal replays and ends", func(t *testing.T) {
		s := dialSSE(t, e.addr, "/sse/t3", http.Header{"Last-Event-ID": {evs[0].EventID.String()}})
		require.Equal(t, http.StatusOK, s.resp.StatusCode)
		ev, err := s.nextEvent(wait)
		require.NoError(t, err)
		assert.Equal(t, terminal, ev.EventID)
		s.expectEnd(wait)
	})
}

func TestSSEHeartbeatsWhenIdle(t *testing.T) {
	t.Parallel()
	metrics := newCounterSink()
	const interval = 30 * time.Millisecond
	e := newEnv(t, streaming.Options{HeartbeatInterval: interval, Metrics: metrics})
	e.append("t4", contracts.Started(""))
	// Every write to the stream comes after this. A heartbeat is written
	// once the stream has had no write for the interval, and says when it
	// was written (createdAt has millisecond precision, so prev is too): a
	// heartbeat may wait in the client's buffer before it is read, but it is
	// never stale or early.
	prev := time.Now().Truncate(time.Millisecond)
	s := dialSSE(t, e.addr, "/sse/t4", nil)
	_, err := s.nextEvent(wait)
	require.NoError(t, err)

	ids := map[string]bool{}
	for range 2 {
		f, err := s.next(wait)
		require.NoError(t, err)
		assert.Equal(t, []string{"ping"}, f.comments)
		assert.Empty(t, f.id, "a heartbeat must not move Last-Event-ID")
		// The data line of taskbridge-fastapi, key for key and in its order.
		assert.Regexp(t, `^\{"type":"HEARTBEAT","taskId":"t4","eventId":"hb-[0-9a-f]{32}","createdAt":"[^"]+","payload":\{"live":true\}\}$`, f.data)
		frame := conformance.CheckFrame(t, []byte(f.data))
		require.NotNil(t, frame.Heartbeat)
		assert.Equal(t, "t4", frame.Heartbeat.TaskID)
		assert.True(t, frame.Heartbeat.Live)
		assert.WithinRange(t, frame.Heartbeat.CreatedAt, prev.Add(interval), time.Now())
		prev = frame.Heartbeat.CreatedAt
		assert.False(t, ids[frame.Heartbeat.EventID], "heartbeat ids are fresh each time")
		ids[frame.Heartbeat.EventID] = true
	}
	assert.GreaterOrEqual(t, metrics.get(observe.MetricHeartbeats, "sse"), float64(2))
}

func TestSSECommentHeartbeatOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{HeartbeatInterval: 20 * time.Millisecond, SSECommentHeartbeatOnly: true})
	s := dialSSE(t, e.addr, "/sse/t5", nil)
	for range 2 {
		f, err := s.next(wait)
		require.NoError(t, err)
		assert.Equal(t, []string{"ping"}, f.comments)
		assert.Empty(t, f.data)
		assert.Empty(t, f.id)
	}
}

func TestSSEPreambleAndHostHeaders(t *testing.T) {
	t.Parallel()
	cors := func(c *fiber.Ctx) error {
		c.Set("Access-Control-Allow-Origin", "https://app.example")
		c.Set("Content-Type", "text/html") // replaced by the stream's type
		return c.Next()
	}
	e := newEnv(t, streaming.Options{SSEPreambleBytes: 2048}, withMiddleware(cors))
	e.append("t6", contracts.Started(""))
	s := dialSSE(t, e.addr, "/sse/t6", nil)
	assert.Equal(t, "https://app.example", s.resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Equal(t, "text/event-stream", s.resp.Header.Get("Content-Type"))
	f, err := s.next(wait)
	require.NoError(t, err)
	require.Len(t, f.comments, 1)
	assert.Equal(t, 0, len(f.comments[0]), "the preamble is a comment of spaces")
	_, err = s.nextEvent(wait)
	require.NoError(t, err)
}

func TestSSEErrorsBeforeStreaming(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	t.Run("malformed cursor", func(t *testing.T) {
		s := dialSSE(t, e.addr, "/sse/t7", http.Header{"Last-Event-ID": {"garbage"}})
		assert.Equal(t, http.StatusBadRequest, s.resp.StatusCode)
	})
	t.Run("store failure answers the envelope", func(t *testing.T) {
		e.store.failRead.Store(true)
		defer e.store.failRead.Store(false)
		s := dialSSE(t, e.addr, "/sse/t7", nil)
		assert.Equal(t, http.StatusInternalServerError, s.resp.StatusCode)
		body, _ := io.ReadAll(s.resp.Body)
		assert.Contains(t, string(body), `"code":"INTERNAL_ERROR"`)
		assert.NotContains(t, string(body), errInjected.Error(), "no internal cause leaks")
	})
	t.Run("after shutdown", func(t *testing.T) {
		e2 := newEnv(t, streaming.Options{})
		e2.shutdown()
		s := dialSSE(t, e2.addr, "/sse/t7", nil)
		assert.Equal(t, http.StatusServiceUnavailable, s.resp.StatusCode)
	})
}

func TestSSEHeadRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	e.append("t8", contracts.Started(""))
	req, err := http.NewRequest(http.MethodHead, "http://"+e.addr+"/sse/t8", nil)
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
}

func TestSSEClientLeavingCleansUp(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			metrics := newCounterSink()
			e := newEnv(t, streaming.Options{Metrics: metrics}, m.opt)
			e.append("t9", contracts.Started(""))
			for range 20 {
				s := dialSSE(t, e.addr, "/sse/t9", nil)
				_, err := s.nextEvent(wait)
				require.NoError(t, err)
				require.NoError(t, s.conn.Close())
			}
			require.Eventually(t, func() bool { return e.hub.OpenStreams() == 0 }, wait, 5*time.Millisecond)
			assert.Equal(t, float64(0), metrics.get(observe.MetricStreamsActive, "sse"))
			// The task's state is dropped with its last subscriber: a new append
			// costs nothing but a map lookup.
			before := e.store.reads.Load()
			e.append("t9", progress(t, 5))
			assert.Equal(t, before, e.store.reads.Load())

		})
	}
}

func TestSSEStoreFailureEndsStreamCleanly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{StoreRetryBudget: -1}) // no retries: the first failure ends the stream
	e.append("t10", contracts.Started(""))
	s := dialSSE(t, e.addr, "/sse/t10", nil)
	_, err := s.nextEvent(wait)
	require.NoError(t, err)
	e.store.failRead.Store(true)
	e.append("t10", progress(t, 1))
	s.expectEnd(wait)
}

func TestSSENoInjectionFromPayload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	e.append("t11", message(t, "line1\nid: 999-0\ndata: {\"type\":\"x\"}\n\nline2\r\n"))
	s := dialSSE(t, e.addr, "/sse/t11", nil)
	ev, err := s.nextEvent(wait)
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(ev.Payload), `line1\nid: 999-0`))
}

func TestSSEOnCloseOnce(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			evs := e.append("t12", contracts.Started(""))
			e.append("t13", contracts.Started(""), completed(t))

			// Terminal end.
			done := dialSSE(t, e.addr, "/sse/t13", nil)
			for range 2 {
				_, err := done.nextEvent(wait)
				require.NoError(t, err)
			}
			done.expectEnd(wait)
			// The client leaves.
			gone := dialSSE(t, e.addr, "/sse/t12", nil)
			_, err := gone.nextEvent(wait)
			require.NoError(t, err)
			require.NoError(t, gone.conn.Close())
			// A HEAD request.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			defer client.CloseIdleConnections()
			req, _ := http.NewRequest(http.MethodHead, "http://"+e.addr+"/sse/t12", nil)
			resp, err := client.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			// 204 (no stream: no OnClose).
			none := dialSSE(t, e.addr, "/sse/t13", http.Header{"Last-Event-ID": {"99999999999999-0"}})
			require.Equal(t, http.StatusNoContent, none.resp.StatusCode)
			// Shutdown.
			open := dialSSE(t, e.addr, "/sse/t12", http.Header{"Last-Event-ID": {evs[0].EventID.String()}})
			require.Eventually(t, func() bool { return e.hub.LiveSubscribers("t12") == 1 }, wait, time.Millisecond)
			e.shutdown()
			open.expectEnd(wait)

			require.Eventually(t, func() bool { return e.sseClosed.Load() == 4 }, wait, time.Millisecond)
			assert.Equal(t, 0, e.hub.OpenStreams())
		})
	}
}

// deadlineFailingConn is a server connection whose deadlines fail once
// failing is set, as a connection that died under fasthttp would.
type deadlineFailingConn struct {
	net.Conn
	failing atomic.Bool
}

var errConnGone = errors.New("connection gone")

func (c *deadlineFailingConn) SetDeadline(t time.Time) error {
	if c.failing.Load() {
		return errConnGone
	}
	return c.Conn.SetDeadline(t)
}

func (c *deadlineFailingConn) SetWriteDeadline(t time.Time) error {
	if c.failing.Load() {
		return errConnGone
	}
	return c.Conn.SetWriteDeadline(t)
}

type deadlineFailingListener struct{ net.Listener }

func (l deadlineFailingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineFailingConn{Conn: c}, nil
}

// TestSSEOnCloseWhenConnectionIsNeverHandedOver: fasthttp hands the
// connection to ServeSSE's stream only after the handler returned, and not
// at all when it cannot prepare it (here its deadlines fail, as on a
// connection that died meanwhile). OnClose must still be called, once, so
// a host's per-subject stream slot is never leaked.
func TestSSEOnCloseWhenConnectionIsNeverHandedOver(t *testing.T) {
	t.Parallel()
	mem := memstore.NewEventStore(memstore.Options{})
	_, err := mem.Append(context.Background(), "h1", contracts.Started(""))
	require.NoError(t, err)
	hub, err := streaming.NewHub(mem, streaming.Options{})
	require.NoError(t, err)
	hub.SetHandoverTimeout(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- hub.Run(ctx) }()

	var calls atomic.Int32
	closed := make(chan struct{})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/sse/:taskId", func(c *fiber.Ctx) error {
		c.Context().Conn().(*deadlineFailingConn).failing.Store(true)
		return hub.ServeSSE(c, streaming.StreamRequest{TaskID: c.Params("taskId"), OnClose: func() {
			if calls.Add(1) == 1 {
				close(closed)
			}
		}})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = app.Listener(deadlineFailingListener{ln})
	}()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_ = hub.Shutdown(sctx)
		cancel()
		<-runDone
		_ = app.ShutdownWithTimeout(5 * time.Second)
		_ = ln.Close()
		<-served
	})

	conn, err := net.DialTimeout("tcp", ln.Addr().String(), wait)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /sse/h1 HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	n, err := conn.Read(make([]byte, 512))
	assert.Zero(t, n, "nothing is written on a connection fasthttp could not hand over")
	assert.ErrorIs(t, err, io.EOF)
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("OnClose was never called")
	}
	assert.Equal(t, 0, hub.OpenStreams())
	require.NoError(t, hub.Shutdown(context.Background()))
	assert.EqualValues(t, 1, calls.Load(), "OnClose exactly once")
}
