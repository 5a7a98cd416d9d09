package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeChildBinary()
	if code == 0 {
		if err := goleak.Find(
			// fasthttp's own background goroutines (worker pool cleaner, date updater).
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const wait = 10 * time.Second

// quickstart is the example running on 127.0.0.1:0.
type quickstart struct {
	t      *testing.T
	srv    *server
	addr   string
	client *http.Client
}

func start(t *testing.T) *quickstart {
	t.Helper()
	return startWith(t, zaptest.NewLogger(t))
}

// startWith starts the quickstart logging to log.
func startWith(t *testing.T, log *zap.Logger) *quickstart {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := newServer(options{addr: ln.Addr().String(), heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel}, log)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.serve(ln) }()
	q := &quickstart{t: t, srv: srv, addr: ln.Addr().String(), client: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		q.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.shutdown(ctx))
		require.NoError(t, <-served)
	})
	return q
}

func (q *quickstart) do(method, path, token, contentType, body string) (int, []byte) {
	q.t.Helper()
	req, err := http.NewRequest(method, "http://"+q.addr+path, strings.NewReader(body))
	require.NoError(q.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := q.client.Do(req)
	require.NoError(q.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(q.t, err)
	return resp.StatusCode, data
}

func (q *quickstart) create(token, taskType, input string) string {
	q.t.Helper()
	status, body := q.do(http.MethodPost, "/api/v1/tasks", token, "application/json",
		`{"clientRequestId":"`+contracts.NewID()+`","taskType":"`+taskType+`","input":`+input+`}`)
	require.Equal(q.t, http.StatusCreated, status, string(body))
	conformance.CheckBody(q.t, conformance.TaskCreatedResponse, body)
	var created contracts.TaskCreated
	require.NoError(q.t, json.Unmarshal(body, &created))
	return created.TaskID
}

// events long-polls until the terminal event.
func (q *quickstart) events(token, taskID string) []contracts.TaskEvent {
	q.t.Helper()
	var all []contracts.TaskEvent
	cursor := ""
	for range 200 {
		status, body := q.do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events?waitTimeoutMs=5000&afterEventId="+cursor, token, "", "")
		require.Equal(q.t, http.StatusOK, status, string(body))
		conformance.CheckBody(q.t, conformance.PollEventsResponse, body)
		var res contracts.PollResult
		require.NoError(q.t, json.Unmarshal(body, &res))
		all = append(all, res.Events...)
		if n := len(all); n > 0 && all[n-1].Type.IsTerminal() {
			return all
		}
		if res.NextAfterEventID != nil {
			cursor = res.NextAfterEventID.String()
		}
	}
	q.t.Fatal("task did not end")
	return nil
}

func types(evs []contracts.TaskEvent) []contracts.EventType {
	out := make([]contracts.EventType, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func TestDemoProgress(t *testing.T) {
	q := start(t)
	id := q.create("alice", "demo.progress", `{"steps":4,"delayMs":0}`)
	evs := q.events("alice", id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventProgress,
		contracts.EventProgress, contracts.EventProgress, contracts.EventCompleted}, types(evs))
	last := -1.0
	for _, ev := range evs[1:5] {
		p, err := contracts.DecodePayload(&ev)
		require.NoError(t, err)
		pct := p.(contracts.ProgressPayload).Progress
		assert.Greater(t, pct, last)
		last = pct
	}
	assert.Equal(t, 100.0, last)
	assert.JSONEq(t, `{"result":{"steps":4}}`, string(evs[5].Payload))

	// Defaults: 3 steps.
	evs = q.events("alice", q.create("alice", "demo.progress", `{"delayMs":1}`))
	assert.Len(t, evs, 5)

	// The read API: the task's snapshot and the caller's list, both as the
	// served OpenAPI document describes them.
	status, raw := q.do(http.MethodGet, "/api/v1/openapi.json", "", "", "")
	require.Equal(t, http.StatusOK, status, string(raw))
	doc, err := conformance.NewDocument(raw)
	require.NoError(t, err)
	status, body := q.do(http.MethodGet, "/api/v1/tasks/"+id, "alice", "", "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, doc.ValidateResponse(http.MethodGet, "/api/v1/tasks/"+id, status, "application/json", body))
	var snap contracts.TaskSnapshot
	require.NoError(t, json.Unmarshal(body, &snap))
	assert.Equal(t, contracts.StatusCompleted, snap.Status)
	assert.Equal(t, &contracts.ProgressSnapshot{Percent: 100, Stage: "working", Message: "step 4 of 4"}, snap.Progress)
	status, body = q.do(http.MethodGet, "/api/v1/tasks?status=COMPLETED", "alice", "", "")
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, doc.ValidateResponse(http.MethodGet, "/api/v1/tasks", status, "application/json", body))
	var list contracts.TaskList
	require.NoError(t, json.Unmarshal(body, &list))
	assert.Len(t, list.Tasks, 2)
}

func TestDemoFail(t *testing.T) {
	q := start(t)
	evs := q.events("alice", q.create("alice", "demo.fail", `{}`))
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventFailed}, types(evs))
	p, err := contracts.DecodePayload(&evs[2])
	require.NoError(t, err)
	failed := p.(contracts.FailedPayload)
	assert.Equal(t, "DEMO_FAILURE", failed.Code)
	assert.False(t, failed.Retryable)
	assert.NotEmpty(t, failed.Message)
}

func TestDemoApprovalOverWebSocket(t *testing.T) {
	q := start(t)
	id := q.create("alice", "demo.approval", `{}`)
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+q.addr+"/api/v1/tasks/ws?access_token=alice", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	defer conn.Close()
	require.NoError(t, conn.WriteJSON(map[string]any{"action": "subscribe", "taskId": id}))
	read := func() (frames.Frame, *websocket.CloseError) {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			return frames.Frame{}, ce
		}
		return conformance.CheckFrame(t, data), nil
	}
	f, _ := read()
	require.NotNil(t, f.Confirmation)
	f, _ = read()
	require.Equal(t, contracts.EventStarted, f.Event.Type)
	f, _ = read()
	require.Equal(t, contracts.EventSuspended, f.Event.Type)
	p, err := contracts.DecodePayload(f.Event)
	require.NoError(t, err)
	susp := p.(contracts.SuspendedPayload)
	assert.Equal(t, contracts.KindUserActionRequired, susp.Kind)
	assert.Equal(t, "approval_required", susp.ReasonCode)
	assert.Equal(t, []string{"approve", "reject"}, susp.AllowedActions)
	assert.Equal(t, 1, susp.SchemaVersion)

	status, body := q.do(http.MethodPost, "/api/v1/tasks/"+id+"/actions", "alice", "application/json",
		`{"clientActionId":"c1","suspendId":"`+susp.SuspendID+`","actionType":"approve"}`)
	require.Equal(t, http.StatusAccepted, status, string(body))
	conformance.CheckBody(t, conformance.ActionResponse, body)

	f, _ = read()
	require.Equal(t, contracts.EventActionAccepted, f.Event.Type)
	f, _ = read()
	require.Equal(t, contracts.EventCompleted, f.Event.Type)
	assert.JSONEq(t, `{"result":{"decision":"approve"}}`, string(f.Event.Payload))
	_, ce := read()
	require.NotNil(t, ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
}

func TestDemoSleepCancelOverSSE(t *testing.T) {
	q := start(t)
	id := q.create("alice", "demo.sleep", `{"delayMs":5}`)
	// The deadline ends the stream (and the reads below) should the server
	// never end it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+q.addr+"/api/v1/tasks/"+id+"/events/stream?access_token=alice", nil)
	require.NoError(t, err)
	resp, err := (&http.Client{}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	// The reader goroutine only parses lines; frames are checked on the
	// test goroutine.
	type message struct{ id, data string }
	messages := make(chan message, 1024)
	ended := make(chan error, 1)
	go func() {
		defer close(messages)
		r := bufio.NewReader(resp.Body)
		var id string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				ended <- err
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				messages <- message{id: id, data: strings.TrimPrefix(line, "data: ")}
				id = ""
			}
		}
	}()
	event := func(m message) contracts.TaskEvent {
		f := conformance.CheckFrame(t, []byte(m.data))
		require.NotNil(t, f.Event)
		require.Equal(t, f.Event.EventID.String(), m.id)
		return *f.Event
	}
	next := func() contracts.TaskEvent {
		select {
		case m, ok := <-messages:
			require.True(t, ok, "stream ended early")
			return event(m)
		case <-time.After(wait):
			t.Fatal("no event")
			return contracts.TaskEvent{}
		}
	}
	require.Equal(t, contracts.EventStarted, next().Type)
	for range 3 {
		ev := next()
		require.Equal(t, contracts.EventProgress, ev.Type)
		p, err := contracts.DecodePayload(&ev)
		require.NoError(t, err)
		assert.Less(t, p.(contracts.ProgressPayload).Progress, 100.0)
	}
	status, body := q.do(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "", "")
	require.Equal(t, http.StatusAccepted, status, string(body))
	conformance.CheckBody(t, conformance.CancelTaskResponse, body)
	var last contracts.TaskEvent
	for m := range messages {
		last = event(m)
	}
	require.NoError(t, <-ended)
	require.Equal(t, contracts.EventCancelled, last.Type)
	assert.JSONEq(t, `{"reason":"cancelled_by_user"}`, string(last.Payload))
}

