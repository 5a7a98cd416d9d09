package orchestration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Emitter appends a task's events and keeps the registry's status following
// them. It needs only the stores, so a worker in another process that shares
// them (e.g. Redis) can drive tasks created here; the in-process Executor
// uses one too. It is safe for concurrent use and holds no goroutines.
//
// Order: the event is appended first and the registry updated second. The
// event log is the source of truth that every stream replays, and the store
// enforces exactly one terminal event per task (an append after it fails
// with contracts.ErrTerminal), so of two racing terminal emits exactly one
// wins and only the winner touches the registry. Updating the registry first
// would let a losing emitter set a status that no event explains. If the
// process stops between the two steps, the registry lags the log until the
// next emit; readers that need the exact state read the log.
type Emitter struct {
	registry    contracts.TaskRegistry
	events      contracts.EventStore
	suspensions contracts.SuspensionStore
	log         *observe.Logger
	clock       func() time.Time
	retry       retrier
}

// EmitterOptions configures NewEmitter.
type EmitterOptions struct {
	// Stores are the stores the emitter writes to. Stores.Tasks and
	// Stores.Events are required; Stores.Suspensions is needed by Suspend
	// only (without it Suspend returns an error); Stores.Receipts is not
	// used.
	Stores contracts.Stores
	// Logger receives structured logs. Optional. Default: zap.NewNop().
	Logger *zap.Logger
	// Clock stamps suspensions. Optional. Default: time.Now.
	Clock func() time.Time
	// Retry bounds the retries of an append or status update that failed
	// without a definite answer (see RetryPolicy).
	// Optional. Default: 15s of retries, 5s per attempt.
	Retry RetryPolicy
}

// NewEmitter returns an Emitter over opts.Stores. It returns an error when
// Stores.Tasks or Stores.Events is missing.
func NewEmitter(opts EmitterOptions) (*Emitter, error) {
	var missing []string
	if opts.Stores.Tasks == nil {
		missing = append(missing, "Stores.Tasks")
	}
	if opts.Stores.Events == nil {
		missing = append(missing, "Stores.Events")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("taskbridge: orchestration.NewEmitter: %s must be set", strings.Join(missing, ", "))
	}
	return newEmitter(opts.Stores.Tasks, opts.Stores.Events, opts.Stores.Suspensions,
		observe.NewLogger(opts.Logger), opts.Clock, opts.Retry), nil
}

// newEmitter is NewEmitter for the services and the executor, which share
// their logger. suspensions may be nil, clock nil means time.Now.
func newEmitter(registry contracts.TaskRegistry, events contracts.EventStore, suspensions contracts.SuspensionStore,
	log *observe.Logger, clock func() time.Time, retry RetryPolicy) *Emitter {
	if clock == nil {
		clock = time.Now
	}
	return &Emitter{registry: registry, events: events, suspensions: suspensions, log: log, clock: clock,
		retry: retry.retrier()}
}

// Emit appends draft to the task's stream and moves the registry status:
// TASK_STARTED to RUNNING; a terminal event to its status (through RUNNING
// when the task is still ACCEPTED and the direct move is not allowed, as for
// a COMPLETED from a worker that never sent STARTED). Errors:
// TASK_ALREADY_TERMINAL (wrapping contracts.ErrTerminal) after the terminal
// event; INVALID_REQUEST for a zero draft. When the append succeeded but the
// registry update failed, Emit returns the stored event together with the
// error: the event stands.
//
// Every append carries an idempotency key (contracts.EventDraft
// WithIdempotencyKey): the draft's own when the caller set one, else a
// random key drawn once for this call. An append or status update that
// fails without a definite answer (a timeout, a reset connection) is
// retried with the same key within EmitterOptions.Retry before Emit
// reports the failure, so the log holds the event once whether or not the
// failed attempt was applied. The same holds for the Redis client's own
// retries, and for a caller that retries Emit with a draft that carries
// its own key (a worker that derives keys from its own step ids is safe
// across its own restarts too).
func (e *Emitter) Emit(ctx context.Context, taskID string, draft contracts.EventDraft) (contracts.TaskEvent, error) {
	return e.emit(ctx, taskID, draft, false)
}

