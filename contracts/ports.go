package contracts

import (
	"context"
	"errors"
	"time"
)

// Errors the ports return (wrapped or bare); callers test them with
// errors.Is. The errors package (bridgeerr) maps them to stable wire codes.
var (
	// ErrNotFound: no task, suspension or receipt with that id (or it expired).
	ErrNotFound = errors.New("taskbridge: not found")
	// ErrAlreadyExists: a suspension with that id exists already.
	ErrAlreadyExists = errors.New("taskbridge: already exists")
	// ErrTerminal: the task already has its terminal event; nothing more may
	// be appended and its status may not change.
	ErrTerminal = errors.New("taskbridge: task is terminal")
	// ErrInvalidTransition: the status change breaks TaskStatus.CanTransitionTo.
	ErrInvalidTransition = errors.New("taskbridge: invalid status transition")
)

// TaskRegistry stores task records. Implementations are safe for concurrent
// use.
type TaskRegistry interface {
	// Create stores task unless a task with the same (OwnerID,
	// ClientRequestID) exists. It is atomic: of N concurrent calls with the
	// same key exactly one creates. It returns the stored record and true
	// when it created, or the existing record and false.
	Create(ctx context.Context, task TaskRecord) (TaskRecord, bool, error)
	// Get returns the task or ErrNotFound.
	Get(ctx context.Context, taskID string) (TaskRecord, error)
	// UpdateStatus moves the task to next and returns the new record. Moving
	// to the current status is a no-op; a move CanTransitionTo forbids
	// returns ErrInvalidTransition (ErrTerminal when the task is terminal).
	UpdateStatus(ctx context.Context, taskID string, next TaskStatus) (TaskRecord, error)
	// RequestCancellation marks the task's cancellation as requested with a
	// reason and returns the new record; ErrTerminal when it is terminal.
	RequestCancellation(ctx context.Context, taskID, reason string) (TaskRecord, error)
}

// Change tells a change-feed listener that a task has new events, up to
// LastEventID. Resync means notifications may have been lost (the feed
// reconnected): the listener must re-read every task it watches.
type Change struct {
	TaskID      string
	LastEventID EventID
	Resync      bool
}

// ChangeFeed notifies listeners of appended events.
type ChangeFeed interface {
	// Listen runs until ctx ends, calling fn for each change in append order
	// per task. Once it is subscribed, and again after any reconnect, it
	// calls fn with Change{Resync: true}: from that call on no append is
	// missed, so a listener re-reads what it watches and can then rely on
	// notices. fn must return quickly and must not call back into the store.
	// Listen returns ctx.Err() when ctx ends, or an error if the feed cannot
	// run at all.
	Listen(ctx context.Context, fn func(Change)) error
}

// EventStore is the append-only, per-task event log and the source of truth
// for every transport. Implementations are safe for concurrent use.
type EventStore interface {
	ChangeFeed
	// Append assigns the next id of the task's stream to draft, stores it
	// and notifies listeners. It rejects the zero draft (ErrInvalidPayload)
	// and any append after the task's terminal event (ErrTerminal).
	//
	// Append is idempotent by the draft's key (EventDraft.IdempotencyKey):
	// when the task already holds an event stored with the same non-empty
	// key, Append stores nothing, notifies nobody and returns that event
	// with a nil error, also after the task's terminal event (a retry of
	// the terminal append answers the terminal event, not ErrTerminal). The
	// check and the append are one atomic step, so of concurrent appends
	// with one key exactly one stores. A key is held as long as the event
	// stored with it is retained: a cap that drops the event, or the
	// expiry of the task's log, forgets the key with it.
	Append(ctx context.Context, taskID string, draft EventDraft) (TaskEvent, error)
	// Read returns up to limit events with ids strictly after after (zero:
	// from the oldest retained), in id order, and whether retention dropped
	// events after the cursor.
	Read(ctx context.Context, taskID string, after EventID, limit int) (EventPage, error)
}

