package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// The relay forwards the roles the services find on an executor by type
// assertion; drift breaks the build here.
var (
	_ orchestration.ResumeHook       = (*redisstore.CancelRelay)(nil)
	_ orchestration.TaskTypeRegistry = (*redisstore.CancelRelay)(nil)
	_ redisstore.LocalExecutor       = (*orchestration.Executor)(nil)
	_ redisstore.RunningTaskLister   = (*orchestration.Executor)(nil)
)

// Task types of the relay tests.
const (
	holdType     = "relay.hold"     // runs until its context ends
	approvalType = "relay.approval" // suspends and completes with the accepted action type
)

// holder is holdType's handler: it reports each start and each stop (its
// context ended) on buffered channels.
type holder struct {
	started, stopped chan string
}

func newHolder() *holder {
	return &holder{started: make(chan string, 16), stopped: make(chan string, 16)}
}

func (h *holder) run(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	h.started <- task.Task().TaskID
	<-ctx.Done()
	h.stopped <- task.Task().TaskID
	return nil, ctx.Err()
}

// runApproval suspends until an action is accepted and completes with its
// type.
func runApproval(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	act, err := task.Suspend(ctx, orchestration.SuspendSpec{
		ReasonCode: "approval_required", AllowedActions: []string{"approve", "reject"},
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"decision": act.ActionType}, nil
}

// relayInstance is one "instance" at the service level: Redis stores on
// its own client, an in-process executor behind a cancel relay, and the
// services using the relay as their executor.
type relayInstance struct {
	stores contracts.Stores
	exec   *orchestration.Executor
	relay  *redisstore.CancelRelay
	svc    *orchestration.Services
	hold   *holder
}

// relayInstanceConfig configures startRelayInstance.
type relayInstanceConfig struct {
	prefix      string
	relayClient *redis.Client // the relay's client; nil: the stores' client
}

// startRelayInstance builds an instance on the shared server; cleanup
// closes the services and the relay (which closes the executor), before
// the clients are closed.
func startRelayInstance(tb testing.TB, cfg relayInstanceConfig) *relayInstance {
	tb.Helper()
	client := newClient(tb)
	log := zaptest.NewLogger(tb)
	opts := redisstore.Options{KeyPrefix: cfg.prefix, Logger: log}
	stores := check(redisstore.New(client, opts))(tb)
	exec := check(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, Logger: log, DrainTimeout: -1}))(tb)
	in := &relayInstance{stores: stores, exec: exec, hold: newHolder()}
	exec.Handle(holdType, in.hold.run)
	relayClient := cfg.relayClient
	if relayClient == nil {
		relayClient = client
	}
	in.relay = check(redisstore.NewCancelRelay(relayClient, opts, stores.Tasks, exec))(tb)
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: in.relay, Logger: log,
	})
	require.NoError(tb, err)
	in.svc = svc
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(tb, svc.Close(ctx))
		assert.NoError(tb, in.relay.Close(ctx))
	})
	return in
}

// createHeld creates a holdType task through in and waits until its
// handler runs.
func (in *relayInstance) createHeld(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	res, err := in.svc.Creation.Create(ctx, contracts.CreateTaskCommand{
		Auth: contracts.AuthContext{Subject: owner}, ClientRequestID: contracts.NewID(), TaskType: holdType,
	})
	require.NoError(tb, err)
	require.Equal(tb, res.TaskID, receive(tb, ctx, in.hold.started, "handler start"))
	return res.TaskID
}

// cancel requests the cancellation of taskID through in's service.
func (in *relayInstance) cancel(tb testing.TB, ctx context.Context, taskID, reason string) {
	tb.Helper()
	res, err := in.svc.Cancellation.Cancel(ctx, contracts.CancelTaskCommand{
		Auth: contracts.AuthContext{Subject: owner}, TaskID: taskID, Reason: reason,
	})
	require.NoError(tb, err)
	require.Equal(tb, contracts.CancelRequested, res.Status)
}

