package redisstore_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// The fault tests run two bridge instances on a private redis-server (so
// they may pause, kill and restart it) and follow a task with SSE and
// WebSocket clients on both while Redis goes away. Each client behaves
// like a real one: when its stream ends before the terminal event it
// reconnects with its cursor (backoff 20 to 320 ms).

// Timeouts of the fault tests' instances: Redis calls give up after 300 ms
// (faultClient), the readiness probe after 250 ms, the change feed notices
// a silent subscription within 200 ms.
const (
	faultProbe    = 250 * time.Millisecond
	faultFeedPing = 100 * time.Millisecond
	// readyWithin bounds a /ready request during an outage: the probe's
	// timeout plus ample scheduling slack on a loaded 2-core machine.
	readyWithin = 2 * time.Second
)

// faultContext ends with the test or after 45 seconds.
func faultContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// outageClient is a Redis client configured for outages as the Redis
// example is: calls end with their context, short network timeouts, and
// one dial per attempt (go-redis dials five times by default, which holds
// every call about 1.7 s while Redis refuses connections).
func outageClient(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           300 * time.Millisecond,
		ReadTimeout:           300 * time.Millisecond,
		WriteTimeout:          300 * time.Millisecond,
		DialerRetries:         1,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// faultPair starts instances A and B on srv, sharing one key prefix.
func faultPair(t *testing.T, srv *server, steps *stepper) (a, b *node) {
	t.Helper()
	cfg := func() nodeConfig {
		return nodeConfig{client: outageClient(t, srv.Addr()), prefix: "e2e:", steps: steps,
			probe: faultProbe, feedPing: faultFeedPing}
	}
	return startNode(t, "A", cfg()), startNode(t, "B", cfg())
}

// followers subscribes over SSE and WebSocket on every node, reconnecting
// by themselves.
func followers(t *testing.T, taskID string, nodes ...*node) []*subscriber {
	t.Helper()
	var subs []*subscriber
	for _, n := range nodes {
		subs = append(subs,
			subscribe(t, n.name+"/sse", overSSE, taskID, n.addr, true),
			subscribe(t, n.name+"/ws", overWS, taskID, n.addr, true))
	}
	return subs
}

// readiness asks n's /ready within readyWithin and returns the status and
// the redis probe's result.
func readiness(t *testing.T, n *node) (int, observe.ProbeResult) {
	t.Helper()
	client := &http.Client{Timeout: readyWithin}
	resp, err := client.Get("http://" + n.addr + "/ready")
	require.NoError(t, err, "%s: /ready must answer within %v", n.name, readyWithin)
	defer resp.Body.Close()
	var body struct {
		Status  string                         `json:"status"`
		Details map[string]observe.ProbeResult `json:"details"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body.Details["redis"]
}

// assertUnready checks that n reports Redis unavailable, with one of the
// given probe statuses.
func assertUnready(t *testing.T, n *node, want ...observe.ProbeStatus) {
	t.Helper()
	status, redis := readiness(t, n)
	assert.Equal(t, http.StatusServiceUnavailable, status, "%s: /ready while Redis is unavailable", n.name)
	assert.Contains(t, want, redis.Status, "%s: redis probe %+v", n.name, redis)
}

// assertReady waits until n reports ready again (Redis is back: an
// outside effect, hence polling with a deadline).
func assertReady(t *testing.T, n *node) {
	t.Helper()
	require.Eventually(t, func() bool {
		status, _ := readiness(t, n)
		return status == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "%s: /ready after Redis came back", n.name)
}

// assertStoreFailure checks a request that needed Redis while it was
// unavailable: a 5xx envelope without the cause, and the cause in the
// instance's error log.
func assertStoreFailure(t *testing.T, n *node, what string, status int, body []byte) {
	t.Helper()
	conformance.CheckBody(t, conformance.ErrorResponse, body)
	env := errorEnvelope(t, body)
	assert.Equal(t, http.StatusInternalServerError, status, "%s: %s", what, body)
	assert.Equal(t, bridgeerr.CodeInternal, env.Code, "%s: %s", what, body)
	assert.Equal(t, "internal error", env.Message, "%s: the cause stays out of the message", what)
	assert.Empty(t, env.Details, what)
	for _, leak := range []string{"redis", "timeout", "refused", "EOF", "127.0.0.1"} {
		assert.NotContains(t, strings.ToLower(string(body)), strings.ToLower(leak), "%s: body leaks the cause", what)
	}
	logged := false
	for _, e := range n.loggedErrors("http.request.failed") {
		if isRedisCause(errText(e)) {
			logged = true
		}
	}
	assert.True(t, logged, "%s: the Redis cause is logged at error level", what)
}

// assertRefusedWhileDown checks every kind of request that needs Redis on
// n while it is unavailable: create, poll, cancel, action, a new SSE stream (an
// envelope before any stream starts) and a new WebSocket subscription
// (closed 1011 before the confirmation).
func assertRefusedWhileDown(t *testing.T, n *node, taskID string) {
	t.Helper()
	status, body := n.do(http.MethodPost, "/api/v1/tasks", `{"clientRequestId":"down","taskType":"`+stepsType+`","input":{}}`)
	assertStoreFailure(t, n, "create", status, body)
	status, body = n.do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events?waitTimeoutMs=1000", "")
	assertStoreFailure(t, n, "poll", status, body)
	status, body = n.do(http.MethodPost, "/api/v1/tasks/"+taskID+"/cancel", `{}`)
	assertStoreFailure(t, n, "cancel", status, body)
	status, body = n.do(http.MethodPost, "/api/v1/tasks/"+taskID+"/actions",
		`{"suspendId":"s1","clientActionId":"c1","actionType":"approve"}`)
	assertStoreFailure(t, n, "action", status, body)
	status, body = n.do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events/stream", "")
	assertStoreFailure(t, n, "new SSE stream", status, body)

	conn, _, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial("ws://"+n.addr+"/api/v1/tasks/ws",
		http.Header{"Authorization": {"Bearer " + owner}})
	require.NoError(t, err, "the upgrade needs no store")
	defer conn.Close()
	require.NoError(t, conn.WriteJSON(map[string]any{"action": "subscribe", "taskId": taskID, "lastEventId": nil}))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce, "new WebSocket subscription: got %s", msg)
	assert.Equal(t, websocket.CloseInternalServerErr, ce.Code, "new WebSocket subscription closes 1011")
	assert.Equal(t, "internal error", ce.Text)
}

// assertCleanEnds checks how the subscriber's connections ended: the end
// of the stream after the terminal event (SSE EOF, WS 1000), a clean end
// because the store failed (SSE EOF, WS 1011), a refused reconnect while
// Redis was down (500 INTERNAL_ERROR envelope, or 1011 on WebSocket), or
// one of also; the last one may still be open. Never a reset connection
// or a malformed frame.
func assertCleanEnds(t *testing.T, s *subscriber, also ...string) {
	t.Helper()
	conns := s.connections()
	for i, c := range conns {
		ok := c.end == "eof" || c.end == "close 1000 " || strings.HasPrefix(c.end, "close 1011 ") ||
			c.end == "status 500 "+string(bridgeerr.CodeInternal) || slices.Contains(also, c.end) ||
			(c.end == "" && i == len(conns)-1)
		assert.True(t, ok, "%s: connection to %s ended with %q", s.name, c.target, c.end)
	}
}

// TestE2ERedisPaused pauses Redis (SIGSTOP) under open streams on two
// instances: /ready answers 503 within the probe timeout, requests that
// need Redis answer INTERNAL_ERROR envelopes (the cause only in the log),
// open streams carry on or end cleanly, nothing crashes. The handler's
// event emitted during the pause is stored once Redis continues (SIGCONT),
// and every subscriber then receives everything after its cursor: exactly
// the task's events, in order.
func TestE2ERedisPaused(t *testing.T) {
	t.Parallel()
	ctx := faultContext(t)
	srv := startServer(t)
	steps := newStepper()
	a, b := faultPair(t, srv, steps)

	taskID := createRunning(t, ctx, a, steps)
	subs := followers(t, taskID, a, b)
	for _, s := range subs {
		s.waitEvents(ctx, 1)
	}
	steps.step(t, ctx, taskID)
	steps.step(t, ctx, taskID)
	for _, s := range subs {
		s.waitEvents(ctx, 3)
	}

	srv.Pause()
	for _, n := range []*node{a, b} {
		assertUnready(t, n, observe.ProbeTimeout) // PING unanswered: the probe's own timeout
	}
	assertRefusedWhileDown(t, b, taskID)
	emitted := steps.stepAsync(ctx, taskID, false) // retried by the handler until Redis answers
	srv.Resume()

	awaitStep(t, ctx, emitted)
	for _, n := range []*node{a, b} {
		assertReady(t, n)
	}
	steps.step(t, ctx, taskID)
	steps.finish(t, ctx, taskID)
	for _, s := range subs {
		s.waitDone(ctx)
	}
	all := storedIDs(t, ctx, a.stores.Events, taskID)
	require.GreaterOrEqual(t, len(all), 1+2+1+1+1, "STARTED, 2 steps, the step during the pause (maybe twice), 1 step, COMPLETED")
	for _, s := range subs {
		t.Logf("%s: %s", s.name, s.describe())
		s.assertExactly(t, all)
		s.checkFrames(t)
		assertCleanEnds(t, s)
	}
}

// TestE2ERedisKilled kills Redis (SIGKILL) under open streams and starts
// it again on the same port, empty (no persistence): meanwhile /ready
// answers 503 and requests answer INTERNAL_ERROR envelopes; afterwards
// the instances are ready again by themselves and a new task works end to
// end across them: created on A, polled through B, followed on both over
// SSE and WebSocket.
func TestE2ERedisKilled(t *testing.T) {
	t.Parallel()
	ctx := faultContext(t)
	srv := startServer(t)
	steps := newStepper()
	a, b := faultPair(t, srv, steps)

	old := createRunning(t, ctx, a, steps)
	oldSubs := followers(t, old, a, b)
	for _, s := range oldSubs {
		s.waitEvents(ctx, 1)
	}
	steps.step(t, ctx, old)
	for _, s := range oldSubs {
		s.waitEvents(ctx, 2)
	}

	srv.Kill()
	for _, n := range []*node{a, b} {
		assertUnready(t, n, observe.ProbeFailing, observe.ProbeTimeout) // refused, or a dial racing the timeout
	}
	assertRefusedWhileDown(t, a, old)
	srv.Start()
	for _, n := range []*node{a, b} {
		assertReady(t, n)
	}

	taskID := createRunning(t, ctx, a, steps)
	subs := followers(t, taskID, a, b)
	for _, s := range subs {
		s.waitEvents(ctx, 1)
	}
	steps.step(t, ctx, taskID)
	steps.step(t, ctx, taskID)
	for _, s := range subs {
		s.waitEvents(ctx, 3)
	}
	status, body := b.do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events", "")
	require.Equal(t, http.StatusOK, status, string(body))
	conformance.CheckBody(t, conformance.PollEventsResponse, body)
	steps.finish(t, ctx, taskID)
	for _, s := range subs {
		s.waitDone(ctx)
	}
	all := storedIDs(t, ctx, a.stores.Events, taskID)
	require.Len(t, all, 4, "STARTED, 2 steps, terminal")
	for _, s := range subs {
		t.Logf("%s: %s", s.name, s.describe())
		s.assertExactly(t, all)
		s.checkFrames(t)
		assertCleanEnds(t, s)
	}
	// The old task is gone with the old server's memory: its streams do
	// not heartbeat on forever. Once the feed is back, each instance ends
	// the streams of tasks that no longer exist (SSE end, WS close 1011),
	// and the reconnect is told the task is not found, which stops the
	// client.
	gone := []string{"status 404 " + string(bridgeerr.CodeTaskNotFound), "close 1008 " + string(bridgeerr.CodeTaskNotFound)}
	for _, s := range oldSubs {
		s.waitFor(ctx, "the end of the vanished task's stream", func() bool {
			conns := s.connections()
			return slices.Contains(gone, conns[len(conns)-1].end)
		})
		t.Logf("old %s: %s", s.name, s.describe())
		s.checkFrames(t)
		assertCleanEnds(t, s, gone...)
	}
}
