package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's process-wide date updater, and its worker pool's
		// cleaner, which sleeps out its interval after the server stopped.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

const wait = 10 * time.Second

// start serves the example on 127.0.0.1:0 through serve, as main does, and
// stops it at the end of the test (serve must return nil).
func start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, zap.NewNop()) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return ln.Addr().String()
}

// call sends one request with an API key.
func call(t *testing.T, client *http.Client, method, url, key, body string) e2etest.Response {
	t.Helper()
	r := e2etest.Request{Method: method, URL: url, Header: http.Header{}}
	if key != "" {
		r.Header.Set("X-Api-Key", key)
	}
	if body != "" {
		r.ContentType, r.Body = "application/json", []byte(body)
	}
	return e2etest.MustDo(t, client, r)
}

func createdID(t *testing.T, r e2etest.Response) string {
	t.Helper()
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	var c contracts.TaskCreated
	require.NoError(t, json.Unmarshal(r.Body, &c))
	return c.TaskID
}

func TestProjectRoutes(t *testing.T) {
	addr := start(t)
	base := "http://" + addr
	client := &http.Client{Timeout: wait}
	defer client.CloseIdleConnections()

	// alice creates in her project and watches it over SSE to the end.
	id := createdID(t, call(t, client, http.MethodPost, base+"/api/projects/apollo/tasks", "key-alice",
		`{"clientRequestId":"r1","taskType":"demo.progress","input":{"steps":2,"delayMs":5}}`))
	sse, resp, err := e2etest.OpenSSE(nil, addr, "/api/projects/apollo/tasks/"+id+"/events/stream",
		http.Header{"X-Api-Key": {"key-alice"}}, wait)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.Status)
	evs, err := sse.ReadToEnd(wait)
	require.NoError(t, err)
	require.NoError(t, sse.Close())
	require.Len(t, evs, 4) // STARTED, 2 x PROGRESS, COMPLETED
	assert.Equal(t, contracts.EventCompleted, evs[3].Type)

	// The same task over a WebSocket on the project's path (access_token,
	// as a browser sends it), replayed to its terminal event.
	ws, resp, err := e2etest.DialWS(nil, "ws://"+addr+"/api/projects/apollo/tasks/ws?access_token=key-alice", nil, wait)
	require.NoError(t, err, "status %d", resp.Status)
	require.NoError(t, ws.Subscribe(id, nil))
	_, err = ws.Confirm(wait)
	require.NoError(t, err)
	replayed, code, _, err := ws.ReadToClose(wait)
	require.NoError(t, err)
	assert.Equal(t, 1000, code)
	assert.Len(t, replayed, 4)
	require.NoError(t, ws.Close())

	// Long-poll on the project's path.
	r := call(t, client, http.MethodGet, base+"/api/projects/apollo/tasks/"+id+"/events", "key-alice", "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var page contracts.PollResult
	require.NoError(t, json.Unmarshal(r.Body, &page))
	assert.Len(t, page.Events, 4)

	// Projects are apart: bob may use gemini, but alice's apollo task does
	// not exist there; alice may not use gemini at all; a bad key is 401.
	r = call(t, client, http.MethodGet, base+"/api/projects/gemini/tasks/"+id+"/events", "key-bob", "")
	e2etest.CheckEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)
	r = call(t, client, http.MethodGet, base+"/api/projects/apollo/tasks/"+id+"/events", "key-bob", "")
	e2etest.CheckEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound) // owned by apollo/alice
	r = call(t, client, http.MethodPost, base+"/api/projects/gemini/tasks", "key-alice", `{"clientRequestId":"r2","taskType":"demo.progress"}`)
	env := e2etest.CheckEnvelope(t, r, http.StatusForbidden, bridgeerr.CodeTaskOwnership)
	assert.Equal(t, "gemini", env.Details["projectId"])
	r = call(t, client, http.MethodGet, base+"/api/projects/apollo/tasks/"+id+"/events", "nope", "")
	e2etest.CheckEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)

	// The host's own routes and error handler live next to the bridge's.
	r = call(t, client, http.MethodGet, base+"/api/projects/apollo/", "", "")
	assert.Equal(t, http.StatusOK, r.Status)
	assert.JSONEq(t, `{"projectId":"apollo"}`, string(r.Body))
	r = call(t, client, http.MethodGet, base+"/health", "", "")
	assert.Equal(t, http.StatusOK, r.Status)
	r = call(t, client, http.MethodGet, base+"/no/such/route", "", "")
	assert.Equal(t, http.StatusNotFound, r.Status)
	assert.Contains(t, string(r.Body), `"error":"not found"`)
}

func TestInternalGroupAssembledByHand(t *testing.T) {
	addr := start(t)
	base := "http://" + addr
	client := &http.Client{Timeout: wait}
	defer client.CloseIdleConnections()

	r := call(t, client, http.MethodPost, base+"/internal/v1/tasks", "key-ops",
		`{"clientRequestId":"i1","taskType":"demo.progress","input":{"steps":1,"delayMs":1}}`)
	id := createdID(t, r)
	assert.Equal(t, "1", r.Header.Get("X-Internal"), "the host middleware ran")

	sse, _, err := e2etest.OpenSSE(nil, addr, "/internal/v1/tasks/"+id+"/events/stream", http.Header{"X-Api-Key": {"key-ops"}}, wait)
	require.NoError(t, err)
	evs, err := sse.ReadToEnd(wait)
	require.NoError(t, err)
	require.NoError(t, sse.Close())
	require.Len(t, evs, 3)

	r = call(t, client, http.MethodGet, base+"/internal/v1/tasks/"+id+"/events?maxEvents=1", "key-ops", "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))

	// Only the routes registered by hand exist in the group.
	r = call(t, client, http.MethodPost, base+"/internal/v1/tasks/"+id+"/cancel", "key-ops", "")
	assert.Equal(t, http.StatusNotFound, r.Status)
	// A project key is no internal key.
	r = call(t, client, http.MethodPost, base+"/internal/v1/tasks", "key-bob", `{"clientRequestId":"i2","taskType":"demo.progress"}`)
	e2etest.CheckEnvelope(t, r, http.StatusForbidden, bridgeerr.CodeTaskOwnership)
}
