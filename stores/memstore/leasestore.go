package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.LeaseStore = (*LeaseStore)(nil)

// LeaseStore is the in-memory contracts.LeaseStore: a map of leases under
// one lock, with deadlines from Options.Clock. It is safe for concurrent
// use; create it with NewLeaseStore.
//
// New does not put one in its bundle: leases exist so that one process
// notices that another died, and a process that dies takes its memory
// store with it. A LeaseStore serves several executors that share memory
// stores in one process (and tests of the lease logic).
type LeaseStore struct {
	clock  func() time.Time
	mu     sync.Mutex
	leases map[string]contracts.Lease
}

// NewLeaseStore returns an empty lease store; only opts.Clock is used.
func NewLeaseStore(opts Options) *LeaseStore {
	cfg := opts.config()
	return &LeaseStore{clock: cfg.clock, leases: make(map[string]contracts.Lease)}
}

func (s *LeaseStore) now() time.Time { return s.clock().Round(0) }

// Acquire implements contracts.LeaseStore.
func (s *LeaseStore) Acquire(_ context.Context, taskID, holder string, ttl time.Duration) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.leases[taskID]; ok && cur.Holder != holder && cur.Deadline.After(now) {
		return fmt.Errorf("memstore: acquire the lease of task %q: %w", taskID, contracts.ErrLeaseHeld)
	}
	s.leases[taskID] = contracts.Lease{TaskID: taskID, Holder: holder, Deadline: now.Add(ttl)}
	return nil
}

// Renew implements contracts.LeaseStore.
func (s *LeaseStore) Renew(_ context.Context, holder string, taskIDs []string, ttl time.Duration) ([]string, error) {
	now := s.now()
	deadline := now
	if ttl > 0 {
		deadline = now.Add(ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var lost []string
	for _, id := range taskIDs {
		cur, ok := s.leases[id]
		if !ok || cur.Holder != holder {
			lost = append(lost, id)
			continue
		}
		cur.Deadline = deadline
		s.leases[id] = cur
	}
	return lost, nil
}

// Release implements contracts.LeaseStore.
func (s *LeaseStore) Release(_ context.Context, taskID, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.leases[taskID]; ok && cur.Holder == holder {
		delete(s.leases, taskID)
	}
	return nil
}

// TakeExpired implements contracts.LeaseStore. It scans every lease: the
// memory store holds the leases of one process.
func (s *LeaseStore) TakeExpired(_ context.Context, holder string, ttl time.Duration, limit int) ([]contracts.Lease, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var expired []contracts.Lease
	for _, l := range s.leases {
		if !l.Deadline.After(now) {
			expired = append(expired, l)
		}
	}
	slices.SortFunc(expired, func(a, b contracts.Lease) int {
		return cmp.Or(a.Deadline.Compare(b.Deadline), cmp.Compare(a.TaskID, b.TaskID))
	})
	if limit >= 0 && len(expired) > limit {
		expired = expired[:limit]
	}
	for _, l := range expired {
		s.leases[l.TaskID] = contracts.Lease{TaskID: l.TaskID, Holder: holder, Deadline: now.Add(ttl)}
	}
	return expired, nil
}
