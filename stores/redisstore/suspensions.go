package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// expireBatch is how many suspensions (or receipts) one sweep script
// handles.
const expireBatch = 128

// SuspensionStore is the contracts.SuspensionStore and
// contracts.SuspensionMaintenance on Redis. Each suspension is a hash; two
// sorted sets index the OPEN suspensions by deadline (for ExpireOpen) and
// the RESOLVED ones whose handoff is PENDING by resolution time (for
// PendingHandoffs). All of them share the {susp} hash tag, so a record and
// its index entries change in one atomic script (suspensions come one per
// human action, so one slot carries them easily). Resolve is a Lua
// compare-and-set from OPEN: of N concurrent calls exactly one wins and
// the others receive the winner's record.
//
// Retention: an OPEN or PENDING suspension lives ActiveTTL after its last
// write; an EXPIRED, CANCELLED or handed-off one TerminalTTL after it got
// there.
//
// A SuspensionStore is safe for concurrent use and holds no goroutines. It
// does not own the Redis client.
type SuspensionStore struct {
	client redis.UniversalClient
	cfg    config
	keys   keys
}

var (
	_ contracts.SuspensionStore       = (*SuspensionStore)(nil)
	_ contracts.SuspensionMaintenance = (*SuspensionStore)(nil)
)

func newSuspensionStore(client redis.UniversalClient, cfg config) *SuspensionStore {
	return &SuspensionStore{client: client, cfg: cfg, keys: keys{prefix: cfg.prefix}}
}

// Create implements contracts.SuspensionStore: it stores rec as a new OPEN
// suspension (whatever its Status), with Handoff NONE when empty and
// CreatedAt from the store clock when zero, or returns an error wrapping
// contracts.ErrAlreadyExists when (TaskID, SuspendID) is taken.
func (s *SuspensionStore) Create(ctx context.Context, rec contracts.SuspensionRecord) error {
	rec.Status = contracts.SuspensionOpen
	if rec.Handoff == "" {
		rec.Handoff = contracts.HandoffNone
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = s.cfg.now()
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("redisstore: create suspension %q of task %q: encode: %w", rec.SuspendID, rec.TaskID, err)
	}
	var deadline int64
	if !rec.ExpiresAt.IsZero() {
		deadline = micros(rec.ExpiresAt)
	}
	stored, err := createSuspScript.Run(ctx, s.client,
		[]string{s.keys.suspension(rec.TaskID, rec.SuspendID), s.keys.suspOpen()},
		raw, string(rec.Handoff), rec.SuccessfulActionID, formatTime(rec.ResolvedAt), deadline,
		member(rec.TaskID, rec.SuspendID), ms(s.cfg.activeTTL)).Int()
	if err != nil {
		return fmt.Errorf("redisstore: create suspension %q of task %q: %w", rec.SuspendID, rec.TaskID, err)
	}
	if stored == 0 {
		return fmt.Errorf("redisstore: create suspension %q of task %q: %w", rec.SuspendID, rec.TaskID, contracts.ErrAlreadyExists)
	}
	return nil
}

// Get implements contracts.SuspensionStore.
func (s *SuspensionStore) Get(ctx context.Context, taskID, suspendID string) (contracts.SuspensionRecord, error) {
	vals, err := s.client.HMGet(ctx, s.keys.suspension(taskID, suspendID), suspFields...).Result()
	if err != nil {
		return contracts.SuspensionRecord{}, fmt.Errorf("redisstore: get suspension %q of task %q: %w", suspendID, taskID, err)
	}
	if vals[0] == nil {
		return contracts.SuspensionRecord{}, suspNotFound(taskID, suspendID)
	}
	return decodeSuspension(vals)
}

