package memstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var (
	_ contracts.EventStore  = (*EventStore)(nil)
	_ contracts.BatchReader = (*EventStore)(nil)
)

// errNilListener is returned by Listen for a nil callback.
var errNilListener = errors.New("taskbridge: memstore: Listen needs a callback")

// shardCount spreads tasks over independent locks, so appends and reads of
// different tasks rarely touch the same mutex.
const shardCount = 64

// EventStore is the in-memory contracts.EventStore: one append-only log per
// task, ids of the `ms-seq` form, a change feed, a per-task cap and lazy
// expiry of terminal tasks. It is safe for concurrent use; create it with
// NewEventStore or New.
//
// Appends and reads of one task serialise on that task's lock only; tasks
// are found through 64 independently locked shards. Read returns a
// sub-slice of the task's backing array without copying events: callers must
// not modify EventPage.Events or its events (the store never rewrites an
// element a reader can hold).
type EventStore struct {
	cfg    config
	seed   maphash.Seed
	shards [shardCount]eventShard

	listenMu  sync.Mutex
	listeners atomic.Pointer[[]*listener]

	exp expiryQueue
}

type eventShard struct {
	mu      sync.RWMutex
	streams map[string]*stream
	_       [32]byte // pad to a 64-byte cache line
}

// stream is one task's log. The retained events are events[lo:]; elements
// below lo were dropped by the cap and are released when the array is
// compacted into a new one.
type stream struct {
	mu       sync.RWMutex
	events   []contracts.TaskEvent
	lo       int
	last     contracts.EventID // last assigned id
	dropped  contracts.EventID // highest id dropped by the cap
	terminal contracts.EventID // id of the terminal event; zero: none yet
	expireAt int64             // UnixNano; 0: not scheduled
	deleted  bool              // removed from its shard; appenders retry
	summary  contracts.TaskLogSummary

	// Idempotency keys of the retained events: keys maps a key to its
	// event's id; keyed lists the keyed events in id order from keyedLo,
	// so the cap forgets a key together with its event.
	keys    map[string]contracts.EventID
	keyed   []keyedEvent
	keyedLo int
}

// keyedEvent is one event appended with an idempotency key.
type keyedEvent struct {
	key string
	id  contracts.EventID
}

// listener is one Listen call. Callers of fn hold mu for reading; Listen
// takes it for writing to close it, so fn is never called after Listen has
// returned.
type listener struct {
	mu     sync.RWMutex
	fn     func(contracts.Change)
	closed bool
}

// NewEventStore returns an empty event store configured by opts.
func NewEventStore(opts Options) *EventStore {
	return newEventStore(opts.config())
}

func newEventStore(cfg config) *EventStore {
	s := &EventStore{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].streams = make(map[string]*stream)
	}
	return s
}

// Append assigns the task's next id to draft, stores it, and calls every
// listener with the new id before returning (in append order per task). It
// rejects the zero draft (contracts.ErrInvalidPayload) and any append after
// the task's terminal event (contracts.ErrTerminal). When the task holds
// MaxEventsPerTask events the oldest is dropped.
//
// A draft with an idempotency key the task holds (one stored with a
// retained event) stores nothing and returns that event, also after the
// terminal event; a key is forgotten when the cap drops its event or the
// task's log expires.
func (s *EventStore) Append(_ context.Context, taskID string, draft contracts.EventDraft) (contracts.TaskEvent, error) {
	if draft.IsZero() {
		return contracts.TaskEvent{}, fmt.Errorf("memstore: append to task %q: zero draft: %w", taskID, contracts.ErrInvalidPayload)
	}
	now := s.cfg.now()
	nowNs := now.UnixNano()
	s.sweep(nowNs)
	sh := s.shard(taskID)
	for {
		st := sh.getOrCreate(taskID)
		st.mu.Lock()
		if st.deleted {
			st.mu.Unlock()
			continue
		}
		if st.expireAt != 0 && nowNs >= st.expireAt {
			st.mu.Unlock()
			s.remove(taskID, nowNs)
			continue
		}
		key := draft.IdempotencyKey()
		if id, held := st.keys[key]; held && key != "" {
			ev := st.find(id)
			st.mu.Unlock()
			return ev, nil
		}
		if !st.terminal.IsZero() {
			st.mu.Unlock()
			return contracts.TaskEvent{}, fmt.Errorf("memstore: append %s to task %q: %w", draft.Type(), taskID, contracts.ErrTerminal)
		}
		payload := draft.Payload()
		if err := s.cfg.quota.admitEvent(taskID, int64(len(payload)+len(key)), draft.Type().IsTerminal(), nowNs); err != nil {
			st.mu.Unlock()
			return contracts.TaskEvent{}, fmt.Errorf("memstore: append %s to task %q: %w", draft.Type(), taskID, err)
		}
		ev := contracts.TaskEvent{
			Type:      draft.Type(),
			TaskID:    taskID,
			EventID:   nextID(st.last, now),
			CreatedAt: now,
			Payload:   payload,
		}
		st.last = ev.EventID
		if dropped, ok := st.push(ev, s.cfg.maxEvents); ok {
			s.cfg.quota.releaseEvent(taskID, int64(len(dropped.Payload)))
		}
		if key != "" {
			st.remember(key, ev.EventID)
		}
		st.summary.Apply(&ev)
		terminal := ev.Type.IsTerminal()
		if terminal {
			st.terminal = ev.EventID
		}
		s.notify(contracts.Change{TaskID: taskID, LastEventID: ev.EventID})
		st.mu.Unlock()
		if terminal {
			s.cfg.terminated(s, taskID, now)
		}
		return ev, nil
	}
}

