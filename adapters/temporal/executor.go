package tbtemporal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// ExecutorOptions configures NewExecutor.
type ExecutorOptions struct {
	// TaskTypes are the task types the workers run; the creation service
	// rejects any other type with 400 INVALID_REQUEST before a workflow
	// starts. Required (at least one).
	TaskTypes []string
	// TaskQueue is the Temporal task queue the workers poll.
	// Optional. Default: DefaultTaskQueue.
	TaskQueue string
	// WorkflowIDPrefix is put before a task id to make its workflow id; the
	// workers must use the same one. Optional. Default:
	// DefaultWorkflowIDPrefix.
	WorkflowIDPrefix string
	// Logger receives the executor's structured logs.
	// Optional. Default: zap.NewNop().
	Logger *zap.Logger
}

// Executor is the bridge's side of the adapter: a contracts.Executor that
// starts, cancels and resumes tasks as Temporal workflows run by Workers in
// any process. Every bridge instance builds its own; they need no channel
// between them, because Temporal is the one place a task's run lives:
//
//   - Submit starts workflow WorkflowID(prefix, taskID) of type
//     WorkflowName on TaskQueue. A submit repeated for the same task (a
//     retried create, another instance) finds the workflow started or
//     finished and starts nothing.
//   - Cancel requests cancellation of that workflow, whichever instance
//     receives the request; the worker ends the task TASK_CANCELLED.
//   - Resume (orchestration.ResumeHook) signals ActionSignal with the
//     accepted action; Temporal keeps the signal in the workflow's history
//     until a worker runs the suspended handler, also across worker
//     restarts. When the signal cannot be sent the action service leaves
//     the handoff PENDING and reconciliation resumes it later.
//   - TaskTypes (orchestration.TaskTypeRegistry) lists ExecutorOptions.TaskTypes.
//   - Ready (observe.ExecutorReadiness) and Probe report whether the
//     Temporal frontend answers, for GET /ready.
//
// An Executor holds no goroutines and is safe for concurrent use. It does
// not own the Temporal client: the host closes it after the bridge.
type Executor struct {
	c      client.Client
	queue  string
	prefix string
	types  []string
	log    *zap.Logger
}

var (
	_ contracts.Executor             = (*Executor)(nil)
	_ orchestration.ResumeHook       = (*Executor)(nil)
	_ orchestration.TaskTypeRegistry = (*Executor)(nil)
	_ observe.ExecutorReadiness      = (*Executor)(nil)
)

// NewExecutor returns an Executor that starts tasks through c. It fails
// when c is nil or opts.TaskTypes is empty. It does not contact Temporal.
func NewExecutor(c client.Client, opts ExecutorOptions) (*Executor, error) {
	if c == nil {
		return nil, errors.New("tbtemporal: NewExecutor needs a Temporal client")
	}
	if len(opts.TaskTypes) == 0 {
		return nil, errors.New("tbtemporal: ExecutorOptions.TaskTypes must name the task types the workers run")
	}
	types := slices.Clone(opts.TaskTypes)
	slices.Sort(types)
	types = slices.Compact(types)
	if types[0] == "" {
		return nil, errors.New("tbtemporal: ExecutorOptions.TaskTypes holds an empty type")
	}
	x := &Executor{c: c, queue: opts.TaskQueue, prefix: opts.WorkflowIDPrefix, types: types, log: opts.Logger}
	if x.queue == "" {
		x.queue = DefaultTaskQueue
	}
	if x.prefix == "" {
		x.prefix = DefaultWorkflowIDPrefix
	}
	if x.log == nil {
		x.log = zap.NewNop()
	}
	return x, nil
}

// TaskTypes implements orchestration.TaskTypeRegistry: the configured task
// types, sorted. The slice is shared; do not modify it.
func (x *Executor) TaskTypes() []string { return x.types }

