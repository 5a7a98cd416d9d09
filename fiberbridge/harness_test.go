package fiberbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// This file holds the end-to-end harness: a real listener on 127.0.0.1:0,
// the in-memory stores, the in-process executor with test task types, and a
// real HTTP client.

// bearerAuth is the tests' AuthResolver: the bearer token (or the
// access_token query parameter) is the subject.
func bearerAuth(c *fiber.Ctx) (contracts.AuthContext, error) {
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || token == "" {
		token = c.Query("access_token")
	}
	if token == "" {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication, "missing bearer token")
	}
	return contracts.AuthContext{Subject: strings.Clone(token)}, nil
}

// gates lets a test drive a "test.gated" task: each string sent on the
// task's gate becomes a TASK_PROGRESS message, closing it completes the task.
type gates struct {
	mu sync.Mutex
	m  map[string]chan string
}

func (g *gates) get(taskID string) chan string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.m[taskID]
	if !ok {
		ch = make(chan string)
		g.m[taskID] = ch
	}
	return ch
}

// harness is one running server.
type harness struct {
	t      testing.TB
	base   string
	addr   string
	app    *fiber.App
	bridge *fiberbridge.Bridge
	stores contracts.Stores
	exec   *orchestration.Executor
	client *http.Client
	gates  *gates
	served chan error
	once   sync.Once
	// openapi is the document the server serves of its routes; every
	// response of request to one of them is validated against it.
	openapi *conformance.Document
}

// harnessOpenAPIPath is where harness servers serve their OpenAPI document
// (unless a test's own Routes leave it out).
const harnessOpenAPIPath = "/api/v1/openapi.json"

// testHandlers registers the tests' task types.
func testHandlers(g *gates) map[string]orchestration.Handler {
	return map[string]orchestration.Handler{
		// test.steps {steps}: steps progress events, then COMPLETED {steps}.
		"test.steps": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			var in struct {
				Steps int `json:"steps"`
			}
			if err := task.DecodeInput(&in); err != nil {
				return nil, err
			}
			for i := 1; i <= in.Steps; i++ {
				if err := task.Progress(ctx, float64(i*100/in.Steps), "step", ""); err != nil {
					return nil, err
				}
			}
			return map[string]int{"steps": in.Steps}, nil
		},
		// test.block: runs until cancelled.
		"test.block": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
		// test.gated: driven by the test through gates.
		"test.gated": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			gate := g.get(task.Task().TaskID)
			for {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case msg, ok := <-gate:
					if !ok {
						return map[string]bool{"done": true}, nil
					}
					if err := task.Message(ctx, msg, contracts.LevelInfo); err != nil {
						return nil, err
					}
				}
			}
		},
		// test.approval: suspends for approve/reject, completes with the decision.
		"test.approval": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			act, err := task.Suspend(ctx, orchestration.SuspendSpec{
				ReasonCode: "approval_required", AllowedActions: []string{"approve", "reject"},
			})
			if err != nil {
				return nil, err
			}
			return map[string]string{"decision": act.ActionType}, nil
		},
	}
}

// startHarness starts a server with cfg adjusted by mutate (nil for the
// defaults). The server, bridge and executor stop at test cleanup.
func startHarness(t testing.TB, mutate func(*fiberbridge.Config)) *harness {
	t.Helper()
	return startHarnessWith(t, mutate, nil)
}

// startHarnessWith is startHarness with mount, when not nil, called on the
// app after Register (to add host routes such as /metrics).
func startHarnessWith(t testing.TB, mutate func(*fiberbridge.Config), mount func(*fiber.App)) *harness {
	t.Helper()
	stores := memstore.New(memstore.Options{})
	h := &harness{t: t, stores: stores, gates: &gates{m: map[string]chan string{}}, served: make(chan error, 1)}
	// The test handlers block until cancelled: stop them at once, no drain.
	h.exec = check(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, DrainTimeout: -1}))(t)
	for name, fn := range testHandlers(h.gates) {
		h.exec.Handle(name, fn)
	}
	cfg := fiberbridge.Config{
		Stores:       stores,
		Executor:     h.exec,
		AuthResolver: bearerAuth,
		Routes:       fiberbridge.Routes{OpenAPI: "/openapi.json"},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h.bridge = check(fiberbridge.New(cfg))(t)
	h.app = fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
	h.bridge.Register(h.app)
	if mount != nil {
		mount(h.app)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h.addr = ln.Addr().String()
	h.base = "http://" + h.addr
	go func() { h.served <- h.app.Listener(ln) }()
	h.client = &http.Client{Timeout: 30 * time.Second}
	t.Cleanup(h.stop)
	if cfg.Routes.OpenAPI != "" && cfg.Routes.OpenAPI != fiberbridge.Disabled {
		base := cfg.BasePath
		if base == "" {
			base = fiberbridge.DefaultBasePath
		}
		h.openapi = h.fetchOpenAPI(strings.TrimSuffix(base, "/") + cfg.Routes.OpenAPI)
	}
	return h
}

// fetchOpenAPI reads the server's OpenAPI document.
func (h *harness) fetchOpenAPI(path string) *conformance.Document {
	h.t.Helper()
	resp, err := h.client.Get(h.base + path)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	require.Equal(h.t, http.StatusOK, resp.StatusCode, string(raw))
	doc, err := conformance.NewDocument(raw)
	require.NoError(h.t, err)
	return doc
}

// stop shuts the bridge, then the app, then the executor down.
func (h *harness) stop() {
	h.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.client.CloseIdleConnections()
		require.NoError(h.t, h.bridge.Shutdown(ctx))
		require.NoError(h.t, h.app.ShutdownWithContext(ctx))
		require.NoError(h.t, <-h.served)
		require.NoError(h.t, h.exec.Close(ctx))
	})
}

