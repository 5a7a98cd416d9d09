package orchestration

import (
	"context"
	"errors"
	"slices"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// LeaseSweepBatch is how many expired leases one LeaseService.Sweep takes
// over at most; the rest wait for the next sweep.
const LeaseSweepBatch = 128

// LeaseService ends the tasks of instances that died: it takes over the
// leases that expired in Stores.Leases (their runner stopped renewing
// them) and, for each task that has not ended, either submits it to this
// instance's executor again, when it never started (no event in its log:
// it was queued on the dead instance, or handed back by a draining one),
// or ends it TASK_FAILED with the retryable code EXECUTOR_LOST and a
// message that says it may be submitted again (TASK_CANCELLED instead when
// its cancellation was requested). A suspended task whose
// runner died ends the same way. Services.RunMaintenance runs Sweep every
// Options.LeaseSweepInterval on every instance; each expired lease is
// taken by exactly one of them.
//
// It is safe for concurrent use. Without Stores.Leases it does nothing.
type LeaseService struct{ d *deps }

// LeaseSweepCounts reports what one Sweep did.
type LeaseSweepCounts struct {
	// Lost is how many tasks it ended TASK_FAILED EXECUTOR_LOST.
	Lost int `json:"lost"`
	// Resubmitted is how many tasks that never started it submitted to
	// this instance's executor.
	Resubmitted int `json:"resubmitted"`
	// Released is how many leases of ended or missing tasks it dropped.
	Released int `json:"released"`
}

// sweeper is what the lease service needs of the in-process executor
// (found behind wrappers such as redisstore.CancelRelay): its lease holder
// and TTL, to submit tasks that never started under the lease it took
// over, and whether it runs a task already.
type sweeper struct {
	exec   *Executor
	holder string
}

// sweeperOf finds the in-process executor of d (unwrapping wrappers) when
// it holds leases; holder is then its holder, else a holder of the
// services' own.
func (d *deps) sweeperOf() sweeper {
	ex := d.executor
	for range 8 {
		if e, ok := ex.(*Executor); ok {
			if e.leases != nil {
				return sweeper{exec: e, holder: e.holder}
			}
			break
		}
		w, ok := ex.(interface{ Unwrap() contracts.Executor })
		if !ok {
			break
		}
		ex = w.Unwrap()
	}
	return sweeper{holder: d.sweepHolder}
}

// Sweep takes over up to LeaseSweepBatch expired leases and ends (or
// resubmits) their tasks; see LeaseService. A task it cannot finish with
// (the store failed) keeps the lease it took, which expires again and is
// swept again.
func (s *LeaseService) Sweep(ctx context.Context) (LeaseSweepCounts, error) {
	d := s.d
	var counts LeaseSweepCounts
	if d.leases == nil {
		return counts, nil
	}
	sw := d.sweeperOf()
	ttl := DefaultLeaseTTL
	if sw.exec != nil {
		ttl = sw.exec.leaseTTL
	}
	taken, err := d.leases.TakeExpired(ctx, sw.holder, ttl, LeaseSweepBatch)
	if err != nil {
		return counts, internal(err)
	}
	for _, l := range taken {
		if ctx.Err() != nil {
			return counts, internal(ctx.Err())
		}
		s.settle(ctx, sw, l, &counts)
	}
	if len(taken) > 0 {
		d.log.Info("task.lease.swept", observe.Entry{Transport: observe.TransportInternal, Outcome: "ok",
			Details: map[string]any{"taken": len(taken), "lost": counts.Lost, "resubmitted": counts.Resubmitted,
				"released": counts.Released}})
	}
	return counts, nil
}

// settle decides the fate of one task whose lease this instance took over.
func (s *LeaseService) settle(ctx context.Context, sw sweeper, l contracts.Lease, counts *LeaseSweepCounts) {
	d := s.d
	entry := observe.Entry{TaskID: l.TaskID, Transport: observe.TransportInternal,
		Details: map[string]any{"previousHolder": l.Holder}}
	release := func() {
		if err := d.leases.Release(ctx, l.TaskID, sw.holder); err != nil {
			entry.Outcome, entry.Err = "release_failed", err
			d.log.Warn("task.lease.sweep_failed", entry)
		}
	}
	if sw.exec != nil && sw.exec.holds(l.TaskID) {
		// This instance runs it and was only late to renew: the lease is
		// its own again, and its renewals go on.
		return
	}
	task, err := d.registry.Get(ctx, l.TaskID)
	switch {
	case errors.Is(err, contracts.ErrNotFound):
		release()
		counts.Released++
		return
	case err != nil:
		entry.Outcome, entry.Err = "failed", err
		d.log.Warn("task.lease.sweep_failed", entry)
		return
	case task.Status.IsTerminal():
		release()
		counts.Released++
		return
	}
	page, err := d.events.Read(ctx, l.TaskID, contracts.EventID{}, 1)
	if err != nil {
		entry.Outcome, entry.Err = "failed", err
		d.log.Warn("task.lease.sweep_failed", entry)
		return
	}
	if page.Ended {
		release() // the registry lags its terminal event
		counts.Released++
		return
	}
	if len(page.Events) == 0 && !task.CancelRequested && sw.exec != nil &&
		slices.Contains(sw.exec.TaskTypes(), task.TaskType) {
		// It never started: run it here, under the lease just taken.
		err := sw.exec.Submit(ctx, task)
		if err == nil {
			counts.Resubmitted++
			entry.Outcome = "resubmitted"
			d.log.Info("task.lease.resubmitted", entry)
			return
		}
		entry.Err = err // ended below instead
	}
	var draft contracts.EventDraft
	if task.CancelRequested { // what the client asked for, whoever runs it
		draft, _ = contracts.Cancelled(cancelReason(task), "")
		draft = draft.WithIdempotencyKey("executor-lost:" + l.TaskID)
	} else {
		draft = executorLostDraft(l.TaskID)
	}
	if _, err := d.emitter.Emit(ctx, l.TaskID, draft); err != nil && !errors.Is(err, contracts.ErrTerminal) {
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.lease.sweep_failed", entry)
		return // the lease expires again; the next sweep retries
	}
	if draft.Type() == contracts.EventFailed {
		counts.Lost++
		d.metrics.IncCounter(observe.MetricTaskFailures, 1, observe.Tag{Key: observe.TagReason, Value: CodeExecutorLost})
	}
	entry.Outcome = "executor_lost"
	d.log.Warn("task.lease.executor_lost", entry)
	release()
}

// cancelReason is TASK_CANCELLED's reason for a task whose cancellation
// was requested.
func cancelReason(task contracts.TaskRecord) string {
	if task.CancelReason != "" {
		return task.CancelReason
	}
	return DefaultCancelReason
}

// holds reports whether the executor has taskID in hand (queued, running
// or writing its terminal event).
func (e *Executor) holds(taskID string) bool {
	return e.lookup(taskID) != nil
}
