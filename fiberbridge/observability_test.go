package fiberbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// present matches any non-empty value of a log field.
const present = "<present>"

// logWant is one expected log line: its message, level and the fields it
// must carry (other fields may be there too).
type logWant struct {
	msg    string
	level  zapcore.Level
	fields map[string]any
}

// findLog returns the first captured line matching w, or fails the test
// listing the lines with w's message.
func findLog(t testing.TB, logs *observer.ObservedLogs, w logWant) observer.LoggedEntry {
	t.Helper()
	candidates := logs.FilterMessage(w.msg).All()
	for _, e := range candidates {
		if e.Level == w.level && fieldsMatch(e.ContextMap(), w.fields) {
			return e
		}
	}
	var seen []string
	for _, e := range candidates {
		seen = append(seen, fmt.Sprintf("%s %v", e.Level, e.ContextMap()))
	}
	t.Fatalf("no %s line %q with %v; lines with that message: %v", w.level, w.msg, w.fields, seen)
	return observer.LoggedEntry{}
}

func fieldsMatch(got, want map[string]any) bool {
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			return false
		case v == present:
			if g == nil || g == "" {
				return false
			}
		case fmt.Sprint(g) != fmt.Sprint(v):
			return false
		}
	}
	return true
}

// awaitLog waits for a line that is written after the client saw the effect
// (a stream's close is logged once the server has finished with it).
func awaitLog(t testing.TB, logs *observer.ObservedLogs, w logWant) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, e := range logs.FilterMessage(w.msg).All() {
			if e.Level == w.level && fieldsMatch(e.ContextMap(), w.fields) {
				return true
			}
		}
		return false
	}, wait, 5*time.Millisecond, "no %s line %q with %v", w.level, w.msg, w.fields)
}