// emit is Emit; unbounded retries past the policy's budget, until ctx
// ends (the executor's terminal events).
func (e *Emitter) emit(ctx context.Context, taskID string, draft contracts.EventDraft, unbounded bool) (contracts.TaskEvent, error) {
	if draft.IsZero() {
		return contracts.TaskEvent{}, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, contracts.ErrInvalidPayload,
			"event draft is empty; build it with a contracts constructor")
	}
	if draft.IdempotencyKey() == "" {
		draft = draft.WithIdempotencyKey(contracts.NewID())
	}
	var ev contracts.TaskEvent
	err := e.retry.do(ctx, unbounded, func(ctx context.Context) error {
		var err error
		ev, err = e.events.Append(ctx, taskID, draft)
		return err
	}, e.retrying(taskID, "append", draft.Type()))
	if err != nil {
		if errors.Is(err, contracts.ErrInvalidPayload) {
			return contracts.TaskEvent{}, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "invalid event")
		}
		e.log.Error("task.emit.failed", observe.Entry{
			TaskID: taskID, Transport: observe.TransportInternal, Outcome: "failed", Err: err,
			Details: map[string]any{"type": string(draft.Type())},
		})
		return contracts.TaskEvent{}, bridgeerr.From(err)
	}
	err = e.retry.do(ctx, unbounded, func(ctx context.Context) error {
		return e.follow(ctx, taskID, draft.Type())
	}, e.retrying(taskID, "status", draft.Type()))
	if err != nil {
		e.log.Error("task.status.update_failed", observe.Entry{
			TaskID: taskID, EventID: ev.EventID.String(), Transport: observe.TransportInternal,
			Outcome: "failed", Err: err, Details: map[string]any{"type": string(draft.Type())},
		})
		return ev, bridgeerr.From(err)
	}
	return ev, nil
}

// retrying returns the log hook of a retried write: the first retry of a
// write at Warn, later ones at Debug.
func (e *Emitter) retrying(taskID, what string, t contracts.EventType) func(int, error) {
	return func(attempt int, err error) {
		entry := observe.Entry{TaskID: taskID, Transport: observe.TransportInternal, Outcome: "retrying", Err: err,
			Details: map[string]any{"write": what, "type": string(t), "attempt": attempt}}
		if attempt == 1 {
			e.log.Warn("task.emit.retrying", entry)
		} else {
			e.log.Debug("task.emit.retrying", entry)
		}
	}
}

// follow moves the registry to the status t implies.
func (e *Emitter) follow(ctx context.Context, taskID string, t contracts.EventType) error {
	next, terminal := contracts.TerminalStatusFor(t)
	if !terminal {
		if t != contracts.EventStarted {
			return nil
		}
		next = contracts.StatusRunning
	}
	_, err := e.registry.UpdateStatus(ctx, taskID, next)
	if terminal && errors.Is(err, contracts.ErrInvalidTransition) {
		if _, err = e.registry.UpdateStatus(ctx, taskID, contracts.StatusRunning); err == nil {
			_, err = e.registry.UpdateStatus(ctx, taskID, next)
		}
	}
	if !terminal && (errors.Is(err, contracts.ErrInvalidTransition) || errors.Is(err, contracts.ErrTerminal)) {
		// A late STARTED (e.g. a worker's retry) leaves the status alone.
		return nil
	}
	return err
}

// Started emits TASK_STARTED.
func (e *Emitter) Started(ctx context.Context, taskID, message string) (contracts.TaskEvent, error) {
	return e.Emit(ctx, taskID, contracts.Started(message))
}

// Progress emits TASK_PROGRESS; pct must be within 0..100.
func (e *Emitter) Progress(ctx context.Context, taskID string, pct float64, stage, message string) (contracts.TaskEvent, error) {
	draft, err := contracts.Progress(pct, stage, message)
	if err != nil {
		return contracts.TaskEvent{}, invalidDraft(err)
	}
	return e.Emit(ctx, taskID, draft)
}

// Message emits TASK_MESSAGE.
func (e *Emitter) Message(ctx context.Context, taskID, message string, level contracts.MessageLevel) (contracts.TaskEvent, error) {
	draft, err := contracts.Message(message, level)
	if err != nil {
		return contracts.TaskEvent{}, invalidDraft(err)
	}
	return e.Emit(ctx, taskID, draft)
}

// Complete emits TASK_COMPLETED with result encoded as JSON.
func (e *Emitter) Complete(ctx context.Context, taskID string, result any) (contracts.TaskEvent, error) {
	draft, err := contracts.Completed(result)
	if err != nil {
		return contracts.TaskEvent{}, invalidDraft(err)
	}
	return e.Emit(ctx, taskID, draft)
}

// Fail emits TASK_FAILED; code and message are required.
func (e *Emitter) Fail(ctx context.Context, taskID, code, message string, retryable bool) (contracts.TaskEvent, error) {
	draft, err := contracts.Failed(code, message, retryable)
	if err != nil {
		return contracts.TaskEvent{}, invalidDraft(err)
	}
	return e.Emit(ctx, taskID, draft)
}

// Cancelled emits TASK_CANCELLED; reason is required.
func (e *Emitter) Cancelled(ctx context.Context, taskID, reason, message string) (contracts.TaskEvent, error) {
	draft, err := contracts.Cancelled(reason, message)
	if err != nil {
		return contracts.TaskEvent{}, invalidDraft(err)
	}
	return e.Emit(ctx, taskID, draft)
}

// Suspend opens a suspension of taskID from spec: it stores the OPEN
// SuspensionRecord (owned by the task's owner) first, so an action that
// follows the event always finds it, then appends TASK_SUSPENDED. When the
// append fails (e.g. the task is terminal) the suspension is resolved
// CANCELLED. It returns the stored record. An external worker learns of the
// accepted action from TASK_ACTION_ACCEPTED on the stream or by reading the
// record and receipt. It needs EmitterOptions.Stores.Suspensions.
func (e *Emitter) Suspend(ctx context.Context, taskID string, spec SuspendSpec) (contracts.SuspensionRecord, error) {
	rec, _, err := e.suspend(ctx, taskID, contracts.NewID(), spec)
	return rec, err
}

