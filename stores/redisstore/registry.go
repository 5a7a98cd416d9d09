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
// return the winner's. On a single Redis (a *redis.Client) the record, the
// claim and the owner index entry are one script (createTaskScript), run
// in that order, so a new task costs one round trip. Status changes and
// cancellation requests are Lua compare-and-set steps. Once a task has
// ended (terminal status or terminal event) its keys and its idempotency
// key expire TerminalTTL later.
//
// A TaskRegistry is safe for concurrent use and holds no goroutines. It
// does not own the Redis client.
type TaskRegistry struct {
	client redis.UniversalClient
	cfg    config
	keys   keys
	// ordered is true when a pipeline's commands run in the order sent (a
	// single Redis). A cluster or ring client splits a pipeline by node,
	// so there Create writes the record before it sends the claim.
	ordered bool

	creates atomic.Uint64 // creates so far, for the owner index's pruning turns (ownerindex.go)
}

var _ contracts.TaskRegistry = (*TaskRegistry)(nil)

func newTaskRegistry(client redis.UniversalClient, cfg config) *TaskRegistry {
	_, ordered := client.(*redis.Client)
	return &TaskRegistry{client: client, cfg: cfg, keys: keys{prefix: cfg.prefix}, ordered: ordered}
}

func (r *TaskRegistry) taskKeys(taskID string) []string {
	return []string{r.keys.task(taskID), r.keys.events(taskID), r.keys.meta(taskID), r.keys.appends(taskID)}
}

// Create implements contracts.TaskRegistry. A zero CreatedAt or UpdatedAt
// is set from the store clock and an empty Status to ACCEPTED. A record
// without ClientRequestID is never deduplicated. A TaskID taken by another
// record returns an error wrapping contracts.ErrAlreadyExists.
//
// Round trips: a new task costs one on a single Redis (the record, the
// claim of the idempotency key and the owner index entry in one script)
// and two on a cluster (the record first); a repeat of an existing task
// costs one more (the holder's record, read in one pipeline with the
// removal of what the repeat wrote).
func (r *TaskRegistry) Create(ctx context.Context, task contracts.TaskRecord) (contracts.TaskRecord, bool, error) {
	if task.TaskID == "" {
		return contracts.TaskRecord{}, false, errors.New("redisstore: create task: task id is required")
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
	put := scriptCall{script: putTaskScript, keys: r.taskKeys(task.TaskID), args: []any{
		rec, string(task.Status), cancel, task.CancelReason, formatTime(task.UpdatedAt),
		ms(r.cfg.activeTTL), ms(r.cfg.terminalTTL), ended}}
	if task.ClientRequestID == "" {
		calls := []scriptCall{put, r.indexCall(task)}
		runScripts(ctx, r.client, calls)
		return r.created(ctx, task, "", calls[0].cmd, calls[1].cmd)
	}

	idemKey := r.keys.idem(task.OwnerID, task.ClientRequestID)
	for range maxClaimAttempts {
		calls := []scriptCall{put, {script: claimScript, keys: []string{idemKey}, args: []any{task.TaskID, ms(ttl)}}, r.indexCall(task)}
		if r.ordered {
			runCreate(ctx, r.client, calls)
		} else {
			// The claim must not reach Redis before the record: a creator
			// that finds the key naming a task without a record takes the
			// key for stale.
			runScripts(ctx, r.client, calls[:1])
			if err := putResult(task.TaskID, calls[0].cmd); err != nil {
				if !errors.Is(err, contracts.ErrAlreadyExists) {
					r.discard(ctx, task) // the write may have happened
				}
				return contracts.TaskRecord{}, false, err
			}
			runScripts(ctx, r.client, calls[1:])
		}
		holder, err := calls[1].cmd.Text()
		won := errors.Is(err, redis.Nil)
		if perr := putResult(task.TaskID, calls[0].cmd); errors.Is(perr, contracts.ErrAlreadyExists) {
			// The id is another record's: leave it, undo the rest.
			if won {
				r.release(ctx, idemKey, task.TaskID)
			}
			r.unindex(ctx, task)
			return contracts.TaskRecord{}, false, perr
		}
		if won {
			return r.created(ctx, task, idemKey, calls[0].cmd, calls[2].cmd) // claimed: this call creates the task
		}
		if err != nil {
			r.discard(ctx, task)
			return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: claim idempotency key: %w", task.TaskID, err)
		}
		// The key names another task: answer with it, removing what this
		// call wrote in the same round trip.
		existing, err := r.getAndDiscard(ctx, holder, task)
		if err == nil {
			return existing, false, nil
		}
		if !errors.Is(err, contracts.ErrNotFound) {
			return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: %w", task.TaskID, err)
		}
		// The key names a task that expired: release it (only if it still
		// names that task) and try again, record included.
		if err := releaseScript.Run(ctx, r.client, []string{idemKey}, holder).Err(); err != nil {
			return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: release stale idempotency key: %w", task.TaskID, err)
		}
	}
	return contracts.TaskRecord{}, false, fmt.Errorf("redisstore: create task %q: idempotency key kept naming missing tasks", task.TaskID)
}

// runCreate runs calls, the put, claim and index calls of a new task, as
// one createTaskScript on a single Redis (one EVALSHA where the pipeline of
// the three scripts costs Redis three), and gives each call its part of
// the reply as its cmd, read as the script's own reply would be.
func runCreate(ctx context.Context, client redis.UniversalClient, calls []scriptCall) {
	var keys [6]string
	args := make([]any, 0, 13)
	n := 0
	for i := range calls {
		n += copy(keys[n:], calls[i].keys)
		args = append(args, calls[i].args...)
	}
	reply, err := createTaskScript.Run(ctx, client, keys[:n], args...).Slice()
	if err == nil && len(reply) != len(calls) {
		err = fmt.Errorf("redisstore: create script answered %d values, want %d", len(reply), len(calls))
	}
	for i := range calls {
		var part error
		if err == nil {
			part, _ = reply[i].(error) // that script's error reply
		}
		switch {
		case err != nil:
			calls[i].cmd = redis.NewCmdResult(nil, err)
		case part != nil:
			calls[i].cmd = redis.NewCmdResult(nil, part)
		case reply[i] == nil: // Lua false
			calls[i].cmd = redis.NewCmdResult(nil, redis.Nil)
		default:
			calls[i].cmd = redis.NewCmdResult(reply[i], nil)
		}
	}
}

// created finishes a Create whose claim (if any: idemKey "" has none) was
// won: the record and the owner index entry must both have been written,
// or nothing is created (the claim is released and the record removed), so
// that no task exists that the owner's listing misses.
func (r *TaskRegistry) created(ctx context.Context, task contracts.TaskRecord, idemKey string, put, index *redis.Cmd) (contracts.TaskRecord, bool, error) {
	err := putResult(task.TaskID, put)
	oldest, ierr := index.StringSlice()
	if err == nil && ierr != nil {
		err = fmt.Errorf("redisstore: create task %q: index under its owner: %w", task.TaskID, ierr)
	}
	if err != nil {
		if idemKey != "" {
			r.release(ctx, idemKey, task.TaskID)
		}
		if errors.Is(err, contracts.ErrAlreadyExists) {
			r.unindex(ctx, task) // the record under that id is another task's
		} else {
			r.discard(ctx, task)
		}
		return contracts.TaskRecord{}, false, err
	}
	r.prune(ctx, r.keys.ownerIndex(task.OwnerID), task, oldest)
	return task, true, nil
}

// putResult reads putTaskScript's reply: nil when the record is stored,
// contracts.ErrAlreadyExists when its id is another record's.
func putResult(taskID string, cmd *redis.Cmd) error {
	n, err := cmd.Int()
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: create task %q: %w", taskID, err)
	case n == 0:
		return fmt.Errorf("redisstore: create task %q: %w", taskID, contracts.ErrAlreadyExists)
	}
	return nil
}

