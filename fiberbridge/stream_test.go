package fiberbridge_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
)

const wait = 10 * time.Second

func TestSSELiveAndTerminalClose(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.gated", nil)
	s, r := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s, string(r.body))
	assert.Equal(t, "text/event-stream", r.header.Get("Content-Type"))
	assert.Equal(t, "no-cache, no-transform", r.header.Get("Cache-Control"))
	assert.Equal(t, "no", r.header.Get("X-Accel-Buffering"))

	assert.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)
	gate := h.gates.get(id)
	gate <- "one"
	ev := s.nextEvent(wait)
	assert.Equal(t, contracts.EventMessage, ev.Type)
	assert.JSONEq(t, `{"message":"one","level":"info"}`, string(ev.Payload))
	gate <- "two"
	assert.Equal(t, contracts.EventMessage, s.nextEvent(wait).Type)
	close(gate)
	rest := s.readUntilEnd(wait) // the server ends the response after the terminal event
	require.Len(t, rest, 1)
	assert.Equal(t, contracts.EventCompleted, rest[0].Type)
}

func TestSSEReplayCursors(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.steps", map[string]any{"steps": 3})
	all := h.pollUntilTerminal("alice", id) // STARTED, 3 x PROGRESS, COMPLETED

	// No cursor: everything, then the end.
	s, _ := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s)
	assert.Equal(t, ids(all), ids(s.readUntilEnd(wait)))

	// Last-Event-ID header: strictly after it.
	s, _ = h.openSSE("alice", id, "", http.Header{"Last-Event-Id": {all[1].EventID.String()}})
	require.NotNil(t, s)
	assert.Equal(t, ids(all[2:]), ids(s.readUntilEnd(wait)))

	// lastEventId query for first connects.
	s, _ = h.openSSE("alice", id, "?lastEventId="+all[2].EventID.String(), nil)
	require.NotNil(t, s)
	assert.Equal(t, ids(all[3:]), ids(s.readUntilEnd(wait)))

	// The header wins over the query.
	s, _ = h.openSSE("alice", id, "?lastEventId="+all[0].EventID.String(), http.Header{"Last-Event-Id": {all[3].EventID.String()}})
	require.NotNil(t, s)
	assert.Equal(t, ids(all[4:]), ids(s.readUntilEnd(wait)))

	// At the terminal event: 204, so EventSource stops reconnecting.
	s, r := h.openSSE("alice", id, "", http.Header{"Last-Event-Id": {all[4].EventID.String()}})
	require.Nil(t, s)
	assert.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.body)

	// Malformed cursors: 400 before any stream starts.
	for _, tc := range []struct {
		query  string
		header http.Header
		param  string
	}{
		{"?lastEventId=garbage", nil, "lastEventId"},
		{"", http.Header{"Last-Event-Id": {"garbage"}}, "Last-Event-ID"},
		{"", http.Header{"Last-Event-Id": {strings.Repeat("1", 200)}}, "Last-Event-ID"},
		{"?lastEventId=1-", nil, "lastEventId"},
	} {
		s, r := h.openSSE("alice", id, tc.query, tc.header)
		require.Nil(t, s)
		env := checkEnvelope(t, r, http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
		assert.Equal(t, tc.param, env.Details["parameter"])
	}
	// A 10 KB header is over fasthttp's header buffer: 431, still an envelope.
	_, r = h.openSSE("alice", id, "", http.Header{"Last-Event-Id": {strings.Repeat("7", 10<<10)}})
	checkEnvelope(t, r, http.StatusRequestHeaderFieldsTooLarge, bridgeerr.CodeInvalidRequest)
}

func TestSSEHeartbeats(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.Stream.HeartbeatInterval = 20 * time.Millisecond
	})
	id := h.create("alice", "test.gated", nil)
	s, _ := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s)
	require.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)
	var pings, beats int
	for pings < 2 || beats < 2 {
		it, ok := s.nextItem(wait)
		require.True(t, ok)
		if it.isPing {
			pings++
			continue
		}
		f := conformance.CheckFrame(t, it.data)
		require.NotNil(t, f.Heartbeat, "idle stream sends heartbeats, got %s", it.data)
		assert.False(t, it.hasID, "a heartbeat must not move Last-Event-ID")
		assert.Equal(t, id, f.Heartbeat.TaskID)
		beats++
	}
	close(h.gates.get(id))
}

