package orchestration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// leaseSweepBatch is how many expired leases one LeaseService.Sweep takes
// over at most; the rest wait for the next sweep.
const leaseSweepBatch = 128

// LeaseService ends the tasks of instances that died: it takes over the
// leases that expired in Stores.Leases (their runner stopped renewing
// them) and, for each task that has not ended, either submits it to this
// instance's executor again, when it never started (no event in its log:
// it was queued on the dead instance, or handed back by a draining one),
// or runs it again when its type was registered with
// Executor.HandleRepeatable and it has attempts left (a TASK_MESSAGE
// announces the attempt), or ends it TASK_FAILED with the retryable code
// EXECUTOR_LOST and a
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
	// Rerun is how many started tasks of types registered with
	// Executor.HandleRepeatable it ran again on this instance.
	Rerun int `json:"rerun"`
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

// Sweep takes over up to 128 expired leases and ends (or
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
	taken, err := d.leases.TakeExpired(ctx, sw.holder, ttl, leaseSweepBatch)
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
	if len(page.Events) > 0 && !task.CancelRequested && sw.exec != nil {
		switch rerun, err := s.runAgain(ctx, sw.exec, task); {
		case err != nil:
			entry.Outcome, entry.Err = "failed", err
			d.log.Warn("task.lease.sweep_failed", entry)
			return // the lease expires again; the next sweep retries
		case rerun:
			counts.Rerun++
			entry.Outcome = "rerun"
			d.log.Info("task.lease.rerun", entry)
			return
		}
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

// attemptMessage is the TASK_MESSAGE that announces attempt n of most.
func attemptMessage(n, most int) string {
	return fmt.Sprintf("attempt %d of %d: the instance running the task stopped; running the task again", n, most)
}

// attemptOf returns n when msg is attemptMessage(n, ...).
func attemptOf(msg string) (int, bool) {
	var n, most int
	if _, err := fmt.Sscanf(msg, "attempt %d of %d:", &n, &most); err != nil || !strings.HasPrefix(msg, attemptMessage(n, most)) {
		return 0, false
	}
	return n, true
}

// runAgain runs a started task of a repeatable type (HandleRepeatable)
// again on exec when it has attempts left: it appends the TASK_MESSAGE
// announcing the attempt (one key per attempt, so a sweep that retries
// stores it once) and submits the task under the lease the sweep took. It
// reports false when the task must end instead.
func (s *LeaseService) runAgain(ctx context.Context, exec *Executor, task contracts.TaskRecord) (bool, error) {
	most := exec.attemptsOf(task.TaskType)
	if most < 2 || !slices.Contains(exec.TaskTypes(), task.TaskType) {
		return false, nil
	}
	made, err := s.attemptsMade(ctx, task.TaskID)
	if err != nil || made >= most {
		return false, err
	}
	draft, err := contracts.Message(attemptMessage(made+1, most), contracts.LevelWarning)
	if err != nil {
		return false, err
	}
	draft = draft.WithIdempotencyKey(fmt.Sprintf("attempt:%d:%s", made+1, task.TaskID))
	if _, err := s.d.emitter.Emit(ctx, task.TaskID, draft); err != nil {
		if errors.Is(err, contracts.ErrTerminal) {
			return false, nil
		}
		return false, err
	}
	return exec.Submit(ctx, task) == nil, nil
}

// attemptsMade counts the attempts a task has made: one, plus one per
// attempt announced in its log (read in pages; an announcement dropped by
// the store's cap is not counted).
func (s *LeaseService) attemptsMade(ctx context.Context, taskID string) (int, error) {
	made := 1
	var after contracts.EventID
	for {
		page, err := s.d.events.Read(ctx, taskID, after, MaxPageLimit)
		if err != nil {
			return 0, err
		}
		for i := range page.Events {
			ev := &page.Events[i]
			if ev.Type != contracts.EventMessage {
				continue
			}
			if p, err := contracts.DecodePayload(ev); err == nil {
				if m, ok := p.(contracts.MessagePayload); ok {
					if n, ok := attemptOf(m.Message); ok {
						made = max(made, n)
					}
				}
			}
		}
		if len(page.Events) < MaxPageLimit {
			return made, nil
		}
		after = page.Events[len(page.Events)-1].EventID
	}
}