// Resolve implements contracts.SuspensionStore as an atomic compare-and-set
// from OPEN. RESOLVED sets SuccessfulActionID, ResolvedAt and Handoff
// PENDING; EXPIRED and CANCELLED set the status and ResolvedAt. A zero
// r.At means the store clock's time. Any other status returns
// contracts.ErrInvalidTransition.
func (s *SuspensionStore) Resolve(ctx context.Context, taskID, suspendID string, r contracts.Resolution) (contracts.SuspensionRecord, bool, error) {
	switch r.Status {
	case contracts.SuspensionResolved, contracts.SuspensionExpired, contracts.SuspensionCancelled:
	default:
		return contracts.SuspensionRecord{}, false, fmt.Errorf("redisstore: resolve suspension %q of task %q to %q: %w",
			suspendID, taskID, r.Status, contracts.ErrInvalidTransition)
	}
	at := r.At.Round(0)
	if at.IsZero() {
		at = s.cfg.now()
	}
	raw, err := resolveSuspScript.Run(ctx, s.client,
		[]string{s.keys.suspension(taskID, suspendID), s.keys.suspOpen(), s.keys.suspPending()},
		string(r.Status), r.ClientActionID, formatTime(at), micros(at), member(taskID, suspendID),
		ms(s.cfg.activeTTL), ms(s.cfg.terminalTTL)).Slice()
	if err != nil {
		return contracts.SuspensionRecord{}, false, fmt.Errorf("redisstore: resolve suspension %q of task %q: %w", suspendID, taskID, err)
	}
	outcome, rec, err := suspensionReply(raw)
	if err != nil {
		return contracts.SuspensionRecord{}, false, fmt.Errorf("redisstore: resolve suspension %q of task %q: %w", suspendID, taskID, err)
	}
	switch outcome {
	case "missing":
		return contracts.SuspensionRecord{}, false, suspNotFound(taskID, suspendID)
	case "won":
		return rec, true, nil
	}
	return rec, false, nil
}

// MarkResumeDispatched implements contracts.SuspensionStore: Handoff
// DISPATCHED for a RESOLVED suspension (a repeat is a no-op);
// contracts.ErrInvalidTransition when it is not RESOLVED.
func (s *SuspensionStore) MarkResumeDispatched(ctx context.Context, taskID, suspendID string) (contracts.SuspensionRecord, error) {
	raw, err := dispatchSuspScript.Run(ctx, s.client,
		[]string{s.keys.suspension(taskID, suspendID), s.keys.suspPending()},
		member(taskID, suspendID), ms(s.cfg.terminalTTL)).Slice()
	if err != nil {
		return contracts.SuspensionRecord{}, fmt.Errorf("redisstore: dispatch suspension %q of task %q: %w", suspendID, taskID, err)
	}
	outcome, rec, err := suspensionReply(raw)
	if err != nil {
		return contracts.SuspensionRecord{}, fmt.Errorf("redisstore: dispatch suspension %q of task %q: %w", suspendID, taskID, err)
	}
	switch outcome {
	case "missing":
		return contracts.SuspensionRecord{}, suspNotFound(taskID, suspendID)
	case "invalid":
		return contracts.SuspensionRecord{}, fmt.Errorf("redisstore: dispatch suspension %q of task %q in status %s: %w",
			suspendID, taskID, rec.Status, contracts.ErrInvalidTransition)
	}
	return rec, nil
}