func TestWebSocketFlow(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.gated", nil)
	c, r := h.dialWS("alice", false)
	require.NotNil(t, c, string(r.body))
	c.subscribe(id, nil)
	conf := c.read(wait)
	require.NotNil(t, conf.frame.Confirmation)
	assert.Equal(t, id, conf.frame.Confirmation.TaskID)
	assert.Nil(t, conf.frame.Confirmation.ReplayStartedAfterEventID)
	assert.True(t, conf.frame.Confirmation.Live)

	assert.Equal(t, contracts.EventStarted, c.nextEvent(wait).Type)
	gate := h.gates.get(id)
	gate <- "live"
	assert.Equal(t, contracts.EventMessage, c.nextEvent(wait).Type)
	close(gate)
	evs := c.expectClose(websocket.CloseNormalClosure, wait) // 1000 after the terminal event
	require.Len(t, evs, 1)
	assert.Equal(t, contracts.EventCompleted, evs[0].Type)
}

func TestWebSocketReplayCursor(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.steps", map[string]any{"steps": 3})
	all := h.pollUntilTerminal("alice", id)

	for i, tc := range []struct {
		cursor *string
		want   []contracts.TaskEvent
	}{
		{nil, all},
		{strPtr(""), all},
		{strPtr(all[1].EventID.String()), all[2:]},
		{strPtr(all[3].EventID.String()), all[4:]},
	} {
		c, _ := h.dialWS("alice", i%2 == 1) // header and access_token alternately
		require.NotNil(t, c)
		c.subscribe(id, tc.cursor)
		conf := c.read(wait)
		require.NotNil(t, conf.frame.Confirmation)
		if tc.cursor != nil && *tc.cursor != "" {
			require.NotNil(t, conf.frame.Confirmation.ReplayStartedAfterEventID)
			assert.Equal(t, *tc.cursor, *conf.frame.Confirmation.ReplayStartedAfterEventID)
		} else {
			assert.Nil(t, conf.frame.Confirmation.ReplayStartedAfterEventID)
		}
		assert.Equal(t, ids(tc.want), ids(c.expectClose(websocket.CloseNormalClosure, wait)))
	}
}

func TestWebSocketRefusals(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.block", nil)

	// No credentials: the 401 envelope, before the upgrade.
	c, r := h.dialWS("", false)
	require.Nil(t, c)
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)

	// Not an upgrade: 426.
	checkEnvelope(t, h.request(http.MethodGet, "/api/v1/tasks/ws", "alice", "", nil), http.StatusUpgradeRequired, bridgeerr.CodeInvalidRequest)

	// Foreign and missing tasks close 1008 alike.
	for _, task := range []string{id, contracts.NewID()} {
		c, _ := h.dialWS("bob", false)
		require.NotNil(t, c)
		c.subscribe(task, nil)
		r := c.read(wait)
		require.True(t, r.closed)
		assert.Equal(t, websocket.ClosePolicyViolation, r.closeCode)
		assert.Equal(t, string(bridgeerr.CodeTaskNotFound), r.closeText)
	}

	// Invalid first frames close 1008.
	for name, frame := range map[string]string{
		"not JSON":         "hello",
		"wrong action":     `{"action":"unsubscribe","taskId":"` + id + `"}`,
		"bad cursor":       `{"action":"subscribe","taskId":"` + id + `","lastEventId":"x"}`,
		"unknown field":    `{"action":"subscribe","taskId":"` + id + `","extra":1}`,
		"over-long taskId": `{"action":"subscribe","taskId":"` + strings.Repeat("a", 300) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := h.dialWS("alice", false)
			require.NotNil(t, c)
			require.NoError(t, c.conn.WriteMessage(websocket.TextMessage, []byte(frame)))
			r := c.read(wait)
			require.True(t, r.closed)
			assert.Equal(t, websocket.ClosePolicyViolation, r.closeCode)
		})
	}
}

