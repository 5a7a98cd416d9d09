package orchestration_test

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// fakeStore implements the four ports and the change feed in memory, with
// the contracts' semantics, for tests that must not depend on a real store
// and for failure injection (wrap it, override one method).
type fakeStore struct {
	mu     sync.Mutex
	tasks  map[string]contracts.TaskRecord
	byKey  map[string]string
	events map[string][]contracts.TaskEvent
	ended  map[string]bool
	// appendKeys maps (task, idempotency key) to the event it stored.
	appendKeys map[string]contracts.EventID
	susp       map[string]contracts.SuspensionRecord
	receipts   map[string]contracts.ActionReceipt

	feedMu     sync.Mutex
	listeners  map[int]func(contracts.Change)
	nextID     int
	listening  chan struct{} // closed when the first listener registers
	onceListen sync.Once
}

var (
	_ contracts.TaskRegistry          = (*fakeStore)(nil)
	_ contracts.EventStore            = (*fakeStore)(nil)
	_ contracts.SuspensionStore       = suspensionStore{}
	_ contracts.SuspensionMaintenance = suspensionStore{}
	_ contracts.ActionReceiptStore    = receiptStore{}
)

func newFakeStore() *fakeStore {
	return &fakeStore{
		tasks:      map[string]contracts.TaskRecord{},
		byKey:      map[string]string{},
		events:     map[string][]contracts.TaskEvent{},
		ended:      map[string]bool{},
		appendKeys: map[string]contracts.EventID{},
		susp:       map[string]contracts.SuspensionRecord{},
		receipts:   map[string]contracts.ActionReceipt{},
		listeners:  map[int]func(contracts.Change){},
		listening:  make(chan struct{}),
	}
}

func key(a, b string) string { return a + "\x00" + b }

// --- TaskRegistry ---

func (s *fakeStore) Create(_ context.Context, t contracts.TaskRecord) (contracts.TaskRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(t.OwnerID, t.ClientRequestID)
	if id, ok := s.byKey[k]; ok {
		return s.tasks[id], false, nil
	}
	s.byKey[k] = t.TaskID
	s.tasks[t.TaskID] = t
	return t, true, nil
}

func (s *fakeStore) Get(_ context.Context, id string) (contracts.TaskRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return contracts.TaskRecord{}, contracts.ErrNotFound
	}
	return t, nil
}

func (s *fakeStore) UpdateStatus(_ context.Context, id string, next contracts.TaskStatus) (contracts.TaskRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	switch {
	case !ok:
		return contracts.TaskRecord{}, contracts.ErrNotFound
	case t.Status == next:
		return t, nil
	case t.Status.IsTerminal():
		return t, contracts.ErrTerminal
	case !t.Status.CanTransitionTo(next):
		return t, contracts.ErrInvalidTransition
	}
	t.Status = next
	t.UpdatedAt = time.Now()
	s.tasks[id] = t
	return t, nil
}

func (s *fakeStore) RequestCancellation(_ context.Context, id, reason string) (contracts.TaskRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	switch {
	case !ok:
		return contracts.TaskRecord{}, contracts.ErrNotFound
	case t.Status.IsTerminal():
		return t, contracts.ErrTerminal
	}
	t.CancelRequested, t.CancelReason = true, reason
	s.tasks[id] = t
	return t, nil
}

// --- EventStore ---

func (s *fakeStore) Listen(ctx context.Context, fn func(contracts.Change)) error {
	s.feedMu.Lock()
	id := s.nextID
	s.nextID++
	s.listeners[id] = fn
	fn(contracts.Change{Resync: true}) // subscribed (contracts.ChangeFeed)
	s.feedMu.Unlock()
	s.onceListen.Do(func() { close(s.listening) })
	<-ctx.Done()
	s.feedMu.Lock()
	delete(s.listeners, id)
	s.feedMu.Unlock()
	return ctx.Err()
}

func (s *fakeStore) notify(c contracts.Change) {
	s.feedMu.Lock()
	defer s.feedMu.Unlock()
	for _, fn := range s.listeners {
		fn(c)
	}
}

func (s *fakeStore) Append(_ context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	if d.IsZero() {
		return contracts.TaskEvent{}, contracts.ErrInvalidPayload
	}
	s.mu.Lock()
	if id, held := s.appendKeys[key(taskID, d.IdempotencyKey())]; held && d.IdempotencyKey() != "" {
		for _, ev := range s.events[taskID] {
			if ev.EventID == id {
				s.mu.Unlock()
				return ev, nil
			}
		}
	}
	if s.ended[taskID] {
		s.mu.Unlock()
		return contracts.TaskEvent{}, contracts.ErrTerminal
	}
	evs := s.events[taskID]
	ev := contracts.TaskEvent{
		Type: d.Type(), TaskID: taskID, EventID: contracts.EventID{Ms: uint64(len(evs) + 1)},
		CreatedAt: time.Now().UTC(), Payload: d.Payload(),
	}
	s.events[taskID] = append(evs, ev)
	if k := d.IdempotencyKey(); k != "" {
		s.appendKeys[key(taskID, k)] = ev.EventID
	}
	if d.Type().IsTerminal() {
		s.ended[taskID] = true
	}
	s.mu.Unlock()
	s.notify(contracts.Change{TaskID: taskID, LastEventID: ev.EventID})
	return ev, nil
}

