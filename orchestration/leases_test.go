package orchestration_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// The lease logic on memory stores shared by two executors in one process
// (A and B, as two instances would share Redis). These tests check the
// decisions; the crash guarantees themselves are proven with real
// processes and kill -9 in _examples/redis.

// leaseNode is an executor and its services over shared stores.
type leaseNode struct {
	exec *orchestration.Executor
	svc  *orchestration.Services
	logs *observer.ObservedLogs
}

func newLeaseNode(t *testing.T, stores contracts.Stores, opts orchestration.ExecutorOptions,
	handlers map[string]orchestration.Handler) *leaseNode {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	opts.Stores, opts.Logger = stores, zap.New(core)
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = -1
	}
	exec := must(orchestration.NewExecutor(opts))(t)
	for typ, h := range handlers {
		exec.Handle(typ, h)
	}
	svc := must(orchestration.NewServices(orchestration.Options{Stores: stores, Executor: exec, Logger: zap.New(core),
		LeaseSweepInterval: -1}))(t) // the tests sweep by hand
	n := &leaseNode{exec: exec, svc: svc, logs: logs}
	t.Cleanup(func() { n.close(t) })
	return n
}

func (n *leaseNode) close(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	assert.NoError(t, n.exec.Close(ctx))
	assert.NoError(t, n.svc.Close(ctx))
}

func sharedLeaseStores() contracts.Stores {
	stores := memstore.New(memstore.Options{})
	stores.Leases = memstore.NewLeaseStore(memstore.Options{})
	return stores
}

// seedLeased stores a task, its events and a lease of holder "dead" that
// has already expired (as the lease of an instance that died).
func seedLeased(t *testing.T, stores contracts.Stores, taskID, taskType string, status contracts.TaskStatus,
	drafts ...contracts.EventDraft) {
	t.Helper()
	ctx := context.Background()
	_, _, err := stores.Tasks.Create(ctx, contracts.TaskRecord{TaskID: taskID, OwnerID: "alice", ClientRequestID: taskID,
		TaskType: taskType, Input: json.RawMessage(`{}`), Status: status})
	require.NoError(t, err)
	for _, d := range drafts {
		_, err := stores.Events.Append(ctx, taskID, d)
		require.NoError(t, err)
	}
	require.NoError(t, stores.Leases.Acquire(ctx, taskID, "dead", 0))
}

func quick(context.Context, *orchestration.TaskContext) (any, error) { return "ok", nil }

// TestLeaseSweepEndsTasksOfDeadInstances: the sweep ends a started task
// (running or suspended) TASK_FAILED EXECUTOR_LOST, retryable, runs a task
// that never started again on this instance, cancels one that never
// started but whose cancellation was requested, and only releases the
// leases of ended tasks. Each task ends once, however often it is swept.
func TestLeaseSweepEndsTasksOfDeadInstances(t *testing.T) {
	stores := sharedLeaseStores()
	b := newLeaseNode(t, stores, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{"quick": quick})
	suspended, err := contracts.Suspended(contracts.SuspendedPayload{SuspendID: "s1", Kind: contracts.KindUserActionRequired,
		ReasonCode: "R", AllowedActions: []string{"approve"}, SchemaVersion: 1})
	require.NoError(t, err)
	done, err := contracts.Completed("done")
	require.NoError(t, err)
	seedLeased(t, stores, "running", "quick", contracts.StatusRunning, contracts.Started(""))
	seedLeased(t, stores, "suspended", "quick", contracts.StatusRunning, contracts.Started(""), suspended)
	seedLeased(t, stores, "queued", "quick", contracts.StatusAccepted)
	seedLeased(t, stores, "unknown-type", "other", contracts.StatusAccepted)
	seedLeased(t, stores, "ended", "quick", contracts.StatusCompleted, contracts.Started(""), done)
	seedLeased(t, stores, "cancelled", "quick", contracts.StatusAccepted)
	_, err = stores.Tasks.RequestCancellation(context.Background(), "cancelled", "stop")
	require.NoError(t, err)

	counts, err := b.svc.Leases.Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, orchestration.LeaseSweepCounts{Lost: 3, Resubmitted: 1, Released: 1}, counts)

	for _, id := range []string{"running", "suspended", "unknown-type"} {
		evs := waitEnded(t, b.svc.Polling, auth("alice"), id)
		p := payloadOf(t, evs[len(evs)-1])
		assert.Equal(t, orchestration.CodeExecutorLost, p["code"], id)
		assert.Equal(t, true, p["retryable"], id)
		assert.Contains(t, p["message"], "may be submitted again", id)
		rec, err := stores.Tasks.Get(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, contracts.StatusFailed, rec.Status, "%s: never left RUNNING", id)
	}
	evs := waitEnded(t, b.svc.Polling, auth("alice"), "queued")
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventCompleted}, types(evs),
		"the task that never started ran on this instance")
	evs = waitEnded(t, b.svc.Polling, auth("alice"), "cancelled")
	assert.Equal(t, []contracts.EventType{contracts.EventCancelled}, types(evs))

	// Every lease is gone: nothing is swept again, nothing ends twice.
	require.Eventually(t, func() bool {
		taken, err := stores.Leases.TakeExpired(context.Background(), "probe", time.Hour, 100)
		return err == nil && len(taken) == 0
	}, 10*time.Second, 10*time.Millisecond)
	counts, err = b.svc.Leases.Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, orchestration.LeaseSweepCounts{}, counts)
}

