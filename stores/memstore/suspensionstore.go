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

var (
	_ contracts.SuspensionStore       = (*SuspensionStore)(nil)
	_ contracts.SuspensionMaintenance = (*SuspensionStore)(nil)
)

// SuspensionStore is the in-memory contracts.SuspensionStore and
// contracts.SuspensionMaintenance. It is safe for concurrent use; create it
// with NewSuspensionStore or New. Resolve is a compare-and-set on an OPEN
// suspension, so of N concurrent calls exactly one wins.
//
// Records are returned by value; their AllowedActions, Interaction and
// UIHints are shared with the store and must not be modified.
type SuspensionStore struct {
	cfg   config
	mu    sync.Mutex
	tasks map[string]*taskSuspensions
	// expiring holds the OPEN suspensions that have a deadline (ExpireOpen
	// scans only these); pending the RESOLVED ones whose handoff is PENDING.
	expiring map[suspKey]struct{}
	pending  map[suspKey]struct{}
	exp      expiryQueue
}

type taskSuspensions struct {
	recs     map[string]*contracts.SuspensionRecord
	expireAt int64 // UnixNano; 0: not scheduled
}

type suspKey struct{ task, suspend string }

// NewSuspensionStore returns an empty suspension store configured by opts.
func NewSuspensionStore(opts Options) *SuspensionStore {
	return newSuspensionStore(opts.config())
}

func newSuspensionStore(cfg config) *SuspensionStore {
	return &SuspensionStore{
		cfg:      cfg,
		tasks:    make(map[string]*taskSuspensions),
		expiring: make(map[suspKey]struct{}),
		pending:  make(map[suspKey]struct{}),
	}
}

// Create stores s as a new OPEN suspension (whatever its Status) with
// Handoff NONE when empty and CreatedAt set to the clock's time when zero.
// It returns contracts.ErrAlreadyExists when (TaskID, SuspendID) is taken.
func (s *SuspensionStore) Create(_ context.Context, rec contracts.SuspensionRecord) error {
	nowNs, now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(nowNs)
	ts := s.liveLocked(rec.TaskID, nowNs)
	if ts == nil {
		ts = &taskSuspensions{recs: make(map[string]*contracts.SuspensionRecord)}
		s.tasks[rec.TaskID] = ts
	}
	if _, ok := ts.recs[rec.SuspendID]; ok {
		return fmt.Errorf("memstore: create suspension %q of task %q: %w", rec.SuspendID, rec.TaskID, contracts.ErrAlreadyExists)
	}
	rec.Status = contracts.SuspensionOpen
	if rec.Handoff == "" {
		rec.Handoff = contracts.HandoffNone
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now
	}
	rec.AllowedActions = slices.Clone(rec.AllowedActions)
	ts.recs[rec.SuspendID] = &rec
	if !rec.ExpiresAt.IsZero() {
		s.expiring[suspKey{rec.TaskID, rec.SuspendID}] = struct{}{}
	}
	return nil
}

// Get returns the suspension or contracts.ErrNotFound.
func (s *SuspensionStore) Get(_ context.Context, taskID, suspendID string) (contracts.SuspensionRecord, error) {
	nowNs, _ := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.findLocked(taskID, suspendID, nowNs)
	if rec == nil {
		return contracts.SuspensionRecord{}, suspNotFound(taskID, suspendID)
	}
	return *rec, nil
}