// receive returns the next value from ch, failing when ctx ends first.
func receive[T any](tb testing.TB, ctx context.Context, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		tb.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// awaitEnd long-polls taskID through svc until its terminal event and
// returns every event.
func awaitEnd(tb testing.TB, ctx context.Context, svc *orchestration.Services, taskID string) []contracts.TaskEvent {
	tb.Helper()
	var all []contracts.TaskEvent
	var after contracts.EventID
	for ctx.Err() == nil {
		res, err := svc.Polling.Poll(ctx, contracts.PollQuery{
			Auth: contracts.AuthContext{Subject: owner}, TaskID: taskID, After: after, Limit: 100, Wait: time.Second,
		})
		require.NoError(tb, err)
		all = append(all, res.Events...)
		if len(all) > 0 && all[len(all)-1].Type.IsTerminal() {
			return all
		}
		if res.NextAfterEventID != nil {
			after = *res.NextAfterEventID
		}
	}
	tb.Fatalf("task %s did not end; events so far: %v", taskID, eventTypes(all))
	return nil
}

func eventTypes(evs []contracts.TaskEvent) []contracts.EventType {
	out := make([]contracts.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// requireCancelledOnce checks that evs end with the task's only terminal
// event, a TASK_CANCELLED with reason.
func requireCancelledOnce(tb testing.TB, evs []contracts.TaskEvent, reason string) {
	tb.Helper()
	terminal := 0
	for _, ev := range evs {
		if ev.Type.IsTerminal() {
			terminal++
		}
	}
	require.Equal(tb, 1, terminal, "exactly one terminal event: %v", eventTypes(evs))
	last := evs[len(evs)-1]
	require.Equal(tb, contracts.EventCancelled, last.Type, "events: %v", eventTypes(evs))
	var p contracts.CancelledPayload
	require.NoError(tb, json.Unmarshal(last.Payload, &p))
	assert.Equal(tb, reason, p.Reason)
}

// awaitSubscribers waits until channel has n subscribers on the server.
func awaitSubscribers(tb testing.TB, c redis.UniversalClient, channel string, n int64) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		counts, err := c.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && counts[channel] == n
	}, 10*time.Second, 5*time.Millisecond, "%d subscribers on %s", n, channel)
}

// TestCancelRelayAcrossInstances: a cancel requested through either
// instance stops the handler running on A, which ends TASK_CANCELLED
// exactly once.
func TestCancelRelayAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		through func(a, b *relayInstance) *relayInstance
	}{
		{"through the other instance", func(_, b *relayInstance) *relayInstance { return b }},
		{"through the running instance", func(a, _ *relayInstance) *relayInstance { return a }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			prefix := uniquePrefix(t, newClient(t))
			a := startRelayInstance(t, relayInstanceConfig{prefix: prefix})
			b := startRelayInstance(t, relayInstanceConfig{prefix: prefix})
			require.Equal(t, prefix+"cancel", a.relay.Channel())
			// Both relays listen, so the cancel travels as a notice (the
			// sweep test covers a relay that was not listening).
			awaitSubscribers(t, newClient(t), a.relay.Channel(), 2)

			taskID := a.createHeld(t, ctx)
			assert.Equal(t, []string{taskID}, a.exec.RunningTasks())
			assert.Empty(t, b.exec.RunningTasks())
			tc.through(a, b).cancel(t, ctx, taskID, "enough")

			assert.Equal(t, taskID, receive(t, ctx, a.hold.stopped, "handler stop on A"))
			requireCancelledOnce(t, awaitEnd(t, ctx, b.svc, taskID), "enough")
			select {
			case id := <-b.hold.started:
				t.Fatalf("B ran task %s", id)
			default:
			}
		})
	}
}

// dialGate is a go-redis hook that holds new connections of its client
// while shut, so a test can keep a subscription down as long as it needs.
type dialGate struct {
	mu   sync.Mutex
	shut chan struct{} // nil while open; closed when opened again
}

func (g *dialGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut == nil {
		g.shut = make(chan struct{})
	}
}

func (g *dialGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil {
		close(g.shut)
		g.shut = nil
	}
}

func (g *dialGate) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		g.mu.Lock()
		shut := g.shut
		g.mu.Unlock()
		if shut != nil {
			select {
			case <-shut:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return next(ctx, network, addr)
	}
}