// PendingHandoffs implements contracts.SuspensionMaintenance: up to limit
// RESOLVED suspensions whose handoff is PENDING, oldest ResolvedAt first
// (then by task and suspension id); a limit of zero or less lists all.
// Index entries whose record has expired are removed on the way.
func (s *SuspensionStore) PendingHandoffs(ctx context.Context, limit int) ([]contracts.SuspensionRecord, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	members, err := s.client.ZRange(ctx, s.keys.suspPending(), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: pending handoffs: %w", err)
	}
	if len(members) == 0 {
		return []contracts.SuspensionRecord{}, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(members))
	for i, m := range members {
		cmds[i] = pipe.HMGet(ctx, s.keys.suspTag()+m, suspFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: pending handoffs: %w", err)
	}
	out := make([]contracts.SuspensionRecord, 0, len(members))
	var stale []any
	for i, cmd := range cmds {
		vals := cmd.Val()
		if vals[0] == nil {
			stale = append(stale, members[i])
			continue
		}
		rec, err := decodeSuspension(vals)
		if err != nil {
			return nil, fmt.Errorf("redisstore: pending handoffs: %w", err)
		}
		if rec.Status == contracts.SuspensionResolved && rec.Handoff == contracts.HandoffPending {
			out = append(out, rec)
		}
	}
	if len(stale) > 0 {
		if err := s.client.ZRem(ctx, s.keys.suspPending(), stale...).Err(); err != nil {
			return nil, fmt.Errorf("redisstore: pending handoffs: drop expired entries: %w", err)
		}
	}
	slices.SortFunc(out, func(a, b contracts.SuspensionRecord) int {
		return cmp.Or(a.ResolvedAt.Compare(b.ResolvedAt), cmp.Compare(a.TaskID, b.TaskID), cmp.Compare(a.SuspendID, b.SuspendID))
	})
	return out, nil
}

// ExpireOpen implements contracts.SuspensionMaintenance: the OPEN
// suspensions whose ExpiresAt is at or before before become EXPIRED with
// ResolvedAt = before, in batches of atomic scripts; it returns how many it
// moved. Suspensions without a deadline never expire.
func (s *SuspensionStore) ExpireOpen(ctx context.Context, before time.Time) (int, error) {
	before = before.Round(0)
	cut := micros(before)
	total := 0
	for {
		members, err := s.client.ZRangeByScore(ctx, s.keys.suspOpen(), &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(cut, 10), Count: expireBatch,
		}).Result()
		if err != nil {
			return total, fmt.Errorf("redisstore: expire suspensions: %w", err)
		}
		if len(members) == 0 {
			return total, nil
		}
		keys := make([]string, 0, 1+len(members))
		args := make([]any, 0, 3+len(members))
		keys = append(keys, s.keys.suspOpen())
		args = append(args, cut, formatTime(before), ms(s.cfg.terminalTTL))
		for _, m := range members {
			keys = append(keys, s.keys.suspTag()+m)
			args = append(args, m)
		}
		n, err := expireSuspScript.Run(ctx, s.client, keys, args...).Int()
		if err != nil {
			return total, fmt.Errorf("redisstore: expire suspensions: %w", err)
		}
		total += n
		if len(members) < expireBatch {
			return total, nil
		}
	}
}

// suspFields is the field order of every suspension read.
var suspFields = []string{"status", "handoff", "action", "resolved", "rec"}

// suspensionReply splits a script reply {outcome, fields...}.
func suspensionReply(raw []any) (string, contracts.SuspensionRecord, error) {
	if len(raw) == 0 {
		return "", contracts.SuspensionRecord{}, errors.New("empty reply")
	}
	outcome, _ := raw[0].(string)
	if len(raw) == 1 {
		return outcome, contracts.SuspensionRecord{}, nil
	}
	if len(raw) != 1+len(suspFields) {
		return "", contracts.SuspensionRecord{}, fmt.Errorf("unexpected reply of %d items", len(raw))
	}
	rec, err := decodeSuspension(raw[1:])
	return outcome, rec, err
}

// decodeSuspension rebuilds a record from its fields in suspFields order.
func decodeSuspension(vals []any) (contracts.SuspensionRecord, error) {
	var rec contracts.SuspensionRecord
	if err := json.Unmarshal([]byte(str(vals[4])), &rec); err != nil {
		return contracts.SuspensionRecord{}, fmt.Errorf("redisstore: decode suspension: %w", err)
	}
	rec.Status = contracts.SuspensionStatus(str(vals[0]))
	rec.Handoff = contracts.HandoffStatus(str(vals[1]))
	rec.SuccessfulActionID = str(vals[2])
	resolved, err := parseTime(str(vals[3]))
	if err != nil {
		return contracts.SuspensionRecord{}, fmt.Errorf("redisstore: suspension %q: resolvedAt: %w", rec.SuspendID, err)
	}
	rec.ResolvedAt = resolved
	return rec, nil
}

func suspNotFound(taskID, suspendID string) error {
	return fmt.Errorf("redisstore: suspension %q of task %q: %w", suspendID, taskID, contracts.ErrNotFound)
}

// ttlUntil returns the PEXPIRE argument for a deadline: the milliseconds
// from now until it (at least 1), or 0 (never) for the zero time.
func ttlUntil(deadline, now time.Time) int64 {
	if deadline.IsZero() {
		return 0
	}
	d := deadline.Sub(now)
	if d <= 0 {
		return 1
	}
	return min(max(int64(math.Ceil(float64(d)/float64(time.Millisecond))), 1), math.MaxInt64/2)
}
