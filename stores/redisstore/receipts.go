package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// ReceiptStore is the contracts.ActionReceiptStore on Redis. Each receipt
// is a hash under the {rcpt} hash tag that Redis expires at the receipt's
// ExpiresAt; a sorted set indexes the receipts by ExpiresAt for
// DeleteExpired. Save is create-if-absent in one script.
//
// Redis TTL and DeleteExpired: the TTL (ExpiresAt minus the store clock's
// now at Save) is what frees the memory; DeleteExpired removes the
// receipts whose ExpiresAt is at or before its argument, counting also
// those Redis already dropped by TTL (their index entry is what remains),
// and cleans the index. Get never returns a receipt whose ExpiresAt has
// passed by the store clock, whatever Redis still holds.
//
// A ReceiptStore is safe for concurrent use and holds no goroutines. It
// does not own the Redis client.
type ReceiptStore struct {
	client redis.UniversalClient
	cfg    config
	keys   keys
}

var _ contracts.ActionReceiptStore = (*ReceiptStore)(nil)

func newReceiptStore(client redis.UniversalClient, cfg config) *ReceiptStore {
	return &ReceiptStore{client: client, cfg: cfg, keys: keys{prefix: cfg.prefix}}
}

// Save implements contracts.ActionReceiptStore: it stores r unless a live
// receipt with the same (TaskID, ClientActionID) exists, and returns the
// stored or existing receipt and whether it stored. A zero CreatedAt
// becomes the store clock's time and a zero ExpiresAt becomes CreatedAt +
// ReceiptTTL (unless ReceiptTTL is negative). A receipt past its ExpiresAt
// still in Redis is replaced.
func (s *ReceiptStore) Save(ctx context.Context, r contracts.ActionReceipt) (contracts.ActionReceipt, bool, error) {
	now := s.cfg.now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.ExpiresAt.IsZero() && s.cfg.receiptTTL > 0 {
		r.ExpiresAt = r.CreatedAt.Add(s.cfg.receiptTTL)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return contracts.ActionReceipt{}, false, fmt.Errorf("redisstore: save receipt %q of task %q: encode: %w", r.ClientActionID, r.TaskID, err)
	}
	var exp int64
	if !r.ExpiresAt.IsZero() {
		exp = micros(r.ExpiresAt)
	}
	existing, err := saveRcptScript.Run(ctx, s.client,
		[]string{s.keys.receipt(r.TaskID, r.ClientActionID), s.keys.rcptExpiry()},
		raw, exp, micros(now), member(r.TaskID, r.ClientActionID), ttlUntil(r.ExpiresAt, now)).Text()
	if errors.Is(err, redis.Nil) {
		return r, true, nil
	}
	if err != nil {
		return contracts.ActionReceipt{}, false, fmt.Errorf("redisstore: save receipt %q of task %q: %w", r.ClientActionID, r.TaskID, err)
	}
	var cur contracts.ActionReceipt
	if err := json.Unmarshal([]byte(existing), &cur); err != nil {
		return contracts.ActionReceipt{}, false, fmt.Errorf("redisstore: receipt %q of task %q: decode: %w", r.ClientActionID, r.TaskID, err)
	}
	return cur, false, nil
}

// Get implements contracts.ActionReceiptStore; contracts.ErrNotFound also
// once the receipt's ExpiresAt has passed by the store clock.
func (s *ReceiptStore) Get(ctx context.Context, taskID, clientActionID string) (contracts.ActionReceipt, error) {
	raw, err := s.client.HGet(ctx, s.keys.receipt(taskID, clientActionID), "rec").Result()
	if errors.Is(err, redis.Nil) {
		return contracts.ActionReceipt{}, notFound("receipt "+clientActionID+" of task", taskID)
	}
	if err != nil {
		return contracts.ActionReceipt{}, fmt.Errorf("redisstore: get receipt %q of task %q: %w", clientActionID, taskID, err)
	}
	var r contracts.ActionReceipt
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return contracts.ActionReceipt{}, fmt.Errorf("redisstore: receipt %q of task %q: decode: %w", clientActionID, taskID, err)
	}
	if !r.ExpiresAt.IsZero() && !s.cfg.now().Before(r.ExpiresAt) {
		return contracts.ActionReceipt{}, notFound("receipt "+clientActionID+" of task", taskID)
	}
	return r, nil
}

// DeleteExpired implements contracts.ActionReceiptStore: it removes the
// receipts whose ExpiresAt is at or before before, in batches of atomic
// scripts, and returns how many it removed (see the type's comment on
// Redis TTL).
func (s *ReceiptStore) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	cut := micros(before)
	total := 0
	for {
		members, err := s.client.ZRangeByScore(ctx, s.keys.rcptExpiry(), &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(cut, 10), Count: expireBatch,
		}).Result()
		if err != nil {
			return total, fmt.Errorf("redisstore: delete expired receipts: %w", err)
		}
		if len(members) == 0 {
			return total, nil
		}
		keys := make([]string, 0, 1+len(members))
		args := make([]any, 0, 1+len(members))
		keys = append(keys, s.keys.rcptExpiry())
		args = append(args, cut)
		for _, m := range members {
			keys = append(keys, s.keys.rcptTag()+m)
			args = append(args, m)
		}
		n, err := deleteRcptScript.Run(ctx, s.client, keys, args...).Int()
		if err != nil {
			return total, fmt.Errorf("redisstore: delete expired receipts: %w", err)
		}
		total += n
		if len(members) < expireBatch {
			return total, nil
		}
	}
}