// Read returns up to limit events with ids strictly after after (zero: from
// the oldest retained), in id order. RetentionGap is true when the cap
// dropped events after the cursor; Ended is true when the terminal event is
// the last returned or at or before the cursor. An unknown (or expired) task
// yields an empty page. A limit of zero or less returns no events but still
// reports RetentionGap and Ended for the cursor. Events is shared with the
// store: do not modify it.
func (s *EventStore) Read(_ context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	sh := s.shard(taskID)
	sh.mu.RLock()
	st := sh.streams[taskID]
	sh.mu.RUnlock()
	if st == nil {
		return contracts.EventPage{}, nil
	}
	st.mu.RLock()
	if st.expireAt != 0 {
		if nowNs := s.cfg.now().UnixNano(); nowNs >= st.expireAt {
			st.mu.RUnlock()
			s.remove(taskID, nowNs)
			return contracts.EventPage{}, nil
		}
	}
	w := st.events[st.lo:]
	i := searchAfter(w, after)
	j := i
	if limit > 0 {
		j = min(len(w), i+limit)
	}
	var page contracts.EventPage
	if j > i {
		page.Events = w[i:j:j]
	}
	page.RetentionGap = !st.dropped.IsZero() && after.Compare(st.dropped) < 0
	if !st.terminal.IsZero() {
		page.Ended = st.terminal.Compare(after) <= 0 || (j > i && j == len(w))
	}
	st.mu.RUnlock()
	return page, nil
}

// ReadBatch implements contracts.BatchReader with one Read per request (a
// memory read has no round trip to save), so its results are Read's by
// construction. Read never fails, so errs is all nil.
func (s *EventStore) ReadBatch(ctx context.Context, reqs []contracts.ReadRequest, pages []contracts.EventPage, errs []error) {
	pages, errs = pages[:len(reqs)], errs[:len(reqs)]
	for i, r := range reqs {
		pages[i], errs[i] = s.Read(ctx, r.TaskID, r.After, r.Limit)
	}
}

// Listen calls fn for every append until ctx ends, then returns ctx.Err().
// fn runs on the appending goroutine while that task's lock is held, so
// calls for one task come in append order; calls for different tasks may be
// concurrent. fn must be quick and must not call back into the store. fn is
// never called after Listen has returned.
func (s *EventStore) Listen(ctx context.Context, fn func(contracts.Change)) error {
	if fn == nil {
		return errNilListener
	}
	l := &listener{fn: fn}
	s.listenMu.Lock()
	s.setListeners(append(s.loadListeners(), l))
	s.listenMu.Unlock()
	// Tell the listener it is subscribed: from here on no append is missed.
	l.mu.Lock()
	fn(contracts.Change{Resync: true})
	l.mu.Unlock()

	<-ctx.Done()

	s.listenMu.Lock()
	old := s.loadListeners()
	kept := make([]*listener, 0, len(old))
	for _, o := range old {
		if o != l {
			kept = append(kept, o)
		}
	}
	s.setListeners(kept)
	s.listenMu.Unlock()
	l.mu.Lock() // waits for calls in flight
	l.closed = true
	l.mu.Unlock()
	return ctx.Err()
}

// loadListeners returns a copy of the listener list. s.listenMu must be held.
func (s *EventStore) loadListeners() []*listener {
	p := s.listeners.Load()
	if p == nil {
		return nil
	}
	return append([]*listener(nil), (*p)...)
}

// setListeners publishes a new immutable list. s.listenMu must be held.
func (s *EventStore) setListeners(ls []*listener) {
	if len(ls) == 0 {
		s.listeners.Store(nil)
		return
	}
	s.listeners.Store(&ls)
}

func (s *EventStore) notify(c contracts.Change) {
	p := s.listeners.Load()
	if p == nil {
		return
	}
	for _, l := range *p {
		l.mu.RLock()
		if !l.closed {
			l.fn(c)
		}
		l.mu.RUnlock()
	}
}

