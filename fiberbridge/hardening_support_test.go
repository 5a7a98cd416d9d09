package fiberbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// This file holds the hardening tests' server: the bridge on the memory
// stores behind a fault-injecting event store, the executor with the test
// task types (testHandlers) plus any a test adds, served by e2etest on a
// real listener.

// hwait bounds one read or request of the hardening tests.
const hwait = 20 * time.Second

// errInjected is the failure the faulty store returns; it must never reach
// a client.
var errInjected = errors.New("injected store failure: secret-cause-7f3a")

// faultyEvents wraps an EventStore and fails its appends, reads or change
// feed on demand. Failing the feed ends the running Listen with an error,
// and a Listen that starts later fails at once: the hub may still be on
// its way into Listen when a test's streams already have their first
// events (those come from the streams' own first reads).
type faultyEvents struct {
	contracts.EventStore
	failAppend atomic.Bool
	failRead   atomic.Bool
	reads      atomic.Int64

	mu         sync.Mutex
	feedStop   context.CancelCauseFunc
	feedFailed bool
}

func (f *faultyEvents) Append(ctx context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	if f.failAppend.Load() {
		return contracts.TaskEvent{}, errInjected
	}
	return f.EventStore.Append(ctx, taskID, d)
}

func (f *faultyEvents) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	f.reads.Add(1)
	if f.failRead.Load() {
		return contracts.EventPage{}, errInjected
	}
	return f.EventStore.Read(ctx, taskID, after, limit)
}

func (f *faultyEvents) Listen(ctx context.Context, fn func(contracts.Change)) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	f.mu.Lock()
	if f.feedFailed {
		f.mu.Unlock()
		return errInjected
	}
	f.feedStop = stop
	f.mu.Unlock()
	err := f.EventStore.Listen(ctx, fn)
	if cause := context.Cause(ctx); errors.Is(cause, errInjected) {
		return cause
	}
	return err
}

// failFeed makes the running Listen, and any later one, return
// errInjected.
func (f *faultyEvents) failFeed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.feedFailed = true
	if f.feedStop != nil {
		f.feedStop(errInjected)
	}
}

// hopts adjusts a hardened server.
type hopts struct {
	bridge   func(*fiberbridge.Config)
	app      func(*fiber.Config)
	handlers map[string]orchestration.Handler
	// exec adjusts the executor's options (Stores is set already).
	exec func(*orchestration.ExecutorOptions)
	// fresh makes the HTTP client use a new connection per request, for
	// apps with short timeouts that close idle connections (a reused one
	// could be closed under a request).
	fresh bool
}

// hsrv is one running hardened server.
type hsrv struct {
	t      testing.TB
	srv    *e2etest.Server
	bridge *fiberbridge.Bridge
	stores contracts.Stores
	events *faultyEvents
	exec   *orchestration.Executor
	gates  *gates
	client *http.Client
	ws     string // WebSocket URL
}

// startHardened starts a server. At cleanup the bridge shuts down first,
// then the app, then the executor.
func startHardened(t testing.TB, o hopts) *hsrv {
	t.Helper()
	stores := memstore.New(memstore.Options{})
	h := &hsrv{t: t, stores: stores, gates: &gates{m: map[string]chan string{}},
		events: &faultyEvents{EventStore: stores.Events}, client: &http.Client{Timeout: hwait}}
	if o.fresh {
		h.client.Transport = &http.Transport{DisableKeepAlives: true}
	}
	withFaults := stores
	withFaults.Events = h.events
	// The test handlers block until cancelled: stop them at once, no drain.
	execOpts := orchestration.ExecutorOptions{Stores: withFaults, DrainTimeout: -1}
	if o.exec != nil {
		o.exec(&execOpts)
	}
	h.exec = check(orchestration.NewExecutor(execOpts))(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, h.exec.Close(ctx))
	})
	for name, fn := range testHandlers(h.gates) {
		h.exec.Handle(name, fn)
	}
	for name, fn := range o.handlers {
		h.exec.Handle(name, fn)
	}
	cfg := fiberbridge.Config{
		Stores:              withFaults,
		Executor:            h.exec,
		AuthResolver:        bearerAuth,
		MaintenanceInterval: -1,
	}
	if o.bridge != nil {
		o.bridge(&cfg)
	}
	h.bridge = check(fiberbridge.New(cfg))(t)
	appCfg := fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true}
	if o.app != nil {
		o.app(&appCfg)
	}
	app := fiber.New(appCfg)
	h.bridge.Register(app)
	h.srv = e2etest.Serve(t, app)
	h.ws = h.srv.URL("ws", "/api/v1/tasks/ws")
	t.Cleanup(func() {
		h.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, h.bridge.Shutdown(ctx))
	})
	return h
}

