package orchestration

import (
	"context"
	"sync"
	"time"

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
// listener per FeedWaiter, however many watches are open. Watches are
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

// startInBackground runs w.Run(ctx) in a new goroutine, calling onErr with
// an error other than ctx's, and returns once the feed has announced its
// subscription (contracts.ChangeFeed's first Resync), so that no change
// after it returns is missed. The returned channel is closed when Run has
// returned.
func (w *FeedWaiter) startInBackground(ctx context.Context, onErr func(error)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
	}()
	// A feed that does not announce its subscription (a host's own
	// ChangeFeed predating that rule) must not block construction forever.
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-w.started:
	case <-t.C:
	}
	return done
}

// subscribeWait bounds how long startInBackground waits for the feed's
// first Resync.
const subscribeWait = 5 * time.Second

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
