package orchestration

import (
	"context"
	"sync"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Waiter lets a long-poll (and TaskContext.Suspend) wait for new events of
// a task without polling the store.
//
// Watch returns a channel that is closed at the next change of taskID after
// the call (or on a feed resync), and a release func the caller must call
// once it stops waiting. Register the watch BEFORE reading the store, then
// wait on the channel only if the read found nothing: an append that lands
// between the read and the wait then still closes the channel, so no
// wake-up is lost. Implementations are safe for concurrent use; the
// streaming hub implements Waiter too.
type Waiter interface {
	Watch(taskID string) (<-chan struct{}, func())
}

// FeedWaiter implements Waiter from a contracts.ChangeFeed: one feed
// listener per FeedWaiter, however many watches are open. A process with a
// bridge needs none (the bridge's streaming hub is the waiter); a worker
// process without one may run a FeedWaiter and give it to both its
// Services and its Executor (Options.Waiter, ExecutorOptions.Waiter) to
// keep one listener. Watches are
// one-shot: a change of a task closes and drops every watch of that task; a
// resync closes them all. It is safe for concurrent use. Its owner runs Run
// in a goroutine and stops it by cancelling Run's context; watches made
// while Run is not running are only released, never closed.
type FeedWaiter struct {
	feed    contracts.ChangeFeed
	mu      sync.Mutex
	watches map[string]map[*watch]struct{}

	startOnce sync.Once
	started   chan struct{} // closed once the feed announced its subscription (or Run ended)
}

type watch struct{ ch chan struct{} }

var _ Waiter = (*FeedWaiter)(nil)

// NewFeedWaiter returns a FeedWaiter listening to feed once Run is called.
func NewFeedWaiter(feed contracts.ChangeFeed) *FeedWaiter {
	return &FeedWaiter{feed: feed, watches: make(map[string]map[*watch]struct{}), started: make(chan struct{})}
}

// Run listens to the feed until ctx ends and returns the feed's error
// (ctx.Err() after cancellation). When it returns, open watches are closed,
// so waiters re-read the store instead of sleeping on a dead feed.
//
// A feed announces its subscription with a first Change{Resync: true}
// (and again after reconnecting); each Resync closes every open watch, so
// a watch made before the feed was live is woken to re-read the store.
func (w *FeedWaiter) Run(ctx context.Context) error {
	err := w.feed.Listen(ctx, w.notify)
	w.startOnce.Do(func() { close(w.started) })
	w.closeAll()
	return err
}

// Watch implements Waiter.
func (w *FeedWaiter) Watch(taskID string) (<-chan struct{}, func()) {
	wt := &watch{ch: make(chan struct{})}
	w.mu.Lock()
	set := w.watches[taskID]
	if set == nil {
		set = make(map[*watch]struct{}, 1)
		w.watches[taskID] = set
	}
	set[wt] = struct{}{}
	w.mu.Unlock()
	return wt.ch, func() { w.release(taskID, wt) }
}

// release drops wt if it is still registered; it is idempotent.
func (w *FeedWaiter) release(taskID string, wt *watch) {
	w.mu.Lock()
	if set := w.watches[taskID]; set != nil {
		delete(set, wt)
		if len(set) == 0 {
			delete(w.watches, taskID)
		}
	}
	w.mu.Unlock()
}

// notify is the feed callback: it only closes channels, so it is quick and
// never calls back into the store.
func (w *FeedWaiter) notify(c contracts.Change) {
	if c.Resync {
		w.startOnce.Do(func() { close(w.started) })
		w.closeAll()
		return
	}
	w.mu.Lock()
	set := w.watches[c.TaskID]
	delete(w.watches, c.TaskID)
	w.mu.Unlock()
	for wt := range set {
		close(wt.ch)
	}
}

func (w *FeedWaiter) closeAll() {
	w.mu.Lock()
	all := w.watches
	w.watches = make(map[string]map[*watch]struct{})
	w.mu.Unlock()
	for _, set := range all {
		for wt := range set {
			close(wt.ch)
		}
	}
}

// watching returns how many watches are open, for tests.
func (w *FeedWaiter) watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, set := range w.watches {
		n += len(set)
	}
	return n
}

