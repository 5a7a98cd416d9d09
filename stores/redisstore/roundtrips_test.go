package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// roundTrips is a go-redis hook that counts the round trips a request makes
// to Redis: a command sent alone is one, a pipeline (or a MULTI/EXEC
// transaction) is one however many commands it carries; a new
// connection's handshake is counted apart. Commands are
// attributed to the route named in their context (withRoute), so work that
// does not carry the request's context (background loops) is counted apart,
// under "". It is safe for concurrent use.
type roundTrips struct {
	mu    sync.Mutex
	trips map[string][]string // route -> one entry per round trip
}

type routeKey struct{}

// withRoute tags ctx with the route whose Redis commands it carries.
func withRoute(ctx context.Context, route string) context.Context {
	return context.WithValue(ctx, routeKey{}, route)
}

// handshake holds the commands go-redis sends on a new connection before
// its first command; they are counted under handshakeRoute, whoever dialed.
var handshake = map[string]bool{"HELLO": true, "CLIENT": true, "AUTH": true, "SELECT": true, "READONLY": true}

const handshakeRoute = "(connection handshake)"

func (rt *roundTrips) add(ctx context.Context, trip string, first string) {
	route, _ := ctx.Value(routeKey{}).(string)
	if handshake[first] {
		route = handshakeRoute
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.trips == nil {
		rt.trips = make(map[string][]string)
	}
	rt.trips[route] = append(rt.trips[route], trip)
}

// take returns and forgets the round trips counted for route.
func (rt *roundTrips) take(route string) []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	t := rt.trips[route]
	delete(rt.trips, route)
	return t
}

// DialHook implements redis.Hook.
func (rt *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook: one command, one round trip.
func (rt *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := strings.ToUpper(cmd.Name())
		rt.add(ctx, name, name)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook: one pipeline, one round trip.
func (rt *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = strings.ToUpper(c.Name())
		}
		if len(names) == 0 {
			return next(ctx, cmds)
		}
		rt.add(ctx, "pipeline["+strings.Join(names, " ")+"]", names[0])
		return next(ctx, cmds)
	}
}

// holdExecutor accepts tasks of one type and runs nothing, so that the only
// Redis traffic is the requests' own.
type holdExecutor struct{}

func (holdExecutor) Submit(context.Context, contracts.TaskRecord) error { return nil }
func (holdExecutor) Cancel(context.Context, contracts.TaskRecord) error { return nil }
func (holdExecutor) TaskTypes() []string                                { return []string{"rt.hold"} }

// routeHeader names the route a test request counts under.
const routeHeader = "X-Round-Trip-Route"

