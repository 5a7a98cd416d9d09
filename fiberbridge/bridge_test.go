package fiberbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// check(f())(t) returns f's value, failing the test on f's error.
func check[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// memConfig returns a Config on fresh in-memory stores with a test
// executor; the executor is closed at cleanup.
func memConfig(t testing.TB) fiberbridge.Config {
	t.Helper()
	st := memstore.New(memstore.Options{})
	x := check(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: st}))(t)
	x.Handle("noop", func(context.Context, *orchestration.TaskContext) (any, error) { return nil, nil })
	t.Cleanup(func() { require.NoError(t, x.Close(context.Background())) })
	return fiberbridge.Config{
		Stores:       st,
		Executor:     x,
		AuthResolver: bearerAuth,
	}
}

// newBridge builds a bridge that is shut down at cleanup.
func newBridge(t testing.TB, cfg fiberbridge.Config) *fiberbridge.Bridge {
	t.Helper()
	b := check(fiberbridge.New(cfg))(t)
	t.Cleanup(func() { require.NoError(t, b.Shutdown(context.Background())) })
	return b
}

func TestNewRejectsImpossibleConfigs(t *testing.T) {
	t.Parallel()
	base := memConfig(t)
	services, err := orchestration.NewServices(orchestration.Options{
		Stores: base.Stores, Executor: base.Executor,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, services.Close(context.Background())) })

	tests := []struct {
		name   string
		mutate func(*fiberbridge.Config)
		want   string
	}{
		{"relative base path", func(c *fiberbridge.Config) { c.BasePath = "jobs" }, "BasePath"},
		{"no event store", func(c *fiberbridge.Config) { c.Stores.Events = nil }, "Stores.Events"},
		{"no executor", func(c *fiberbridge.Config) { c.Executor = nil }, "Executor"},
		{"no registry", func(c *fiberbridge.Config) { c.Stores.Tasks = nil }, "Stores.Tasks"},
		{"services and executor", func(c *fiberbridge.Config) { c.Services = services }, "not both"},
		{"services and ownership", func(c *fiberbridge.Config) {
			c.Services, c.Executor, c.Ownership = services, nil, orchestration.SubjectOwnership{}
		}, "Ownership"},
		{"task route without :taskId", func(c *fiberbridge.Config) { c.Routes.PollEvents = "/tasks/:id/events" }, ":taskId"},
		{"relative route", func(c *fiberbridge.Config) { c.Routes.Health = "health" }, "must start with /"},
		{"bad upload type", func(c *fiberbridge.Config) { c.AllowedUploadTypes = []string{"nonsense"} }, "AllowedUploadTypes"},
		{"wildcard upload type", func(c *fiberbridge.Config) { c.AllowedUploadTypes = []string{"*/*"} }, "AllowedUploadTypes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			b, err := fiberbridge.New(cfg)
			assert.Nil(t, b)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "taskbridge: fiberbridge.New: "), err.Error())
		})
	}
}

func TestHostServicesAndDisabledRoutes(t *testing.T) {
	t.Parallel()
	base := memConfig(t)
	services, err := orchestration.NewServices(orchestration.Options{
		Stores: base.Stores, Executor: base.Executor,
	})
	require.NoError(t, err)
	cfg := fiberbridge.Config{
		Services: services, Stores: contracts.Stores{Events: base.Stores.Events}, AuthResolver: bearerAuth,
		Routes: fiberbridge.Routes{Health: fiberbridge.Disabled, Ready: fiberbridge.Disabled},
	}
	b := newBridge(t, cfg)
	assert.Same(t, services, b.Services())
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	b.Register(app.Group("/v2"))

	resp := testRequest(t, app, http.MethodPost, "/v2/api/v1/tasks", "alice", `{"clientRequestId":"a","taskType":"noop"}`)
	assert.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	resp = testRequest(t, app, http.MethodGet, "/v2/health", "", "")
	assert.Equal(t, http.StatusNotFound, resp.status)

	// The host owns services it passed in: the bridge's Shutdown leaves
	// them running.
	require.NoError(t, b.Shutdown(context.Background()))
	_, err = services.Creation.Create(context.Background(), contracts.CreateTaskCommand{
		Auth: contracts.AuthContext{Subject: "alice"}, ClientRequestID: "b", TaskType: "noop",
	})
	require.NoError(t, err)
	require.NoError(t, services.Close(context.Background()))
}

// testRequest runs one request through app.Test (fine for non-streaming
// routes).
func testRequest(t testing.TB, app *fiber.App, method, path, token, body string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return runTest(t, app, req)
}

