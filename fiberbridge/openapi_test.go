package fiberbridge_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/spec"
)

// openAPITemplate writes a Fiber route path as an OpenAPI path template.
func openAPITemplate(fiberPath string) string {
	segs := strings.Split(fiberPath, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = "{" + strings.TrimSuffix(s[1:], "?") + "}"
		}
	}
	return strings.Join(segs, "/")
}

// Every route the bridge mounts is in the document it serves, at its full
// path, and nothing else is; the additions are marked.
func TestOpenAPIDescribesMountedRoutes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		group    string // "" registers on the app
		probesOn string // "app": RegisterTasks on the group, RegisterProbes on the app
		basePath string
		routes   fiberbridge.Routes
		docPath  string // where to fetch the document
		want     []string
	}{
		{
			name: "defaults", routes: fiberbridge.Routes{OpenAPI: "/openapi.json"}, docPath: "/api/v1/openapi.json",
			want: []string{"GET /api/v1/openapi.json", "GET /api/v1/tasks", "GET /api/v1/tasks/ws", "GET /api/v1/tasks/{taskId}",
				"GET /api/v1/tasks/{taskId}/events", "GET /api/v1/tasks/{taskId}/events/stream", "GET /health", "GET /ready",
				"POST /api/v1/tasks", "POST /api/v1/tasks/{taskId}/actions", "POST /api/v1/tasks/{taskId}/cancel"},
		},
		{
			name: "a group with a host parameter", group: "/api/projects/:projectId", basePath: "/",
			routes:  fiberbridge.Routes{Health: fiberbridge.Disabled, Ready: fiberbridge.Disabled, OpenAPI: "/openapi.json"},
			docPath: "/api/projects/p1/openapi.json",
			want: []string{"GET /api/projects/{projectId}/openapi.json", "GET /api/projects/{projectId}/tasks",
				"GET /api/projects/{projectId}/tasks/ws", "GET /api/projects/{projectId}/tasks/{taskId}",
				"GET /api/projects/{projectId}/tasks/{taskId}/events", "GET /api/projects/{projectId}/tasks/{taskId}/events/stream",
				"POST /api/projects/{projectId}/tasks", "POST /api/projects/{projectId}/tasks/{taskId}/actions",
				"POST /api/projects/{projectId}/tasks/{taskId}/cancel"},
		},
		{
			name: "task routes on a group, probes on the app", group: "/g", probesOn: "app", basePath: "/jobs",
			routes:  fiberbridge.Routes{PollEvents: fiberbridge.Disabled, StreamEvents: fiberbridge.Disabled, OpenAPI: "/openapi.json"},
			docPath: "/g/jobs/openapi.json",
			want: []string{"GET /g/jobs/openapi.json", "GET /g/jobs/tasks", "GET /g/jobs/tasks/ws", "GET /g/jobs/tasks/{taskId}",
				"GET /health", "GET /ready", "POST /g/jobs/tasks", "POST /g/jobs/tasks/{taskId}/actions",
				"POST /g/jobs/tasks/{taskId}/cancel"},
		},
		{
			name: "additions and streams turned off",
			routes: fiberbridge.Routes{ListTasks: fiberbridge.Disabled, GetTask: fiberbridge.Disabled, WebSocket: fiberbridge.Disabled,
				StreamEvents: fiberbridge.Disabled, OpenAPI: "/docs/openapi.json"},
			docPath: "/api/v1/docs/openapi.json",
			want: []string{"GET /api/v1/docs/openapi.json", "GET /api/v1/tasks/{taskId}/events", "GET /health", "GET /ready",
				"POST /api/v1/tasks", "POST /api/v1/tasks/{taskId}/actions", "POST /api/v1/tasks/{taskId}/cancel"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := memConfig(t)
			cfg.Routes, cfg.BasePath = tc.routes, tc.basePath
			b := newBridge(t, cfg)
			app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
			var router fiber.Router = app
			if tc.group != "" {
				router = app.Group(tc.group)
			}
			if tc.probesOn == "app" {
				b.RegisterProbes(app)
				b.RegisterTasks(router)
			} else {
				b.Register(router)
			}
			srv := e2etest.Serve(t, app)

			r := e2etest.MustDo(t, nil, e2etest.Request{Method: http.MethodGet, URL: srv.Base + tc.docPath})
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			assert.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"))
			doc, err := conformance.NewDocument(r.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.want, doc.Operations())

			var mounted []string
			for _, rt := range app.GetRoutes(true) {
				if rt.Method == http.MethodHead {
					continue // Fiber's automatic twin of every GET
				}
				mounted = append(mounted, rt.Method+" "+openAPITemplate(rt.Path))
			}
			sort.Strings(mounted)
			assert.Equal(t, mounted, doc.Operations(), "every mounted route, and only those")

			// The document validates its own answer, and the additions are marked.
			require.NoError(t, doc.ValidateResponse(http.MethodGet, strings.Replace(tc.docPath, "p1", "p2", 1), r.Status,
				r.Header.Get("Content-Type"), r.Body))
			var raw struct {
				Paths map[string]map[string]map[string]any `json:"paths"`
			}
			require.NoError(t, json.Unmarshal(r.Body, &raw))
			for _, item := range raw.Paths {
				for _, op := range item {
					id := op["operationId"].(string)
					added := id == spec.OpGetTask || id == spec.OpListTasks || id == spec.OpOpenAPI
					assert.Equal(t, added, op[spec.ExtensionKey] == true, id)
				}
			}
			if strings.Contains(tc.group, ":projectId") {
				get := raw.Paths["/api/projects/{projectId}/tasks/{taskId}"]["get"]
				params, _ := json.Marshal(get["parameters"])
				assert.Contains(t, string(params), `"name":"projectId"`, "the host's parameter is declared")
			}
		})
	}
}

