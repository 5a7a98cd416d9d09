package orchestration

import (
	"context"
	"errors"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// CodeTaskSubmission is the code of the TASK_FAILED event appended when the
// executor refuses a new task.
const CodeTaskSubmission = string(bridgeerr.CodeTaskSubmission)

// CreationService creates tasks idempotently and submits them to the
// executor. It is safe for concurrent use.
type CreationService struct{ d *deps }

// Create validates cmd, creates the task unless (owner, clientRequestId)
// already names one, and submits a new task to the executor.
//
// Outcomes: a new task (Deduplicated false); the existing task when the
// request repeats one with the same task type, input and attachments
// (Deduplicated true, metadata is not compared); IDEMPOTENCY_CONFLICT when
// it repeats one with a different payload; TASK_OWNERSHIP_ERROR when the
// policy denies creation (a *bridgeerr.Error returned by the policy is kept
// as is); INVALID_REQUEST for a missing clientRequestId or taskType, input
// or metadata that is not a JSON object, or a task type the executor does
// not know; QUOTA_EXCEEDED when a SubjectLimits quota refuses it, and
// TASK_SUBMISSION_ERROR when the executor is at capacity (Ready fails),
// both before anything is stored; TASK_SUBMISSION_ERROR also when Submit
// then refuses the task, which is FAILED with a TASK_FAILED event so its
// streams end.
//
// A repeat is answered as such even when it arrives while its subject is
// at MaxActiveTasks or the executor at capacity: the refusal is checked
// against the registry (contracts.TaskFinder) first, so a client retrying
// a create whose answer it lost gets its task, not 429 or 503. That
// look-up costs a store read for refused creates only.
//
// The registry's Create is the single atomic idempotency point, so N
// concurrent identical requests create one task and submit it once.
func (s *CreationService) Create(ctx context.Context, cmd contracts.CreateTaskCommand) (contracts.TaskCreated, error) {
	d := s.d
	entry := observe.Entry{
		ClientRequestID: cmd.ClientRequestID, UserID: cmd.Auth.Subject, Transport: observe.TransportInternal,
	}
	if err := d.ownership.CanCreate(ctx, cmd.Auth); err != nil {
		entry.Outcome, entry.Err = "denied", err
		d.log.Warn("task.create.denied", entry)
		var be *bridgeerr.Error
		if errors.As(err, &be) {
			return contracts.TaskCreated{}, be
		}
		return contracts.TaskCreated{}, bridgeerr.Wrap(bridgeerr.CodeTaskOwnership, err, "not allowed to create tasks")
	}
	task, err := s.newRecord(cmd)
	if err != nil {
		entry.Outcome, entry.Err = "invalid", err
		d.log.Debug("task.create.invalid", entry)
		return contracts.TaskCreated{}, err
	}

	// Quotas and capacity are checked before anything is stored, so a
	// refused create leaves no task behind and its retry can succeed. A
	// create they refuse may repeat one that did succeed (a client retry
	// after a lost answer): that one answers its task, not the refusal.
	tk, err := d.admission.admit(ctx, cmd.Auth.Subject)
	if err != nil {
		if refusedByActiveLimit(err) {
			if res, found, rerr := s.repeated(ctx, task, entry); found {
				d.admission.refund(cmd.Auth.Subject)
				return res, rerr
			}
		}
		entry.Outcome, entry.Err = "quota", err
		d.log.Info("task.create.refused", entry)
		return contracts.TaskCreated{}, bridgeerr.From(err)
	}
	if err := executorReady(ctx, d.executor); err != nil {
		if res, found, rerr := s.repeated(ctx, task, entry); found {
			tk.cancel(true)
			return res, rerr
		}
		tk.cancel(false)
		entry.Outcome, entry.Err = "capacity", err
		d.log.Warn("task.create.refused", entry)
		return contracts.TaskCreated{}, bridgeerr.Wrap(bridgeerr.CodeTaskSubmission, err, "the executor is at capacity").
			WithDetails(map[string]any{"retryAfterSeconds": int64(1)})
	}
	// With leases the task is leased before it exists, so that a process
	// that dies between storing it and submitting it leaves a lease that
	// expires: the sweep then runs the task elsewhere (it never started).
	lease, err := d.leaseForCreate(ctx, task.TaskID)
	if err != nil {
		tk.cancel(false)
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.create.failed", entry)
		return contracts.TaskCreated{}, internal(err)
	}
	stored, created, err := d.registry.Create(ctx, task)
	if err != nil || !created {
		lease.release(ctx)
	}
	if err != nil {
		tk.cancel(false)
		entry.Outcome, entry.Err = "failed", err
		var le *contracts.LimitError
		if errors.As(err, &le) {
			d.log.Info("task.create.refused", entry)
		} else {
			d.log.Error("task.create.failed", entry)
		}
		return contracts.TaskCreated{}, internal(err)
	}
	entry.TaskID = stored.TaskID
	if !created {
		tk.cancel(true)
		return s.repeat(task, stored, entry)
	}

	if err := d.executor.Submit(ctx, stored); err != nil {
		tk.cancel(false)
		s.failSubmission(context.WithoutCancel(ctx), stored, entry, err)
		lease.release(ctx)
		return contracts.TaskCreated{}, bridgeerr.Wrap(bridgeerr.CodeTaskSubmission, err, "task could not be submitted").
			WithDetails(map[string]any{"taskId": stored.TaskID})
	}
	tk.commit(stored.TaskID)
	d.metrics.IncCounter(observe.MetricTaskStarts, 1)
	entry.Outcome = "accepted"
	d.log.Info("task.create.accepted", entry)
	return contracts.TaskCreated{
		TaskID: stored.TaskID, Status: stored.Status, ClientRequestID: stored.ClientRequestID,
	}, nil
}

// repeat answers a create whose (owner, clientRequestId) names the task
// stored already: that task, deduplicated, when the payload is the same
// (task type, input, attachments: the fingerprint), else
// IDEMPOTENCY_CONFLICT.
func (s *CreationService) repeat(task, stored contracts.TaskRecord, entry observe.Entry) (contracts.TaskCreated, error) {
	d := s.d
	entry.TaskID = stored.TaskID
	if stored.Fingerprint != task.Fingerprint {
		entry.Outcome = "conflict"
		d.log.Warn("task.create.conflict", entry)
		return contracts.TaskCreated{}, bridgeerr.New(bridgeerr.CodeIdempotencyConflict,
			"clientRequestId was already used with a different payload").
			WithDetails(map[string]any{"clientRequestId": task.ClientRequestID})
	}
	d.metrics.IncCounter(observe.MetricDuplicates, 1)
	entry.Outcome = "deduplicated"
	d.log.Info("task.create.duplicate", entry)
	return contracts.TaskCreated{
		TaskID: stored.TaskID, Status: stored.Status, ClientRequestID: stored.ClientRequestID, Deduplicated: true,
	}, nil
}

// repeated looks up the task a refused create's (owner, clientRequestId)
// names, when the registry can (contracts.TaskFinder), and answers the
// create as a repeat of it (found true). A failed look-up is logged and
// leaves the refusal standing.
func (s *CreationService) repeated(ctx context.Context, task contracts.TaskRecord, entry observe.Entry) (contracts.TaskCreated, bool, error) {
	finder, ok := s.d.registry.(contracts.TaskFinder)
	if !ok {
		return contracts.TaskCreated{}, false, nil
	}
	stored, err := finder.FindByClientRequestID(ctx, task.OwnerID, task.ClientRequestID)
	if err != nil {
		if !errors.Is(err, contracts.ErrNotFound) {
			entry.Outcome, entry.Err = "lookup_failed", err
			s.d.log.Warn("task.create.lookup_failed", entry)
		}
		return contracts.TaskCreated{}, false, nil
	}
	res, err := s.repeat(task, stored, entry)
	return res, true, err
}

// newRecord validates cmd and builds the record to create.
func (s *CreationService) newRecord(cmd contracts.CreateTaskCommand) (contracts.TaskRecord, error) {
	switch {
	case cmd.ClientRequestID == "":
		return contracts.TaskRecord{}, bridgeerr.New(bridgeerr.CodeInvalidRequest, "clientRequestId is required").
			WithDetails(map[string]any{"field": "clientRequestId"})
	case cmd.TaskType == "":
		return contracts.TaskRecord{}, bridgeerr.New(bridgeerr.CodeInvalidRequest, "taskType is required").
			WithDetails(map[string]any{"field": "taskType"})
	}
	input, err := contracts.CanonicalObject(cmd.Input)
	if err != nil {
		return contracts.TaskRecord{}, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "input must be a JSON object").
			WithDetails(map[string]any{"field": "input"})
	}
	metadata, err := contracts.CanonicalObject(cmd.Metadata)
	if err != nil {
		return contracts.TaskRecord{}, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "metadata must be a JSON object").
			WithDetails(map[string]any{"field": "metadata"})
	}
	if types, ok := s.d.executor.(TaskTypeRegistry); ok && !hasTaskType(types, cmd.TaskType) {
		return contracts.TaskRecord{}, bridgeerr.New(bridgeerr.CodeInvalidRequest, "unknown task type").
			WithDetails(map[string]any{"taskType": cmd.TaskType, "knownTaskTypes": types.TaskTypes()})
	}
	now := s.d.clock()
	return contracts.TaskRecord{
		TaskID:          contracts.NewID(),
		OwnerID:         cmd.Auth.Subject,
		ClientRequestID: cmd.ClientRequestID,
		TaskType:        cmd.TaskType,
		Input:           input,
		Metadata:        metadata,
		Attachments:     cmd.Attachments,
		Fingerprint:     contracts.Fingerprint(cmd.TaskType, input, cmd.Attachments),
		Status:          contracts.StatusAccepted,
		CreatedAt:       now,
		UpdatedAt:       now,
	}, nil
}