func TestWebSocketHeartbeats(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) { cfg.Stream.HeartbeatInterval = 20 * time.Millisecond })
	id := h.create("alice", "test.gated", nil)
	c, _ := h.dialWS("alice", false)
	require.NotNil(t, c)
	c.subscribe(id, nil)
	require.NotNil(t, c.read(wait).frame.Confirmation)
	require.Equal(t, contracts.EventStarted, c.nextEvent(wait).Type)
	for range 2 {
		r := c.read(wait)
		require.NotNil(t, r.frame.Heartbeat)
		assert.Equal(t, id, r.frame.Heartbeat.TaskID)
		assert.True(t, r.frame.Heartbeat.Live)
	}
	close(h.gates.get(id))
}

// TestActionFlowOverStreams runs the suspension flow while an SSE and a
// WebSocket client watch: both see the same events, in order, once.
func TestActionFlowOverStreams(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.approval", nil)
	s, _ := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s)
	c, _ := h.dialWS("alice", false)
	require.NotNil(t, c)
	c.subscribe(id, nil)
	require.NotNil(t, c.read(wait).frame.Confirmation)

	require.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)
	susp := s.nextEvent(wait)
	require.Equal(t, contracts.EventSuspended, susp.Type)
	p, err := contracts.DecodePayload(&susp)
	require.NoError(t, err)
	suspendID := p.(contracts.SuspendedPayload).SuspendID

	r := h.postJSON("/api/v1/tasks/"+id+"/actions", "alice",
		map[string]any{"clientActionId": "x-1", "suspendId": suspendID, "actionType": "reject"})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	sseEvents := s.readUntilEnd(wait)
	wsEvents := c.expectClose(websocket.CloseNormalClosure, wait)
	require.Len(t, wsEvents, 4)
	assert.Equal(t, ids(wsEvents[2:]), ids(sseEvents))
	assert.Equal(t, contracts.EventActionAccepted, wsEvents[2].Type)
	assert.JSONEq(t, `{"result":{"decision":"reject"}}`, string(wsEvents[3].Payload))
}

// TestCancelEndsStreams: a cancelled task's streams end with TASK_CANCELLED.
func TestCancelEndsStreams(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.block", nil)
	s, _ := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s)
	c, _ := h.dialWS("alice", false)
	require.NotNil(t, c)
	c.subscribe(id, nil)
	require.NotNil(t, c.read(wait).frame.Confirmation)
	require.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)
	require.Equal(t, contracts.EventStarted, c.nextEvent(wait).Type)

	r := h.request(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "", nil)
	require.Equal(t, http.StatusAccepted, r.status)
	sse := s.readUntilEnd(wait)
	ws := c.expectClose(websocket.CloseNormalClosure, wait)
	require.Len(t, sse, 1)
	assert.Equal(t, contracts.EventCancelled, sse[0].Type)
	assert.Equal(t, ids(sse), ids(ws))
}

// TestShutdownWithOpenStreams: Shutdown ends SSE streams, closes
// WebSockets with 1001 and answers long-polls within 2 s; then the app
// shuts down without being held open (goleak checks the rest).
func TestShutdownWithOpenStreams(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.gated", nil)

	const n = 20
	sse := make([]*sseStream, n)
	ws := make([]*wsClient, n)
	for i := range n {
		s, _ := h.openSSE("alice", id, "", nil)
		require.NotNil(t, s)
		require.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)
		sse[i] = s
		c, _ := h.dialWS("alice", false)
		require.NotNil(t, c)
		c.subscribe(id, nil)
		require.NotNil(t, c.read(wait).frame.Confirmation)
		require.Equal(t, contracts.EventStarted, c.nextEvent(wait).Type)
		ws[i] = c
	}
	first, _ := h.poll("alice", id, "")
	cursor := first.Events[len(first.Events)-1].EventID.String()
	polls := make(chan response, n)
	for range n {
		go func() {
			_, r := h.poll("alice", id, "?waitTimeoutMs=60000&afterEventId="+cursor)
			polls <- r
		}()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, h.bridge.Shutdown(ctx))
	assert.Less(t, time.Since(start), 2*time.Second)

	var wg sync.WaitGroup
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			assert.Empty(t, sse[i].readUntilEnd(wait))
		}()
		go func() {
			defer wg.Done()
			assert.Empty(t, ws[i].expectClose(websocket.CloseGoingAway, wait))
		}()
	}
	wg.Wait()
	for range n {
		r := recv(t, polls, "a long-poll's answer")
		assert.Equal(t, http.StatusOK, r.status, string(r.body))
	}
	// New streams are refused while shutting down.
	_, r := h.openSSE("alice", id, "", nil)
	checkEnvelope(t, r, http.StatusServiceUnavailable, bridgeerr.CodeServiceShuttingDown)
	c, r := h.dialWS("alice", false)
	require.Nil(t, c)
	checkEnvelope(t, r, http.StatusServiceUnavailable, bridgeerr.CodeServiceShuttingDown)

	appCtx, appCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer appCancel()
	h.client.CloseIdleConnections()
	require.NoError(t, h.app.ShutdownWithContext(appCtx))
	close(h.gates.get(id))
}