// release deletes the idempotency key if it still names taskID, on its own
// short context (as discard).
func (r *TaskRegistry) release(ctx context.Context, idemKey, taskID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = releaseScript.Run(ctx, r.client, []string{idemKey}, taskID).Err()
}

// getAndDiscard reads the record of holder and, in the same pipeline,
// removes the record and the owner index entry that task's Create wrote.
func (r *TaskRegistry) getAndDiscard(ctx context.Context, holder string, task contracts.TaskRecord) (contracts.TaskRecord, error) {
	if holder == "" {
		return contracts.TaskRecord{}, notFound("task", holder)
	}
	pipe := r.client.Pipeline()
	got := pipe.HMGet(ctx, r.keys.task(holder), taskFields...)
	pipe.Del(ctx, r.keys.task(task.TaskID))
	pipe.ZRem(ctx, r.keys.ownerIndex(task.OwnerID), r.indexMember(task))
	_, _ = pipe.Exec(ctx) // the removals are best effort: ActiveTTL and listings clean up
	vals, err := got.Result()
	if err != nil {
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: get task %q: %w", holder, err)
	}
	if vals[0] == nil {
		return contracts.TaskRecord{}, notFound("task", holder)
	}
	return decodeTask(holder, vals)
}

// discard removes a record whose creation lost or failed, with its owner
// index entry. It runs on its own short context so that a cancelled caller
// does not leave the record behind; should it fail anyway, ActiveTTL
// removes the orphan, which no idempotency key names, and listings drop
// the entry.
func (r *TaskRegistry) discard(ctx context.Context, task contracts.TaskRecord) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	pipe := r.client.Pipeline()
	pipe.Del(ctx, r.keys.task(task.TaskID))
	pipe.ZRem(ctx, r.keys.ownerIndex(task.OwnerID), r.indexMember(task))
	_, _ = pipe.Exec(ctx)
}

// unindex removes the owner index entry task's Create wrote, on its own
// short context (as discard).
func (r *TaskRegistry) unindex(ctx context.Context, task contracts.TaskRecord) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = r.client.ZRem(ctx, r.keys.ownerIndex(task.OwnerID), r.indexMember(task)).Err()
}

// taskFields are the fields of a task hash decodeTask reads, in its order.
var taskFields = []string{"status", "cancel", "reason", "updated", "rec"}

// Get implements contracts.TaskRegistry; contracts.ErrNotFound for an
// unknown or expired task.
func (r *TaskRegistry) Get(ctx context.Context, taskID string) (contracts.TaskRecord, error) {
	if taskID == "" {
		return contracts.TaskRecord{}, notFound("task", taskID)
	}
	vals, err := r.client.HMGet(ctx, r.keys.task(taskID), taskFields...).Result()
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
