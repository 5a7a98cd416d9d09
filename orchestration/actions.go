package orchestration

import (
	"context"
	"errors"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// ActionService accepts client actions on suspended tasks. It is safe for
// concurrent use.
type ActionService struct{ d *deps }

// Submit applies a client action to an OPEN suspension of the task.
//
// Errors: TASK_NOT_FOUND for a missing or foreign task or a suspension that
// is not the task's; INVALID_REQUEST for missing ids, a payload that is not
// a JSON object, or an action type the suspension does not allow (details
// list allowedActions); IDEMPOTENCY_CONFLICT when clientActionId was already
// accepted with a different suspension, type or payload.
//
// Statuses: DEDUPLICATED for a repeat of the accepted action (same
// canonical payload); REJECTED_EXPIRED when the suspension expired (it is
// moved to EXPIRED if still OPEN past its deadline);
// REJECTED_ALREADY_RESOLVED when it is resolved or cancelled, or the task is
// terminal; ACCEPTED for the one action that wins the suspension's
// compare-and-set. The winner saves a receipt, appends TASK_ACTION_ACCEPTED
// (exactly once per suspension) and calls the resume hook; when the hook
// fails the action stays ACCEPTED and the handoff stays PENDING for
// ReconciliationService.
func (s *ActionService) Submit(ctx context.Context, cmd contracts.SubmitActionCommand) (contracts.ActionResult, error) {
	d := s.d
	task, err := d.authorize(ctx, cmd.Auth, cmd.TaskID, accessAct)
	if err != nil {
		return contracts.ActionResult{}, err
	}
	if err := validateAction(&cmd); err != nil {
		return contracts.ActionResult{}, err
	}
	susp, err := d.suspensions.Get(ctx, cmd.TaskID, cmd.SuspendID)
	if err != nil {
		if errors.Is(err, contracts.ErrNotFound) {
			return contracts.ActionResult{}, notFound()
		}
		return contracts.ActionResult{}, internal(err)
	}
	if susp.TaskID != cmd.TaskID {
		return contracts.ActionResult{}, notFound()
	}
	if d.actions != nil {
		if err := d.actions.CanAct(ctx, cmd.Auth, task, susp, cmd.ActionType); err != nil {
			d.log.Warn("task.action.denied", observe.Entry{TaskID: cmd.TaskID, ClientActionID: cmd.ClientActionID,
				UserID: cmd.Auth.Subject, Transport: observe.TransportInternal, Outcome: "denied", Err: err})
			return contracts.ActionResult{}, bridgeerr.Wrap(bridgeerr.CodeTaskOwnership, err, "not allowed to act on this suspension")
		}
	}
	if !susp.Allows(cmd.ActionType) {
		return contracts.ActionResult{}, bridgeerr.New(bridgeerr.CodeInvalidRequest, "action type is not allowed").
			WithDetails(map[string]any{"actionType": cmd.ActionType, "allowedActions": susp.AllowedActions})
	}
	if status, done, err := s.checkReceipt(ctx, cmd); err != nil {
		return contracts.ActionResult{}, err
	} else if done {
		return s.result(cmd, status), nil
	}

	now := d.clock()
	switch {
	case task.Status.IsTerminal():
		if susp.Status == contracts.SuspensionOpen {
			susp = s.resolveAs(ctx, cmd, contracts.SuspensionCancelled)
		}
		return s.loser(ctx, cmd, susp)
	case susp.Status == contracts.SuspensionOpen && susp.ExpiredAt(now):
		susp = s.resolveAs(ctx, cmd, contracts.SuspensionExpired)
		return s.loser(ctx, cmd, susp)
	case susp.Status != contracts.SuspensionOpen:
		return s.loser(ctx, cmd, susp)
	}

	won, ok, err := d.suspensions.Resolve(ctx, cmd.TaskID, cmd.SuspendID, contracts.Resolution{
		Status: contracts.SuspensionResolved, ClientActionID: cmd.ClientActionID, At: now,
	})
	if err != nil {
		return contracts.ActionResult{}, internal(err)
	}
	if !ok {
		return s.loser(ctx, cmd, won)
	}
	// The action is accepted from here on: finish the handoff even if the
	// client goes away.
	return s.accept(context.WithoutCancel(ctx), cmd, won)
}

// validateAction checks the ids and canonicalises the payload in place.
func validateAction(cmd *contracts.SubmitActionCommand) error {
	for _, f := range [...]struct{ name, value string }{
		{"suspendId", cmd.SuspendID}, {"clientActionId", cmd.ClientActionID}, {"actionType", cmd.ActionType},
	} {
		if f.value == "" {
			return bridgeerr.New(bridgeerr.CodeInvalidRequest, f.name+" is required").
				WithDetails(map[string]any{"field": f.name})
		}
	}
	payload, err := contracts.CanonicalObject(cmd.Payload)
	if err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "payload must be a JSON object").
			WithDetails(map[string]any{"field": "payload"})
	}
	cmd.Payload = payload
	return nil
}