func (g *dialGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (g *dialGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// killSubscriptions kills the server's pubsub connections whose client name
// is name and returns how many there were.
func killSubscriptions(tb testing.TB, c redis.UniversalClient, name string) int {
	tb.Helper()
	ctx := context.Background()
	list, err := c.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	require.NoError(tb, err)
	killed := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		var id string
		named := false
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch {
			case k == "id":
				id = v
			case k == "name" && v == name:
				named = true
			}
		}
		if named && id != "" {
			require.NoError(tb, c.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
			killed++
		}
	}
	return killed
}

// TestCancelRelaySweepAfterResubscribe: a cancel whose notice was
// published while A's subscription was down reaches A's handler through
// the sweep that follows A's resubscription.
func TestCancelRelaySweepAfterResubscribe(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	admin := newClient(t)
	prefix := uniquePrefix(t, admin)

	var b6 [6]byte
	_, _ = rand.Read(b6[:])
	name := "tbtest-relay-" + hex.EncodeToString(b6[:])
	gate := &dialGate{}
	relayClient := redis.NewClient(&redis.Options{
		Addr: redisAddr(t), ClientName: name, ContextTimeoutEnabled: true,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	relayClient.AddHook(gate)
	t.Cleanup(func() { _ = relayClient.Close() })

	a := startRelayInstance(t, relayInstanceConfig{prefix: prefix, relayClient: relayClient})
	b := startRelayInstance(t, relayInstanceConfig{prefix: prefix})
	channel := a.relay.Channel()
	awaitSubscribers(t, admin, channel, 2)
	taskID := a.createHeld(t, ctx)

	gate.close() // A's relay cannot reconnect until the gate opens
	require.Equal(t, 1, killSubscriptions(t, admin, name), "A's relay holds one subscription")
	awaitSubscribers(t, admin, channel, 1) // only B listens now
	b.cancel(t, ctx, taskID, "while away")

	select {
	case <-a.hold.stopped:
		t.Fatal("A's handler stopped while A's relay was not subscribed")
	default:
	}
	rec, err := a.stores.Tasks.Get(ctx, taskID)
	require.NoError(t, err)
	require.True(t, rec.CancelRequested)
	require.False(t, rec.Status.IsTerminal())

	gate.open()
	assert.Equal(t, taskID, receive(t, ctx, a.hold.stopped, "handler stop on A after resubscription"))
	requireCancelledOnce(t, awaitEnd(t, ctx, a.svc, taskID), "while away")
	awaitSubscribers(t, admin, channel, 2)
}

// TestCancelRelayClose: Close ends the subscription and closes the local
// executor (its running task ends retryably); it is idempotent.
func TestCancelRelayClose(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	admin := newClient(t)
	in := startRelayInstance(t, relayInstanceConfig{prefix: uniquePrefix(t, admin)})
	awaitSubscribers(t, admin, in.relay.Channel(), 1)
	require.NoError(t, in.relay.Ready(ctx))
	taskID := in.createHeld(t, ctx)

	require.NoError(t, in.relay.Close(ctx))
	select {
	case <-in.relay.Done():
	default:
		t.Fatal("Done is open after Close returned")
	}
	assert.NoError(t, in.relay.Err())
	awaitSubscribers(t, admin, in.relay.Channel(), 0)
	assert.ErrorIs(t, in.relay.Ready(ctx), orchestration.ErrExecutorClosed)
	assert.ErrorIs(t, in.relay.Submit(ctx, contracts.TaskRecord{TaskID: "late", TaskType: holdType}),
		orchestration.ErrExecutorClosed)

	evs := awaitEnd(t, ctx, in.svc, taskID)
	var failed contracts.FailedPayload
	require.NoError(t, json.Unmarshal(evs[len(evs)-1].Payload, &failed))
	assert.Equal(t, orchestration.CodeExecutorShutdown, failed.Code)
	require.NoError(t, in.relay.Close(ctx), "Close twice")
}

// TestCancelRelayCloseHonoursContext: Close with a context that is already
// done returns its error, and a later Close finishes the job.
func TestCancelRelayCloseHonoursContext(t *testing.T) {
	t.Parallel()
	in := startRelayInstance(t, relayInstanceConfig{prefix: uniquePrefix(t, newClient(t))})
	done, cancel := context.WithCancel(context.Background())
	cancel()
	err := in.relay.Close(done)
	if err != nil { // the goroutine may have ended before Close looked
		require.ErrorIs(t, err, context.Canceled)
	}
	require.NoError(t, in.relay.Close(testContext(t)))
}

// TestCancelRelayEndsWhenClientCloses: a Redis client closed under the
// relay ends its goroutine with an error wrapping redis.ErrClosed, which
// Ready reports; Cancel then fails with an error, and nothing panics.
func TestCancelRelayEndsWhenClientCloses(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	admin := newClient(t)
	prefix := uniquePrefix(t, admin)
	relayClient := dial(t, redisAddr(t))
	in := startRelayInstance(t, relayInstanceConfig{prefix: prefix, relayClient: relayClient})
	awaitSubscribers(t, admin, in.relay.Channel(), 1)
	taskID := in.createHeld(t, ctx)

	require.NoError(t, relayClient.Close())
	receive(t, ctx, in.relay.Done(), "the relay's end")
	require.ErrorIs(t, in.relay.Err(), redis.ErrClosed)
	require.ErrorIs(t, in.relay.Ready(ctx), redis.ErrClosed)

	// The local cancel still happens; the publish fails and says so.
	rec, err := in.stores.Tasks.RequestCancellation(ctx, taskID, "late")
	require.NoError(t, err)
	require.ErrorIs(t, in.relay.Cancel(ctx, rec), redis.ErrClosed)
	assert.Equal(t, taskID, receive(t, ctx, in.hold.stopped, "local cancel"))
	requireCancelledOnce(t, awaitEnd(t, ctx, in.svc, taskID), "late")
}

// deafWaiter never reports a change, so a suspended handler wakes only
// through the resume hook.
type deafWaiter struct{}

func (deafWaiter) Watch(string) (<-chan struct{}, func()) { return make(chan struct{}), func() {} }

// TestCancelRelayKeepsExecutorRoles: a bridge given the relay as its
// executor still answers 400 for unknown task types, still resumes a
// suspended handler through the resume hook (its executor's change feed
// is deaf here), and its executor probe reports ready.
func TestCancelRelayKeepsExecutorRoles(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	client := newClient(t)
	opts := redisstore.Options{KeyPrefix: uniquePrefix(t, client)}
	stores := check(redisstore.New(client, opts))(t)
	exec := check(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, Waiter: deafWaiter{}}))(t)
	exec.Handle(approvalType, runApproval)
	relay := check(redisstore.NewCancelRelay(client, opts, stores.Tasks, exec))(t)
	bridge := check(fiberbridge.New(fiberbridge.Config{
		Stores:              stores,
		Executor:            relay,
		AuthResolver:        bearerAuth,
		Readiness:           observe.NewComposite(time.Second, observe.NamedProbe{Name: "executor", Probe: observe.ExecutorProbe(relay)}),
		MaintenanceInterval: -1,
	}))(t)
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
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
		assert.NoError(t, relay.Close(ctx))
	})
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, "http://"+ln.Addr().String()+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+owner)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := httpc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, data
	}
	// pollUntil long-polls taskID until an event of type typ and returns it.
	pollUntil := func(taskID string, typ contracts.EventType) contracts.TaskEvent {
		t.Helper()
		cursor := ""
		for ctx.Err() == nil {
			status, body := do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events?waitTimeoutMs=1000&afterEventId="+cursor, "")
			require.Equal(t, http.StatusOK, status, string(body))
			var res contracts.PollResult
			require.NoError(t, json.Unmarshal(body, &res))
			for _, ev := range res.Events {
				if ev.Type == typ {
					return ev
				}
				require.False(t, ev.Type.IsTerminal(), "%s before %s: %s", ev.Type, typ, ev.Payload)
			}
			if res.NextAfterEventID != nil {
				cursor = res.NextAfterEventID.String()
			}
		}
		t.Fatalf("no %s on %s", typ, taskID)
		return contracts.TaskEvent{}
	}

	t.Run("unknown task type is a 400", func(t *testing.T) {
		status, body := do(http.MethodPost, "/api/v1/tasks", `{"clientRequestId":"u1","taskType":"nope","input":{}}`)
		require.Equal(t, http.StatusBadRequest, status, string(body))
		env := errorEnvelope(t, body)
		assert.Equal(t, bridgeerr.CodeInvalidRequest, env.Code)
		assert.Equal(t, []any{approvalType}, env.Details["knownTaskTypes"])
	})

	t.Run("an accepted action resumes the handler", func(t *testing.T) {
		status, body := do(http.MethodPost, "/api/v1/tasks", `{"clientRequestId":"a1","taskType":"`+approvalType+`","input":{}}`)
		require.Equal(t, http.StatusCreated, status, string(body))
		var created contracts.TaskCreated
		require.NoError(t, json.Unmarshal(body, &created))
		var susp contracts.SuspendedPayload
		require.NoError(t, json.Unmarshal(pollUntil(created.TaskID, contracts.EventSuspended).Payload, &susp))
		status, body = do(http.MethodPost, "/api/v1/tasks/"+created.TaskID+"/actions",
			`{"suspendId":"`+susp.SuspendID+`","clientActionId":"c1","actionType":"approve"}`)
		require.Equal(t, http.StatusAccepted, status, string(body))
		var done contracts.CompletedPayload
		require.NoError(t, json.Unmarshal(pollUntil(created.TaskID, contracts.EventCompleted).Payload, &done))
		assert.JSONEq(t, `{"decision":"approve"}`, string(done.Result))
	})

	t.Run("executor probe", func(t *testing.T) {
		status, body := do(http.MethodGet, "/ready", "")
		assert.Equal(t, http.StatusOK, status, string(body))
	})
}