// runTest runs req through app.Test and reads the answer.
func runTest(t testing.TB, app *fiber.App, req *http.Request) response {
	t.Helper()
	resp, err := app.Test(req, -1)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func TestLocalsMiddlewareAndManualAssembly(t *testing.T) {
	t.Parallel()
	calls := 0
	cfg := memConfig(t)
	cfg.AuthResolver = func(c *fiber.Ctx) (contracts.AuthContext, error) {
		calls++
		return bearerAuth(c)
	}
	cfg.Next = func(c *fiber.Ctx) bool { return c.Get("X-Skip") == "1" }
	b := newBridge(t, cfg)

	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	api := app.Group("/api", b.Middleware())
	api.Get("/whoami", func(c *fiber.Ctx) error {
		auth, ok := fiberbridge.AuthFrom(c)
		if !ok {
			return c.SendString("skipped")
		}
		s, ok := fiberbridge.ServicesFrom(c)
		require.True(t, ok)
		require.Same(t, b.Services(), s)
		return c.SendString(auth.Subject)
	})
	api.Post("/tasks", b.CreateTaskHandler())

	r := testRequest(t, app, http.MethodGet, "/api/whoami", "carol", "")
	assert.Equal(t, "carol", string(r.body))
	assert.Equal(t, 1, calls)

	// Resolved once per request, though both the middleware and the
	// handler need it.
	calls = 0
	r = testRequest(t, app, http.MethodPost, "/api/tasks", "carol", `{"clientRequestId":"m","taskType":"noop"}`)
	assert.Equal(t, http.StatusCreated, r.status, string(r.body))
	assert.Equal(t, 1, calls)

	// The middleware's 401 stops the chain.
	r = testRequest(t, app, http.MethodGet, "/api/whoami", "", "")
	checkEnvelope(t, r, http.StatusUnauthorized, bridgeerr.CodeAuthentication)

	// Next skips the bridge.
	req := httptest.NewRequest(http.MethodGet, "/api/whoami", nil)
	req.Header.Set("X-Skip", "1")
	assert.Equal(t, "skipped", string(runTest(t, app, req).body))
}

func TestPerRequestServicesAndAuth(t *testing.T) {
	t.Parallel()
	cfg := memConfig(t)
	b := newBridge(t, cfg)

	// A tenant whose services deny every creation.
	tenant, err := orchestration.NewServices(orchestration.Options{
		Stores: cfg.Stores, Executor: cfg.Executor, Ownership: denyAll{},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tenant.Close(context.Background())) })

	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	app.Use(func(c *fiber.Ctx) error {
		if c.Get("X-Tenant") == "locked" {
			fiberbridge.SetServices(c, tenant)
		}
		if key := c.Get("X-Api-Key"); key != "" {
			fiberbridge.SetAuth(c, contracts.AuthContext{Subject: "key:" + key})
		}
		return c.Next()
	})
	b.Register(app)

	body := `{"clientRequestId":"t","taskType":"noop"}`
	r := testRequest(t, app, http.MethodPost, "/api/v1/tasks", "dave", body)
	assert.Equal(t, http.StatusCreated, r.status, string(r.body))

	req := httptest.NewRequest(http.MethodPost, "/api/v1/tasks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer dave")
	req.Header.Set("X-Tenant", "locked")
	assert.Equal(t, http.StatusForbidden, runTest(t, app, req).status)

	// SetAuth replaces the resolver: no bearer token needed.
	req = httptest.NewRequest(http.MethodPost, "/api/v1/tasks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", "k1")
	r = runTest(t, app, req)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(r.body, &created))
	task, err := cfg.Stores.Tasks.Get(context.Background(), created.TaskID)
	require.NoError(t, err)
	assert.Equal(t, "key:k1", task.OwnerID)
}

type denyAll struct{}

func (denyAll) CanCreate(context.Context, contracts.AuthContext) error { return errors.New("denied") }
func (denyAll) CanAccess(context.Context, contracts.AuthContext, contracts.TaskRecord) error {
	return errors.New("denied")
}

func TestResolverErrorsAndPanics(t *testing.T) {
	t.Parallel()
	cfg := memConfig(t)
	cfg.AuthResolver = func(c *fiber.Ctx) (contracts.AuthContext, error) {
		switch c.Get("X-Mode") {
		case "plain":
			return contracts.AuthContext{}, errors.New("db password is hunter2")
		case "forbidden":
			return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeTaskOwnership, "app suspended")
		case "panic":
			panic("resolver bug")
		}
		return contracts.AuthContext{Subject: "x"}, nil
	}
	b := newBridge(t, cfg)
	app := fiber.New() // Fiber's default error handler: the routes still answer envelopes
	b.Register(app)
	for _, tc := range []struct {
		mode   string
		status int
		code   bridgeerr.Code
		msg    string
	}{
		{"plain", 401, bridgeerr.CodeAuthentication, "authentication required"},
		{"forbidden", 403, bridgeerr.CodeTaskOwnership, "app suspended"},
		{"panic", 500, bridgeerr.CodeInternal, "internal error"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/tasks/x/events", nil)
		req.Header.Set("X-Mode", tc.mode)
		r := runTest(t, app, req)
		env := checkEnvelope(t, r, tc.status, tc.code)
		assert.Equal(t, tc.msg, env.Message)
		assert.NotContains(t, string(r.body), "hunter2")
		assert.NotContains(t, string(r.body), "resolver bug")
	}
}

