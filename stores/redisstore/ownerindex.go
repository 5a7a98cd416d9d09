package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

var _ contracts.TaskLister = (*TaskRegistry)(nil)

// The owner index lists each owner's tasks for ListTasks: a sorted set
// under the owner's own hash tag,
//
//	Powner:{<owner>}:tasks  zset  all scores 0; members "<ms>:<id>\x00\x00<type>"
//
// <ms> is the task's CreatedAt in Unix milliseconds, zero-padded to 16
// digits, <id> the task id with every NUL byte written as NUL 0x01, and
// <type> its task type. Equal scores make Redis order members by their
// bytes, and the escape keeps that order equal to the listing order
// (CreatedAt's milliseconds, then task id), with the task type after an
// unambiguous end of the id; so a page is one ZRANGE BYLEX REV from an
// exclusive bound, whatever was added since the cursor was issued, and the
// type filter needs no read of the record.
//
// The index follows the records: Create adds the member in the round trip
// that stores the record and claims the idempotency key (a creation that
// loses the race removes its member with its record; should that fail, the
// member's record is gone), and members
// whose record has expired or gone are removed when a listing meets them
// and, in batches from the oldest end, by one create in sixteen, which
// keeps the set near the owner's live tasks. The set
// itself expires ActiveTTL + TerminalTTL after the owner last created or
// listed a task (never when either TTL is off).

// ownerIndexKey returns the key of ownerID's index.
func (k keys) ownerIndex(ownerID string) string {
	return k.prefix + "owner:{" + tag(ownerID) + "}:tasks"
}

// createdDigits is the width of the zero-padded milliseconds of a member.
const createdDigits = 16

// ownerPosition appends the member prefix of a listing position: the
// milliseconds, the escaped task id and its terminator. Every member of
// that task starts with it; members of tasks later in the listing (older)
// sort before it.
func ownerPosition(dst []byte, ms int64, taskID string) []byte {
	ms = max(ms, 0)
	digits := strconv.AppendInt(nil, ms, 10)
	for range createdDigits - len(digits) {
		dst = append(dst, '0')
	}
	dst = append(dst, digits...)
	dst = append(dst, ':')
	for i := 0; i < len(taskID); i++ {
		dst = append(dst, taskID[i])
		if taskID[i] == 0 {
			dst = append(dst, 1)
		}
	}
	return append(dst, 0, 0)
}

// ownerMember returns the index member of a task.
func ownerMember(ms int64, taskID, taskType string) string {
	return string(append(ownerPosition(nil, ms, taskID), taskType...))
}

// parseOwnerMember is the inverse of ownerMember.
func parseOwnerMember(m string) (ms int64, taskID, taskType string, ok bool) {
	if len(m) < createdDigits+3 || m[createdDigits] != ':' {
		return 0, "", "", false
	}
	ms, err := strconv.ParseInt(m[:createdDigits], 10, 64)
	if err != nil {
		return 0, "", "", false
	}
	rest := m[createdDigits+1:]
	var id strings.Builder
	for i := 0; i < len(rest); i++ {
		if rest[i] != 0 {
			id.WriteByte(rest[i])
			continue
		}
		if i+1 >= len(rest) {
			return 0, "", "", false
		}
		switch rest[i+1] {
		case 0:
			return ms, id.String(), rest[i+2:], true
		case 1:
			id.WriteByte(0)
			i++
		default:
			return 0, "", "", false
		}
	}
	return 0, "", "", false
}

// indexTTL is the owner index's expiry: ActiveTTL + TerminalTTL, or 0
// (never) when either is off.
func (c *config) indexTTL() time.Duration {
	if c.activeTTL <= 0 || c.terminalTTL <= 0 {
		return 0
	}
	return c.activeTTL + c.terminalTTL
}

// indexAddLua defines index_add(index, member, ttl, n): it adds a member
// to an owner index, refreshes its expiry (TTL in ms, 0 = none) and, when
// n > 0, returns its n oldest members for pruning (else an empty list).
const indexAddLua = `
local function index_add(index, member, ttl, n)
  redis.call('ZADD', index, 0, member)
  ttl = tonumber(ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', index, ttl)
  else
    redis.call('PERSIST', index)
  end
  n = tonumber(n)
  if n > 0 then
    return redis.call('ZRANGE', index, 0, n - 1)
  end
  return {}
end
`

