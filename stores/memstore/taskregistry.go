package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.TaskRegistry = (*TaskRegistry)(nil)

// errMissingTaskID is returned by TaskRegistry.Create for a record without
// a task id.
var errMissingTaskID = errors.New("taskbridge: memstore: task id is required")

// TaskRegistry is the in-memory contracts.TaskRegistry. It is safe for
// concurrent use; create it with NewTaskRegistry or New. Create is atomic per
// idempotency key (OwnerID, ClientRequestID); a record with an empty
// ClientRequestID has no key and is always created.
//
// Records are returned by value, but their slices (Input, Metadata,
// Attachments) are shared with the store: callers must not modify them.
type TaskRegistry struct {
	cfg   config
	mu    sync.RWMutex
	tasks map[string]*taskEntry
	keys  map[idemKey]string
	exp   expiryQueue

	owners ownerIndex // each owner's tasks in listing order (ownerindex.go)
}

type taskEntry struct {
	rec      contracts.TaskRecord
	expireAt int64 // UnixNano; 0: not scheduled
}

type idemKey struct{ owner, request string }

// NewTaskRegistry returns an empty registry configured by opts.
func NewTaskRegistry(opts Options) *TaskRegistry {
	return newTaskRegistry(opts.config())
}

func newTaskRegistry(cfg config) *TaskRegistry {
	return &TaskRegistry{
		cfg:   cfg,
		tasks: make(map[string]*taskEntry),
		keys:  make(map[idemKey]string),
	}
}

// Create stores task unless a task with the same (OwnerID, ClientRequestID)
// exists, in which case it returns that task and false. A zero CreatedAt or
// UpdatedAt is set to the clock's time and an empty Status to ACCEPTED. The
// record's Input, Metadata and Attachments slice are copied; attachment
// contents are shared. A task id already taken by another key returns
// contracts.ErrAlreadyExists.
func (r *TaskRegistry) Create(_ context.Context, task contracts.TaskRecord) (contracts.TaskRecord, bool, error) {
	if task.TaskID == "" {
		return contracts.TaskRecord{}, false, errMissingTaskID
	}
	now := r.cfg.now()
	nowNs := now.UnixNano()
	key := idemKey{task.OwnerID, task.ClientRequestID}

	r.mu.Lock()
	r.sweepLocked(nowNs)
	if task.ClientRequestID != "" {
		if id, ok := r.keys[key]; ok {
			if e := r.liveLocked(id, nowNs); e != nil {
				rec := e.rec
				r.mu.Unlock()
				return rec, false, nil
			}
		}
	}
	if r.liveLocked(task.TaskID, nowNs) != nil {
		r.mu.Unlock()
		return contracts.TaskRecord{}, false, fmt.Errorf("memstore: create task %q: %w", task.TaskID, contracts.ErrAlreadyExists)
	}
	if err := r.cfg.quota.admitTask(task.TaskID, task.OwnerID, taskBytes(task), nowNs); err != nil {
		r.mu.Unlock()
		return contracts.TaskRecord{}, false, fmt.Errorf("memstore: create task %q: %w", task.TaskID, err)
	}
	rec := cloneTask(task)
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now
	}
	if rec.UpdatedAt.IsZero() {
		rec.UpdatedAt = rec.CreatedAt
	}
	if rec.Status == "" {
		rec.Status = contracts.StatusAccepted
	}
	r.tasks[rec.TaskID] = &taskEntry{rec: rec}
	r.owners.add(&rec)
	if rec.ClientRequestID != "" {
		r.keys[key] = rec.TaskID
	}
	r.mu.Unlock()
	if rec.Status.IsTerminal() {
		r.cfg.terminated(r, rec.TaskID, now)
	}
	return rec, true, nil
}

