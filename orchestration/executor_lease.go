package orchestration

import (
	"context"
	"errors"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Defaults of the leases (ExecutorOptions.LeaseTTL, Options.LeaseSweepInterval).
const (
	// DefaultLeaseTTL is how long a task's lease lasts without renewal.
	// With the default sweep interval a task whose instance died ends
	// within about 25 s.
	DefaultLeaseTTL = 20 * time.Second
	// DefaultLeaseSweepInterval is how often the services' maintenance
	// takes over expired leases.
	DefaultLeaseSweepInterval = 5 * time.Second
)

// CodeExecutorLost is the TASK_FAILED code of a task whose runner stopped
// renewing its lease (its instance died or lost the store for longer than
// the lease's TTL): the task may be submitted again.
const CodeExecutorLost = "EXECUTOR_LOST"

// executorLostMessage is the message of TASK_FAILED EXECUTOR_LOST.
const executorLostMessage = "the instance running the task stopped before the task ended; the task may be submitted again"

// errLeaseLost is the cause of a run's context when its lease was taken
// over by another instance.
var errLeaseLost = errors.New("taskbridge: the task's lease was lost to another instance")

// executorLostDraft is the TASK_FAILED EXECUTOR_LOST event of taskID. Its
// idempotency key is the same whichever sweep writes it (one whose first
// write failed and whose lease expired again is followed by another), so
// the log holds it once.
func executorLostDraft(taskID string) contracts.EventDraft {
	d, _ := contracts.Failed(CodeExecutorLost, executorLostMessage, true)
	return d.WithIdempotencyKey("executor-lost:" + taskID)
}

// leaseCallTimeout bounds one lease call of the executor.
const leaseCallTimeout = 5 * time.Second

// LeaseHolder returns the name under which this executor holds the leases
// of its tasks (ExecutorOptions.InstanceID), or "" when the executor has
// no lease store.
func (e *Executor) LeaseHolder() string {
	if e.leases == nil {
		return ""
	}
	return e.holder
}

// acquire leases task for this executor before it is queued.
func (e *Executor) acquire(ctx context.Context, taskID string) error {
	if e.leases == nil {
		return nil
	}
	return e.leases.Acquire(ctx, taskID, e.holder, e.leaseTTL)
}

// release gives up the lease of a run that has ended (best effort: a lease
// left behind expires, and the sweeper that takes it finds the task ended
// and releases it).
func (e *Executor) release(r *run) {
	if e.leases == nil || r.lostLease() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.kill), leaseCallTimeout)
	defer cancel()
	if err := e.leases.Release(ctx, r.task.TaskID, e.holder); err != nil {
		e.log.Warn("task.lease.release_failed", observe.Entry{TaskID: r.task.TaskID, Transport: observe.TransportInternal,
			Outcome: "failed", Err: err})
	}
}

// renewLeases renews the leases of every task the executor holds every
// renewEvery until stop is closed. It is the executor's lease goroutine.
func (e *Executor) renewLeases(stop <-chan struct{}) {
	t := time.NewTicker(e.renewEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		e.renewOnce()
	}
}

// renewOnce renews every held lease in one call and tells the runs whose
// lease was taken over.
func (e *Executor) renewOnce() {
	e.renewMu.Lock()
	defer e.renewMu.Unlock()
	e.mu.Lock()
	ids := make([]string, 0, len(e.runs))
	for id := range e.runs {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.renewEvery)
	lost, err := e.leases.Renew(ctx, e.holder, ids, e.leaseTTL)
	cancel()
	if err != nil {
		e.log.Warn("task.lease.renew_failed", observe.Entry{Transport: observe.TransportInternal, Outcome: "failed",
			Err: err, Details: map[string]any{"tasks": len(ids)}})
		return
	}
	for _, id := range lost {
		if r := e.lookup(id); r != nil {
			e.leaseLost(r)
		}
	}
}

// leaseLost stops a run whose lease another instance took over: a queued
// run is dropped and a running handler's context is cancelled, and no
// terminal event is written here (retries of one stop): the taker decides
// what happens to the task.
func (e *Executor) leaseLost(r *run) {
	r.mu.Lock()
	if r.leaseLost || r.state == runEnded {
		r.mu.Unlock()
		return
	}
	r.leaseLost = true
	queued := r.state == runQueued
	if queued {
		r.state = runEnded
	}
	r.mu.Unlock()
	e.log.Warn("task.lease.lost", observe.Entry{TaskID: r.task.TaskID, UserID: r.task.OwnerID,
		Transport: observe.TransportInternal, Outcome: "lease_lost"})
	r.loseTerm(errLeaseLost)
	r.cancel(errLeaseLost)
	if queued {
		e.forget(r)
	}
}

// lostLease reports whether another instance took the run's lease over.
func (r *run) lostLease() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaseLost
}

// handBack returns queued runs that will not run here to the lease store
// (their leases expire at once), so that a sweeper on another instance
// submits them there; they get no terminal event here. It reports false
// when the executor has no lease store (the runs must be ended instead).
func (e *Executor) handBack(runs []*run) bool {
	if e.leases == nil {
		return false
	}
	if len(runs) == 0 {
		return true
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.task.TaskID
	}
	// No renewal may run between the hand-back and the forgetting of the
	// runs: it would take the leases back.
	e.renewMu.Lock()
	defer e.renewMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.kill), leaseCallTimeout)
	_, err := e.leases.Renew(ctx, e.holder, ids, 0)
	cancel()
	entry := observe.Entry{Transport: observe.TransportInternal, Outcome: "handed_back",
		Details: map[string]any{"tasks": len(ids)}}
	if err != nil {
		// The leases expire by themselves within their TTL; the task is
		// taken over then.
		entry.Outcome, entry.Err = "hand_back_failed", err
		e.log.Warn("task.lease.hand_back", entry)
	} else {
		e.log.Info("task.lease.hand_back", entry)
	}
	for _, r := range runs {
		r.mu.Lock()
		r.leaseLost = true // the lease is no longer ours to release
		r.state = runEnded
		r.mu.Unlock()
		e.forget(r)
	}
	return true
}
