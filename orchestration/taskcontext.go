package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// TaskContext is a running task's handle on its stream, given to its
// Handler. Its methods are safe for concurrent use by the handler's
// goroutines; once the handler has returned they fail with an error
// wrapping contracts.ErrTerminal (the executor writes the terminal event).
type TaskContext struct {
	e *Executor
	r *run
}

// AcceptedAction is the client action that resumed a suspended task.
type AcceptedAction struct {
	SuspendID      string
	ClientActionID string
	ActionType     string
	// Payload is the action's canonical JSON object ({} when none was sent).
	Payload json.RawMessage
	// ActorID is the subject that submitted the action.
	ActorID string
}

// Task returns the task's record as it was submitted.
func (tc *TaskContext) Task() contracts.TaskRecord { return tc.r.task }

// DecodeInput decodes the task's JSON input object into v.
func (tc *TaskContext) DecodeInput(v any) error {
	in := tc.r.task.Input
	if len(in) == 0 {
		in = json.RawMessage("{}")
	}
	return json.Unmarshal(in, v)
}

// Progress emits TASK_PROGRESS; pct must be within 0..100.
func (tc *TaskContext) Progress(ctx context.Context, pct float64, stage, message string) error {
	draft, err := contracts.Progress(pct, stage, message)
	if err != nil {
		return invalidDraft(err)
	}
	return tc.Emit(ctx, draft)
}

// Message emits TASK_MESSAGE at level ("" means unspecified).
func (tc *TaskContext) Message(ctx context.Context, msg string, level contracts.MessageLevel) error {
	draft, err := contracts.Message(msg, level)
	if err != nil {
		return invalidDraft(err)
	}
	return tc.Emit(ctx, draft)
}

// Emit appends a non-terminal event. Terminal events come from the
// handler's return value, so a terminal draft is INVALID_REQUEST; after the
// handler returned, Emit fails with TASK_ALREADY_TERMINAL wrapping
// contracts.ErrTerminal.
func (tc *TaskContext) Emit(ctx context.Context, draft contracts.EventDraft) error {
	if draft.Type().IsTerminal() {
		return bridgeerr.New(bridgeerr.CodeInvalidRequest,
			"terminal events are written by the executor from the handler's return value")
	}
	if err := tc.checkLive(); err != nil {
		return err
	}
	_, err := tc.e.emitter.Emit(ctx, tc.r.task.TaskID, draft)
	return storeFailure(err)
}

// storeFailure marks an emit error that the store caused (not a definite
// answer such as a terminal task, after the emit retries): a handler that
// returns it ends TASK_FAILED STORE_UNAVAILABLE, retryable.
func storeFailure(err error) error {
	if err == nil || definite(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &storeError{err: err}
}

// storeError wraps an emit that failed because the store did not answer.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// checkLive fails once the handler has returned.
func (tc *TaskContext) checkLive() error {
	tc.r.mu.Lock()
	defer tc.r.mu.Unlock()
	if tc.r.state >= runFinished {
		return bridgeerr.Wrap(bridgeerr.CodeTaskAlreadyTerminal, contracts.ErrTerminal, "task has finished")
	}
	return nil
}

// Suspend records a suspension from spec, appends TASK_SUSPENDED and waits
// until a client action is accepted for it, returning that action.
//
// It returns ctx's error when ctx or the task's context ends (cancel
// request or executor shutdown; the suspension is resolved CANCELLED),
// ErrSuspensionExpired when the deadline passes first (the suspension is
// resolved EXPIRED), ErrSuspensionCancelled when someone else cancelled the
// suspension, or a store error. It waits without polling: the executor's
// Resume (called in-process by the action service) signals it directly, and
// for actions accepted by another process over shared stores it re-reads
// the suspension whenever the task's events change (TASK_ACTION_ACCEPTED is
// appended on acceptance).
func (tc *TaskContext) Suspend(ctx context.Context, spec SuspendSpec) (AcceptedAction, error) {
	e, r := tc.e, tc.r
	if err := tc.checkLive(); err != nil {
		return AcceptedAction{}, err
	}
	taskID, suspendID := r.task.TaskID, contracts.NewID()
	// Register the wake-up before the suspension is visible, so a Resume
	// that follows at once is not lost.
	sig := make(chan struct{}, 1)
	r.mu.Lock()
	r.resumes[suspendID] = sig
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.resumes, suspendID)
		r.mu.Unlock()
	}()

	rec, ev, err := e.emitter.suspend(ctx, taskID, suspendID, spec)
	if err != nil {
		return AcceptedAction{}, storeFailure(err)
	}
	entry := observe.Entry{TaskID: taskID, EventID: ev.EventID.String(), UserID: r.task.OwnerID,
		Transport: observe.TransportInternal, Outcome: "suspended", Details: map[string]any{"suspendId": suspendID}}
	e.log.Info("task.run.suspended", entry)

	var expiry <-chan time.Time
	if !rec.ExpiresAt.IsZero() {
		t := time.NewTimer(rec.ExpiresAt.Sub(e.clock()))
		defer t.Stop()
		expiry = t.C
	}
	store := context.WithoutCancel(ctx)
	for {
		changed, release := e.waiter.Watch(taskID)
		act, done, err := tc.check(store, taskID, suspendID, ev.EventID)
		if done || err != nil {
			release()
			if err == nil {
				entry.Outcome, entry.EventID = "resumed", ""
				entry.ClientActionID = act.ClientActionID
				e.log.Info("task.run.resumed", entry)
			}
			return act, err
		}
		select {
		case <-changed:
		case <-sig:
		case <-expiry:
			expiry = nil
			if tc.resolve(store, suspendID, contracts.SuspensionExpired) {
				release()
				return AcceptedAction{}, ErrSuspensionExpired
			}
		case <-ctx.Done():
			release()
			tc.resolve(store, suspendID, contracts.SuspensionCancelled)
			return AcceptedAction{}, ctx.Err()
		case <-r.ctx.Done():
			release()
			tc.resolve(store, suspendID, contracts.SuspensionCancelled)
			return AcceptedAction{}, r.ctx.Err()
		}
		release()
	}
}

