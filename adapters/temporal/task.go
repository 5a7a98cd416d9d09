package tbtemporal

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// Handler runs one task of a registered type as Temporal workflow code: it
// must be deterministic (no I/O, no goroutines, no time.Now or
// time.Sleep: use ctx and the workflow package, for example
// workflow.Sleep for a durable wait). Its effects go through task: events
// (Progress, Message, Emit), suspensions (Suspend) and steps
// (ExecuteStep, where ordinary Go code does the real work as an activity).
//
// ctx is cancelled when the task's cancellation is requested; the task then
// ends TASK_CANCELLED whatever the handler returns. The returned result
// becomes TASK_COMPLETED's result (any JSON-encodable value; a
// json.RawMessage is used as is); an error becomes TASK_FAILED (an
// *orchestration.TaskError chooses its code, message and retryability; a
// step's timeout is TASK_TIMEOUT; see the package doc); a panic becomes
// TASK_FAILED with code TASK_PANIC.
type Handler func(ctx workflow.Context, task *Task) (result any, err error)

// Task is a running task's handle on its stream, given to its Handler. Its
// methods take the handler's workflow.Context and are deterministic: each
// event it appends carries an idempotency key made from the task id and
// the count of events before it, so a replay or a retried write appends
// nothing twice. A Task belongs to one workflow run; use it from that
// workflow's code only. Once the handler has returned, its methods fail
// with an error wrapping contracts.ErrTerminal.
type Task struct {
	rec      contracts.TaskRecord
	opts     TypeOptions
	acts     *activities
	actions  workflow.ReceiveChannel
	seq      int
	finished bool
}

// Record returns the task's record as it was submitted (attachments
// without their content).
func (t *Task) Record() contracts.TaskRecord { return t.rec }

// DecodeInput decodes the task's JSON input object into v.
func (t *Task) DecodeInput(v any) error {
	in := t.rec.Input
	if len(in) == 0 {
		in = json.RawMessage("{}")
	}
	return json.Unmarshal(in, v)
}

// Progress appends TASK_PROGRESS; pct must be within 0..100.
func (t *Task) Progress(ctx workflow.Context, pct float64, stage, message string) error {
	draft, err := contracts.Progress(pct, stage, message)
	if err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "invalid event")
	}
	return t.Emit(ctx, draft)
}

// Message appends TASK_MESSAGE at level ("" means unspecified).
func (t *Task) Message(ctx workflow.Context, message string, level contracts.MessageLevel) error {
	draft, err := contracts.Message(message, level)
	if err != nil {
		return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "invalid event")
	}
	return t.Emit(ctx, draft)
}

// Emit appends a non-terminal event and returns once it is stored.
// Terminal events come from the handler's return value, so a terminal
// draft is INVALID_REQUEST. It fails with an error wrapping
// contracts.ErrTerminal when the task has ended, and with ctx's
// cancellation when the task is being cancelled.
func (t *Task) Emit(ctx workflow.Context, draft contracts.EventDraft) error {
	if draft.IsZero() || draft.Type().IsTerminal() {
		return bridgeerr.New(bridgeerr.CodeInvalidRequest,
			"terminal events are written from the handler's return value; build others with a contracts constructor")
	}
	if t.finished {
		return errFinished()
	}
	_, err := t.emit(ctx, emitRequest{TaskID: t.rec.TaskID, Type: draft.Type(), Payload: draft.Payload()}, emitOptions)
	return err
}

// emit runs the emit activity for req under the next key.
func (t *Task) emit(ctx workflow.Context, req emitRequest, opts workflow.LocalActivityOptions) (string, error) {
	req.Key = t.nextKey()
	var id string
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), t.acts.Emit, req).Get(ctx, &id)
	return id, fromActivityError(err)
}

// nextKey is the idempotency key of the task's next write: the same on
// every replay of the workflow, unique within the task.
func (t *Task) nextKey() string {
	t.seq++
	return "temporal/" + strconv.Itoa(t.seq)
}

func errFinished() error {
	return bridgeerr.Wrap(bridgeerr.CodeTaskAlreadyTerminal, contracts.ErrTerminal, "task has finished")
}

// Options of the adapter's own writes. Events are retried with backoff
// while the store does not answer (a Redis restart) for up to ten minutes;
// the terminal event for a day, since a task that has finished must not
// stay RUNNING in its clients' eyes.
var (
	emitOptions = workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 10 * time.Minute,
		StartToCloseTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		},
	}
	terminalOptions = workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 24 * time.Hour,
		StartToCloseTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		},
	}
)

