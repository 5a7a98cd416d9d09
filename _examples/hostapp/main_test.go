package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own background goroutines, not the app's.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// client talks to the host on a real listener; every request has a
// deadline.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

type answer struct {
	status int
	body   []byte
}

func (c *client) do(method, path, user, body string) answer {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewBufferString(body))
	require.NoError(c.t, err)
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+user)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return answer{status: resp.StatusCode, body: data}
}

// sseUntil opens an SSE stream as user and reads its events until one of
// type want, within 10 s; it returns the type it stopped at.
func (c *client) sseUntil(path, user string, want contracts.EventType) contracts.EventType {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+user)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultTransport.RoundTrip(req) // no client timeout: ctx bounds the stream
	require.NoError(c.t, err)
	defer resp.Body.Close()
	require.Equal(c.t, http.StatusOK, resp.StatusCode)
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		data, ok := strings.CutPrefix(lines.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct{ Type contracts.EventType } // events and the JSON heartbeat alike
		require.NoError(c.t, json.Unmarshal([]byte(data), &ev), data)
		if ev.Type == want {
			return ev.Type
		}
	}
	c.t.Fatalf("the stream ended before %s: %v", want, lines.Err())
	return ""
}

// startHost serves the host app on 127.0.0.1:0 until the test ends.
func startHost(t *testing.T) *client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, zaptest.NewLogger(t)) }()
	c := &client{t: t, base: "http://" + ln.Addr().String(), http: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		c.http.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Error("the host did not shut down")
		}
	})
	return c
}

// envelope is the TaskBridge error envelope.
type envelope struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func TestHostApp(t *testing.T) {
	c := startHost(t)

	// Probes need no authentication.
	r := c.do(http.MethodGet, "/health", "", "")
	assert.Equal(t, http.StatusOK, r.status, string(r.body))

	// The host's routes keep the host's error format.
	r = c.do(http.MethodGet, "/app/reports/7", "alice", "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.JSONEq(t, `{"error":"no such report","status":404}`, string(r.body))
	r = c.do(http.MethodGet, "/app/me", "", "")
	assert.JSONEq(t, `{"error":"sign in first","status":401}`, string(r.body))
	r = c.do(http.MethodGet, "/nowhere", "alice", "")
	assert.JSONEq(t, `{"error":"Cannot GET /nowhere","status":404}`, string(r.body))

	// The bridge's routes answer envelopes, under the base path.
	r = c.do(http.MethodGet, "/app/jobs/tasks/0123/events?maxEvents=0", "alice", "")
	var env envelope
	require.NoError(t, json.Unmarshal(r.body, &env), string(r.body))
	assert.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Equal(t, "REQUEST_VALIDATION_ERROR", env.Code)

	// alice submits an expense that bob approves.
	r = c.do(http.MethodPost, "/app/jobs/tasks", "alice",
		`{"clientRequestId":"e1","taskType":"expense.approve","input":{"amount":120},"metadata":{"approver":"bob"}}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(r.body, &created))
	task := "/app/jobs/tasks/" + created.TaskID

	// bob, who is not the owner, reads the task up to its suspension.
	suspendID, after := "", ""
	for deadline := time.Now().Add(10 * time.Second); suspendID == ""; {
		require.True(t, time.Now().Before(deadline), "no TASK_SUSPENDED within 10 s")
		r = c.do(http.MethodGet, task+"/events?waitTimeoutMs=2000&afterEventId="+after, "bob", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var page contracts.PollResult
		require.NoError(t, json.Unmarshal(r.body, &page))
		for _, ev := range page.Events {
			after = ev.EventID.String()
			if ev.Type == contracts.EventSuspended {
				p, err := contracts.DecodePayload(&ev)
				require.NoError(t, err)
				suspendID = p.(contracts.SuspendedPayload).SuspendID
			}
		}
	}

	// bob streams it over SSE too, up to the suspension.
	assert.Equal(t, contracts.EventSuspended, c.sseUntil(task+"/events/stream", "bob", contracts.EventSuspended))

	// mallory sees nothing: 404, as for a task that does not exist.
	for _, path := range []string{task + "/events", task + "/events/stream"} {
		r = c.do(http.MethodGet, path, "mallory", "")
		assert.Equal(t, http.StatusNotFound, r.status, path)
		require.NoError(t, json.Unmarshal(r.body, &env))
		assert.Equal(t, "TASK_NOT_FOUND", env.Code)
	}
	action := `{"clientActionId":"a1","suspendId":"` + suspendID + `","actionType":"approve"}`
	r = c.do(http.MethodPost, task+"/actions", "mallory", action)
	assert.Equal(t, http.StatusNotFound, r.status, string(r.body))
	r = c.do(http.MethodPost, task+"/cancel", "mallory", "")
	assert.Equal(t, http.StatusNotFound, r.status, string(r.body))

	// bob may not cancel alice's task.
	r = c.do(http.MethodPost, task+"/cancel", "bob", `{"reason":"no"}`)
	assert.Equal(t, http.StatusForbidden, r.status, string(r.body))
	require.NoError(t, json.Unmarshal(r.body, &env))
	assert.Equal(t, "TASK_OWNERSHIP_ERROR", env.Code)

	// bob approves; alice sees the task complete with his decision.
	r = c.do(http.MethodPost, task+"/actions", "bob", action)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	var res contracts.ActionResult
	require.NoError(t, json.Unmarshal(r.body, &res))
	assert.Equal(t, contracts.ActionStatusAccepted, res.Status)
	for deadline := time.Now().Add(10 * time.Second); ; {
		require.True(t, time.Now().Before(deadline), "no terminal event within 10 s")
		r = c.do(http.MethodGet, task+"/events?waitTimeoutMs=2000&afterEventId="+after, "alice", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var page contracts.PollResult
		require.NoError(t, json.Unmarshal(r.body, &page))
		var done *contracts.TaskEvent
		for i, ev := range page.Events {
			after = ev.EventID.String()
			if ev.Type.IsTerminal() {
				done = &page.Events[i]
			}
		}
		if done != nil {
			require.Equal(t, contracts.EventCompleted, done.Type)
			assert.JSONEq(t, `{"result":{"decision":"approve"}}`, string(done.Payload))
			break
		}
	}
}