func TestRejectedRequests(t *testing.T) {
	q := start(t)
	tests := []struct {
		name, token, body string
		status            int
		code              bridgeerr.Code
	}{
		{"no token", "", `{"clientRequestId":"a","taskType":"demo.fail"}`, 401, bridgeerr.CodeAuthentication},
		{"unknown task type", "alice", `{"clientRequestId":"a","taskType":"demo.nope"}`, 400, bridgeerr.CodeInvalidRequest},
		{"steps out of range", "alice", `{"clientRequestId":"b","taskType":"demo.progress","input":{"steps":1001}}`, 400, bridgeerr.CodeInvalidRequest},
		{"delayMs wrong type", "alice", `{"clientRequestId":"c","taskType":"demo.progress","input":{"delayMs":"1"}}`, 400, bridgeerr.CodeInvalidRequest},
		{"unknown input field", "alice", `{"clientRequestId":"d","taskType":"demo.sleep","input":{"delay":5}}`, 400, bridgeerr.CodeInvalidRequest},
		{"sleep delay 0", "alice", `{"clientRequestId":"e","taskType":"demo.sleep","input":{"delayMs":0}}`, 400, bridgeerr.CodeInvalidRequest},
		{"input for demo.fail", "alice", `{"clientRequestId":"f","taskType":"demo.fail","input":{"x":1}}`, 400, bridgeerr.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := q.do(http.MethodPost, "/api/v1/tasks", tc.token, "application/json", tc.body)
			require.Equal(t, tc.status, status, string(body))
			conformance.CheckBody(t, conformance.ErrorResponse, body)
			var env bridgeerr.Envelope
			require.NoError(t, json.Unmarshal(body, &env))
			assert.Equal(t, tc.code, env.Code)
		})
	}
	// WebSocket without credentials: 401 before the upgrade.
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+q.addr+"/api/v1/tasks/ws", nil)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// Unknown routes are envelopes too.
	status, body := q.do(http.MethodGet, "/nope", "", "", "")
	assert.Equal(t, http.StatusNotFound, status)
	conformance.CheckBody(t, conformance.ErrorResponse, body)
}

