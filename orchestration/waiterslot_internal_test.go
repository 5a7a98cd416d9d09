package orchestration

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// countingFeed counts Listen calls on a memory event store.
type countingFeed struct {
	contracts.EventStore
	listens atomic.Int32
}

func (f *countingFeed) Listen(ctx context.Context, fn func(contracts.Change)) error {
	f.listens.Add(1)
	return f.EventStore.Listen(ctx, fn)
}

// chanWaiter is a given waiter whose watches the test closes; done makes it
// stoppable.
type chanWaiter struct {
	mu      sync.Mutex
	watches []chan struct{}
	done    chan struct{}
}

func (w *chanWaiter) Watch(string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	w.watches = append(w.watches, ch)
	w.mu.Unlock()
	return ch, func() {}
}

func (w *chanWaiter) Done() <-chan struct{} { return w.done }

func (w *chanWaiter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watches)
}

func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// appendWakes appends to taskID and reports whether ch closes: by the
// append's notice, or by the feed's first resync when the watch was made
// before the feed subscribed (then the caller re-reads and sees the
// append). Either way no wake-up is lost.
func appendWakes(t *testing.T, feed contracts.EventStore, taskID string, ch <-chan struct{}) bool {
	t.Helper()
	_, err := feed.Append(context.Background(), taskID, contracts.Started(""))
	require.NoError(t, err)
	return closedWithin(ch, 5*time.Second)
}

// TestWaiterSlotStartsItsFeedAtTheFirstWatch: no listener before a watch;
// the first watch starts one, and appends wake watches.
func TestWaiterSlotStartsItsFeedAtTheFirstWatch(t *testing.T) {
	feed := &countingFeed{EventStore: memstore.New(memstore.Options{}).Events}
	s := newWaiterSlot(feed, nil, func(err error) { t.Error(err) })
	defer s.close()
	assert.Zero(t, feed.listens.Load(), "nothing listens before the first watch")
	for range 3 {
		ch, release := s.Watch("t1")
		require.True(t, appendWakes(t, feed, "t1", ch), "an append wakes the watch")
		release()
	}
	assert.EqualValues(t, 1, feed.listens.Load())
}

// TestWaiterSlotUseMovesWatchers: a watch pending on the slot's own feed is
// woken when a shared waiter is given, the next watch goes to the shared
// one, and when that one stops the slot falls back to a feed of its own.
func TestWaiterSlotUseMovesWatchers(t *testing.T) {
	feed := &countingFeed{EventStore: memstore.New(memstore.Options{}).Events}
	s := newWaiterSlot(feed, nil, func(err error) { t.Error(err) })
	defer s.close()
	first, _ := s.Watch("t1")
	require.True(t, appendWakes(t, feed, "t1", first)) // the feed is live
	pending, release := s.Watch("t1")
	defer release()

	shared := &chanWaiter{done: make(chan struct{})}
	s.use(shared)
	require.True(t, closedWithin(pending, 5*time.Second), "a watch on the stopped own feed is woken to re-register")
	_, rel := s.Watch("t1")
	rel()
	assert.Equal(t, 1, shared.count(), "new watches go to the shared waiter")

	another := &chanWaiter{done: make(chan struct{})}
	s.use(another)
	_, rel = s.Watch("t1")
	rel()
	assert.Equal(t, 0, another.count(), "a live shared waiter is not replaced")
	assert.Equal(t, 2, shared.count())

	close(shared.done) // the shared waiter stops (its bridge shut down)
	ch, rel := s.Watch("t2")
	defer rel()
	assert.Equal(t, 2, shared.count(), "a stopped waiter gets no more watches")
	require.True(t, appendWakes(t, feed, "t2", ch), "the slot's own feed is live again")
	assert.EqualValues(t, 2, feed.listens.Load())
}

// TestWaiterSlotFixedAndClosed: a waiter given in the options is never
// replaced; after close a watch is never woken (no spinning on a dead
// feed).
func TestWaiterSlotFixedAndClosed(t *testing.T) {
	feed := &countingFeed{EventStore: memstore.New(memstore.Options{}).Events}
	fixed := &chanWaiter{}
	s := newWaiterSlot(feed, fixed, func(err error) { t.Error(err) })
	s.use(&chanWaiter{})
	_, rel := s.Watch("t1")
	rel()
	assert.Equal(t, 1, fixed.count())

	own := newWaiterSlot(feed, nil, func(err error) { t.Error(err) })
	own.close()
	ch, rel := own.Watch("t1")
	defer rel()
	assert.False(t, closedWithin(ch, 50*time.Millisecond), "a closed slot's watch is not woken")
	assert.Zero(t, feed.listens.Load(), "a closed slot starts no feed")
	own.close() // idempotent
}