// checkReceipt answers a repeat of an accepted clientActionId: DEDUPLICATED
// for the same action, IDEMPOTENCY_CONFLICT for another. done is false when
// no receipt exists.
func (s *ActionService) checkReceipt(ctx context.Context, cmd contracts.SubmitActionCommand) (contracts.ActionStatus, bool, error) {
	r, err := s.d.receipts.Get(ctx, cmd.TaskID, cmd.ClientActionID)
	switch {
	case errors.Is(err, contracts.ErrNotFound):
		return "", false, nil
	case err != nil:
		return "", true, internal(err)
	case r.SameAction(cmd):
		s.count(contracts.ActionStatusDeduplicated)
		return contracts.ActionStatusDeduplicated, true, nil
	}
	s.count(statusConflict)
	s.d.log.Warn("task.action.conflict", observe.Entry{
		TaskID: cmd.TaskID, ClientActionID: cmd.ClientActionID, UserID: cmd.Auth.Subject,
		Transport: observe.TransportInternal, Outcome: "conflict",
	})
	return "", true, bridgeerr.New(bridgeerr.CodeIdempotencyConflict,
		"clientActionId was already used with a different action").
		WithDetails(map[string]any{"clientActionId": cmd.ClientActionID})
}

// resolveAs moves an OPEN suspension to status and returns the current
// record (whoever won). On a store error it returns a record with that
// status so the caller still answers with a rejection.
func (s *ActionService) resolveAs(ctx context.Context, cmd contracts.SubmitActionCommand, status contracts.SuspensionStatus) contracts.SuspensionRecord {
	rec, _, err := s.d.suspensions.Resolve(ctx, cmd.TaskID, cmd.SuspendID, contracts.Resolution{Status: status, At: s.d.clock()})
	if err != nil {
		s.d.log.Error("task.action.resolve_failed", observe.Entry{
			TaskID: cmd.TaskID, Transport: observe.TransportInternal, Outcome: "failed", Err: err,
			Details: map[string]any{"suspendId": cmd.SuspendID, "status": string(status)},
		})
		return contracts.SuspensionRecord{TaskID: cmd.TaskID, SuspendID: cmd.SuspendID, Status: status}
	}
	return rec
}

// loser answers an action that did not win the suspension: DEDUPLICATED when
// the winner is the same clientActionId (unless its receipt shows another
// action), REJECTED_EXPIRED for an expired suspension, otherwise
// REJECTED_ALREADY_RESOLVED.
func (s *ActionService) loser(ctx context.Context, cmd contracts.SubmitActionCommand, cur contracts.SuspensionRecord) (contracts.ActionResult, error) {
	status := contracts.ActionStatusRejectedAlreadyResolved
	switch {
	case cur.Status == contracts.SuspensionResolved && cur.SuccessfulActionID == cmd.ClientActionID:
		if st, done, err := s.checkReceipt(ctx, cmd); err != nil {
			return contracts.ActionResult{}, err
		} else if done {
			return s.result(cmd, st), nil
		}
		// The winner has not saved its receipt yet: it is this very action.
		status = contracts.ActionStatusDeduplicated
	case cur.Status == contracts.SuspensionExpired:
		status = contracts.ActionStatusRejectedExpired
	}
	s.count(status)
	if s.d.log.Enabled(errorLevel) {
		s.d.log.Info("task.action.rejected", observe.Entry{
			TaskID: cmd.TaskID, ClientActionID: cmd.ClientActionID, UserID: cmd.Auth.Subject,
			Transport: observe.TransportInternal, Outcome: string(status),
			Details: map[string]any{"suspendId": cmd.SuspendID},
		})
	}
	return s.result(cmd, status), nil
}

