package orchestration

import (
	"context"
	"errors"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// reconcileBatch is how many pending handoffs one ReconcilePending call
// handles at most; handoffs whose hook fails again stay PENDING for the next
// call.
const reconcileBatch = 256

// ReconciliationService retries resume handoffs left PENDING because the
// hook failed (or the process stopped, or the TASK_ACTION_ACCEPTED append
// failed) after an action was accepted. It is safe for concurrent use; run
// it periodically (Services.RunMaintenance).
type ReconciliationService struct{ d *deps }

// HandoffGrace is how long after a suspension was resolved reconciliation
// leaves a missing TASK_ACTION_ACCEPTED to the accepting request, which may
// still be appending it; past it, reconciliation appends the event itself
// (once) before resuming the handler.
const HandoffGrace = time.Minute

// ReconcilePending calls the resume hook for up to 256 RESOLVED
// suspensions whose handoff is PENDING, rebuilding each action from its
// receipt, marks each success DISPATCHED and returns how many it
// dispatched. Before resuming a handler it makes sure the task's log holds
// the action's TASK_ACTION_ACCEPTED (an accept whose append failed left it
// out): past HandoffGrace it appends the missing event, so no client misses
// it and it precedes everything the resumed handler emits. A hook failure is logged and left for the next call. When the
// suspension store does not implement contracts.SuspensionMaintenance it
// does nothing.
func (s *ReconciliationService) ReconcilePending(ctx context.Context) (int, error) {
	d := s.d
	maint, ok := d.maintenance()
	if !ok {
		return 0, nil
	}
	pending, err := maint.PendingHandoffs(ctx, reconcileBatch)
	if err != nil {
		return 0, internal(err)
	}
	done := 0
	for _, susp := range pending {
		if ctx.Err() != nil {
			return done, internal(ctx.Err())
		}
		if s.reconcile(ctx, susp) {
			done++
		}
	}
	return done, nil
}

// reconcile hands one pending suspension's action to the hook.
func (s *ReconciliationService) reconcile(ctx context.Context, susp contracts.SuspensionRecord) bool {
	d := s.d
	entry := observe.Entry{
		TaskID: susp.TaskID, ClientActionID: susp.SuccessfulActionID, Transport: observe.TransportInternal,
		Details: map[string]any{"suspendId": susp.SuspendID},
	}
	if susp.SuccessfulActionID == "" {
		return false
	}
	r, err := d.receipts.Get(ctx, susp.TaskID, susp.SuccessfulActionID)
	if err != nil || r.SuspendID != susp.SuspendID {
		if err == nil || errors.Is(err, contracts.ErrNotFound) {
			// No receipt for this suspension (it expired, or the winner
			// stopped before saving it): nothing can be handed over.
			entry.Outcome = "receipt_missing"
			d.log.Warn("task.resume.reconcile_skipped", entry)
		} else {
			entry.Outcome, entry.Err = "failed", err
			d.log.Error("task.resume.reconcile_failed", entry)
		}
		return false
	}
	entry.UserID = r.ActorID
	if !s.acceptedLogged(ctx, susp, r, entry) {
		return false
	}
	cmd := contracts.SubmitActionCommand{
		Auth:           contracts.AuthContext{Subject: r.ActorID},
		TaskID:         r.TaskID,
		SuspendID:      r.SuspendID,
		ClientActionID: r.ClientActionID,
		ActionType:     r.ActionType,
		Payload:        r.Payload,
	}
	if err := d.resume.Resume(ctx, cmd, susp); err != nil {
		entry.Outcome, entry.Err = "resume_pending", err
		d.log.Error("task.resume.reconcile_failed", entry)
		return false
	}
	if _, err := d.suspensions.MarkResumeDispatched(ctx, susp.TaskID, susp.SuspendID); err != nil {
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.resume.reconcile_failed", entry)
		return false
	}
	entry.Outcome = "ok"
	d.log.Info("task.resume.reconciled", entry)
	return true
}

// RetentionCounts reports what one RetentionService.Prune removed or
// expired.
type RetentionCounts struct {
	ExpiredReceipts    int `json:"expiredReceipts"`
	ExpiredSuspensions int `json:"expiredSuspensions"`
}

// RetentionService prunes expired action receipts and expires OPEN
// suspensions past their deadline. It is safe for concurrent use; run it
// periodically (Services.RunMaintenance). Event and task retention belong to
// the stores.
type RetentionService struct{ d *deps }

// Prune deletes receipts whose ExpiresAt has passed and moves OPEN
// suspensions past their deadline to EXPIRED (skipped, with a logged note,
// when the suspension store does not implement
// contracts.SuspensionMaintenance).
func (s *RetentionService) Prune(ctx context.Context) (RetentionCounts, error) {
	d := s.d
	now := d.clock()
	var counts RetentionCounts
	n, err := d.receipts.DeleteExpired(ctx, now)
	if err != nil {
		return counts, internal(err)
	}
	counts.ExpiredReceipts = n
	if maint, ok := d.maintenance(); ok {
		n, err := maint.ExpireOpen(ctx, now)
		if err != nil {
			return counts, internal(err)
		}
		counts.ExpiredSuspensions = n
	}
	d.log.Info("task.retention.pruned", observe.Entry{
		Transport: observe.TransportInternal, Outcome: "ok",
		Details: map[string]any{"expiredReceipts": counts.ExpiredReceipts, "expiredSuspensions": counts.ExpiredSuspensions},
	})
	return counts, nil
}

// acceptedLogged reports whether the handoff of susp may proceed: the
// task's log holds the TASK_ACTION_ACCEPTED of its winning action (or the
// task has ended, so nothing more can be appended), or reconciliation
// appended it now. A missing event is appended only once the suspension
// has been resolved for HandoffGrace, so that an accept still in flight
// cannot append it a second time; until then, and on store errors, the
// handoff waits for the next call.
func (s *ReconciliationService) acceptedLogged(ctx context.Context, susp contracts.SuspensionRecord, r contracts.ActionReceipt, entry observe.Entry) bool {
	d := s.d
	var after contracts.EventID
	for {
		page, err := d.events.Read(ctx, susp.TaskID, after, MaxPageLimit)
		if err != nil {
			entry.Outcome, entry.Err = "failed", err
			d.log.Error("task.resume.reconcile_failed", entry)
			return false
		}
		for i := range page.Events {
			ev := &page.Events[i]
			if ev.Type.IsTerminal() {
				return true
			}
			if ev.Type != contracts.EventActionAccepted {
				continue
			}
			if p, err := contracts.DecodePayload(ev); err == nil {
				if a, ok := p.(contracts.ActionAcceptedPayload); ok && a.SuspendID == susp.SuspendID {
					return true
				}
			}
		}
		if len(page.Events) < MaxPageLimit {
			break
		}
		after = page.Events[len(page.Events)-1].EventID
	}
	if d.clock().Sub(susp.ResolvedAt) < HandoffGrace {
		entry.Outcome = "accepted_event_pending"
		d.log.Debug("task.resume.reconcile_deferred", entry)
		return false
	}
	draft, err := contracts.ActionAccepted(contracts.ActionAcceptedPayload{
		SuspendID: susp.SuspendID, ClientActionID: r.ClientActionID, ActionType: r.ActionType, AcceptedAt: susp.ResolvedAt,
	})
	if err != nil {
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.resume.reconcile_failed", entry)
		return false
	}
	ev, err := d.events.Append(ctx, susp.TaskID, draft.WithIdempotencyKey(acceptedKey(susp.SuspendID)))
	switch {
	case errors.Is(err, contracts.ErrTerminal):
		return true
	case err != nil:
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.resume.reconcile_failed", entry)
		return false
	}
	entry.EventID, entry.Outcome = ev.EventID.String(), "accepted_event_restored"
	d.log.Warn("task.resume.accepted_event_restored", entry)
	return true
}