// TestLeaseRenewedWhileRunning: a handler that runs for several lease TTLs
// keeps its lease (renewed), so no sweep ends it; its lease is released
// when it ends.
func TestLeaseRenewedWhileRunning(t *testing.T) {
	stores := sharedLeaseStores()
	release := make(chan struct{})
	a := newLeaseNode(t, stores, orchestration.ExecutorOptions{LeaseTTL: 200 * time.Millisecond},
		map[string]orchestration.Handler{"wait": func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
			select {
			case <-release:
				return "done", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}})
	b := newLeaseNode(t, stores, orchestration.ExecutorOptions{}, nil)
	res, err := a.svc.Creation.Create(context.Background(), createCmd("alice", "r", "wait", ""))
	require.NoError(t, err)
	// Sweep every 20 ms for five TTLs: a renewed lease never expires.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); <-tick.C {
		counts, err := b.svc.Leases.Sweep(context.Background())
		require.NoError(t, err)
		require.Equal(t, orchestration.LeaseSweepCounts{}, counts, "a renewed lease never expires")
	}
	close(release)
	evs := waitEnded(t, a.svc.Polling, auth("alice"), res.TaskID)
	assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type)
	require.Eventually(t, func() bool {
		return stores.Leases.Acquire(context.Background(), res.TaskID, "other", time.Hour) == nil
	}, 10*time.Second, 10*time.Millisecond, "the lease is released once the task ended")
}

// TestLeaseLostStopsTheHandler: when another instance took the lease over
// (this one could not renew in time) and ended the task EXECUTOR_LOST,
// the handler's context is cancelled at the next renewal, nothing more is
// written for it, and the task keeps exactly one terminal event.
func TestLeaseLostStopsTheHandler(t *testing.T) {
	stores := sharedLeaseStores()
	started, stopped := make(chan struct{}), make(chan error, 1)
	a := newLeaseNode(t, stores, orchestration.ExecutorOptions{LeaseTTL: time.Hour, LeaseRenewInterval: 20 * time.Millisecond},
		map[string]orchestration.Handler{"wait": func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
			close(started)
			<-ctx.Done()
			stopped <- context.Cause(ctx)
			return nil, ctx.Err()
		}})
	b := newLeaseNode(t, stores, orchestration.ExecutorOptions{}, nil)
	res, err := a.svc.Creation.Create(context.Background(), createCmd("alice", "r", "wait", ""))
	require.NoError(t, err)
	recv(t, started, "handler start")

	// A is late: its lease is handed to the next sweep, which B runs.
	_, err = stores.Leases.Renew(context.Background(), a.exec.LeaseHolder(), []string{res.TaskID}, 0)
	require.NoError(t, err)
	counts, err := b.svc.Leases.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, counts.Lost)

	cause := recv(t, stopped, "handler stop")
	assert.ErrorContains(t, cause, "lease")
	evs := waitEnded(t, a.svc.Polling, auth("alice"), res.TaskID)
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventFailed}, types(evs))
	assert.Equal(t, orchestration.CodeExecutorLost, payloadOf(t, evs[1])["code"])
	require.Eventually(t, func() bool { return a.logs.FilterMessage("task.lease.lost").Len() == 1 },
		10*time.Second, time.Millisecond)
	// A writes nothing once it lost the lease: the taker settles the task.
	require.Eventually(t, func() bool { return a.logs.FilterMessage("task.run.lease_lost").Len() == 1 },
		10*time.Second, time.Millisecond)
	assert.Zero(t, a.logs.FilterMessage("task.run.ended").Len())
	page, err := stores.Events.Read(context.Background(), res.TaskID, contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Len(t, page.Events, 2)
}