// accept finishes the winning action: receipt, TASK_ACTION_ACCEPTED, resume.
func (s *ActionService) accept(ctx context.Context, cmd contracts.SubmitActionCommand, won contracts.SuspensionRecord) (contracts.ActionResult, error) {
	d := s.d
	entry := observe.Entry{
		TaskID: cmd.TaskID, ClientActionID: cmd.ClientActionID, UserID: cmd.Auth.Subject,
		Transport: observe.TransportInternal,
	}
	logging := d.log.Enabled(errorLevel)
	if logging {
		entry.Details = map[string]any{"suspendId": cmd.SuspendID}
	}
	now := d.clock()
	receipt := contracts.ActionReceipt{
		TaskID: cmd.TaskID, SuspendID: cmd.SuspendID, ClientActionID: cmd.ClientActionID,
		ActionType: cmd.ActionType, Payload: cmd.Payload, ActorID: cmd.Auth.Subject,
		CreatedAt: now, ExpiresAt: now.Add(d.receiptTTL),
	}
	stored, saved, err := d.receipts.Save(ctx, receipt)
	if err != nil {
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.action.receipt_failed", entry)
		return contracts.ActionResult{}, internal(err)
	}
	if !saved && !stored.SameAction(cmd) {
		// The same clientActionId won another suspension of this task at
		// the same moment; the first receipt stands.
		s.count(statusConflict)
		entry.Outcome = "conflict"
		d.log.Warn("task.action.conflict", entry)
		return contracts.ActionResult{}, bridgeerr.New(bridgeerr.CodeIdempotencyConflict,
			"clientActionId was already used with a different action").
			WithDetails(map[string]any{"clientActionId": cmd.ClientActionID})
	}
	draft, err := contracts.ActionAccepted(contracts.ActionAcceptedPayload{
		SuspendID: cmd.SuspendID, ClientActionID: cmd.ClientActionID, ActionType: cmd.ActionType, AcceptedAt: now,
	})
	if err != nil {
		return contracts.ActionResult{}, internal(err)
	}
	ev, err := d.events.Append(ctx, cmd.TaskID, draft.WithIdempotencyKey(acceptedKey(cmd.SuspendID)))
	if err != nil {
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.action.append_failed", entry)
		if errors.Is(err, contracts.ErrTerminal) {
			// The task ended meanwhile; there is nothing left to resume.
			_, _ = d.suspensions.MarkResumeDispatched(ctx, cmd.TaskID, cmd.SuspendID)
			return contracts.ActionResult{}, bridgeerr.Wrap(bridgeerr.CodeTaskAlreadyTerminal, err, "task is already terminal")
		}
		return contracts.ActionResult{}, internal(err)
	}
	if logging {
		entry.EventID = ev.EventID.String()
	}
	entry.Outcome = "accepted"
	d.log.Info("task.action.accepted", entry)

	if err := d.resume.Resume(ctx, cmd, won); err != nil {
		d.metrics.IncCounter(observe.MetricResumePending, 1)
		entry.Outcome, entry.Err = "resume_pending", err
		d.log.Error("task.action.resume_failed", entry)
	} else if _, err := d.suspensions.MarkResumeDispatched(ctx, cmd.TaskID, cmd.SuspendID); err != nil {
		d.metrics.IncCounter(observe.MetricResumePending, 1)
		entry.Outcome, entry.Err = "resume_pending", err
		d.log.Error("task.action.mark_dispatched_failed", entry)
	}
	s.count(contracts.ActionStatusAccepted)
	return s.result(cmd, contracts.ActionStatusAccepted), nil
}

// acceptedKey is the idempotency key of a suspension's
// TASK_ACTION_ACCEPTED. The accepting request and reconciliation (which
// restores an accept whose append failed) use the same key, so the event
// is stored once even when both append it.
func acceptedKey(suspendID string) string { return "action-accepted:" + suspendID }

// statusConflict is the MetricActions status tag of an idempotency conflict.
const statusConflict contracts.ActionStatus = "IDEMPOTENCY_CONFLICT"

func (s *ActionService) count(status contracts.ActionStatus) {
	tags, ok := actionStatusTags[status]
	if !ok {
		tags = []observe.Tag{{Key: observe.TagStatus, Value: string(status)}}
	}
	s.d.metrics.IncCounter(observe.MetricActions, 1, tags...)
}

// actionStatusTags are the MetricActions tags of each answer, built once
// (shared, read-only), so counting an action allocates nothing.
var actionStatusTags = func() map[contracts.ActionStatus][]observe.Tag {
	m := make(map[contracts.ActionStatus][]observe.Tag)
	for _, st := range []contracts.ActionStatus{
		contracts.ActionStatusAccepted, contracts.ActionStatusDeduplicated, contracts.ActionStatusRejectedExpired,
		contracts.ActionStatusRejectedAlreadyResolved, statusConflict,
	} {
		m[st] = []observe.Tag{{Key: observe.TagStatus, Value: string(st)}}
	}
	return m
}()

func (s *ActionService) result(cmd contracts.SubmitActionCommand, status contracts.ActionStatus) contracts.ActionResult {
	return contracts.ActionResult{
		TaskID: cmd.TaskID, SuspendID: cmd.SuspendID, ClientActionID: cmd.ClientActionID, Status: status,
	}
}