// Suspend opens a suspension from spec (TASK_SUSPENDED) and waits,
// durably, for a client action to be accepted for it, returning that
// action. The wait is workflow state: it survives the worker's restart or
// crash (another worker takes it over) and costs no worker resources. The
// accepted action arrives as ActionSignal, sent by the bridge that
// accepted it after TASK_ACTION_ACCEPTED is in the log. The deadline
// (spec.ExpiresAt, or spec.Timeout from now) is a durable Temporal timer.
//
// It returns orchestration.ErrSuspensionExpired when the deadline passes
// first (the suspension is resolved EXPIRED; returned from the handler it
// ends the task TASK_FAILED SUSPENSION_EXPIRED, as with the in-process
// executor), orchestration.ErrSuspensionCancelled when someone else
// cancelled the suspension, ctx's cancellation when the task is cancelled
// (the suspension is resolved CANCELLED), or a store error.
func (t *Task) Suspend(ctx workflow.Context, spec orchestration.SuspendSpec) (orchestration.AcceptedAction, error) {
	if t.finished {
		return orchestration.AcceptedAction{}, errFinished()
	}
	// The id is a pure function of the task and of the workflow's
	// progress, like the event keys: a worker that dies after the open is
	// stored but before Temporal recorded it runs this code again
	// elsewhere, and must wait for the suspension its clients saw (a
	// random id, even from a SideEffect, would be drawn anew and leave that
	// one OPEN and unheard).
	key := t.nextKey()
	suspendID := suspendIDOf(t.rec.TaskID, key)
	now := workflow.Now(ctx)
	if spec.ExpiresAt.IsZero() && spec.Timeout > 0 {
		spec.ExpiresAt = now.Add(spec.Timeout)
	}
	spec.Timeout = 0
	spec.ExpiresAt = spec.ExpiresAt.Truncate(time.Millisecond)
	req := openRequest{TaskID: t.rec.TaskID, SuspendID: suspendID, Key: key, Spec: spec, Now: now}
	lctx := workflow.WithLocalActivityOptions(ctx, emitOptions)
	var opened openResult
	if err := workflow.ExecuteLocalActivity(lctx, t.acts.OpenSuspension, req).Get(ctx, &opened); err != nil {
		return orchestration.AcceptedAction{}, fromActivityError(err)
	}

	// The timer waits for the deadline stored with the suspension, which
	// a run of this code after a crash (a later Now) did not choose.
	var expiry workflow.Future
	if !opened.ExpiresAt.IsZero() {
		tctx, cancelTimer := workflow.WithCancel(ctx)
		defer cancelTimer()
		expiry = workflow.NewTimer(tctx, max(opened.ExpiresAt.Sub(workflow.Now(ctx)), time.Millisecond))
	}
	for {
		var (
			sig      actionSignal
			got      bool
			expired  bool
			canceled bool
		)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(t.actions, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, &sig)
			got = true
		})
		if expiry != nil {
			sel.AddFuture(expiry, func(workflow.Future) { expired = true })
		}
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { canceled = true })
		sel.Select(ctx)

		switch {
		case canceled:
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			t.resolve(dctx, suspendID, contracts.SuspensionCancelled)
			return orchestration.AcceptedAction{}, ctx.Err()
		case got && sig.SuspendID == suspendID:
			return orchestration.AcceptedAction{SuspendID: suspendID, ClientActionID: sig.ClientActionID,
				ActionType: sig.ActionType, Payload: sig.Payload, ActorID: sig.ActorID}, nil
		case got:
			// A repeat of an earlier suspension's signal (reconciliation
			// resumes again when it cannot tell the first one arrived).
			continue
		case expired:
			expiry = nil
			res, err := t.resolve(ctx, suspendID, contracts.SuspensionExpired)
			if err != nil {
				return orchestration.AcceptedAction{}, err
			}
			switch res.Status {
			case contracts.SuspensionExpired:
				return orchestration.AcceptedAction{}, orchestration.ErrSuspensionExpired
			case contracts.SuspensionCancelled:
				return orchestration.AcceptedAction{}, orchestration.ErrSuspensionCancelled
			}
			// An action won just before the deadline: its signal follows.
		}
	}
}

// resolve runs the resolve activity.
func (t *Task) resolve(ctx workflow.Context, suspendID string, status contracts.SuspensionStatus) (resolveResult, error) {
	var res resolveResult
	lctx := workflow.WithLocalActivityOptions(ctx, emitOptions)
	err := workflow.ExecuteLocalActivity(lctx, t.acts.ResolveSuspension,
		resolveRequest{TaskID: t.rec.TaskID, SuspendID: suspendID, Status: status}).Get(ctx, &res)
	return res, fromActivityError(err)
}

// ExecuteStep runs step, an activity function (or the name of one)
// registered on the worker with Worker.RegisterStep, with args, under the
// task type's TypeOptions: its start-to-close and heartbeat timeouts and
// its retry policy. Steps are where a task does real work in ordinary Go
// code. Each attempt after the first appends a TASK_MESSAGE (level
// warning) saying so; a step can report progress itself through
// StepFrom(ctx). Get the result with the returned future's Get(ctx, &v).
// A step that fails for good fails the handler with the step's error,
// which the task's end maps (see the package doc).
func (t *Task) ExecuteStep(ctx workflow.Context, step any, args ...any) workflow.Future {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, t.opts.activityOptions()), step, args...)
}

// isCancel reports whether err is a workflow cancellation.
func isCancel(err error) bool {
	var ce *temporal.CanceledError
	return errors.As(err, &ce) || errors.Is(err, workflow.ErrCanceled)
}
