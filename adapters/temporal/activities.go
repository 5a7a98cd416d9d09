package tbtemporal

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// Error types of the application errors the adapter's own activities fail
// with; the workflow side turns them back into the library's errors.
const (
	errTypeTerminal = "taskbridge.TaskAlreadyTerminal"
	errTypeInvalid  = "taskbridge.InvalidEvent"
	errTypeTask     = "taskbridge.TaskError"
)

// activities are the store writes of a task's workflow: every event, and
// the opening and resolving of suspensions. The workflow runs them as local
// activities, which Temporal may run more than once (a retry after a store
// error, or a replay on another worker after a crash before the result was
// recorded); each write is safe to repeat, so a repeat changes nothing a
// client sees.
type activities struct {
	emitter     *orchestration.Emitter
	tasks       contracts.TaskRegistry
	suspensions contracts.SuspensionStore
	log         *observe.Logger
	clock       func() time.Time
}

// emitRequest is one event for the emit activity. Key is the event's
// idempotency key, a pure function of the task and of the workflow's
// progress, so every run of the activity for this event carries the same
// key. Cancel marks the terminal TASK_CANCELLED, whose reason the activity
// reads from the registry (Type and Payload are then empty).
type emitRequest struct {
	TaskID  string              `json:"taskId"`
	Key     string              `json:"key"`
	Type    contracts.EventType `json:"type,omitempty"`
	Payload json.RawMessage     `json:"payload,omitempty"`
	Cancel  bool                `json:"cancel,omitempty"`
}

// Emit appends one event (and moves the registry status with it). It
// returns the event id. A task that has ended already fails it without
// retry (errTypeTerminal), as does an invalid event.
func (a *activities) Emit(ctx context.Context, req emitRequest) (string, error) {
	var draft contracts.EventDraft
	var err error
	if req.Cancel {
		draft, err = a.cancelledDraft(ctx, req.TaskID)
	} else {
		draft, err = contracts.ParseDraft(req.Type, req.Payload)
	}
	if err != nil {
		return "", toActivityError(err)
	}
	ev, err := a.emitKeyed(ctx, req.TaskID, req.Key, draft)
	if err != nil && ev.EventID.IsZero() {
		return "", toActivityError(err)
	}
	return ev.EventID.String(), nil
}

// emitKeyed appends draft under its idempotency key: a repeat of the
// append (a retried or replayed activity) answers the event stored first
// and stores nothing.
func (a *activities) emitKeyed(ctx context.Context, taskID, key string, draft contracts.EventDraft) (contracts.TaskEvent, error) {
	return a.emitter.Emit(ctx, taskID, draft.WithIdempotencyKey(key))
}

// cancelledDraft is TASK_CANCELLED with the reason the cancel request left
// in the registry.
func (a *activities) cancelledDraft(ctx context.Context, taskID string) (contracts.EventDraft, error) {
	reason := orchestration.DefaultCancelReason
	rec, err := a.tasks.Get(ctx, taskID)
	if err != nil {
		return contracts.EventDraft{}, err
	}
	if rec.CancelReason != "" {
		reason = rec.CancelReason
	}
	return contracts.Cancelled(reason, "")
}

// openRequest opens suspension SuspendID of TaskID from Spec at Now (the
// workflow's time, so the deadline is the one its durable timer waits for).
type openRequest struct {
	TaskID    string                    `json:"taskId"`
	SuspendID string                    `json:"suspendId"`
	Key       string                    `json:"key"`
	Spec      orchestration.SuspendSpec `json:"spec"`
	Now       time.Time                 `json:"now"`
}