func (e *Emitter) suspend(ctx context.Context, taskID, suspendID string, spec SuspendSpec) (contracts.SuspensionRecord, contracts.TaskEvent, error) {
	if e.suspensions == nil {
		return contracts.SuspensionRecord{}, contracts.TaskEvent{}, bridgeerr.New(bridgeerr.CodeInternal,
			"orchestration: Suspend needs a suspension store")
	}
	now := e.clock()
	rec, payload := spec.record(taskID, suspendID, now)
	draft, err := contracts.Suspended(payload)
	if err != nil {
		return contracts.SuspensionRecord{}, contracts.TaskEvent{}, invalidDraft(err)
	}
	task, err := e.registry.Get(ctx, taskID)
	if err != nil {
		return contracts.SuspensionRecord{}, contracts.TaskEvent{}, bridgeerr.From(err)
	}
	if task.Status.IsTerminal() {
		return contracts.SuspensionRecord{}, contracts.TaskEvent{}, bridgeerr.Wrap(bridgeerr.CodeTaskAlreadyTerminal,
			contracts.ErrTerminal, "task is already terminal")
	}
	rec.OwnerID = task.OwnerID
	if err := e.suspensions.Create(ctx, rec); err != nil {
		return contracts.SuspensionRecord{}, contracts.TaskEvent{}, bridgeerr.From(err)
	}
	ev, err := e.Emit(ctx, taskID, draft)
	if err != nil {
		_, _, rerr := e.suspensions.Resolve(context.WithoutCancel(ctx), taskID, suspendID,
			contracts.Resolution{Status: contracts.SuspensionCancelled, At: e.clock()})
		if rerr != nil {
			e.log.Error("task.suspend.cleanup_failed", observe.Entry{
				TaskID: taskID, Transport: observe.TransportInternal, Outcome: "failed", Err: rerr,
				Details: map[string]any{"suspendId": suspendID},
			})
		}
		return contracts.SuspensionRecord{}, contracts.TaskEvent{}, err
	}
	return rec, ev, nil
}

func invalidDraft(err error) error {
	return bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "invalid event")
}

// SuspendSpec describes a suspension: what the task waits for. Kind
// defaults to USER_ACTION_REQUIRED and SchemaVersion to 1; ReasonCode and at
// least one AllowedActions entry are required. The deadline is ExpiresAt
// when set, else now+Timeout when Timeout > 0, else none.
type SuspendSpec struct {
	Kind           contracts.SuspensionKind
	ReasonCode     string
	AllowedActions []string
	SchemaVersion  int
	ExpiresAt      time.Time
	Timeout        time.Duration
	Interaction    map[string]any
	UIHints        map[string]any
}

// Record returns what opening spec as suspension suspendID of taskID at now
// stores and appends: the OPEN record (OwnerID left empty) and the
// TASK_SUSPENDED payload, with the defaults and the deadline applied as
// Suspend applies them. Executors that open suspensions in steps of their
// own (the Temporal adapter) build both with it.
func (spec SuspendSpec) Record(taskID, suspendID string, now time.Time) (contracts.SuspensionRecord, contracts.SuspendedPayload) {
	return spec.record(taskID, suspendID, now)
}

// record builds the OPEN record and the TASK_SUSPENDED payload of spec.
func (spec SuspendSpec) record(taskID, suspendID string, now time.Time) (contracts.SuspensionRecord, contracts.SuspendedPayload) {
	kind := spec.Kind
	if kind == "" {
		kind = contracts.KindUserActionRequired
	}
	version := spec.SchemaVersion
	if version == 0 {
		version = 1
	}
	expires := spec.ExpiresAt
	if expires.IsZero() && spec.Timeout > 0 {
		expires = now.Add(spec.Timeout)
	}
	// Wire timestamps have millisecond precision; the record keeps the same
	// instant as the event.
	expires = expires.Truncate(time.Millisecond)
	allowed := append([]string(nil), spec.AllowedActions...)
	rec := contracts.SuspensionRecord{
		TaskID: taskID, SuspendID: suspendID, Status: contracts.SuspensionOpen, Kind: kind,
		ReasonCode: spec.ReasonCode, AllowedActions: allowed, SchemaVersion: version,
		Interaction: spec.Interaction, UIHints: spec.UIHints, Handoff: contracts.HandoffNone,
		CreatedAt: now, ExpiresAt: expires,
	}
	p := contracts.SuspendedPayload{
		SuspendID: suspendID, Kind: kind, ReasonCode: spec.ReasonCode, AllowedActions: allowed,
		SchemaVersion: version, UIHints: spec.UIHints, Interaction: spec.Interaction,
	}
	if !expires.IsZero() {
		utc := expires.UTC()
		p.ExpiresAt = &utc
	}
	return rec, p
}