func (s *fakeStore) Read(_ context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var page contracts.EventPage
	evs := s.events[taskID]
	for _, ev := range evs {
		if after.Less(ev.EventID) && len(page.Events) < limit {
			page.Events = append(page.Events, ev)
		}
	}
	if s.ended[taskID] {
		last := evs[len(evs)-1].EventID
		page.Ended = !after.Less(last) ||
			(len(page.Events) > 0 && page.Events[len(page.Events)-1].EventID == last)
	}
	return page, nil
}

// all returns every event of a task.
func (s *fakeStore) all(taskID string) []contracts.TaskEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]contracts.TaskEvent(nil), s.events[taskID]...)
}

// --- SuspensionStore ---

type suspensionStore struct{ *fakeStore }

func (s suspensionStore) Create(_ context.Context, r contracts.SuspensionRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(r.TaskID, r.SuspendID)
	if _, ok := s.susp[k]; ok {
		return contracts.ErrAlreadyExists
	}
	s.susp[k] = r
	return nil
}

func (s suspensionStore) Get(_ context.Context, taskID, suspendID string) (contracts.SuspensionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.susp[key(taskID, suspendID)]
	if !ok {
		return contracts.SuspensionRecord{}, contracts.ErrNotFound
	}
	return r, nil
}

func (s suspensionStore) Resolve(_ context.Context, taskID, suspendID string, res contracts.Resolution) (contracts.SuspensionRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(taskID, suspendID)
	r, ok := s.susp[k]
	if !ok {
		return contracts.SuspensionRecord{}, false, contracts.ErrNotFound
	}
	if r.Status != contracts.SuspensionOpen {
		return r, false, nil
	}
	r.Status, r.ResolvedAt = res.Status, res.At
	if res.Status == contracts.SuspensionResolved {
		r.SuccessfulActionID = res.ClientActionID
		r.Handoff = contracts.HandoffPending
	}
	s.susp[k] = r
	return r, true, nil
}

func (s suspensionStore) MarkResumeDispatched(_ context.Context, taskID, suspendID string) (contracts.SuspensionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(taskID, suspendID)
	r, ok := s.susp[k]
	if !ok {
		return contracts.SuspensionRecord{}, contracts.ErrNotFound
	}
	r.Handoff = contracts.HandoffDispatched
	s.susp[k] = r
	return r, nil
}

func (s suspensionStore) PendingHandoffs(_ context.Context, limit int) ([]contracts.SuspensionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []contracts.SuspensionRecord
	for _, r := range s.susp {
		if r.Status == contracts.SuspensionResolved && r.Handoff == contracts.HandoffPending && len(out) < limit {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SuspendID < out[j].SuspendID })
	return out, nil
}

func (s suspensionStore) ExpireOpen(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, r := range s.susp {
		if r.Status == contracts.SuspensionOpen && r.ExpiredAt(before) {
			r.Status, r.ResolvedAt = contracts.SuspensionExpired, before
			s.susp[k] = r
			n++
		}
	}
	return n, nil
}

func (s *fakeStore) suspension(taskID, suspendID string) contracts.SuspensionRecord {
	r, _ := suspensionStore{s}.Get(context.Background(), taskID, suspendID)
	return r
}

// --- ActionReceiptStore ---

type receiptStore struct{ *fakeStore }

func (s receiptStore) Save(_ context.Context, r contracts.ActionReceipt) (contracts.ActionReceipt, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(r.TaskID, r.ClientActionID)
	if old, ok := s.receipts[k]; ok {
		return old, false, nil
	}
	s.receipts[k] = r
	return r, true, nil
}

func (s receiptStore) Get(_ context.Context, taskID, clientActionID string) (contracts.ActionReceipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.receipts[key(taskID, clientActionID)]
	if !ok {
		return contracts.ActionReceipt{}, contracts.ErrNotFound
	}
	return r, nil
}

func (s receiptStore) DeleteExpired(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, r := range s.receipts {
		if !r.ExpiresAt.IsZero() && !before.Before(r.ExpiresAt) {
			delete(s.receipts, k)
			n++
		}
	}
	return n, nil
}

// failingRegistry injects registry failures.
type failingRegistry struct {
	*fakeStore
	createErr, getErr, cancelErr error
}

func (r failingRegistry) Create(ctx context.Context, t contracts.TaskRecord) (contracts.TaskRecord, bool, error) {
	if r.createErr != nil {
		return contracts.TaskRecord{}, false, r.createErr
	}
	return r.fakeStore.Create(ctx, t)
}

func (r failingRegistry) Get(ctx context.Context, id string) (contracts.TaskRecord, error) {
	if r.getErr != nil {
		return contracts.TaskRecord{}, r.getErr
	}
	return r.fakeStore.Get(ctx, id)
}

func (r failingRegistry) RequestCancellation(ctx context.Context, id, reason string) (contracts.TaskRecord, error) {
	if r.cancelErr != nil {
		return contracts.TaskRecord{}, r.cancelErr
	}
	return r.fakeStore.RequestCancellation(ctx, id, reason)
}
