package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// maxClaimAttempts bounds Create's retries after finding a stale
// idempotency key (one naming a task that no longer exists).
const maxClaimAttempts = 3

// TaskRegistry is the contracts.TaskRegistry on Redis. Each task is a hash
// under its own hash tag; the owner-scoped idempotency key is a separate
// string naming the task id. Create is atomic on the idempotency key: the
// new record is written first, then the key is claimed by a
// set-if-absent script, and the losers of a race delete their record and
// return the winner's. Status changes and cancellation requests are Lua
// compare-and-set steps. Once a task has ended (terminal status or
// terminal event) its keys and its idempotency key expire TerminalTTL
// later.
//
// A TaskRegistry is safe for concurrent use and holds no goroutines. It
// does not own the Redis client.
type TaskRegistry struct {
	client redis.UniversalClient
	cfg    config
	keys   keys

	creates atomic.Uint64 // creates so far, for the owner index's pruning turns (ownerindex.go)
}

var _ contracts.TaskRegistry = (*TaskRegistry)(nil)

func newTaskRegistry(client redis.UniversalClient, cfg config) *TaskRegistry {
	return &TaskRegistry{client: client, cfg: cfg, keys: keys{prefix: cfg.prefix}}
}

func (r *TaskRegistry) taskKeys(taskID string) []string {
	return []string{r.keys.task(taskID), r.keys.events(taskID), r.keys.meta(taskID), r.keys.appends(taskID)}
}

// Create implements contracts.TaskRegistry. A zero CreatedAt or UpdatedAt
// is set from the store clock and an empty Status to ACCEPTED. A record
// without ClientRequestID is never deduplicated. A TaskID taken by another
// record returns an error wrapping contracts.ErrAlreadyExists.
func (r *TaskRegistry) Create(ctx context.Context, task contracts.TaskRecord) (contracts.TaskRecord, bool, error) {
	if task.TaskID == "" {
		return contracts.TaskRecord{}, false, errors.New("redisstore: create task: task id is required")
	}
	var idemKey string
	if task.ClientRequestID != "" {
		idemKey = r.keys.idem(task.OwnerID, task.ClientRequestID)
		// Fast path for repeats: the key is claimed and its task exists.
		existing, found, err := r.holder(ctx, idemKey)
		if err != nil {
			return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: %w", task.TaskID, err)
		}
		if found {
			return existing, false, nil
		}
	}

	now := r.cfg.now()
	if task.CreatedAt.IsZero() {
		task.CreatedAt = now
	}
	if task.UpdatedAt.IsZero() {
		task.UpdatedAt = task.CreatedAt
	}
	if task.Status == "" {
		task.Status = contracts.StatusAccepted
	}
	rec, err := json.Marshal(task)
	if err != nil {
		return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: encode: %w", task.TaskID, err)
	}
	cancel, ended, ttl := "", "", r.cfg.activeTTL
	if task.CancelRequested {
		cancel = "1"
	}
	if task.Status.IsTerminal() {
		ended, ttl = "1", r.cfg.terminalTTL
	}
	stored, err := putTaskScript.Run(ctx, r.client, r.taskKeys(task.TaskID),
		rec, string(task.Status), cancel, task.CancelReason, formatTime(task.UpdatedAt),
		ms(r.cfg.activeTTL), ms(r.cfg.terminalTTL), ended).Int()
	if err != nil {
		return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: %w", task.TaskID, err)
	}
	if stored == 0 {
		return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: %w", task.TaskID, contracts.ErrAlreadyExists)
	}
	if idemKey == "" {
		if err := r.indexTask(ctx, task); err != nil {
			r.discard(task.TaskID)
			return contracts.TaskRecord{}, false, err
		}
		return task, true, nil
	}

	for attempt := range maxClaimAttempts {
		holder, err := r.claim(ctx, idemKey, task, ttl, attempt == 0)
		if errors.Is(err, redis.Nil) {
			return task, true, nil // claimed: this call created the task
		}
		if err != nil {
			r.discard(task.TaskID)
			return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: claim idempotency key: %w", task.TaskID, err)
		}
		existing, err := r.Get(ctx, holder)
		if err == nil {
			r.discard(task.TaskID)
			return existing, false, nil
		}
		if !errors.Is(err, contracts.ErrNotFound) {
			r.discard(task.TaskID)
			return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: %w", task.TaskID, err)
		}
		// The key names a task that expired: release it (only if it still
		// names that task) and claim again.
		if err := releaseScript.Run(ctx, r.client, []string{idemKey}, holder).Err(); err != nil {
			r.discard(task.TaskID)
			return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: release stale idempotency key: %w", task.TaskID, err)
		}
	}
	r.discard(task.TaskID)
	return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: idempotency key kept naming missing tasks", task.TaskID)
}

// holder returns the live task an idempotency key names, if any.
func (r *TaskRegistry) holder(ctx context.Context, idemKey string) (contracts.TaskRecord, bool, error) {
	id, err := r.client.Get(ctx, idemKey).Result()
	if errors.Is(err, redis.Nil) {
		return contracts.TaskRecord{}, false, nil
	}
	if err != nil {
		return contracts.TaskRecord{}, false, err
	}
	task, err := r.Get(ctx, id)
	if errors.Is(err, contracts.ErrNotFound) {
		return contracts.TaskRecord{}, false, nil
	}
	return task, err == nil, err
}

// discard removes a record whose creation lost or failed. It runs on its
// own short context so that a cancelled caller does not leave the record
// behind; should it fail anyway, ActiveTTL removes the orphan, which no
// idempotency key names.
func (r *TaskRegistry) discard(taskID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.client.Del(ctx, r.keys.task(taskID)).Err()
}

