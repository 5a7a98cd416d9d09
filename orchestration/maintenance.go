package orchestration

import (
	"context"
	"errors"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// ReconcileBatch is how many pending handoffs one ReconcilePending call
// handles at most; handoffs whose hook fails again stay PENDING for the next
// call.
const ReconcileBatch = 256

// ReconciliationService retries resume handoffs left PENDING because the
// hook failed (or the process stopped) after an action was accepted. It is
// safe for concurrent use; run it periodically (Services.RunMaintenance).
type ReconciliationService struct{ d *deps }

// ReconcilePending calls the resume hook for up to ReconcileBatch RESOLVED
// suspensions whose handoff is PENDING, rebuilding each action from its
// receipt, marks each success DISPATCHED and returns how many it
// dispatched. A hook failure is logged and left for the next call. When the
// suspension store does not implement contracts.SuspensionMaintenance it
// does nothing.
func (s *ReconciliationService) ReconcilePending(ctx context.Context) (int, error) {
	d := s.d
	maint, ok := d.maintenance()
	if !ok {
		return 0, nil
	}
	pending, err := maint.PendingHandoffs(ctx, ReconcileBatch)
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
		TaskID: susp.TaskID, ClientRequestID: susp.SuccessfulActionID, Transport: observe.TransportInternal,
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