// check reads the suspension: done with the action once it is RESOLVED,
// its receipt is saved and its TASK_ACTION_ACCEPTED is in the task's log
// after suspended (the suspension's own event); an error when it expired
// or was cancelled; not done while it is OPEN (it is expired here when its
// deadline passed by the clock) or the winner has not finished accepting.
// Resuming before the accept event is written would let the handler end
// the task first, and the accept, refused on a terminal task, would never
// reach the log.
func (tc *TaskContext) check(ctx context.Context, taskID, suspendID string, suspended contracts.EventID) (AcceptedAction, bool, error) {
	e := tc.e
	cur, err := e.suspensions.Get(ctx, taskID, suspendID)
	if err != nil {
		return AcceptedAction{}, false, bridgeerr.From(err)
	}
	switch cur.Status {
	case contracts.SuspensionResolved:
		rc, err := e.receipts.Get(ctx, taskID, cur.SuccessfulActionID)
		if errors.Is(err, contracts.ErrNotFound) || (err == nil && rc.SuspendID != suspendID) {
			// The winner saves its receipt and then appends
			// TASK_ACTION_ACCEPTED, which wakes us again.
			return AcceptedAction{}, false, nil
		}
		if err != nil {
			return AcceptedAction{}, false, bridgeerr.From(err)
		}
		logged, err := tc.acceptLogged(ctx, taskID, suspendID, suspended)
		if err != nil || !logged {
			// The winner appends TASK_ACTION_ACCEPTED next (or
			// reconciliation does after a failed append), which wakes us.
			return AcceptedAction{}, false, err
		}
		return AcceptedAction{SuspendID: suspendID, ClientActionID: rc.ClientActionID, ActionType: rc.ActionType,
			Payload: rc.Payload, ActorID: rc.ActorID}, true, nil
	case contracts.SuspensionExpired:
		return AcceptedAction{}, false, ErrSuspensionExpired
	case contracts.SuspensionCancelled:
		return AcceptedAction{}, false, ErrSuspensionCancelled
	}
	if cur.ExpiredAt(e.clock()) && tc.resolve(ctx, suspendID, contracts.SuspensionExpired) {
		return AcceptedAction{}, false, ErrSuspensionExpired
	}
	return AcceptedAction{}, false, nil
}

// acceptLogged reports whether TASK_ACTION_ACCEPTED for suspendID is in
// the task's log after the event suspended. When the store has trimmed
// events after suspended it cannot tell, and reports true rather than
// holding the handler forever.
func (tc *TaskContext) acceptLogged(ctx context.Context, taskID, suspendID string, suspended contracts.EventID) (bool, error) {
	const page = 100
	after := suspended
	for {
		p, err := tc.e.events.Read(ctx, taskID, after, page)
		if err != nil {
			return false, bridgeerr.From(err)
		}
		for i := range p.Events {
			ev := &p.Events[i]
			if ev.Type != contracts.EventActionAccepted {
				continue
			}
			if pl, err := contracts.DecodePayload(ev); err == nil {
				if a, ok := pl.(contracts.ActionAcceptedPayload); ok && a.SuspendID == suspendID {
					return true, nil
				}
			}
		}
		if p.RetentionGap {
			return true, nil
		}
		if len(p.Events) < page {
			return false, nil
		}
		after = p.Events[len(p.Events)-1].EventID
	}
}

// resolve moves the OPEN suspension to status and reports whether it won.
func (tc *TaskContext) resolve(ctx context.Context, suspendID string, status contracts.SuspensionStatus) bool {
	_, won, err := tc.e.suspensions.Resolve(ctx, tc.r.task.TaskID, suspendID,
		contracts.Resolution{Status: status, At: tc.e.clock()})
	if err != nil {
		tc.e.log.Error("task.run.resolve_failed", observe.Entry{
			TaskID: tc.r.task.TaskID, Transport: observe.TransportInternal, Outcome: "failed", Err: err,
			Details: map[string]any{"suspendId": suspendID, "status": string(status)},
		})
	}
	return won
}