// TestRoundTripsPerRoute counts the Redis round trips of each task route on
// a bridge over the Redis stores, through a hook on the client. Every
// command a route makes must carry the request's context (so a client's
// deadline and cancellation reach Redis), and a route's count must not
// depend on the task it serves. The counts of the request path are held
// at what it costs today (wantRoundTrips): a new task is one pipeline and a
// poll one script, so a change that adds a round trip fails here; the
// others are logged.
func TestRoundTripsPerRoute(t *testing.T) {
	client := newClient(t)
	counter := &roundTrips{}
	client.AddHook(counter)
	prefix := uniquePrefix(t, client)
	stores, err := redisstore.New(client, redisstore.Options{KeyPrefix: prefix})
	require.NoError(t, err)
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:              stores,
		Executor:            holdExecutor{},
		AuthResolver:        bearerAuth,
		MaintenanceInterval: -1,
	})
	require.NoError(t, err)
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		if route := c.Get(routeHeader); route != "" {
			c.SetUserContext(withRoute(c.UserContext(), strings.Clone(route)))
		}
		return c.Next()
	})
	bridge.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	httpc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		httpc.CloseIdleConnections()
		assert.NoError(t, bridge.Shutdown(ctx))
		assert.NoError(t, app.ShutdownWithContext(ctx))
		assert.NoError(t, <-served)
	})

	// do sends one request counted under route and returns its round trips.
	do := func(route, method, path, body string, wantStatus int) ([]byte, []string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+ln.Addr().String()+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+owner)
		req.Header.Set(routeHeader, route)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := httpc.Do(req)
		require.NoError(t, err)
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, wantStatus, resp.StatusCode, "%s: %s", route, data)
		return data, counter.take(route)
	}
	create := func(route, requestID string, wantStatus int) (string, []string) {
		t.Helper()
		data, trips := do(route, http.MethodPost, "/api/v1/tasks",
			`{"clientRequestId":"`+requestID+`","taskType":"rt.hold","input":{"n":1}}`, wantStatus)
		var created contracts.TaskCreated
		require.NoError(t, json.Unmarshal(data, &created))
		return created.TaskID, trips
	}
	suspend := func(taskID string) string {
		t.Helper()
		suspendID := contracts.NewID()
		require.NoError(t, stores.Suspensions.Create(withRoute(testContext(t), "setup"), contracts.SuspensionRecord{
			TaskID: taskID, SuspendID: suspendID, OwnerID: owner, Status: contracts.SuspensionOpen,
			Kind: contracts.SuspensionKind("approval"), ReasonCode: "review", AllowedActions: []string{"approve"},
			SchemaVersion: 1, CreatedAt: time.Now(),
		}))
		return suspendID
	}
	act := func(route, taskID, suspendID string) []string {
		t.Helper()
		_, trips := do(route, http.MethodPost, "/api/v1/tasks/"+taskID+"/actions",
			`{"suspendId":"`+suspendID+`","clientActionId":"`+contracts.NewID()+`","actionType":"approve","payload":{}}`, http.StatusAccepted)
		return trips
	}

	counts := map[string][][]string{}
	record := func(route string, trips []string) {
		counts[route] = append(counts[route], trips)
	}
	// A first round warms up what is paid once per client (dialing, loading
	// the scripts: EVALSHA answered NOSCRIPT, then EVAL); then each route
	// twice more, on new tasks, so that a count that depends on the task
	// shows.
	for round := range 3 {
		if round == 1 {
			clear(counts)
		}
		rid := contracts.NewID()
		taskID, trips := create("create", rid, http.StatusCreated)
		record("create", trips)
		_, trips = create("create (repeat)", rid, http.StatusOK)
		record("create (repeat)", trips)
		_, trips = do("poll", http.MethodGet, "/api/v1/tasks/"+taskID+"/events", "", http.StatusOK)
		record("poll", trips)
		record("action", act("action", taskID, suspend(taskID)))
		_, trips = do("cancel", http.MethodPost, "/api/v1/tasks/"+taskID+"/cancel", "", http.StatusAccepted)
		record("cancel", trips)
		_, trips = do("snapshot", http.MethodGet, "/api/v1/tasks/"+taskID, "", http.StatusOK)
		record("snapshot", trips)
		_, trips = do("list", http.MethodGet, "/api/v1/tasks?limit=5", "", http.StatusOK)
		record("list", trips)
	}

	assert.Empty(t, counter.take(""), "Redis commands made while serving the requests without the request's context")

	routes := make([]string, 0, len(counts))
	for r := range counts {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	var table strings.Builder
	for _, route := range routes {
		runs := counts[route]
		fmt.Fprintf(&table, "\n  %-16s %d round trips: %s", route, len(runs[1]), strings.Join(runs[1], ", "))
		assert.NotEmpty(t, runs[0], "%s: no Redis command carried the request's context", route)
		assert.Equal(t, len(runs[0]), len(runs[1]), "%s: the round trips differ between two tasks: %v then %v", route, runs[0], runs[1])
	}
	t.Logf("Redis round trips per route (after a warm-up round):%s", table.String())
	for route, want := range wantRoundTrips {
		runs, ok := counts[route]
		if assert.True(t, ok, route) {
			assert.Len(t, runs[1], want, "%s: round trips %v", route, runs[1])
		}
	}
}

// wantRoundTrips are the round trips of the request path's routes on a
// single Redis: create sends the record, the idempotency claim and the
// owner index entry as one pipeline; a repeated create adds one pipeline
// (the existing task's record, and removing what the repeat wrote); a poll
// reads the task's record with the page in one script; cancel reads the
// record, requests the cancellation and refreshes the idempotency key's
// expiry; an accepted action reads the task, the suspension and the
// receipt, then resolves the suspension, saves the receipt, appends
// TASK_ACTION_ACCEPTED and marks the handoff dispatched (suspensions,
// receipts and each task's log live under three Redis Cluster hash tags,
// so these steps cannot share one script).
var wantRoundTrips = map[string]int{
	"create":          1,
	"create (repeat)": 2,
	"poll":            1,
	"cancel":          3,
	"action":          7,
}

var _ orchestration.TaskTypeRegistry = holdExecutor{}