// Get implements contracts.TaskRegistry; contracts.ErrNotFound for an
// unknown or expired task.
func (r *TaskRegistry) Get(ctx context.Context, taskID string) (contracts.TaskRecord, error) {
	if taskID == "" {
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	vals, err := r.client.HMGet(ctx, r.keys.task(taskID), "status", "cancel", "reason", "updated", "rec").Result()
	if err != nil {
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: get task %q: %w", taskID, err)
	}
	if vals[0] == nil {
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	return decodeTask(taskID, vals)
}

// UpdateStatus implements contracts.TaskRegistry: the check of
// contracts.TaskStatus.CanTransitionTo and the change are one atomic step.
// Moving to the current status is a no-op; from a terminal status it
// returns contracts.ErrTerminal, any other forbidden move
// contracts.ErrInvalidTransition. A terminal status starts TerminalTTL for
// the task's keys and its idempotency key.
func (r *TaskRegistry) UpdateStatus(ctx context.Context, taskID string, next contracts.TaskStatus) (contracts.TaskRecord, error) {
	args := make([]any, 0, 5+len(allStatuses)*2)
	args = append(args, "status", string(next), formatTime(r.cfg.now()), ms(r.cfg.activeTTL), ms(r.cfg.terminalTTL))
	args = appendRules(args, next)
	return r.update(ctx, taskID, args, "move to "+string(next))
}

// RequestCancellation implements contracts.TaskRegistry. The first
// request's reason is kept when asked again (as the memory store); it
// returns contracts.ErrTerminal when the task is terminal.
func (r *TaskRegistry) RequestCancellation(ctx context.Context, taskID, reason string) (contracts.TaskRecord, error) {
	args := make([]any, 0, 5+len(allStatuses))
	args = append(args, "cancel", reason, formatTime(r.cfg.now()), ms(r.cfg.activeTTL), ms(r.cfg.terminalTTL))
	args = appendRules(args, "")
	return r.update(ctx, taskID, args, "request cancellation")
}

// allStatuses lists the protocol's states, for deriving the script's rules.
var allStatuses = []contracts.TaskStatus{
	contracts.StatusAccepted, contracts.StatusRunning,
	contracts.StatusCompleted, contracts.StatusFailed, contracts.StatusCancelled,
}

// appendRules adds the terminal statuses and the statuses next may be
// reached from, in the form the update script reads.
func appendRules(args []any, next contracts.TaskStatus) []any {
	for _, s := range allStatuses {
		if s.IsTerminal() {
			args = append(args, "T:"+string(s))
		}
		if next != "" && s.CanTransitionTo(next) {
			args = append(args, "F:"+string(s))
		}
	}
	return args
}

func (r *TaskRegistry) update(ctx context.Context, taskID string, args []any, what string) (contracts.TaskRecord, error) {
	if taskID == "" {
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	raw, err := updateTaskScript.Run(ctx, r.client, r.taskKeys(taskID), args...).Slice()
	if err != nil {
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: task %q: %s: %w", taskID, what, err)
	}
	outcome, _ := raw[0].(string)
	if outcome == "missing" {
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	if len(raw) != 6 {
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: task %q: %s: unexpected reply of %d items", taskID, what, len(raw))
	}
	task, err := decodeTask(taskID, raw[1:])
	if err != nil {
		return contracts.TaskRecord{}, err
	}
	switch outcome {
	case "terminal":
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: task %q is %s: %s: %w", taskID, task.Status, what, contracts.ErrTerminal)
	case "invalid":
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: task %q is %s: %s: %w", taskID, task.Status, what, contracts.ErrInvalidTransition)
	case "ok":
		if err := r.touchIdem(ctx, task); err != nil {
			// The change is applied; only the key's expiry lags. A key left
			// naming an expired task is released by the next Create.
			r.cfg.log.Warn("redisstore: idempotency key expiry not updated", observe.Entry{
				TaskID: taskID, ClientRequestID: task.ClientRequestID,
				Transport: observe.TransportInternal, Err: err,
			})
		}
	}
	return task, nil
}

// touchIdem gives the task's idempotency key the expiry its record has.
func (r *TaskRegistry) touchIdem(ctx context.Context, task contracts.TaskRecord) error {
	if task.ClientRequestID == "" {
		return nil
	}
	ttl, ended := r.cfg.activeTTL, "0"
	if task.Status.IsTerminal() {
		ttl, ended = r.cfg.terminalTTL, "1"
	}
	err := touchIdemScript.Run(ctx, r.client, []string{r.keys.idem(task.OwnerID, task.ClientRequestID)},
		task.TaskID, ms(ttl), ended).Err()
	if err != nil {
		return fmt.Errorf("redisstore: task %q: expire idempotency key: %w", task.TaskID, err)
	}
	return nil
}

// decodeTask rebuilds a record from [status, cancel, reason, updated, rec].
func decodeTask(taskID string, vals []any) (contracts.TaskRecord, error) {
	var task contracts.TaskRecord
	if err := json.Unmarshal([]byte(str(vals[4])), &task); err != nil {
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: task %q: decode record: %w", taskID, err)
	}
	task.Status = contracts.TaskStatus(str(vals[0]))
	task.CancelRequested = str(vals[1]) == "1"
	task.CancelReason = str(vals[2])
	updated, err := parseTime(str(vals[3]))
	if err != nil {
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: task %q: updated: %w", taskID, err)
	}
	task.UpdatedAt = updated
	return task, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func notFound(what, id string) error {
	return fmt.Errorf("redisstore: %s %q: %w", what, id, contracts.ErrNotFound)
}

// formatTime and parseTime keep full precision and the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