// do sends one request.
func (h *hsrv) do(method, path, token, contentType string, body []byte) e2etest.Response {
	h.t.Helper()
	return e2etest.MustDo(h.t, h.client, e2etest.Request{
		Method: method, URL: h.srv.Base + path, Token: token, ContentType: contentType, Body: body,
	})
}

// create creates a task of taskType and returns its id.
func (h *hsrv) create(token, taskType string, input any) string {
	h.t.Helper()
	body, err := json.Marshal(map[string]any{"clientRequestId": contracts.NewID(), "taskType": taskType, "input": input})
	require.NoError(h.t, err)
	r := h.do(http.MethodPost, "/api/v1/tasks", token, "application/json", body)
	require.Equal(h.t, http.StatusCreated, r.Status, string(r.Body))
	var created contracts.TaskCreated
	require.NoError(h.t, json.Unmarshal(r.Body, &created))
	return created.TaskID
}

// poll answers one poll.
func (h *hsrv) poll(token, taskID, query string) (contracts.PollResult, e2etest.Response) {
	h.t.Helper()
	r := h.do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events"+query, token, "", nil)
	var res contracts.PollResult
	if r.Status == http.StatusOK {
		require.NoError(h.t, json.Unmarshal(r.Body, &res), string(r.Body))
	}
	return res, r
}

// allEvents long-polls until the terminal event and returns all events.
func (h *hsrv) allEvents(token, taskID string) []contracts.TaskEvent {
	h.t.Helper()
	var all []contracts.TaskEvent
	cursor := ""
	deadline := time.Now().Add(hwait)
	for time.Now().Before(deadline) {
		res, r := h.poll(token, taskID, "?waitTimeoutMs=5000&afterEventId="+cursor)
		require.Equal(h.t, http.StatusOK, r.Status, string(r.Body))
		all = append(all, res.Events...)
		if isTerminal(all) {
			return all
		}
		if res.NextAfterEventID != nil {
			cursor = res.NextAfterEventID.String()
		}
	}
	h.t.Fatalf("task %s did not end", taskID)
	return nil
}

// healthy checks the server still serves: a create and polls up to its
// terminal event, and /health.
func (h *hsrv) healthy() {
	h.t.Helper()
	subject := "healthcheck-" + contracts.NewID() // parallel checks stay under the per-subject task limit
	id := h.create(subject, "test.steps", map[string]any{"steps": 1})
	evs := h.allEvents(subject, id)
	require.Equal(h.t, contracts.EventCompleted, evs[len(evs)-1].Type)
	require.Equal(h.t, http.StatusOK, h.do(http.MethodGet, "/health", "", "", nil).Status)
}

// sse opens an SSE stream, closed at test cleanup; a non-200 answer is
// returned without a stream.
func (h *hsrv) sse(dialer *net.Dialer, token, taskID, query string, header http.Header) (*e2etest.SSE, e2etest.Response) {
	h.t.Helper()
	s, r := h.openSSE(dialer, token, taskID, query, header)
	if s != nil {
		h.t.Cleanup(func() { _ = s.Close() })
	}
	return s, r
}

// openSSE is sse without the cleanup: the caller closes the stream.
func (h *hsrv) openSSE(dialer *net.Dialer, token, taskID, query string, header http.Header) (*e2etest.SSE, e2etest.Response) {
	h.t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	s, r, err := e2etest.OpenSSE(dialer, h.srv.Addr, "/api/v1/tasks/"+taskID+"/events/stream"+query, header, hwait)
	require.NoError(h.t, err)
	return s, r
}

// dial opens a WebSocket, closed at test cleanup; a refused upgrade is
// returned without a client.
func (h *hsrv) dial(dialer *net.Dialer, token string) (*e2etest.WS, e2etest.Response) {
	h.t.Helper()
	c, r := h.openWS(dialer, token)
	if c != nil {
		h.t.Cleanup(func() { _ = c.Close() })
	}
	return c, r
}

// openWS is dial without the cleanup: the caller closes the connection.
func (h *hsrv) openWS(dialer *net.Dialer, token string) (*e2etest.WS, e2etest.Response) {
	h.t.Helper()
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	c, r, err := e2etest.DialWS(dialer, h.ws, header, hwait)
	require.NoError(h.t, err)
	return c, r
}

// subscribe dials, subscribes to taskID and reads the confirmation.
func (h *hsrv) subscribe(dialer *net.Dialer, token, taskID string, last *string) *e2etest.WS {
	h.t.Helper()
	c, r := h.dial(dialer, token)
	require.NotNil(h.t, c, "upgrade refused: %d %s", r.Status, r.Body)
	require.NoError(h.t, c.Subscribe(taskID, last))
	_, err := c.Confirm(hwait)
	require.NoError(h.t, err)
	return c
}