// failSubmission ends a task the executor refused: a TASK_FAILED event
// (which also moves the registry to FAILED) so that streams end too.
func (s *CreationService) failSubmission(ctx context.Context, task contracts.TaskRecord, entry observe.Entry, cause error) {
	d := s.d
	d.metrics.IncCounter(observe.MetricTaskFailures, 1, observe.Tag{Key: observe.TagReason, Value: CodeTaskSubmission})
	entry.Outcome, entry.Err = "submit_failed", cause
	d.log.Error("task.create.submit_failed", entry)
	draft, _ := contracts.Failed(CodeTaskSubmission, "the task could not be submitted for execution", true)
	if _, err := d.emitter.Emit(ctx, task.TaskID, draft); err != nil && !errors.Is(err, contracts.ErrTerminal) {
		entry.Outcome, entry.Err = "failed", err
		d.log.Error("task.create.mark_failed", entry)
	}
}

// hasTaskType asks types whether it runs taskType: by HasTaskType when it
// has one (Executor: a map lookup, where TaskTypes builds a sorted list),
// else from the list.
func hasTaskType(types TaskTypeRegistry, taskType string) bool {
	if h, ok := types.(interface{ HasTaskType(string) bool }); ok {
		return h.HasTaskType(taskType)
	}
	return contains(types.TaskTypes(), taskType)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// executorReady asks an executor that can tell (orchestration.Executor:
// Ready fails while its queue is full or after Close) whether it takes
// tasks now, so a create it would refuse is refused before the task is
// stored. A queue that fills between this check and Submit still fails the
// task (TASK_SUBMISSION_ERROR, retryable).
func executorReady(ctx context.Context, ex contracts.Executor) error {
	if r, ok := ex.(interface{ Ready(context.Context) error }); ok {
		return r.Ready(ctx)
	}
	return nil
}

// createLease is the lease a create takes on its new task for the
// in-process executor (the zero value: none).
type createLease struct {
	leases        contracts.LeaseStore
	taskID, owner string
}

// leaseForCreate leases taskID for the in-process executor when it holds
// leases (the lease Submit then renews); otherwise it takes none.
func (d *deps) leaseForCreate(ctx context.Context, taskID string) (createLease, error) {
	if d.leases == nil {
		return createLease{}, nil
	}
	sw := d.sweeperOf()
	if sw.exec == nil {
		return createLease{}, nil
	}
	if err := d.leases.Acquire(ctx, taskID, sw.holder, sw.exec.leaseTTL); err != nil {
		return createLease{}, err
	}
	return createLease{leases: d.leases, taskID: taskID, owner: sw.holder}, nil
}

// release gives the lease up (best effort: a lease left behind expires and
// the sweep releases it once it finds no task or an ended one), also when
// ctx was cancelled.
func (l createLease) release(ctx context.Context) {
	if l.leases != nil {
		_ = l.leases.Release(context.WithoutCancel(ctx), l.taskID, l.owner)
	}
}