// stoppable is a Waiter that can stop for good, such as the streaming hub
// once its bridge shut down: Done is closed then, and its Watch channels
// are closed at once from then on.
type stoppable interface {
	Done() <-chan struct{}
}

// waiterSlot is the waiter of an Executor or of Services: the one their
// options gave (fixed), or one given later by use (a waiter the process
// runs anyway, such as the streaming hub), or else a FeedWaiter on the
// event store's change feed that the slot starts at the first Watch and
// close stops. A given waiter that stops (stoppable) is replaced by the
// slot's own FeedWaiter at the next Watch, so waiters never spin on a dead
// one. It is safe for concurrent use.
type waiterSlot struct {
	feed  contracts.ChangeFeed
	onErr func(error) // reports the own FeedWaiter's failure

	mu     sync.RWMutex // guards the fields below; held while a watch registers
	w      Waiter       // nil until given or started
	done   <-chan struct{}
	fixed  bool
	own    *FeedWaiter
	stop   context.CancelFunc
	ended  chan struct{} // closed when the own FeedWaiter's Run returned
	closed bool
}

var _ Waiter = (*waiterSlot)(nil)

func newWaiterSlot(feed contracts.ChangeFeed, fixed Waiter, onErr func(error)) *waiterSlot {
	s := &waiterSlot{feed: feed, onErr: onErr}
	if fixed != nil {
		s.w, s.fixed = fixed, true
		s.done = doneOf(fixed)
	}
	return s
}

func doneOf(w Waiter) <-chan struct{} {
	if st, ok := w.(stoppable); ok {
		return st.Done()
	}
	return nil
}

// live reports whether s.w is set and has not stopped; s.mu is held.
func (s *waiterSlot) live() bool {
	if s.w == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Watch implements Waiter. The watch registers under the slot's lock, so
// a switch of waiters (use) cannot slip between choosing a waiter and
// registering on it: the old waiter's watches are all woken when it stops.
func (s *waiterSlot) Watch(taskID string) (<-chan struct{}, func()) {
	s.mu.RLock()
	if s.live() || (s.closed && s.w != nil) {
		defer s.mu.RUnlock()
		return s.w.Watch(taskID)
	}
	s.mu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live() && !s.closed {
		s.startOwn()
	}
	if s.w == nil { // closed before any watch: nothing will ever wake it
		return make(chan struct{}), func() {}
	}
	return s.w.Watch(taskID)
}

// startOwn starts the slot's FeedWaiter; s.mu is held. A watch made before
// the feed is subscribed is woken by the feed's first Resync, so nothing
// waits for the subscription.
func (s *waiterSlot) startOwn() {
	fw := NewFeedWaiter(s.feed)
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { // owned by the slot: close (or use) cancels ctx and waits for ended
		defer close(ended)
		if err := fw.Run(ctx); err != nil && ctx.Err() == nil {
			s.onErr(err)
		}
	}()
	s.w, s.done, s.fixed = fw, nil, false
	s.own, s.stop, s.ended = fw, cancel, ended
}

// use makes w the waiter unless the options fixed one, a live one was
// given already, or the slot is closed. A FeedWaiter the slot had started
// is stopped: its watches are woken and register again, on w.
func (s *waiterSlot) use(w Waiter) {
	if w == nil {
		return
	}
	s.mu.Lock()
	if s.closed || s.fixed || (s.live() && s.own == nil) {
		s.mu.Unlock()
		return
	}
	stop, ended := s.stop, s.ended
	s.w, s.done = w, doneOf(w)
	s.own, s.stop, s.ended = nil, nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-ended
	}
}

// close stops the slot's own FeedWaiter, if it started one, and waits for
// it. Watches made afterwards on it are never woken; a given waiter is left
// to its owner. It is idempotent.
func (s *waiterSlot) close() {
	s.mu.Lock()
	s.closed = true
	stop, ended := s.stop, s.ended
	s.stop, s.ended = nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-ended
	}
}