// TestDrainHandsQueuedTasksBack: with leases, a draining executor hands
// the tasks it never started back (no terminal event), and a sweep on
// another instance runs them there.
func TestDrainHandsQueuedTasksBack(t *testing.T) {
	stores := sharedLeaseStores()
	started, release := make(chan struct{}, 1), make(chan struct{})
	a := newLeaseNode(t, stores, orchestration.ExecutorOptions{MaxConcurrent: 1, DrainTimeout: time.Minute},
		map[string]orchestration.Handler{
			"work": func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
				started <- struct{}{}
				<-release
				return "a", nil
			},
		})
	b := newLeaseNode(t, stores, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"work": func(context.Context, *orchestration.TaskContext) (any, error) { return "b", nil },
	})
	running, err := a.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "work", ""))
	require.NoError(t, err)
	recv(t, started, "start")
	queued, err := a.svc.Creation.Create(context.Background(), createCmd("alice", "r2", "work", ""))
	require.NoError(t, err)

	closed := make(chan error, 1)
	go func() { closed <- a.exec.Close(context.Background()) }()
	require.Eventually(t, func() bool { return a.logs.FilterMessage("task.lease.hand_back").Len() == 1 },
		10*time.Second, time.Millisecond)
	counts, err := b.svc.Leases.Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, counts.Resubmitted)
	evs := waitEnded(t, b.svc.Polling, auth("alice"), queued.TaskID)
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventCompleted}, types(evs))
	assert.JSONEq(t, `{"result":"b"}`, string(evs[1].Payload), "it ran on B")

	close(release)
	require.NoError(t, recv(t, closed, "Close"))
	evs = waitEnded(t, b.svc.Polling, auth("alice"), running.TaskID)
	assert.JSONEq(t, `{"result":"a"}`, string(evs[len(evs)-1].Payload), "the running one finished on A")
}

// lostSubmit is an executor whose process "dies" between storing a task
// and submitting it: Submit does nothing. Unwrap leads the services to the
// in-process executor behind it, as it does through redisstore.CancelRelay.
type lostSubmit struct{ *orchestration.Executor }

func (l lostSubmit) Submit(context.Context, contracts.TaskRecord) error { return nil }
func (l lostSubmit) Unwrap() contracts.Executor                         { return l.Executor }

// TestLeaseCoversCreateToSubmit: the task is leased before it is stored,
// so a process that dies before submitting it leaves a lease that expires,
// and the sweep runs the task (it never started).
func TestLeaseCoversCreateToSubmit(t *testing.T) {
	stores := sharedLeaseStores()
	exec := must(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, LeaseTTL: 100 * time.Millisecond}))(t)
	exec.Handle("quick", quick)
	svc := must(orchestration.NewServices(orchestration.Options{Stores: stores, Executor: lostSubmit{exec},
		LeaseSweepInterval: -1}))(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, exec.Close(ctx))
		assert.NoError(t, svc.Close(ctx))
	})
	res, err := svc.Creation.Create(context.Background(), createCmd("alice", "r", "quick", ""))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		counts, err := svc.Leases.Sweep(context.Background())
		return err == nil && counts.Resubmitted == 1
	}, 10*time.Second, 20*time.Millisecond, "the lease of the task that was never submitted expired and was swept")
	evs := waitEnded(t, svc.Polling, auth("alice"), res.TaskID)
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventCompleted}, types(evs))
}

// TestLeaseSweepRunsRepeatableTasksAgain: a started task of a type
// registered with HandleRepeatable runs again on the sweeping instance,
// announced by a TASK_MESSAGE, until its attempts are spent; then it ends
// EXECUTOR_LOST.
func TestLeaseSweepRunsRepeatableTasksAgain(t *testing.T) {
	stores := sharedLeaseStores()
	b := newLeaseNode(t, stores, orchestration.ExecutorOptions{}, nil)
	b.exec.HandleRepeatable("again", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		return "second time lucky", task.Progress(ctx, 100, "", "redone")
	}, 3)
	attempt, err := contracts.Message("attempt 3 of 3: the instance running the task stopped; running the task again",
		contracts.LevelWarning)
	require.NoError(t, err)
	seedLeased(t, stores, "first-loss", "again", contracts.StatusRunning, contracts.Started(""))
	seedLeased(t, stores, "spent", "again", contracts.StatusRunning, contracts.Started(""), attempt, contracts.Started(""))
	assert.Panics(t, func() { b.exec.HandleRepeatable("once", quick, 1) })

	counts, err := b.svc.Leases.Sweep(context.Background())
	require.NoError(t, err)
	assert.Equal(t, orchestration.LeaseSweepCounts{Rerun: 1, Lost: 1}, counts)

	evs := waitEnded(t, b.svc.Polling, auth("alice"), "first-loss")
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventMessage, contracts.EventStarted,
		contracts.EventProgress, contracts.EventCompleted}, types(evs))
	assert.Equal(t, "attempt 2 of 3: the instance running the task stopped; running the task again",
		payloadOf(t, evs[1])["message"])
	evs = waitEnded(t, b.svc.Polling, auth("alice"), "spent")
	assert.Equal(t, orchestration.CodeExecutorLost, payloadOf(t, evs[len(evs)-1])["code"], "three attempts made: it ends")
}