// openResult is what OpenSuspension opened: TASK_SUSPENDED's id and the
// suspension's deadline (zero: none).
type openResult struct {
	EventID   string    `json:"eventId"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// OpenSuspension stores the OPEN suspension (owned by the task's owner)
// and then appends TASK_SUSPENDED, so an action that follows the event
// always finds the suspension. A repeat finds its own suspension stored
// and appends nothing twice; the record stored first stands, and the event
// and the deadline it returns are that record's (a workflow that runs the
// open again after a worker crash computes its deadline from a later
// clock). When the task has ended it fails without retry (errTypeTerminal)
// and leaves no OPEN suspension behind.
func (a *activities) OpenSuspension(ctx context.Context, req openRequest) (openResult, error) {
	rec, payload := req.Spec.Record(req.TaskID, req.SuspendID, req.Now)
	if _, err := contracts.Suspended(payload); err != nil {
		return openResult{}, toActivityError(err)
	}
	task, err := a.tasks.Get(ctx, req.TaskID)
	if err != nil {
		return openResult{}, toActivityError(err)
	}
	if task.Status.IsTerminal() {
		return openResult{}, toActivityError(contracts.ErrTerminal)
	}
	rec.OwnerID = task.OwnerID
	switch err := a.suspensions.Create(ctx, rec); {
	case errors.Is(err, contracts.ErrAlreadyExists):
		stored, err := a.suspensions.Get(ctx, req.TaskID, req.SuspendID)
		if err != nil {
			return openResult{}, toActivityError(err)
		}
		req.Spec.ExpiresAt = stored.ExpiresAt
		rec, payload = req.Spec.Record(req.TaskID, req.SuspendID, stored.CreatedAt)
	case err != nil:
		return openResult{}, toActivityError(err)
	}
	draft, err := contracts.Suspended(payload)
	if err != nil {
		return openResult{}, toActivityError(err)
	}
	ev, err := a.emitKeyed(ctx, req.TaskID, req.Key, draft)
	if err != nil && ev.EventID.IsZero() {
		if errors.Is(err, contracts.ErrTerminal) {
			a.resolve(context.WithoutCancel(ctx), req.TaskID, req.SuspendID, contracts.SuspensionCancelled)
		}
		return openResult{}, toActivityError(err)
	}
	return openResult{EventID: ev.EventID.String(), ExpiresAt: rec.ExpiresAt}, nil
}

// resolveRequest moves suspension SuspendID to Status if it is still OPEN.
type resolveRequest struct {
	TaskID    string                     `json:"taskId"`
	SuspendID string                     `json:"suspendId"`
	Status    contracts.SuspensionStatus `json:"status"`
}

// resolveResult says whether the resolve won and the suspension's status
// after it.
type resolveResult struct {
	Won    bool                       `json:"won"`
	Status contracts.SuspensionStatus `json:"status"`
}

// ResolveSuspension moves the suspension to req.Status when it is OPEN. A
// repeat after a win reports the status it set (Won false, the same
// Status), which the workflow treats alike.
func (a *activities) ResolveSuspension(ctx context.Context, req resolveRequest) (resolveResult, error) {
	cur, won, err := a.suspensions.Resolve(ctx, req.TaskID, req.SuspendID,
		contracts.Resolution{Status: req.Status, At: a.clock()})
	if err != nil {
		return resolveResult{}, toActivityError(err)
	}
	return resolveResult{Won: won, Status: cur.Status}, nil
}

// resolve is ResolveSuspension for cleanup paths: errors are logged.
func (a *activities) resolve(ctx context.Context, taskID, suspendID string, status contracts.SuspensionStatus) {
	if _, err := a.ResolveSuspension(ctx, resolveRequest{TaskID: taskID, SuspendID: suspendID, Status: status}); err != nil {
		a.log.Error("temporal.suspension.resolve_failed", observe.Entry{
			TaskID: taskID, Transport: observe.TransportInternal, Outcome: "failed", Err: err,
			Details: map[string]any{"suspendId": suspendID, "status": string(status)},
		})
	}
}

// toActivityError turns a store or validation error into what Temporal
// should do with it: errors that a retry cannot fix (the task ended, the
// event is invalid, the task or suspension is gone) fail at once; anything
// else (a store that did not answer) is retried by the activity's policy.
func toActivityError(err error) error {
	switch {
	case errors.Is(err, contracts.ErrTerminal):
		return temporal.NewNonRetryableApplicationError("task is already terminal", errTypeTerminal, nil)
	case errors.Is(err, contracts.ErrInvalidPayload):
		return temporal.NewNonRetryableApplicationError(err.Error(), errTypeInvalid, nil)
	case errors.Is(err, contracts.ErrNotFound):
		return temporal.NewNonRetryableApplicationError("task or suspension not found", errTypeTerminal, nil)
	}
	var be *bridgeerr.Error
	if errors.As(err, &be) && be.Code == bridgeerr.CodeTaskAlreadyTerminal {
		return temporal.NewNonRetryableApplicationError("task is already terminal", errTypeTerminal, nil)
	}
	return err
}

// fromActivityError turns an activity's failure, as the workflow sees it,
// back into the library's errors, so handlers can test them with
// errors.Is (contracts.ErrTerminal, contracts.ErrInvalidPayload).
func fromActivityError(err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		return err
	}
	switch app.Type() {
	case errTypeTerminal:
		return bridgeerr.Wrap(bridgeerr.CodeTaskAlreadyTerminal, contracts.ErrTerminal, "task has finished")
	case errTypeInvalid:
		return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, contracts.ErrInvalidPayload, "invalid event")
	}
	return err
}