// TestLogsCarryStableFields drives every route and transport through a real
// listener and checks the lines the bridge, its services and its hub write
// through the host's zap logger: stable field names and the documented
// levels.
func TestLogsCarryStableFields(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	h := startHarness(t, func(cfg *fiberbridge.Config) { cfg.Logger = zap.New(core) })
	const (
		http_     = string(observe.TransportHTTP)
		internal  = string(observe.TransportInternal)
		fTask     = observe.FieldTaskID
		fReq      = observe.FieldClientRequestID
		fAct      = observe.FieldClientActionID
		fUser     = observe.FieldUserID
		fTr       = observe.FieldTransport
		fOutcome  = observe.FieldOutcome
		fEvent    = observe.FieldEventID
		fErr      = observe.FieldError
		fDetails  = observe.FieldDetails
		infoLevel = zapcore.InfoLevel
	)

	// create, then the same request again (deduplicated).
	body := map[string]any{"clientRequestId": "req-create", "taskType": "test.approval"}
	r := h.postJSON("/api/v1/tasks", "alice", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	taskID := createdID(t, r.body)
	r = h.postJSON("/api/v1/tasks", "alice", body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	// poll (no wait), an action on the suspension, and a foreign poll.
	susp := h.waitSuspended("alice", taskID)
	_, pr := h.poll("alice", taskID, "?maxEvents=1")
	require.Equal(t, http.StatusOK, pr.status)
	r = h.postJSON("/api/v1/tasks/"+taskID+"/actions", "alice", map[string]any{
		"clientActionId": "act-1", "suspendId": susp.SuspendID, "actionType": "approve"})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	_, pr = h.poll("bob", taskID, "")
	require.Equal(t, http.StatusNotFound, pr.status)

	// WebSocket subscribe: replay to the terminal event, close 1000; and a
	// foreign subscribe, closed 1008.
	c, _ := h.dialWS("alice", false)
	require.NotNil(t, c)
	c.subscribe(taskID, nil)
	require.NotNil(t, c.read(wait).frame.Confirmation)
	c.expectClose(websocket.CloseNormalClosure, wait)
	foreign, _ := h.dialWS("bob", false)
	require.NotNil(t, foreign)
	foreign.subscribe(taskID, nil)
	foreign.expectClose(websocket.ClosePolicyViolation, wait)

	// SSE stream to its end, then a reconnect at the terminal event (204).
	stepsID := h.create("alice", "test.steps", map[string]any{"steps": 2})
	s, _ := h.openSSE("alice", stepsID, "", nil)
	require.NotNil(t, s)
	evs := s.readUntilEnd(wait)
	require.True(t, isTerminal(evs))
	_, sr := h.openSSE("alice", stepsID, "", http.Header{"Last-Event-Id": {evs[len(evs)-1].EventID.String()}})
	require.Equal(t, http.StatusNoContent, sr.status)

	// cancel a running task.
	blockID := h.create("alice", "test.block", nil)
	r = h.request(http.MethodPost, "/api/v1/tasks/"+blockID+"/cancel", "alice", "", nil)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	// a failing submit: the executor is closed.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, h.exec.Close(ctx))
	r = h.postJSON("/api/v1/tasks", "alice", map[string]any{"clientRequestId": "req-fail", "taskType": "test.steps"})
	checkEnvelope(t, r, http.StatusServiceUnavailable, bridgeerr.CodeTaskSubmission)

	for _, tc := range []struct {
		name string
		want logWant
	}{
		{"create (route)", logWant{"http.task.create", infoLevel, map[string]any{
			fTask: taskID, fReq: "req-create", fUser: "alice", fTr: http_, fOutcome: "created"}}},
		{"create (service)", logWant{"task.create.accepted", infoLevel, map[string]any{
			fTask: taskID, fReq: "req-create", fUser: "alice", fTr: internal, fOutcome: "accepted"}}},
		{"dedup (route)", logWant{"http.task.create", infoLevel, map[string]any{
			fTask: taskID, fReq: "req-create", fUser: "alice", fTr: http_, fOutcome: "deduplicated"}}},
		{"dedup (service)", logWant{"task.create.duplicate", infoLevel, map[string]any{
			fTask: taskID, fReq: "req-create", fUser: "alice", fTr: internal, fOutcome: "deduplicated"}}},
		{"poll (route)", logWant{"http.task.poll", zapcore.DebugLevel, map[string]any{
			fTask: taskID, fUser: "alice", fTr: http_, fOutcome: "ok",
			fDetails: map[string]any{"events": 1, "waitMs": 0}}}},
		{"poll (service)", logWant{"task.events.polled", zapcore.DebugLevel, map[string]any{
			fTask: taskID, fUser: "alice", fTr: internal, fOutcome: "ok", fEvent: present}}},
		{"foreign poll (route)", logWant{"http.request.rejected", zapcore.WarnLevel, map[string]any{
			fTask: taskID, fUser: "bob", fTr: http_, fOutcome: string(bridgeerr.CodeTaskNotFound), fDetails: present}}},
		{"foreign poll (service)", logWant{"task.access.denied", zapcore.WarnLevel, map[string]any{
			fTask: taskID, fUser: "bob", fTr: internal}}},
		{"action (route)", logWant{"http.task.action", infoLevel, map[string]any{
			fTask: taskID, fAct: "act-1", fUser: "alice", fTr: http_, fOutcome: string(contracts.ActionStatusAccepted)}}},
		{"action (service)", logWant{"task.action.accepted", infoLevel, map[string]any{
			fTask: taskID, fAct: "act-1", fUser: "alice", fTr: internal, fOutcome: "accepted", fEvent: present,
			fDetails: map[string]any{"suspendId": susp.SuspendID}}}},
		{"WS subscribe", logWant{"stream opened", infoLevel, map[string]any{
			fTask: taskID, fUser: "alice", fTr: string(observe.TransportWS)}}},
		{"WS foreign subscribe", logWant{"websocket subscribe denied", zapcore.WarnLevel, map[string]any{
			fTask: taskID, fUser: "bob", fTr: string(observe.TransportWS), fOutcome: string(bridgeerr.CodeTaskNotFound)}}},
		{"SSE stream", logWant{"stream opened", infoLevel, map[string]any{
			fTask: stepsID, fUser: "alice", fTr: string(observe.TransportSSE)}}},
		{"SSE at the terminal event", logWant{"http.task.stream", zapcore.DebugLevel, map[string]any{
			fTask: stepsID, fUser: "alice", fTr: http_, fOutcome: "already_terminal"}}},
		{"cancel (route)", logWant{"http.task.cancel", infoLevel, map[string]any{
			fTask: blockID, fUser: "alice", fTr: http_, fOutcome: string(contracts.CancelRequested)}}},
		{"cancel (service)", logWant{"task.cancel.requested", infoLevel, map[string]any{
			fTask: blockID, fUser: "alice", fTr: internal, fOutcome: "requested"}}},
		// The executor's Ready refuses before anything is stored, so the
		// refused create leaves no FAILED task behind.
		{"failing submit (service)", logWant{"task.create.refused", zapcore.WarnLevel, map[string]any{
			fReq: "req-fail", fUser: "alice", fTr: internal, fOutcome: "capacity",
			fErr: "taskbridge: executor is closed"}}},
		{"failing submit (route)", logWant{"http.request.failed", zapcore.ErrorLevel, map[string]any{
			fUser: "alice", fTr: http_, fOutcome: string(bridgeerr.CodeTaskSubmission), fErr: present,
			fDetails: map[string]any{"method": "POST", "route": "/api/v1/tasks", "status": 503}}}},
	} {
		t.Run(tc.name, func(t *testing.T) { findLog(t, logs, tc.want) })
	}
	route := findLog(t, logs, logWant{"http.request.failed", zapcore.ErrorLevel, map[string]any{fOutcome: string(bridgeerr.CodeTaskSubmission)}})
	assert.NotContains(t, route.ContextMap(), fTask, "no task was created")

	// Stream ends are logged once the server is done with the connection.
	awaitLog(t, logs, logWant{"stream closed", infoLevel, map[string]any{
		fTask: taskID, fUser: "alice", fTr: string(observe.TransportWS), fOutcome: present}})
	awaitLog(t, logs, logWant{"stream closed", infoLevel, map[string]any{
		fTask: stepsID, fUser: "alice", fTr: string(observe.TransportSSE), fOutcome: present}})

	// Every line names its transport; per-event lines stay at Debug.
	perEvent := map[string]bool{"events delivered": true, "heartbeat": true, "http.task.poll": true, "task.events.polled": true}
	for _, e := range logs.All() {
		tr, _ := e.ContextMap()[fTr].(string)
		assert.Contains(t, []string{http_, internal, "sse", "ws"}, tr, "line %q without a transport", e.Message)
		if perEvent[e.Message] {
			assert.Equal(t, zapcore.DebugLevel, e.Level, e.Message)
		}
	}
	assert.NotEmpty(t, logs.FilterMessage("events delivered").All(), "deliveries are logged at Debug")
}

// TestLogsDisabledLevelWritesNothing: a host logger at Info gets the
// lifecycle lines but none of the Debug ones.
func TestLogsDisabledLevelWritesNothing(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	h := startHarness(t, func(cfg *fiberbridge.Config) { cfg.Logger = zap.New(core) })
	id := h.create("alice", "test.steps", map[string]any{"steps": 2})
	s, _ := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s)
	require.True(t, isTerminal(s.readUntilEnd(wait)))
	_, pr := h.poll("alice", id, "")
	require.Equal(t, http.StatusOK, pr.status)

	findLog(t, logs, logWant{"http.task.create", zapcore.InfoLevel, map[string]any{observe.FieldTaskID: id}})
	findLog(t, logs, logWant{"stream opened", zapcore.InfoLevel, map[string]any{observe.FieldTaskID: id}})
	for _, e := range logs.All() {
		assert.NotEqual(t, zapcore.DebugLevel, e.Level, e.Message)
	}
}

// createdID returns the taskId of a TaskCreated body.
func createdID(t testing.TB, body []byte) string {
	t.Helper()
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(body, &created))
	require.NotEmpty(t, created.TaskID)
	return created.TaskID
}