// Get returns the task or contracts.ErrNotFound (also once it expired).
func (r *TaskRegistry) Get(_ context.Context, taskID string) (contracts.TaskRecord, error) {
	r.mu.RLock()
	e := r.tasks[taskID]
	if e == nil {
		r.mu.RUnlock()
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	rec, expireAt := e.rec, e.expireAt
	r.mu.RUnlock()
	if expireAt != 0 {
		if nowNs := r.cfg.now().UnixNano(); nowNs >= expireAt {
			r.mu.Lock()
			r.sweepLocked(nowNs)
			r.liveLocked(taskID, nowNs)
			r.mu.Unlock()
			return contracts.TaskRecord{}, notFound("task", taskID)
		}
	}
	return rec, nil
}

// UpdateStatus moves the task to next and sets UpdatedAt. Moving to the
// current status is a no-op; from a terminal status it returns
// contracts.ErrTerminal, and any other move TaskStatus.CanTransitionTo
// forbids returns contracts.ErrInvalidTransition.
func (r *TaskRegistry) UpdateStatus(_ context.Context, taskID string, next contracts.TaskStatus) (contracts.TaskRecord, error) {
	now := r.cfg.now()
	nowNs := now.UnixNano()
	r.mu.Lock()
	r.sweepLocked(nowNs)
	e := r.liveLocked(taskID, nowNs)
	if e == nil {
		r.mu.Unlock()
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	cur := e.rec.Status
	switch {
	case cur == next:
		rec := e.rec
		r.mu.Unlock()
		return rec, nil
	case cur.IsTerminal():
		r.mu.Unlock()
		return contracts.TaskRecord{}, fmt.Errorf("memstore: task %q is %s: %w", taskID, cur, contracts.ErrTerminal)
	case !cur.CanTransitionTo(next):
		r.mu.Unlock()
		return contracts.TaskRecord{}, fmt.Errorf("memstore: task %q: %s -> %q: %w", taskID, cur, next, contracts.ErrInvalidTransition)
	}
	e.rec.Status = next
	e.rec.UpdatedAt = now
	rec := e.rec
	r.mu.Unlock()
	if next.IsTerminal() {
		r.cfg.terminated(r, taskID, now)
	}
	return rec, nil
}

// RequestCancellation marks the task's cancellation as requested with
// reason (the first reason is kept when asked again) and sets UpdatedAt. It
// returns contracts.ErrTerminal when the task is terminal.
func (r *TaskRegistry) RequestCancellation(_ context.Context, taskID, reason string) (contracts.TaskRecord, error) {
	now := r.cfg.now()
	nowNs := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweepLocked(nowNs)
	e := r.liveLocked(taskID, nowNs)
	if e == nil {
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	if e.rec.Status.IsTerminal() {
		return contracts.TaskRecord{}, fmt.Errorf("memstore: task %q is %s: %w", taskID, e.rec.Status, contracts.ErrTerminal)
	}
	if !e.rec.CancelRequested {
		e.rec.CancelRequested = true
		e.rec.CancelReason = reason
		e.rec.UpdatedAt = now
	}
	return e.rec, nil
}

// expireTask implements terminalHook.
func (r *TaskRegistry) expireTask(taskID string, deadline time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.tasks[taskID]; e != nil && e.expireAt == 0 {
		e.expireAt = deadline.UnixNano()
		r.exp.push(taskID, deadline)
	}
}

// liveLocked returns the entry of taskID, removing it and returning nil when
// it has expired. r.mu must be held for writing.
func (r *TaskRegistry) liveLocked(taskID string, nowNs int64) *taskEntry {
	e := r.tasks[taskID]
	if e == nil {
		return nil
	}
	if e.expireAt != 0 && nowNs >= e.expireAt {
		r.removeLocked(e)
		return nil
	}
	return e
}

// sweepLocked removes the tasks whose deadline passed. r.mu must be held for
// writing.
func (r *TaskRegistry) sweepLocked(nowNs int64) {
	if !r.exp.due(nowNs) {
		return
	}
	for _, id := range r.exp.popDue(nowNs) {
		r.liveLocked(id, nowNs)
	}
}

func (r *TaskRegistry) removeLocked(e *taskEntry) {
	delete(r.tasks, e.rec.TaskID)
	r.owners.remove(&e.rec)
	key := idemKey{e.rec.OwnerID, e.rec.ClientRequestID}
	if r.keys[key] == e.rec.TaskID {
		delete(r.keys, key)
	}
}

// Usage returns what the stores of this registry's bundle (New) hold, as
// counted for Options.MaxBytes and MaxTasks, overall and for owner. A
// registry built on its own (NewTaskRegistry), or in a bundle with every
// limit off, counts nothing.
func (r *TaskRegistry) Usage(owner string) (all, ofOwner Usage) {
	if r.cfg.quota == nil {
		return Usage{}, Usage{}
	}
	return r.cfg.quota.usageOf(owner)
}

// len returns the number of stored tasks and idempotency keys (for tests).
func (r *TaskRegistry) len() (tasks, keys int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.tasks), len(r.keys)
}

// taskBytes is what a record holds beyond its fixed fields.
func taskBytes(t contracts.TaskRecord) int64 {
	n := int64(len(t.Input) + len(t.Metadata) + len(t.ClientRequestID) + len(t.TaskType) + len(t.OwnerID))
	for _, a := range t.Attachments {
		n += int64(len(a.Content) + len(a.Filename) + len(a.ContentType) + len(a.SHA256))
	}
	return n
}

func cloneTask(t contracts.TaskRecord) contracts.TaskRecord {
	t.Input = cloneRaw(t.Input)
	t.Metadata = cloneRaw(t.Metadata)
	t.Attachments = slices.Clone(t.Attachments)
	return t
}

func cloneRaw(m json.RawMessage) json.RawMessage {
	if m == nil {
		return nil
	}
	return slices.Clone(m)
}

func notFound(what, id string) error { return &notFoundError{what: what, id: id} }

// notFoundError is a store's "no such record": it wraps
// contracts.ErrNotFound and formats its text only when asked, since a miss
// is a normal answer on hot paths (an action's receipt check).
type notFoundError struct{ what, id string }

func (e *notFoundError) Error() string {
	return fmt.Sprintf("memstore: %s %q: %v", e.what, e.id, contracts.ErrNotFound)
}

func (e *notFoundError) Unwrap() error { return contracts.ErrNotFound }
