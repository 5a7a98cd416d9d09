package memstore

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// expiryQueue is a FIFO of (key, deadline) pairs. Deadlines are pushed in
// the order tasks become terminal, which is deadline order while the clock
// moves forward, so popping from the front is amortised O(1). If the clock
// goes backwards an entry may sit behind a later one and is removed a little
// late (reads of expired keys still see it as gone).
//
// next holds the front deadline (UnixNano) so the hot path can test "is
// anything due?" with one atomic load and no lock. The zero value is ready:
// next == 0 makes the first due check take the lock once and fix it.
type expiryQueue struct {
	mu    sync.Mutex
	items []expiryItem
	head  int
	next  atomic.Int64
}

type expiryItem struct {
	key string
	at  int64
}

// push appends key with its deadline.
func (q *expiryQueue) push(key string, deadline time.Time) {
	at := deadline.UnixNano()
	q.mu.Lock()
	q.items = append(q.items, expiryItem{key: key, at: at})
	if q.head == len(q.items)-1 {
		q.next.Store(at)
	}
	q.mu.Unlock()
}

// due reports whether the front deadline is at or before now (UnixNano).
func (q *expiryQueue) due(now int64) bool { return now >= q.next.Load() }

// popDue removes and returns the keys whose deadline is at or before now,
// from the front of the queue.
func (q *expiryQueue) popDue(now int64) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var keys []string
	for q.head < len(q.items) && q.items[q.head].at <= now {
		keys = append(keys, q.items[q.head].key)
		q.items[q.head] = expiryItem{}
		q.head++
	}
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head > 64 && q.head*2 >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	if q.head < len(q.items) {
		q.next.Store(q.items[q.head].at)
	} else {
		q.next.Store(math.MaxInt64)
	}
	return keys
}

// len returns the number of queued entries.
func (q *expiryQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