// Submit implements contracts.Executor: it starts the task's workflow and
// returns once Temporal has recorded the start, not when the task ends. A
// workflow of that id that exists already (running or finished) is not
// started again and Submit returns nil. An error (Temporal unreachable, an
// unknown type) makes the creation service fail the task with
// TASK_SUBMISSION_ERROR.
func (x *Executor) Submit(ctx context.Context, task contracts.TaskRecord) error {
	if !slices.Contains(x.types, task.TaskType) {
		return fmt.Errorf("%w %q", orchestration.ErrUnknownTaskType, task.TaskType)
	}
	_, err := x.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        WorkflowID(x.prefix, task.TaskID),
		TaskQueue: x.queue,
		// A finished task's id is never run again, and a running one is
		// returned as it is: Submit is idempotent per task.
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, WorkflowName, workflowRecord(task))
	if err != nil {
		x.log.Error("temporal.submit.failed", zap.String(observe.FieldTaskID, task.TaskID), zap.Error(err))
		return fmt.Errorf("tbtemporal: start workflow of task %s: %w", task.TaskID, err)
	}
	x.log.Info("temporal.submit.started", zap.String(observe.FieldTaskID, task.TaskID))
	return nil
}

// workflowRecord is the task record as the workflow receives it: without
// attachment contents, which do not belong in workflow history (Temporal
// caps a payload at a few MiB). Handlers see each attachment's name, type,
// size and SHA-256.
func workflowRecord(task contracts.TaskRecord) contracts.TaskRecord {
	if len(task.Attachments) == 0 {
		return task
	}
	atts := make([]contracts.Attachment, len(task.Attachments))
	for i, a := range task.Attachments {
		a.Content = nil
		atts[i] = a
	}
	task.Attachments = atts
	return task
}

// Cancel implements contracts.Executor: it requests cancellation of the
// task's workflow. The worker's handler sees its workflow.Context
// cancelled and the task ends TASK_CANCELLED with task.CancelReason (read
// from the registry). A workflow that does not exist or has finished is
// not an error: the task has ended, or never started.
func (x *Executor) Cancel(ctx context.Context, task contracts.TaskRecord) error {
	err := x.c.CancelWorkflow(ctx, WorkflowID(x.prefix, task.TaskID), "")
	if err != nil && !isGone(err) {
		x.log.Error("temporal.cancel.failed", zap.String(observe.FieldTaskID, task.TaskID), zap.Error(err))
		return fmt.Errorf("tbtemporal: cancel workflow of task %s: %w", task.TaskID, err)
	}
	return nil
}

// Resume implements orchestration.ResumeHook: it signals the task's
// workflow with the accepted action (ActionSignal). The action service calls
// it after TASK_ACTION_ACCEPTED is in the log, and reconciliation calls it
// again for handoffs left PENDING; a suspended handler takes the signal of
// its own suspension and ignores repeats. A finished workflow is not an
// error (there is nothing left to resume).
func (x *Executor) Resume(ctx context.Context, cmd contracts.SubmitActionCommand, s contracts.SuspensionRecord) error {
	sig := actionSignal{
		SuspendID: s.SuspendID, ClientActionID: cmd.ClientActionID, ActionType: cmd.ActionType,
		Payload: cmd.Payload, ActorID: cmd.Auth.Subject,
	}
	err := x.c.SignalWorkflow(ctx, WorkflowID(x.prefix, s.TaskID), "", ActionSignal, sig)
	if err != nil && !isGone(err) {
		x.log.Error("temporal.resume.failed", zap.String(observe.FieldTaskID, s.TaskID), zap.Error(err))
		return fmt.Errorf("tbtemporal: signal workflow of task %s: %w", s.TaskID, err)
	}
	return nil
}

// ErrFrontendUnavailable is what Ready reports while the Temporal frontend
// does not answer its health check; its text is safe for /ready bodies.
var ErrFrontendUnavailable = errors.New("temporal frontend does not answer")

// Ready implements observe.ExecutorReadiness: nil while the Temporal
// frontend answers a health check within ctx, ErrFrontendUnavailable
// otherwise (the cause is logged, not returned, so /ready shows no
// addresses).
func (x *Executor) Ready(ctx context.Context) error {
	if _, err := x.c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		x.log.Warn("temporal.ready.failing", zap.Error(err))
		return ErrFrontendUnavailable
	}
	return nil
}

// Probe returns Ready as an observe.Probe, for observe.NewComposite:
//
//	observe.NamedProbe{Name: "temporal", Probe: x.Probe()}
func (x *Executor) Probe() observe.Probe { return observe.ProbeFunc(x.Ready) }

// isGone reports whether err says the workflow does not exist or has
// already finished.
func isGone(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// actionSignal is ActionSignal's payload.
type actionSignal struct {
	SuspendID      string          `json:"suspendId"`
	ClientActionID string          `json:"clientActionId"`
	ActionType     string          `json:"actionType"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	ActorID        string          `json:"actorId"`
}
