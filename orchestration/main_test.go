package orchestration_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recordingExecutor is a contracts.Executor that records calls and fails
// on demand.
type recordingExecutor struct {
	mu        sync.Mutex
	submitted []contracts.TaskRecord
	cancelled []contracts.TaskRecord
	submitErr error
	cancelErr error
}

func (e *recordingExecutor) Submit(_ context.Context, t contracts.TaskRecord) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.submitted = append(e.submitted, t)
	return e.submitErr
}

func (e *recordingExecutor) Cancel(_ context.Context, t contracts.TaskRecord) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cancelled = append(e.cancelled, t)
	return e.cancelErr
}

func (e *recordingExecutor) calls() (submits, cancels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.submitted), len(e.cancelled)
}

// typedExecutor adds TaskTypeRegistry to recordingExecutor.
type typedExecutor struct {
	recordingExecutor
	types []string
}

func (e *typedExecutor) TaskTypes() []string { return e.types }

// harness is a Services over a fakeStore with observable logs and metrics.
type harness struct {
	store   *fakeStore
	svc     *orchestration.Services
	exec    *recordingExecutor
	metrics *observe.MemoryMetrics
	logs    *observer.ObservedLogs
	log     *zap.Logger
}

// must(f())(t) returns f's value, failing the test on f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// newEmitter returns an Emitter over registry and events (and suspensions,
// when given).
func newEmitter(t testing.TB, registry contracts.TaskRegistry, events contracts.EventStore,
	suspensions contracts.SuspensionStore, log *zap.Logger) *orchestration.Emitter {
	t.Helper()
	return must(orchestration.NewEmitter(orchestration.EmitterOptions{
		Stores: contracts.Stores{Tasks: registry, Events: events, Suspensions: suspensions}, Logger: log}))(t)
}

// newHarness builds services over a fresh fakeStore; fields of opts that are
// nil default to the fake's ports, a recordingExecutor, observed logs and
// memory metrics. The services are closed at cleanup.
func newHarness(t testing.TB, opts orchestration.Options) *harness {
	t.Helper()
	return newHarnessOn(t, newFakeStore(), opts)
}

// newHarnessOn is newHarness over store.
func newHarnessOn(t testing.TB, store *fakeStore, opts orchestration.Options) *harness {
	t.Helper()
	h := &harness{store: store, metrics: observe.NewMemoryMetrics()}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs, h.log = logs, zap.New(core)
	if opts.Stores.Tasks == nil {
		opts.Stores.Tasks = h.store
	}
	if opts.Stores.Events == nil {
		opts.Stores.Events = h.store
	}
	if opts.Stores.Suspensions == nil {
		opts.Stores.Suspensions = suspensionStore{h.store}
	}
	if opts.Stores.Receipts == nil {
		opts.Stores.Receipts = receiptStore{h.store}
	}
	if opts.Executor == nil {
		h.exec = &recordingExecutor{}
		opts.Executor = h.exec
	}
	if opts.Logger == nil {
		opts.Logger = h.log
	}
	if opts.Metrics == nil {
		opts.Metrics = h.metrics
	}
	svc, err := orchestration.NewServices(opts)
	require.NoError(t, err)
	h.svc = svc
	t.Cleanup(func() { require.NoError(t, svc.Close(context.Background())) })
	return h
}

func auth(subject string) contracts.AuthContext { return contracts.AuthContext{Subject: subject} }

// seedTask stores a task of owner directly in the registry.
func (h *harness) seedTask(t testing.TB, owner string, status contracts.TaskStatus) contracts.TaskRecord {
	t.Helper()
	now := time.Now()
	rec := contracts.TaskRecord{
		TaskID: contracts.NewID(), OwnerID: owner, ClientRequestID: contracts.NewID(), TaskType: "t",
		Input: json.RawMessage(`{}`), Status: contracts.StatusAccepted, CreatedAt: now, UpdatedAt: now,
	}
	_, created, err := h.store.Create(context.Background(), rec)
	require.NoError(t, err)
	require.True(t, created)
	if status != contracts.StatusAccepted {
		if status != contracts.StatusRunning && status != contracts.StatusFailed && status != contracts.StatusCancelled {
			_, err = h.store.UpdateStatus(context.Background(), rec.TaskID, contracts.StatusRunning)
			require.NoError(t, err)
		}
		rec, err = h.store.UpdateStatus(context.Background(), rec.TaskID, status)
		require.NoError(t, err)
	}
	return rec
}

// appendN appends n progress events to taskID and returns them.
func appendN(t testing.TB, es contracts.EventStore, taskID string, n int) []contracts.TaskEvent {
	t.Helper()
	out := make([]contracts.TaskEvent, 0, n)
	for i := range n {
		d, err := contracts.Progress(float64(i%101), "", "")
		require.NoError(t, err)
		ev, err := es.Append(context.Background(), taskID, d)
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// waitEnded long-polls taskID as auth until its terminal event arrives and
// returns all its events. It fails the test after 10s.
func waitEnded(t testing.TB, poll *orchestration.PollingService, a contracts.AuthContext, taskID string) []contracts.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var all []contracts.TaskEvent
	var after contracts.EventID
	for {
		// Short waits: a watch made before the feed listener subscribed (the
		// first moments of a waiter) may miss its change; the next round
		// re-reads.
		res, err := poll.Poll(ctx, contracts.PollQuery{Auth: a, TaskID: taskID, After: after, Limit: 500, Wait: 250 * time.Millisecond})
		require.NoError(t, err)
		all = append(all, res.Events...)
		if n := len(all); n > 0 && all[n-1].Type.IsTerminal() {
			return all
		}
		require.NoError(t, ctx.Err(), "task %s did not end; events so far: %v", taskID, types(all))
		if res.NextAfterEventID != nil {
			after = *res.NextAfterEventID
		}
	}
}

func types(evs []contracts.TaskEvent) []contracts.EventType {
	out := make([]contracts.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// payloadOf decodes an event's payload into a map.
func payloadOf(t testing.TB, ev contracts.TaskEvent) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(ev.Payload, &m))
	return m
}

// logged returns the observed log entries with message msg.
func (h *harness) logged(msg string) []observer.LoggedEntry {
	return h.logs.FilterMessage(msg).All()
}

// fieldOf returns a logged entry's string field.
func fieldOf(e observer.LoggedEntry, key string) string {
	v, _ := e.ContextMap()[key].(string)
	return v
}

// recv receives from ch or fails the test after 10s.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