func TestErrorHandler(t *testing.T) {
	t.Parallel()
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	app.Get("/fiber", func(c *fiber.Ctx) error { return fiber.NewError(http.StatusTeapot, "short and stout") })
	app.Get("/fiber500", func(c *fiber.Ctx) error { return fiber.ErrBadGateway })
	app.Get("/bridge", func(c *fiber.Ctx) error {
		return bridgeerr.New(bridgeerr.CodeIdempotencyConflict, "reused").WithDetails(map[string]any{"k": "v"})
	})
	app.Get("/plain", func(c *fiber.Ctx) error { return errors.New("secret internals") })
	app.Get("/unencodable", func(c *fiber.Ctx) error {
		return bridgeerr.New(bridgeerr.CodeInvalidRequest, "bad").WithDetails(map[string]any{"f": func() {}})
	})
	app.Get("/503", func(c *fiber.Ctx) error { return fiber.ErrServiceUnavailable })
	for _, tc := range []struct {
		path   string
		status int
		code   bridgeerr.Code
		msg    string
	}{
		{"/fiber", http.StatusTeapot, bridgeerr.CodeInvalidRequest, "short and stout"},
		{"/fiber500", http.StatusInternalServerError, bridgeerr.CodeInternal, "internal error"},
		{"/bridge", http.StatusConflict, bridgeerr.CodeIdempotencyConflict, "reused"},
		{"/plain", http.StatusInternalServerError, bridgeerr.CodeInternal, "internal error"},
		{"/unencodable", http.StatusBadRequest, bridgeerr.CodeInvalidRequest, "bad"},
		{"/503", http.StatusServiceUnavailable, bridgeerr.CodeServiceShuttingDown, "service unavailable"},
		{"/missing", http.StatusNotFound, bridgeerr.CodeRouteNotFound, "route not found"}, // no request bytes echoed
	} {
		r := testRequest(t, app, http.MethodGet, tc.path, "", "")
		env := checkEnvelope(t, r, tc.status, tc.code)
		assert.Equal(t, tc.msg, env.Message, tc.path)
		assert.NotContains(t, string(r.body), "secret internals")
	}
}

func TestRequestMetricsAndLogs(t *testing.T) {
	t.Parallel()
	metrics := observe.NewMemoryMetrics()
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := memConfig(t)
	cfg.Metrics = metrics
	cfg.Logger = zap.New(core)
	cfg.Routes.CreateTask = "/projects/:projectId/tasks"
	b := newBridge(t, cfg)
	app := fiber.New()
	b.Register(app)

	r := testRequest(t, app, http.MethodPost, "/api/v1/projects/p1/tasks", "erin", `{"clientRequestId":"1","taskType":"noop"}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = testRequest(t, app, http.MethodPost, "/api/v1/projects/p2/tasks", "", `{}`)
	require.Equal(t, http.StatusUnauthorized, r.status)
	r = testRequest(t, app, http.MethodGet, "/api/v1/tasks/abc/events?maxEvents=0", "erin", "")
	require.Equal(t, http.StatusUnprocessableEntity, r.status)

	route := func(path, status string) []observe.Tag {
		return []observe.Tag{{Key: observe.TagRoute, Value: path}, {Key: observe.TagStatus, Value: status}}
	}
	assert.Equal(t, 1, metrics.Histogram(observe.MetricHTTPRequestSeconds, route("/api/v1/projects/:projectId/tasks", "201")...).Count)
	assert.Equal(t, 1, metrics.Histogram(observe.MetricHTTPRequestSeconds, route("/api/v1/projects/:projectId/tasks", "401")...).Count)
	assert.Equal(t, 1, metrics.Histogram(observe.MetricHTTPRequestSeconds, route("/api/v1/tasks/:taskId/events", "422")...).Count)

	created := logs.FilterMessage("http.task.create").All()
	require.Len(t, created, 1)
	fields := created[0].ContextMap()
	assert.Equal(t, "http", fields[observe.FieldTransport])
	assert.Equal(t, "erin", fields[observe.FieldUserID])
	assert.Equal(t, "1", fields[observe.FieldClientRequestID])
	assert.Equal(t, "created", fields[observe.FieldOutcome])
	assert.NotEmpty(t, fields[observe.FieldTaskID])

	rejected := logs.FilterMessage("http.request.rejected").All()
	require.Len(t, rejected, 2)
	assert.Equal(t, zapcore.WarnLevel, rejected[0].Level)
	assert.Equal(t, string(bridgeerr.CodeAuthentication), rejected[0].ContextMap()[observe.FieldOutcome])
	assert.Equal(t, "http", rejected[1].ContextMap()[observe.FieldTransport])
}