// response is a received HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request sends one request. token "" sends no Authorization header.
func (h *harness) request(method, path, token, contentType string, body []byte) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := h.client.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	if h.openapi != nil {
		if _, ok := h.openapi.Match(method, req.URL.Path); ok {
			require.NoError(h.t, h.openapi.ValidateResponse(method, req.URL.Path, resp.StatusCode,
				resp.Header.Get("Content-Type"), data), "the served OpenAPI document must describe this response")
		}
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// postJSON sends v as a JSON body.
func (h *harness) postJSON(path, token string, v any) response {
	h.t.Helper()
	body, err := json.Marshal(v)
	require.NoError(h.t, err)
	return h.request(http.MethodPost, path, token, "application/json", body)
}

// create creates a task and returns its id.
func (h *harness) create(token, taskType string, input any) string {
	h.t.Helper()
	r := h.postJSON("/api/v1/tasks", token, map[string]any{
		"clientRequestId": contracts.NewID(), "taskType": taskType, "input": input,
	})
	require.Equal(h.t, http.StatusCreated, r.status, string(r.body))
	conformance.CheckBody(h.t, conformance.TaskCreatedResponse, r.body)
	var created contracts.TaskCreated
	require.NoError(h.t, json.Unmarshal(r.body, &created))
	return created.TaskID
}

// poll long-polls and checks the body's conformance.
func (h *harness) poll(token, taskID, query string) (contracts.PollResult, response) {
	h.t.Helper()
	r := h.request(http.MethodGet, "/api/v1/tasks/"+taskID+"/events"+query, token, "", nil)
	var res contracts.PollResult
	if r.status == http.StatusOK {
		conformance.CheckBody(h.t, conformance.PollEventsResponse, r.body)
		require.NoError(h.t, json.Unmarshal(r.body, &res))
		for i := range res.Events {
			raw, err := json.Marshal(res.Events[i])
			require.NoError(h.t, err)
			conformance.CheckFrame(h.t, raw)
		}
	}
	return res, r
}

// pollUntilTerminal polls (long-polling) until the terminal event and
// returns every event in order.
func (h *harness) pollUntilTerminal(token, taskID string) []contracts.TaskEvent {
	h.t.Helper()
	var all []contracts.TaskEvent
	cursor := ""
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		res, r := h.poll(token, taskID, "?waitTimeoutMs=5000&afterEventId="+cursor)
		require.Equal(h.t, http.StatusOK, r.status, string(r.body))
		all = append(all, res.Events...)
		if n := len(all); n > 0 && all[n-1].Type.IsTerminal() {
			return all
		}
		if res.NextAfterEventID != nil {
			cursor = res.NextAfterEventID.String()
		}
	}
	h.t.Fatalf("task %s did not end", taskID)
	return nil
}

// envelope decodes and checks an error body and its code.
func checkEnvelope(t testing.TB, r response, status int, code bridgeerr.Code) bridgeerr.Envelope {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), r.header.Get("Content-Type"))
	conformance.CheckBody(t, conformance.ErrorResponse, r.body)
	var env bridgeerr.Envelope
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&env))
	require.Equal(t, code, env.Code, string(r.body))
	require.NotNil(t, env.Details)
	_, err := time.Parse(time.RFC3339, env.Timestamp)
	require.NoError(t, err)
	return env
}

var errTest = errors.New("test failure")

// recv receives from ch or fails the test after hwait.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hwait):
		t.Fatalf("timed out after %v waiting for %s", hwait, what)
		panic("unreachable")
	}
}