func TestHealthAndReady(t *testing.T) {
	q := start(t)
	status, body := q.do(http.MethodGet, "/health", "", "", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"status":"ok"}`, string(body))
	status, body = q.do(http.MethodGet, "/ready", "", "", "")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"status":"ready","details":{"executor":{"status":"ok","message":""}}}`, string(body))

	// The executor is the probed dependency: closed, the instance is not ready.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, q.srv.exec.Close(ctx))
	status, body = q.do(http.MethodGet, "/ready", "", "", "")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.JSONEq(t, `{"status":"not_ready","details":{"executor":{"status":"failing","message":"taskbridge: executor is closed"}}}`, string(body))
}

func TestParseOptions(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    options
		wantErr bool
	}{
		{"defaults", nil, nil, options{addr: "127.0.0.1:8080", heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel}, false},
		{"env", nil, map[string]string{"TASKBRIDGE_ADDR": ":9000", "TASKBRIDGE_HEARTBEAT": "5s", "TASKBRIDGE_LOG_LEVEL": "debug"},
			options{addr: ":9000", heartbeat: 5 * time.Second, logLevel: zapcore.DebugLevel}, false},
		{"flags win", []string{"-addr", "127.0.0.1:0", "-heartbeat", "250ms", "-log-level", "WARN"},
			map[string]string{"TASKBRIDGE_ADDR": ":9000", "TASKBRIDGE_LOG_LEVEL": "debug"},
			options{addr: "127.0.0.1:0", heartbeat: 250 * time.Millisecond, logLevel: zapcore.WarnLevel}, false},
		{"bad env duration", nil, map[string]string{"TASKBRIDGE_HEARTBEAT": "soon"}, options{}, true},
		{"zero heartbeat", []string{"-heartbeat", "0s"}, nil, options{}, true},
		{"unknown flag", []string{"-port", "1"}, nil, options{}, true},
		{"bad env level", nil, map[string]string{"TASKBRIDGE_LOG_LEVEL": "loud"}, options{}, true},
		{"bad flag level", []string{"-log-level", "verbose"}, nil, options{}, true},
		{"max streams", []string{"-max-streams", "1"}, map[string]string{"TASKBRIDGE_MAX_STREAMS": "7"},
			options{addr: "127.0.0.1:8080", heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel, maxStreams: 1}, false},
		{"max streams from env", nil, map[string]string{"TASKBRIDGE_MAX_STREAMS": "7"},
			options{addr: "127.0.0.1:8080", heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel, maxStreams: 7}, false},
		{"bad max streams", nil, map[string]string{"TASKBRIDGE_MAX_STREAMS": "many"}, options{}, true},
		{"negative max streams", []string{"-max-streams", "-1"}, nil, options{}, true},
		{"drain", []string{"-drain", "2s"}, map[string]string{"TASKBRIDGE_DRAIN": "1m"},
			options{addr: "127.0.0.1:8080", heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel, drain: 2 * time.Second}, false},
		{"drain from env", nil, map[string]string{"TASKBRIDGE_DRAIN": "100ms"},
			options{addr: "127.0.0.1:8080", heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel, drain: 100 * time.Millisecond}, false},
		{"bad drain", nil, map[string]string{"TASKBRIDGE_DRAIN": "later"}, options{}, true},
		{"negative drain", []string{"-drain", "-1s"}, nil, options{}, true},
		{"fatal is not a server level", []string{"-log-level", "fatal"}, nil, options{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOptions(tc.args, env(tc.env), io.Discard)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestGracefulShutdown: with a stream open, shutdown returns promptly and
// the client sees the stream end.
func TestGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := newServer(options{heartbeat: time.Second, logLevel: zapcore.InfoLevel}, zaptest.NewLogger(t))
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.serve(ln) }()
	addr := ln.Addr().String()
	client := &http.Client{Timeout: wait}
	defer client.CloseIdleConnections()

	resp, err := client.Post("http://"+addr+"/api/v1/tasks?access_token=bob", "application/json",
		bytes.NewReader([]byte(`{"clientRequestId":"g","taskType":"demo.sleep","input":{"delayMs":60000}}`)))
	require.NoError(t, err)
	var created contracts.TaskCreated
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&created))
	resp.Body.Close()

	conn, wsResp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/v1/tasks/ws?access_token=bob", nil)
	require.NoError(t, err)
	defer wsResp.Body.Close()
	defer conn.Close()
	require.NoError(t, conn.WriteJSON(map[string]any{"action": "subscribe", "taskId": created.TaskID}))
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	_, data, err := conn.ReadMessage()
	require.NoError(t, err)
	require.NotNil(t, conformance.CheckFrame(t, data).Confirmation)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	began := time.Now()
	require.NoError(t, srv.shutdown(ctx))
	assert.Less(t, time.Since(began), 2*time.Second)
	require.NoError(t, <-served)
	for {
		_, data, err = conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, websocket.CloseGoingAway, ce.Code)
			break
		}
		conformance.CheckFrame(t, data)
	}
}