// expireTask implements terminalHook.
func (s *EventStore) expireTask(taskID string, deadline time.Time) {
	sh := s.shard(taskID)
	sh.mu.RLock()
	st := sh.streams[taskID]
	sh.mu.RUnlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	schedule := st.expireAt == 0 && !st.deleted
	if schedule {
		st.expireAt = deadline.UnixNano()
	}
	st.mu.Unlock()
	if schedule {
		s.exp.push(taskID, deadline)
	}
}

// sweep removes the streams whose deadline passed, if any is due.
func (s *EventStore) sweep(nowNs int64) {
	if !s.exp.due(nowNs) {
		return
	}
	for _, id := range s.exp.popDue(nowNs) {
		s.remove(id, nowNs)
	}
}

// remove deletes the stream of taskID if its deadline has passed.
func (s *EventStore) remove(taskID string, nowNs int64) {
	sh := s.shard(taskID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.streams[taskID]
	if st == nil {
		return
	}
	st.mu.Lock()
	if st.expireAt != 0 && nowNs >= st.expireAt {
		st.deleted = true
		delete(sh.streams, taskID)
	}
	st.mu.Unlock()
}

func (s *EventStore) shard(taskID string) *eventShard {
	return &s.shards[maphash.String(s.seed, taskID)%shardCount]
}

// len returns the number of task streams held (for tests).
func (s *EventStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.streams)
		sh.mu.RUnlock()
	}
	return n
}

func (sh *eventShard) getOrCreate(taskID string) *stream {
	sh.mu.RLock()
	st := sh.streams[taskID]
	sh.mu.RUnlock()
	if st != nil {
		return st
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st = sh.streams[taskID]; st == nil {
		st = &stream{}
		sh.streams[taskID] = st
	}
	return st
}

// remember records that the event id was appended with key.
func (st *stream) remember(key string, id contracts.EventID) {
	if st.keys == nil {
		st.keys = make(map[string]contracts.EventID)
	}
	st.keys[key] = id
	st.keyed = append(st.keyed, keyedEvent{key: key, id: id})
}

// forget drops the keys of events at or before dropped (the cap removed
// them), compacting the list once half of it is forgotten.
func (st *stream) forget(dropped contracts.EventID) {
	for st.keyedLo < len(st.keyed) && st.keyed[st.keyedLo].id.Compare(dropped) <= 0 {
		delete(st.keys, st.keyed[st.keyedLo].key)
		st.keyed[st.keyedLo] = keyedEvent{}
		st.keyedLo++
	}
	if st.keyedLo > 0 && st.keyedLo >= len(st.keyed)-st.keyedLo {
		n := copy(st.keyed, st.keyed[st.keyedLo:])
		clear(st.keyed[n:])
		st.keyed, st.keyedLo = st.keyed[:n], 0
	}
}

// find returns the retained event with id; the caller knows it is retained
// (its key is held).
func (st *stream) find(id contracts.EventID) contracts.TaskEvent {
	w := st.events[st.lo:]
	lo, hi := 0, len(w)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if w[mid].EventID.Less(id) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return w[lo]
}

// push appends ev, dropping the oldest event when max (>0) are retained. It
// never writes an element a reader may hold: drops only move lo, and when
// the array is full and at least half of it is dropped, the live events are
// copied into a new array (amortised O(1) per append).
func (st *stream) push(ev contracts.TaskEvent, max int) (dropped contracts.TaskEvent, ok bool) {
	if max > 0 && len(st.events)-st.lo >= max {
		dropped, ok = st.events[st.lo], true
		st.dropped = st.events[st.lo].EventID
		st.lo++
		if len(st.keys) > 0 {
			st.forget(st.dropped)
		}
	}
	if len(st.events) == cap(st.events) && st.lo > 0 && st.lo >= len(st.events)-st.lo {
		live := len(st.events) - st.lo
		fresh := make([]contracts.TaskEvent, live, 2*live+1)
		copy(fresh, st.events[st.lo:])
		st.events, st.lo = fresh, 0
	}
	st.events = append(st.events, ev)
	return dropped, ok
}

// nextID returns the id after last for an append at now: the clock's
// milliseconds with sequence 0 when the clock moved past last, otherwise
// last's successor (the clock stood still or went backwards). It never
// returns the zero id.
func nextID(last contracts.EventID, now time.Time) contracts.EventID {
	var ms uint64
	if m := now.UnixMilli(); m > 0 {
		ms = uint64(m)
	}
	if ms > last.Ms {
		return contracts.EventID{Ms: ms}
	}
	if last.IsZero() {
		return contracts.EventID{Seq: 1}
	}
	return last.Next()
}

// searchAfter returns the index of the first event of w with an id after
// after (binary search; w is in id order).
func searchAfter(w []contracts.TaskEvent, after contracts.EventID) int {
	if after.IsZero() || len(w) == 0 {
		return 0
	}
	if w[len(w)-1].EventID.Compare(after) <= 0 {
		return len(w)
	}
	lo, hi := 0, len(w)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if w[mid].EventID.Compare(after) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