// The OpenAPI route is opt-in.
func TestOpenAPIRouteIsOptIn(t *testing.T) {
	t.Parallel()
	b := newBridge(t, memConfig(t))
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
	b.Register(app)
	srv := e2etest.Serve(t, app)
	r := e2etest.MustDo(t, nil, e2etest.Request{Method: http.MethodGet, URL: srv.Base + "/api/v1/openapi.json"})
	e2etest.CheckEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeRouteNotFound)
}

// A tour of every HTTP route through the harness, whose requests are all
// validated against the document the server serves; and the validator does
// catch a response the document does not describe.
func TestOpenAPIValidatesEveryRoute(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	require.NotNil(t, h.openapi)
	id := h.create("alice", "test.approval", nil)
	h.postJSON("/api/v1/tasks", "alice", map[string]any{"clientRequestId": "dup", "taskType": "test.steps"})
	h.postJSON("/api/v1/tasks", "alice", map[string]any{"clientRequestId": "dup", "taskType": "test.steps"})
	h.postJSON("/api/v1/tasks", "alice", map[string]any{"clientRequestId": "dup", "taskType": "test.steps", "input": map[string]int{"x": 1}})
	susp := h.waitSuspended("alice", id)
	h.request(http.MethodGet, "/api/v1/tasks", "alice", "", nil)
	h.request(http.MethodGet, "/api/v1/tasks/"+id, "alice", "", nil)
	h.request(http.MethodGet, "/api/v1/tasks/"+id, "bob", "", nil)
	h.request(http.MethodGet, "/api/v1/tasks/"+id+"/events?maxEvents=1", "alice", "", nil)
	h.request(http.MethodGet, "/api/v1/tasks/"+id+"/events?maxEvents=0", "alice", "", nil)
	h.postJSON("/api/v1/tasks/"+id+"/actions", "alice", map[string]any{"clientActionId": "a", "suspendId": susp.SuspendID, "actionType": "approve"})
	h.postJSON("/api/v1/tasks/"+id+"/actions", "alice", map[string]any{"clientActionId": "a", "suspendId": susp.SuspendID, "actionType": "approve"})
	h.postJSON("/api/v1/tasks/"+id+"/cancel", "alice", map[string]any{})
	h.request(http.MethodGet, "/api/v1/tasks/"+id+"/events/stream?lastEventId=bad", "alice", "", nil)
	h.request(http.MethodGet, "/health", "", "", nil)
	h.request(http.MethodGet, "/ready", "", "", nil)
	h.request(http.MethodGet, harnessOpenAPIPath, "", "", nil)

	assert.Error(t, h.openapi.ValidateResponse(http.MethodGet, "/api/v1/tasks/x", http.StatusOK, "application/json",
		[]byte(`{"taskId":"x"}`)), "a snapshot without its fields")
	assert.Error(t, h.openapi.ValidateResponse(http.MethodPost, "/api/v1/tasks", http.StatusNoContent, "", nil), "an undocumented status")
	assert.Error(t, h.openapi.ValidateResponse(http.MethodGet, "/health", http.StatusOK, "text/plain", []byte("ok")), "an undocumented type")
	_, ok := h.openapi.Match(http.MethodDelete, "/api/v1/tasks/x")
	assert.False(t, ok)
	tmpl, ok := h.openapi.Match(http.MethodGet, "/api/v1/tasks/ws")
	assert.True(t, ok)
	assert.Equal(t, "/api/v1/tasks/ws", tmpl, "a fixed segment wins over a parameter")
}

// registryOnly hides the memory registry's owner index.
type registryOnly struct{ contracts.TaskRegistry }

// Without an owner index the list route is left out, unless asked for,
// which New refuses; the snapshot still works.
func TestListRouteNeedsALister(t *testing.T) {
	t.Parallel()
	cfg := memConfig(t)
	cfg.Stores.Tasks = registryOnly{cfg.Stores.Tasks}

	explicit := cfg
	explicit.Routes.ListTasks = "/api/v1/tasks"
	_, err := fiberbridge.New(explicit)
	assert.EqualError(t, err, "taskbridge: fiberbridge.New: Routes.ListTasks needs a task registry that implements "+
		"contracts.TaskLister; set it to fiberbridge.Disabled")

	b := newBridge(t, cfg)
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	b.Register(app)
	r := testRequest(t, app, http.MethodPost, "/api/v1/tasks", "erin", `{"clientRequestId":"1","taskType":"noop"}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(r.body, &created))
	r = testRequest(t, app, http.MethodGet, "/api/v1/tasks", "erin", "")
	assert.Equal(t, http.StatusMethodNotAllowed, r.status, "only POST is mounted there")
	r = testRequest(t, app, http.MethodGet, "/api/v1/tasks/"+created.TaskID, "erin", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	conformance.CheckBody(t, conformance.TaskSnapshot, r.body)
}
