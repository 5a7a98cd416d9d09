package memstore

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.ActionReceiptStore = (*ReceiptStore)(nil)

// ReceiptStore is the in-memory contracts.ActionReceiptStore. It is safe for
// concurrent use; create it with NewReceiptStore or New. Save is
// create-if-absent per (TaskID, ClientActionID). Expired receipts are
// removed by DeleteExpired and lazily on writes, from a heap ordered by
// ExpiresAt; a receipt past its ExpiresAt is never returned.
//
// Receipts are returned by value; their Payload is shared with the store and
// must not be modified.
type ReceiptStore struct {
	cfg   config
	mu    sync.Mutex
	tasks map[string]*taskReceipts
	byExp receiptHeap
	exp   expiryQueue
}

type taskReceipts struct {
	recs     map[string]*receiptEntry
	expireAt int64 // UnixNano; 0: not scheduled
}

type receiptEntry struct {
	r  contracts.ActionReceipt
	at int64 // r.ExpiresAt in UnixNano; 0: never
}

// NewReceiptStore returns an empty receipt store configured by opts.
func NewReceiptStore(opts Options) *ReceiptStore {
	return newReceiptStore(opts.config())
}

func newReceiptStore(cfg config) *ReceiptStore {
	return &ReceiptStore{cfg: cfg, tasks: make(map[string]*taskReceipts)}
}

// Save stores r unless a live receipt with the same (TaskID, ClientActionID)
// exists; it returns the stored or existing receipt and whether it stored. A
// zero CreatedAt becomes the clock's time and a zero ExpiresAt becomes
// CreatedAt + ReceiptTTL (unless ReceiptTTL is negative). Payload is copied.
func (s *ReceiptStore) Save(_ context.Context, r contracts.ActionReceipt) (contracts.ActionReceipt, bool, error) {
	now := s.cfg.now()
	nowNs := now.UnixNano()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.ExpiresAt.IsZero() && s.cfg.receiptTTL > 0 {
		r.ExpiresAt = r.CreatedAt.Add(s.cfg.receiptTTL)
	}
	r.Payload = cloneRaw(r.Payload)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteExpiredLocked(nowNs, nowNs)
	if e := s.findLocked(r.TaskID, r.ClientActionID, nowNs); e != nil {
		return e.r, false, nil
	}
	tr := s.liveLocked(r.TaskID, nowNs)
	if tr == nil {
		tr = &taskReceipts{recs: make(map[string]*receiptEntry)}
		s.tasks[r.TaskID] = tr
	}
	e := &receiptEntry{r: r}
	if !r.ExpiresAt.IsZero() {
		e.at = r.ExpiresAt.UnixNano()
		heap.Push(&s.byExp, e)
	}
	tr.recs[r.ClientActionID] = e
	return r, true, nil
}

// Get returns the receipt or contracts.ErrNotFound (also once it expired).
func (s *ReceiptStore) Get(_ context.Context, taskID, clientActionID string) (contracts.ActionReceipt, error) {
	nowNs := s.cfg.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.findLocked(taskID, clientActionID, nowNs)
	if e == nil {
		return contracts.ActionReceipt{}, notFound("receipt "+clientActionID+" of task", taskID)
	}
	return e.r, nil
}

// DeleteExpired removes the receipts whose ExpiresAt is at or before before
// and returns how many it removed. It also sweeps the receipts of tasks
// whose TerminalTTL has passed by the clock (not counted).
func (s *ReceiptStore) DeleteExpired(_ context.Context, before time.Time) (int, error) {
	nowNs := s.cfg.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteExpiredLocked(nowNs, before.UnixNano()), nil
}

// expireTask implements terminalHook.
func (s *ReceiptStore) expireTask(taskID string, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tr := s.tasks[taskID]; tr != nil && tr.expireAt == 0 {
		tr.expireAt = deadline.UnixNano()
		s.exp.push(taskID, deadline)
	}
}

// deleteExpiredLocked sweeps the tasks whose terminal deadline passed at
// nowNs and pops the receipts expiring at or before beforeNs from the heap,
// returning how many of those it removed. s.mu must be held.
func (s *ReceiptStore) deleteExpiredLocked(nowNs, beforeNs int64) int {
	if s.exp.due(nowNs) {
		for _, id := range s.exp.popDue(nowNs) {
			s.liveLocked(id, nowNs)
		}
	}
	n := 0
	for len(s.byExp) > 0 && s.byExp[0].at <= beforeNs {
		e := heap.Pop(&s.byExp).(*receiptEntry)
		tr := s.tasks[e.r.TaskID]
		if tr == nil || tr.recs[e.r.ClientActionID] != e {
			continue // already gone with its task
		}
		delete(tr.recs, e.r.ClientActionID)
		if len(tr.recs) == 0 {
			delete(s.tasks, e.r.TaskID)
		}
		n++
	}
	return n
}

// findLocked returns the live receipt or nil. s.mu must be held.
func (s *ReceiptStore) findLocked(taskID, clientActionID string, nowNs int64) *receiptEntry {
	tr := s.liveLocked(taskID, nowNs)
	if tr == nil {
		return nil
	}
	e := tr.recs[clientActionID]
	if e == nil || (e.at != 0 && nowNs >= e.at) {
		return nil // an expired receipt waits in the heap for removal
	}
	return e
}

// liveLocked returns the receipts of taskID, removing them when the task's
// terminal deadline passed. Their heap entries go stale and are skipped when
// popped. s.mu must be held.
func (s *ReceiptStore) liveLocked(taskID string, nowNs int64) *taskReceipts {
	tr := s.tasks[taskID]
	if tr == nil {
		return nil
	}
	if tr.expireAt != 0 && nowNs >= tr.expireAt {
		delete(s.tasks, taskID)
		return nil
	}
	return tr
}

// len returns the number of receipts held and heap entries (for tests).
func (s *ReceiptStore) len() (receipts, heapEntries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tr := range s.tasks {
		receipts += len(tr.recs)
	}
	return receipts, len(s.byExp)
}

// receiptHeap is a min-heap of receipts by expiry.
type receiptHeap []*receiptEntry

func (h receiptHeap) Len() int           { return len(h) }
func (h receiptHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h receiptHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *receiptHeap) Push(x any)        { *h = append(*h, x.(*receiptEntry)) }
func (h *receiptHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