// SuspensionStore stores suspensions. Implementations are safe for
// concurrent use.
type SuspensionStore interface {
	// Create stores a new OPEN suspension; ErrAlreadyExists when its id is
	// taken by another record. A store may answer nil to a record equal to
	// the one it holds (a retry of the call that stored it, after an
	// ambiguous failure); redisstore does.
	Create(ctx context.Context, s SuspensionRecord) error
	// Get returns the suspension or ErrNotFound.
	Get(ctx context.Context, taskID, suspendID string) (SuspensionRecord, error)
	// Resolve atomically applies r if the suspension is OPEN and returns the
	// new record and true; otherwise it returns the current record and
	// false. Of N concurrent calls exactly one wins.
	Resolve(ctx context.Context, taskID, suspendID string, r Resolution) (SuspensionRecord, bool, error)
	// MarkResumeDispatched records that the accepted action was handed back
	// to the executor.
	MarkResumeDispatched(ctx context.Context, taskID, suspendID string) (SuspensionRecord, error)
}

// SuspensionMaintenance is the sweeping side of a suspension store, used by
// the reconciliation and retention services.
type SuspensionMaintenance interface {
	// PendingHandoffs lists RESOLVED suspensions whose handoff is PENDING.
	PendingHandoffs(ctx context.Context, limit int) ([]SuspensionRecord, error)
	// ExpireOpen moves OPEN suspensions whose deadline is at or before
	// before to EXPIRED and returns how many it moved.
	ExpireOpen(ctx context.Context, before time.Time) (int, error)
}

// ActionReceiptStore stores receipts of accepted actions for idempotency.
type ActionReceiptStore interface {
	// Save stores r unless a receipt with the same (TaskID, ClientActionID)
	// exists; it returns the stored or existing receipt and whether it
	// stored.
	Save(ctx context.Context, r ActionReceipt) (ActionReceipt, bool, error)
	// Get returns the receipt or ErrNotFound.
	Get(ctx context.Context, taskID, clientActionID string) (ActionReceipt, error)
	// DeleteExpired removes receipts whose ExpiresAt is at or before before.
	DeleteExpired(ctx context.Context, before time.Time) (int, error)
}

// Executor runs tasks. The creation service calls Submit once per new task;
// the cancellation service calls Cancel after marking the request.
type Executor interface {
	// Submit starts (or queues) the task. It must not block on the task's
	// work; an error marks the task FAILED with TASK_SUBMISSION_ERROR.
	Submit(ctx context.Context, task TaskRecord) error
	// Cancel asks for cooperative cancellation of a running or queued task.
	Cancel(ctx context.Context, task TaskRecord) error
}

// OwnershipPolicy decides who may create tasks and who may see a task. A
// denial of access is reported to clients as TASK_NOT_FOUND.
type OwnershipPolicy interface {
	// CanCreate returns nil when auth may create tasks.
	CanCreate(ctx context.Context, auth AuthContext) error
	// CanAccess returns nil when auth may read and act on task.
	CanAccess(ctx context.Context, auth AuthContext, task TaskRecord) error
}

// ActionPolicy decides who may act on a task's suspensions, apart from who
// may read and cancel the task (OwnershipPolicy): an approver who is not
// the task's owner, for example. With an ActionPolicy, a caller the
// OwnershipPolicy refuses may still read the task when CanRead allows it
// (but never cancel it: that answers TASK_OWNERSHIP_ERROR, 403), and every
// action, the owner's included, needs CanAct. Implementations are safe for
// concurrent use.
type ActionPolicy interface {
	// CanRead returns nil when auth may read task (poll and stream it)
	// although the OwnershipPolicy refused: typically because auth may act
	// on it. A refusal is reported as TASK_NOT_FOUND.
	CanRead(ctx context.Context, auth AuthContext, task TaskRecord) error
	// CanAct returns nil when auth may submit an action of actionType to
	// the suspension susp of task. It is asked only of callers that may
	// read the task; a refusal answers TASK_OWNERSHIP_ERROR (403).
	CanAct(ctx context.Context, auth AuthContext, task TaskRecord, susp SuspensionRecord, actionType string) error
}

// UploadPolicy decides whether a create request's attachments are allowed.
type UploadPolicy interface {
	// CheckUpload returns nil to allow attachments, or an error (typically
	// an UPLOAD_VALIDATION_ERROR) to reject the request.
	CheckUpload(ctx context.Context, auth AuthContext, attachments []Attachment) error
}