// indexAddScript is index_add.
// KEYS: index. ARGV: member, TTL ms (0 = none), how many of the oldest
// members to return (0: none).
var indexAddScript = redis.NewScript(indexAddLua + `
return index_add(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
`)

// indexRangeScript reads the next members of an owner index newest first
// and refreshes the index's expiry.
// KEYS: index. ARGV: exclusive start ("+" or "(<member prefix>"), count,
// TTL ms (0 = none).
var indexRangeScript = redis.NewScript(`
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('ZRANGE', KEYS[1], ARGV[1], '-', 'BYLEX', 'REV', 'LIMIT', 0, tonumber(ARGV[2]))
`)

// Pruning by Create: every pruneEvery-th create looks at the pruneBatch
// oldest members of its owner's index and removes those whose record is
// gone, so an owner who never lists keeps an index near its live tasks at
// an average cost of well under one round trip per create.
const (
	pruneEvery = 16
	pruneBatch = 32
)

// indexMember returns task's member of its owner's index.
func (r *TaskRegistry) indexMember(task contracts.TaskRecord) string {
	return ownerMember(task.CreatedAt.UnixMilli(), task.TaskID, task.TaskType)
}

// indexCall is the run of indexAddScript that adds task to its owner's
// index, sent in Create's pipeline; every pruneEvery-th create of the
// registry also asks for the oldest members, for prune.
func (r *TaskRegistry) indexCall(task contracts.TaskRecord) scriptCall {
	batch := 0
	if r.creates.Add(1)%pruneEvery == 1 {
		batch = pruneBatch
	}
	return scriptCall{script: indexAddScript, keys: []string{r.keys.ownerIndex(task.OwnerID)},
		args: []any{r.indexMember(task), ms(r.cfg.indexTTL()), batch}}
}

// prune removes the members among oldest whose record is gone. Only tasks
// created longer ago than the shortest TTL can have expired, so younger
// ones cost nothing; a failure is logged, not returned (listings prune
// too).
func (r *TaskRegistry) prune(ctx context.Context, key string, task contracts.TaskRecord, oldest []string) {
	cutoff := r.cfg.now().Add(-min(positiveOr(r.cfg.terminalTTL), positiveOr(r.cfg.activeTTL))).UnixMilli()
	var stale []string
	for _, m := range oldest {
		if created, id, _, ok := parseOwnerMember(m); !ok || (created < cutoff && id != task.TaskID) {
			stale = append(stale, m)
		}
	}
	if len(stale) == 0 {
		return
	}
	if err := r.pruneMembers(ctx, key, stale); err != nil {
		r.cfg.log.Warn("redisstore: owner index not pruned", observe.Entry{
			TaskID: task.TaskID, Transport: observe.TransportInternal, Err: err,
		})
	}
}

// positiveOr maps "never" (0) to the longest duration.
func positiveOr(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Duration(1<<63 - 1)
	}
	return d
}

