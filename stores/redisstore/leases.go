package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// LeaseStore is the contracts.LeaseStore on Redis: a sorted set of the
// leased task ids scored by their deadlines and a hash of their holders,
// both under the {lease} hash tag. Deadlines come from the Redis server's
// clock (TIME inside the scripts), so the instances' clocks need not
// agree, and a Redis that was paused finds the leases that expired
// meanwhile expired. Every method is one script.
//
// Every script answers a retry of itself (the Redis client's, after a
// timeout) as if it had run once, except TakeExpired: a retry of a take
// that was applied finds the leases taken and returns none of them; they
// expire again after its ttl and are taken then.
//
// A LeaseStore is safe for concurrent use and holds no goroutines. It does
// not own the Redis client.
type LeaseStore struct {
	client redis.UniversalClient
	keys   keys
}

var _ contracts.LeaseStore = (*LeaseStore)(nil)

func newLeaseStore(client redis.UniversalClient, cfg config) *LeaseStore {
	return &LeaseStore{client: client, keys: keys{prefix: cfg.prefix}}
}

func (s *LeaseStore) leaseKeys() []string {
	return []string{s.keys.leaseDeadlines(), s.keys.leaseHolders()}
}

// Acquire implements contracts.LeaseStore.
func (s *LeaseStore) Acquire(ctx context.Context, taskID, holder string, ttl time.Duration) error {
	ok, err := acquireLeaseScript.Run(ctx, s.client, s.leaseKeys(), taskID, holder, ms(ttl)).Int()
	if err != nil {
		return fmt.Errorf("redisstore: acquire the lease of task %q: %w", taskID, err)
	}
	if ok == 0 {
		return fmt.Errorf("redisstore: acquire the lease of task %q: %w", taskID, contracts.ErrLeaseHeld)
	}
	return nil
}

// Renew implements contracts.LeaseStore with one script for all taskIDs.
func (s *LeaseStore) Renew(ctx context.Context, holder string, taskIDs []string, ttl time.Duration) ([]string, error) {
	if len(taskIDs) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 2+len(taskIDs))
	args = append(args, holder, ms(ttl))
	for _, id := range taskIDs {
		args = append(args, id)
	}
	lost, err := renewLeaseScript.Run(ctx, s.client, s.leaseKeys(), args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: renew %d leases: %w", len(taskIDs), err)
	}
	return lost, nil
}

// Release implements contracts.LeaseStore.
func (s *LeaseStore) Release(ctx context.Context, taskID, holder string) error {
	if err := releaseLeaseScript.Run(ctx, s.client, s.leaseKeys(), taskID, holder).Err(); err != nil {
		return fmt.Errorf("redisstore: release the lease of task %q: %w", taskID, err)
	}
	return nil
}

// TakeExpired implements contracts.LeaseStore.
func (s *LeaseStore) TakeExpired(ctx context.Context, holder string, ttl time.Duration, limit int) ([]contracts.Lease, error) {
	if limit <= 0 {
		return nil, nil
	}
	raw, err := takeExpiredScript.Run(ctx, s.client, s.leaseKeys(), holder, ms(ttl), limit).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: take expired leases: %w", err)
	}
	if len(raw)%3 != 0 {
		return nil, fmt.Errorf("redisstore: take expired leases: unexpected reply of %d items", len(raw))
	}
	out := make([]contracts.Lease, 0, len(raw)/3)
	for i := 0; i < len(raw); i += 3 {
		score, err := strconv.ParseFloat(raw[i+2], 64)
		if err != nil {
			return nil, fmt.Errorf("redisstore: take expired leases: deadline %q: %w", raw[i+2], err)
		}
		out = append(out, contracts.Lease{TaskID: raw[i], Holder: raw[i+1], Deadline: time.UnixMilli(int64(score)).UTC()})
	}
	return out, nil
}