// Resolve applies res if the suspension is OPEN and returns the new record
// and true; otherwise it returns the current record and false. RESOLVED sets
// SuccessfulActionID, ResolvedAt and Handoff PENDING; EXPIRED and CANCELLED
// set the status and ResolvedAt. A zero res.At means the clock's time. A
// status other than those three returns contracts.ErrInvalidTransition.
func (s *SuspensionStore) Resolve(_ context.Context, taskID, suspendID string, res contracts.Resolution) (contracts.SuspensionRecord, bool, error) {
	switch res.Status {
	case contracts.SuspensionResolved, contracts.SuspensionExpired, contracts.SuspensionCancelled:
	default:
		return contracts.SuspensionRecord{}, false, fmt.Errorf("memstore: resolve suspension %q of task %q to %q: %w",
			suspendID, taskID, res.Status, contracts.ErrInvalidTransition)
	}
	nowNs, now := s.clock()
	if res.At.IsZero() {
		res.At = now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(nowNs)
	rec := s.findLocked(taskID, suspendID, nowNs)
	if rec == nil {
		return contracts.SuspensionRecord{}, false, suspNotFound(taskID, suspendID)
	}
	if rec.Status != contracts.SuspensionOpen {
		return *rec, false, nil
	}
	key := suspKey{taskID, suspendID}
	delete(s.expiring, key)
	rec.Status = res.Status
	rec.ResolvedAt = res.At.Round(0)
	if res.Status == contracts.SuspensionResolved {
		rec.SuccessfulActionID = res.ClientActionID
		rec.Handoff = contracts.HandoffPending
		s.pending[key] = struct{}{}
	}
	return *rec, true, nil
}

// MarkResumeDispatched sets the handoff of a RESOLVED suspension to
// DISPATCHED (a repeat is a no-op). It returns contracts.ErrNotFound for an
// unknown suspension and contracts.ErrInvalidTransition when it is not
// RESOLVED.
func (s *SuspensionStore) MarkResumeDispatched(_ context.Context, taskID, suspendID string) (contracts.SuspensionRecord, error) {
	nowNs, _ := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(nowNs)
	rec := s.findLocked(taskID, suspendID, nowNs)
	if rec == nil {
		return contracts.SuspensionRecord{}, suspNotFound(taskID, suspendID)
	}
	if rec.Status != contracts.SuspensionResolved {
		return contracts.SuspensionRecord{}, fmt.Errorf("memstore: dispatch suspension %q of task %q in status %s: %w",
			suspendID, taskID, rec.Status, contracts.ErrInvalidTransition)
	}
	rec.Handoff = contracts.HandoffDispatched
	delete(s.pending, suspKey{taskID, suspendID})
	return *rec, nil
}

// PendingHandoffs lists up to limit RESOLVED suspensions whose handoff is
// PENDING, oldest ResolvedAt first. A limit of zero or less lists all.
func (s *SuspensionStore) PendingHandoffs(_ context.Context, limit int) ([]contracts.SuspensionRecord, error) {
	nowNs, _ := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(nowNs)
	out := make([]contracts.SuspensionRecord, 0, len(s.pending))
	for k := range s.pending {
		if rec := s.findLocked(k.task, k.suspend, nowNs); rec != nil {
			out = append(out, *rec)
		}
	}
	slices.SortFunc(out, func(a, b contracts.SuspensionRecord) int {
		return cmp.Or(a.ResolvedAt.Compare(b.ResolvedAt), cmp.Compare(a.TaskID, b.TaskID), cmp.Compare(a.SuspendID, b.SuspendID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// ExpireOpen moves the OPEN suspensions whose ExpiresAt is at or before
// before to EXPIRED, with ResolvedAt set to before, and returns how many it
// moved. Suspensions without a deadline never expire.
func (s *SuspensionStore) ExpireOpen(_ context.Context, before time.Time) (int, error) {
	nowNs, _ := s.clock()
	before = before.Round(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(nowNs)
	n := 0
	for k := range s.expiring {
		rec := s.findLocked(k.task, k.suspend, nowNs)
		if rec == nil || rec.Status != contracts.SuspensionOpen {
			delete(s.expiring, k)
			continue
		}
		if rec.ExpiresAt.After(before) {
			continue
		}
		rec.Status = contracts.SuspensionExpired
		rec.ResolvedAt = before
		delete(s.expiring, k)
		n++
	}
	return n, nil
}

// expireTask implements terminalHook.
func (s *SuspensionStore) expireTask(taskID string, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts := s.tasks[taskID]; ts != nil && ts.expireAt == 0 {
		ts.expireAt = deadline.UnixNano()
		s.exp.push(taskID, deadline)
	}
}

func (s *SuspensionStore) clock() (int64, time.Time) {
	now := s.cfg.now()
	return now.UnixNano(), now
}

// findLocked returns the live record or nil. s.mu must be held.
func (s *SuspensionStore) findLocked(taskID, suspendID string, nowNs int64) *contracts.SuspensionRecord {
	ts := s.liveLocked(taskID, nowNs)
	if ts == nil {
		return nil
	}
	return ts.recs[suspendID]
}

// liveLocked returns the suspensions of taskID, removing them and returning
// nil when they expired. s.mu must be held.
func (s *SuspensionStore) liveLocked(taskID string, nowNs int64) *taskSuspensions {
	ts := s.tasks[taskID]
	if ts == nil {
		return nil
	}
	if ts.expireAt != 0 && nowNs >= ts.expireAt {
		for id := range ts.recs {
			k := suspKey{taskID, id}
			delete(s.expiring, k)
			delete(s.pending, k)
		}
		delete(s.tasks, taskID)
		return nil
	}
	return ts
}

func (s *SuspensionStore) sweepLocked(nowNs int64) {
	if !s.exp.due(nowNs) {
		return
	}
	for _, id := range s.exp.popDue(nowNs) {
		s.liveLocked(id, nowNs)
	}
}

// len returns the number of tasks with suspensions held (for tests).
func (s *SuspensionStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)
}

func suspNotFound(taskID, suspendID string) error {
	return fmt.Errorf("memstore: suspension %q of task %q: %w", suspendID, taskID, contracts.ErrNotFound)
}