// pruneMembers removes the members of key whose task record is gone.
func (r *TaskRegistry) pruneMembers(ctx context.Context, key string, members []string) error {
	pipe := r.client.Pipeline()
	exists := make([]*redis.IntCmd, len(members))
	for i, m := range members {
		if _, id, _, ok := parseOwnerMember(m); ok {
			exists[i] = pipe.Exists(ctx, r.keys.task(id))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	var gone []any
	for i, cmd := range exists {
		if cmd == nil || cmd.Val() == 0 {
			gone = append(gone, members[i])
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return r.client.ZRem(ctx, key, gone...).Err()
}

// listChunk bounds the members one ZRANGE of ListTasks fetches.
const listChunk = 256

// ListTasks implements contracts.TaskLister. It walks the owner's index
// newest first from q.After with ZRANGE BYLEX REV in chunks, drops members
// of other task types without reading anything else, reads status,
// cancellation and update time of the rest with one pipelined HMGET per
// chunk, and removes the members whose record is gone. CreatedAt in the
// headers has millisecond precision. At most max(q.ScanLimit, q.Limit)
// members are examined when q.ScanLimit > 0.
func (r *TaskRegistry) ListTasks(ctx context.Context, q contracts.TaskListQuery) (contracts.TaskListPage, error) {
	if q.OwnerID == "" {
		return contracts.TaskListPage{}, errors.New("redisstore: list tasks: owner id is required")
	}
	if q.Limit <= 0 {
		return contracts.TaskListPage{}, nil
	}
	budget := -1
	if q.ScanLimit > 0 {
		budget = max(q.ScanLimit, q.Limit)
	}
	key := r.keys.ownerIndex(q.OwnerID)
	start := "+"
	if !q.After.IsZero() {
		start = "(" + string(ownerPosition(nil, q.After.CreatedAt.UnixMilli(), q.After.TaskID))
	}
	var (
		page  contracts.TaskListPage
		stale []any
	)
	defer func() {
		if len(stale) > 0 {
			// Best effort, also when the caller has gone: the next listing retries.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = r.client.ZRem(cctx, key, stale...).Err()
			cancel()
		}
	}()
	for {
		n := listChunk
		if budget >= 0 {
			n = min(n, budget)
		}
		members, err := indexRangeScript.Run(ctx, r.client, []string{key}, start, n, ms(r.cfg.indexTTL())).StringSlice()
		if err != nil {
			return contracts.TaskListPage{}, fmt.Errorf("redisstore: list tasks of %q: %w", q.OwnerID, err)
		}
		headers, err := r.headers(ctx, q, members)
		if err != nil {
			return contracts.TaskListPage{}, err
		}
		exhausted := len(members) < n
		for i, m := range members {
			h := headers[i]
			budget--
			switch {
			case h.TaskID == "" && h.Status == "":
				stale = append(stale, m) // the record is gone (or the member is malformed)
			case h.Status != "" && q.Matches(h):
				page.Tasks = append(page.Tasks, h)
			}
			more := !exhausted || i < len(members)-1
			if more && (len(page.Tasks) == q.Limit || budget == 0) {
				ms, id, _, _ := parseOwnerMember(m)
				page.Next = contracts.CursorOf(id, time.UnixMilli(ms))
				return page, nil
			}
		}
		if exhausted || len(page.Tasks) == q.Limit || budget == 0 {
			return page, nil
		}
		start = "(" + members[len(members)-1]
	}
}

// headers returns the header of each member: zero (no TaskID, no Status)
// when the member is malformed or its record is gone; with TaskID but no
// Status when it is of a task type q filters out (its record is not read).
func (r *TaskRegistry) headers(ctx context.Context, q contracts.TaskListQuery, members []string) ([]contracts.TaskHeader, error) {
	out := make([]contracts.TaskHeader, len(members))
	cmds := make([]*redis.SliceCmd, len(members))
	var pipe redis.Pipeliner
	for i, m := range members {
		ms, id, typ, ok := parseOwnerMember(m)
		if !ok {
			continue
		}
		out[i] = contracts.TaskHeader{TaskID: id, OwnerID: q.OwnerID, TaskType: typ, CreatedAt: time.UnixMilli(ms).UTC()}
		if !q.MatchesType(typ) {
			continue
		}
		if pipe == nil {
			pipe = r.client.Pipeline()
		}
		cmds[i] = pipe.HMGet(ctx, r.keys.task(id), "status", "cancel", "updated")
	}
	if pipe == nil {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: list tasks of %q: %w", q.OwnerID, err)
	}
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		vals, err := cmd.Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: list tasks of %q: %w", q.OwnerID, err)
		}
		if vals[0] == nil {
			out[i] = contracts.TaskHeader{} // gone
			continue
		}
		updated, err := parseTime(str(vals[2]))
		if err != nil {
			return nil, fmt.Errorf("redisstore: list tasks: task %q: updated: %w", out[i].TaskID, err)
		}
		out[i].Status = contracts.TaskStatus(str(vals[0]))
		out[i].CancelRequested = str(vals[1]) == "1"
		out[i].UpdatedAt = updated
	}
	return out, nil
}