// TestAppShutdownFirst: the other order (app first, then bridge) is safe:
// the app's shutdown wakes long-polls and is not held open by the hijacked
// streams; the bridge's Shutdown then ends the streams.
func TestAppShutdownFirst(t *testing.T) {
	t.Parallel()
	reads := &countingEvents{}
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		reads.EventStore = cfg.Stores.Events
		cfg.Stores.Events = reads
	})
	id := h.create("alice", "test.gated", nil)
	s, _ := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s)
	require.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)
	c, _ := h.dialWS("alice", false)
	require.NotNil(t, c)
	c.subscribe(id, nil)
	require.NotNil(t, c.read(wait).frame.Confirmation)
	require.Equal(t, contracts.EventStarted, c.nextEvent(wait).Type)

	first, _ := h.poll("alice", id, "")
	last := first.Events[len(first.Events)-1].EventID
	reads.watch(id, last)
	poll := make(chan response, 1)
	go func() {
		_, r := h.poll("alice", id, "?waitTimeoutMs=60000&afterEventId="+last.String())
		poll <- r
	}()
	require.Eventually(t, func() bool { return reads.count() >= 1 }, wait, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h.client.CloseIdleConnections()
	require.NoError(t, h.app.ShutdownWithContext(ctx), "the app's shutdown is not held open")
	select {
	case r := <-poll:
		assert.Equal(t, http.StatusOK, r.status, string(r.body))
	case <-time.After(wait):
		t.Fatal("long-poll not woken by the server's shutdown")
	}

	require.NoError(t, h.bridge.Shutdown(ctx))
	assert.Empty(t, s.readUntilEnd(wait))
	c.expectClose(websocket.CloseGoingAway, wait)
	close(h.gates.get(id))
}

func TestMaxStreamsPerSubject(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) { cfg.MaxStreamsPerSubject = 2 })
	id := h.create("alice", "test.gated", nil)
	s1, _ := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s1)
	c1, _ := h.dialWS("alice", false)
	require.NotNil(t, c1)

	_, r := h.openSSE("alice", id, "", nil)
	env := checkEnvelope(t, r, http.StatusTooManyRequests, bridgeerr.CodeTooManyStreams)
	assert.EqualValues(t, 2, env.Details["maxStreams"])
	// A WebSocket over the limit is upgraded and closed 1008 with the code
	// as its reason (browsers see close codes, not refused upgrades).
	c, _ := h.dialWS("alice", false)
	require.NotNil(t, c)
	c.subscribe(id, nil)
	refused := c.read(wait)
	require.True(t, refused.closed)
	assert.Equal(t, websocket.ClosePolicyViolation, refused.closeCode)
	assert.Equal(t, string(bridgeerr.CodeTooManyStreams), refused.closeText)

	// Other subjects have their own slots (bob's stream is a 404 here,
	// which takes no slot).
	_, r = h.openSSE("bob", id, "", nil)
	checkEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)

	// A closed stream frees its slot once the server notices.
	s1.close()
	require.Eventually(t, func() bool {
		s, _ := h.openSSE("alice", id, "", nil)
		if s == nil {
			return false
		}
		s.close()
		return true
	}, wait, 10*time.Millisecond)
	require.NoError(t, c1.conn.Close())
	require.Eventually(t, func() bool {
		c, _ := h.dialWS("alice", false)
		require.NotNil(t, c)
		defer c.conn.Close()
		c.subscribe(id, nil)
		return c.read(wait).frame.Confirmation != nil
	}, wait, 10*time.Millisecond)
	close(h.gates.get(id))
}
