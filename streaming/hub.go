package streaming

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/netpoll"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Lock order. A goroutine that holds one of these locks takes another only
// further down this list, never up:
//
//  1. Hub.mu       (the task map, the hub's run state, the poller)
//  2. taskState.mu (a task's subscribers, watchers and fan-out position)
//  3. conn.mu      (a connection's lifecycle and writer state, and its
//     subscribers' live state and queues)
//
// Leaf locks, taken with any of the above held or none, and never holding
// another: Hub.connMu (open connections), runQueue.mu, wheel.mu,
// retrySet.mu, writers.mu and the poller's. Store calls, writes to sockets
// and callbacks into the host (OnClose, Authorize) run with no lock held.
//
// Goroutines. Run owns the fan-out workers, the heartbeat wheel and the
// poller, and stops them before it returns. A connection's writer runs on
// a goroutine of the writers pool only while it has something to write.
// fasthttp owns the goroutine that hands a connection over (the hijack
// handler, the WebSocket upgrade handler), which the runtime keeps for the
// life of a held connection and gives back at once for a detached one.
// Retry timers belong to retrySet, linger timers to their connection.

// ErrHubClosed is returned by Run when the hub was already run or shut down.
var ErrHubClosed = errors.New("taskbridge: streaming hub is closed")

// Hub is the per-process streaming runtime: it listens to the event store's
// change feed once, reads each task's new events once per batch, encodes
// them once per wire format and hands the same bytes to every local
// subscriber of the task (SSE and WebSocket streams). It also implements the
// orchestration Waiter contract (Watch), so long-polls wait on the same feed.
//
// Create one with NewHub, run Run in a goroutine for as long as streams
// should be live, and call Shutdown to end every open stream. A Hub is safe
// for concurrent use.
type Hub struct {
	events  contracts.EventStore
	batch   contracts.BatchReader // events, when it reads batches and batching is on
	cfg     config
	tags    [numFormats][]observe.Tag // transport tags, by format
	formats [numFormats]wireFormat

	// ctx is the hub's lifetime context for store reads and authorization
	// made on behalf of streams; cancelled when the hub is shut down.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.RWMutex // guards tasks, closed, started, shutdown, runCancel, runDone, poller
	tasks     map[string]*taskState
	closed    bool
	shutdown  bool // Shutdown was called (Run then leaves draining to it)
	started   bool
	runCancel context.CancelFunc
	runDone   chan struct{}   // closed when Run returns
	stopped   chan struct{}   // closed when closed is set (Done)
	poller    *netpoll.Poller // watches detached connections while Run runs

	connMu  sync.Mutex // guards conns, drained
	conns   map[*conn]struct{}
	drained chan struct{} // closed when closed and conns is empty

	queue    runQueue
	wheel    *wheel
	writers  *writers      // goroutines that run the connections' drains
	retries  retrySet      // pending retries of failed store reads
	handover time.Duration // see handoverTimeout
}

// Reasons for store reads, the value of the "reason" tag.
const (
	reasonFanout  = "fanout"
	reasonCatchup = "catchup"
	reasonReplay  = "replay"
)

var (
	readTagsFanout  = []observe.Tag{{Key: observe.TagReason, Value: reasonFanout}}
	readTagsCatchup = []observe.Tag{{Key: observe.TagReason, Value: reasonCatchup}}
	readTagsReplay  = []observe.Tag{{Key: observe.TagReason, Value: reasonReplay}}
)

// NewHub returns a hub reading from events, configured by opts, or an error
// when events is nil. It does no I/O and starts no goroutine: the owner
// calls Run.
func NewHub(events contracts.EventStore, opts Options) (*Hub, error) {
	if events == nil {
		return nil, errors.New("taskbridge: streaming.NewHub: the event store is nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		events:  events,
		cfg:     opts.config(),
		ctx:     ctx,
		cancel:  cancel,
		tasks:   make(map[string]*taskState),
		conns:   make(map[*conn]struct{}),
		stopped: make(chan struct{}),
	}
	if br, ok := events.(contracts.BatchReader); ok && h.cfg.readBatch > 1 {
		h.batch = br
	}
	h.handover = handoverTimeout
	for f, tr := range transportOf {
		h.tags[f] = []observe.Tag{{Key: observe.TagTransport, Value: string(tr)}}
	}
	h.formats[formatSSE] = sseWire{jsonBeat: h.cfg.sseJSONBeat}
	h.formats[formatWS] = wsWire{}
	h.queue.kick = make(chan struct{}, 1)
	h.wheel = newWheel(h.cfg)
	h.writers = newWriters()
	return h, nil
}

// Run listens to the store's change feed and runs the hub's fan-out
// workers, heartbeat timer and connection poller until ctx ends or
// Shutdown is called; it returns ctx.Err() on cancellation, nil after
// Shutdown, or the feed's error. Every goroutine Run starts has ended when
// it returns. When Run returns for any reason but Shutdown, it first ends
// the open streams itself (close 1001 going away; 1011 when the feed
// failed) and waits up to 2 s for them, so no stream is left without live
// delivery. Run may be called once.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.closed || h.started {
		h.mu.Unlock()
		return ErrHubClosed
	}
	h.started = true
	runCtx, cancel := context.WithCancel(ctx)
	h.runCancel = cancel
	h.runDone = make(chan struct{})
	var p *netpoll.Poller
	var perr error
	if h.cfg.detach {
		p, perr = netpoll.New()
		h.poller = p
	}
	h.mu.Unlock()
	defer close(h.runDone)
	defer cancel()
	if perr != nil {
		h.cfg.log.Debug("connections are not detached", observe.Entry{Transport: observe.TransportInternal, Err: perr})
	}

	stopCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(h.cfg.workers + 1)
	for range h.cfg.workers {
		go func() { // owner: Run (stopCtx, wg)
			defer wg.Done()
			h.work(stopCtx)
		}()
	}
	go func() { // owner: Run (stopCtx, wg)
		defer wg.Done()
		h.wheel.run(stopCtx)
	}()
	if p != nil {
		wg.Add(1)
		go func() { // owner: Run (p.Stop, wg)
			defer wg.Done()
			p.Run()
		}()
	}
	// Streams may have joined before the feed was listening: read them once.
	h.reread(false)
	err := h.events.Listen(runCtx, h.onChange)

	h.mu.RLock()
	shutdown := h.shutdown
	h.mu.RUnlock()
	switch {
	case shutdown:
		err = nil
	case ctx.Err() != nil:
		err = ctx.Err()
		h.closeStreams(closeGoingAway, "going away")
	default:
		if err == nil {
			err = errors.New("taskbridge: change feed stopped")
		}
		h.cfg.log.Error("change feed failed; ending streams", observe.Entry{Transport: observe.TransportInternal, Err: err})
		h.closeStreams(closeInternalError, "change feed failed")
	}
	if !shutdown {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = h.drain(dctx)
		dcancel()
	}
	stop()
	h.writers.close()
	h.retries.stop()
	if p != nil {
		p.Stop()
	}
	wg.Wait()
	return err
}

// unwatch stops the poller watching a released connection; the poller is
// kept after Run (it refuses adds once stopped), so this works whenever a
// connection is released.
func (h *Hub) unwatch(k netpoll.Key) {
	h.mu.RLock()
	p := h.poller
	h.mu.RUnlock()
	if p != nil {
		p.Remove(k)
	}
}

// currentPoller returns the poller while Run runs (nil otherwise).
func (h *Hub) currentPoller() *netpoll.Poller {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil
	}
	return h.poller
}

// closeStreams marks the hub closed and asks every open stream to end.
func (h *Hub) closeStreams(code int, reason string) []*conn {
	h.mu.Lock()
	if !h.closed {
		close(h.stopped)
	}
	h.closed = true
	var watchers []chan struct{}
	for _, t := range h.tasks {
		t.mu.Lock()
		watchers = append(watchers, t.watchers...)
		t.watchers = nil
		t.mu.Unlock()
	}
	h.mu.Unlock()
	for _, ch := range watchers {
		close(ch)
	}
	h.connMu.Lock()
	open := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		open = append(open, c)
	}
	h.connMu.Unlock()
	for _, c := range open {
		c.requestEnd(code, reason, false)
	}
	return open
}

// Shutdown ends every open stream promptly: SSE responses end (the final
// chunk is written), WebSockets close with 1001 "going away", long-poll
// watchers are woken, new streams are refused, and Run returns. It waits
// for the streams to finish their last write (and WebSockets for the
// client's close, up to 1 s); when ctx ends first it closes the remaining
// connections hard and returns ctx.Err(). Shutdown is idempotent.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	already := h.shutdown
	h.shutdown = true
	runCancel, runDone := h.runCancel, h.runDone
	h.mu.Unlock()
	open := h.closeStreams(closeGoingAway, "going away")
	if !already {
		h.cfg.diag.OnShutdown(len(open))
		h.cfg.log.Info("streaming hub shutting down", observe.Entry{
			Transport: observe.TransportInternal,
			Details:   map[string]any{"openStreams": len(open)},
		})
	}
	err := h.drain(ctx)
	h.retries.stop()
	h.cancel()
	if runCancel != nil {
		runCancel()
		select {
		case <-runDone:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	return err
}

// drain waits until every stream has ended; when ctx ends first it closes
// the rest hard and returns ctx.Err().
func (h *Hub) drain(ctx context.Context) error {
	h.connMu.Lock()
	if h.drained == nil {
		h.drained = make(chan struct{})
		if len(h.conns) == 0 {
			close(h.drained)
		}
	}
	drained := h.drained
	h.connMu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	h.connMu.Lock()
	rest := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		rest = append(rest, c)
	}
	h.connMu.Unlock()
	for _, c := range rest {
		c.forceClose()
	}
	return ctx.Err()
}

// Done returns a channel that is closed once the hub has stopped: Shutdown
// was called, or Run returned. From then on the channels Watch returns are
// closed at once, so a long-lived waiter sharing the hub (an executor's
// suspended handlers) turns to a waiter of its own.
func (h *Hub) Done() <-chan struct{} { return h.stopped }

func (h *Hub) isClosed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}

// addConn tracks c for Shutdown; false when the hub is closed. A hub
// closed while c was added (its closeStreams may have missed c) asks c to
// end like the others.
func (h *Hub) addConn(c *conn) bool {
	if h.isClosed() {
		return false
	}
	h.connMu.Lock()
	h.conns[c] = struct{}{}
	h.connMu.Unlock()
	h.cfg.metrics.AddGauge(observe.MetricStreamsActive, 1, c.tags()...)
	if h.isClosed() {
		c.requestEnd(closeGoingAway, "going away", false)
	}
	return true
}

func (h *Hub) removeConn(c *conn) {
	h.connMu.Lock()
	_, ok := h.conns[c]
	delete(h.conns, c)
	if h.drained != nil && len(h.conns) == 0 {
		select {
		case <-h.drained:
		default:
			close(h.drained)
		}
	}
	h.connMu.Unlock()
	if ok {
		h.cfg.metrics.AddGauge(observe.MetricStreamsActive, -1, c.tags()...)
	}
}

// getTask returns the task's state, creating it. Call with h.mu held.
func (h *Hub) getTask(id string) *taskState {
	t := h.tasks[id]
	if t == nil {
		t = &taskState{id: id}
		h.tasks[id] = t
	}
	return t
}

// dropIfEmpty removes t from the map when nothing uses it. Call with h.mu
// and t.mu held.
func (h *Hub) dropIfEmpty(t *taskState) {
	if t.empty() && !t.dead {
		t.dead = true
		delete(h.tasks, t.id)
	}
}

// register adds s to its task's subscribers in catch-up state. From then
// on the task's change notices are recorded (a pass runs once a subscriber
// is live), so a read s makes afterwards misses nothing. Call it once per
// subscriber.
func (h *Hub) register(s *subscriber) {
	h.mu.Lock()
	t := h.getTask(s.taskID)
	t.mu.Lock()
	t.add(s)
	t.mu.Unlock()
	h.mu.Unlock()
}

// unregister removes s from its task; it is idempotent.
func (h *Hub) unregister(s *subscriber) {
	h.mu.Lock()
	t := s.task
	if t == nil {
		h.mu.Unlock()
		return
	}
	t.mu.Lock()
	t.remove(s)
	h.dropIfEmpty(t)
	t.mu.Unlock()
	h.mu.Unlock()
}

// join switches s to live delivery (see taskState.join) and queues the
// pass that needs.
func (h *Hub) join(s *subscriber, lastReadEmpty, unseen bool) bool {
	joined, sched := s.task.join(s, lastReadEmpty, unseen)
	if sched {
		h.queue.push(s.task)
	}
	return joined
}

// onChange is the feed callback: a map lookup for tasks nobody here
// watches; for watched ones it records the notice, wakes watchers and
// queues a fan-out pass. It never blocks and never calls the store.
func (h *Hub) onChange(c contracts.Change) {
	if c.Resync {
		h.reread(true)
		if h.cfg.taskExists != nil {
			h.retries.after(0, func() { h.checkGone(nil, backoff{}) })
		}
		return
	}
	h.mu.RLock()
	t := h.tasks[c.TaskID]
	h.mu.RUnlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	if t.noticed.Less(c.LastEventID) {
		t.noticed = c.LastEventID
	}
	watchers := t.watchers
	t.watchers = nil
	sched := t.wantPass()
	t.mu.Unlock()
	for _, ch := range watchers {
		close(ch)
	}
	if sched {
		h.queue.push(t)
	}
}

// reread re-reads every task with live subscribers and, on a feed resync,
// wakes every watcher.
func (h *Hub) reread(wake bool) {
	h.mu.RLock()
	tasks := make([]*taskState, 0, len(h.tasks))
	for _, t := range h.tasks {
		tasks = append(tasks, t)
	}
	h.mu.RUnlock()
	for _, t := range tasks {
		t.mu.Lock()
		t.more = true
		var watchers []chan struct{}
		if wake {
			watchers, t.watchers = t.watchers, nil
		}
		sched := t.wantPass()
		t.mu.Unlock()
		for _, ch := range watchers {
			close(ch)
		}
		if sched {
			h.queue.push(t)
		}
	}
}

// Watch implements the orchestration Waiter contract: the returned channel
// is closed at the next change of taskID after the call (or on a feed
// resync, or when the hub shuts down); release must be called once the
// caller stops waiting. Register before reading the store, wait only if the
// read found nothing. On a closed hub the channel is already closed.
func (h *Hub) Watch(taskID string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(ch)
		return ch, func() {}
	}
	t := h.getTask(taskID)
	t.mu.Lock()
	t.watchers = append(t.watchers, ch)
	t.mu.Unlock()
	h.mu.Unlock()
	var once sync.Once
	return ch, func() { once.Do(func() { h.release(t, ch) }) }
}

func (h *Hub) release(t *taskState, ch chan struct{}) {
	h.mu.Lock()
	t.mu.Lock()
	for i, w := range t.watchers {
		if w == ch {
			last := len(t.watchers) - 1
			t.watchers[i] = t.watchers[last]
			t.watchers[last] = nil
			t.watchers = t.watchers[:last]
			break
		}
	}
	h.dropIfEmpty(t)
	t.mu.Unlock()
	h.mu.Unlock()
}

// work runs fan-out passes for queued tasks until ctx ends: one task at a
// time, or batches of tasks when the store reads batches.
func (h *Hub) work(ctx context.Context) {
	if h.batch != nil {
		h.workBatches(ctx)
		return
	}
	var starts []*conn
	for {
		t := h.queue.pop()
		if t == nil {
			select {
			case <-h.queue.kick:
				continue
			case <-ctx.Done():
				return
			}
		}
		starts = h.pass(ctx, t, starts)
	}
}

// pass reads the task's new events after its position, batch by batch,
// and offers each batch to every live subscriber, until nothing is left.
// A failed read is retried later (the task stays marked running, so no
// other pass starts meanwhile) until Options.StoreRetryBudget is spent.
func (h *Hub) pass(ctx context.Context, t *taskState, starts []*conn) []*conn {
	for {
		rd, ok := t.nextRead()
		if !ok {
			return starts
		}
		h.cfg.metrics.IncCounter(observe.MetricStoreReads, 1, readTagsFanout...)
		page, err := h.events.Read(ctx, t.id, rd.after, h.cfg.liveBatch)
		if ok, starts = h.readDone(ctx, t, rd, page, err, starts); !ok {
			return starts
		}
	}
}

// readDone completes the read rd of t's pass: it offers the page's events
// to t's live subscribers and moves t's position, or, after a failed read,
// arranges its retry. It reports whether the pass goes on (call nextRead
// again); false after a failure.
func (h *Hub) readDone(ctx context.Context, t *taskState, rd fanoutRead,
	page contracts.EventPage, err error, starts []*conn) (bool, []*conn) {
	if err != nil {
		h.fanoutFailed(ctx, t, err)
		return false, starts
	}
	t.mu.Lock()
	failures := t.fail.attempts
	t.fail = backoff{}
	t.mu.Unlock()
	if failures > 0 {
		h.cfg.log.Info("store reads recovered", observe.Entry{
			TaskID: t.id, Transport: observe.TransportInternal, Outcome: reasonFanout,
			Details: map[string]any{"failedReads": failures},
		})
	}
	if len(page.Events) == 0 {
		t.mu.Lock()
		if t.pos == rd.after && !t.more && t.noticed == rd.noticed {
			// Announced events are gone (expired or trimmed): forget them.
			// A notice that came in during the read is kept: the read may
			// have been made before that append, so the next one reads it.
			t.noticed = rd.after
		}
		t.mu.Unlock()
		return true, starts
	}
	b := newBatch(page.Events)
	b.encode(&h.formats, rd.need)

	t.mu.Lock()
	if t.pos != rd.after {
		// A joining subscriber rewound the position while we read.
		t.mu.Unlock()
		return true, starts
	}
	t.pos = b.last
	if len(page.Events) >= h.cfg.liveBatch {
		t.more = true
	}
	starts = t.offerLocked(&h.formats, b, starts)
	t.mu.Unlock()
	return true, h.startWriters(starts)
}

// startWriters starts the collected writers (outside the task's lock) and
// returns the emptied slice for reuse.
func (h *Hub) startWriters(starts []*conn) []*conn {
	for i, c := range starts {
		h.writers.start(c.runFn)
		starts[i] = nil
	}
	return starts[:0]
}

// fanoutFailed handles a failed fan-out read of t: while the retry budget
// lasts, the read is made again after a backoff (the task keeps its
// running mark, so notices and joins meanwhile add no pass); once it is
// spent, every stream of t ends. A read cut short by the hub's end is
// dropped.
func (h *Hub) fanoutFailed(ctx context.Context, t *taskState, err error) {
	t.mu.Lock()
	if ctx.Err() != nil {
		t.running = false
		t.fail = backoff{}
		t.mu.Unlock()
		return
	}
	d, again := t.fail.next(time.Now(), h.cfg.retryBudget)
	attempt := t.fail.attempts
	t.more = true // the read is still to be made
	t.mu.Unlock()
	if again && h.retries.after(d, func() { h.queue.push(t) }) {
		entry := observe.Entry{
			TaskID: t.id, Transport: observe.TransportInternal, Outcome: reasonFanout, Err: err,
			Details: map[string]any{"attempt": attempt, "retryIn": d.String()},
		}
		if attempt == 1 {
			h.cfg.log.Warn("store read failed; retrying", entry)
		} else {
			h.cfg.log.Debug("store read failed again; retrying", entry)
		}
		return
	}
	t.mu.Lock()
	t.running = false
	t.fail = backoff{}
	t.mu.Unlock()
	if again {
		return // the hub is ending: its end request ends the streams
	}
	h.failTask(t, err)
}

// goneCheckTimeout bounds one Options.TaskExists call.
const goneCheckTimeout = 5 * time.Second

// checkGone asks Options.TaskExists about every task with open streams
// here (or, when only is not nil, about those) and ends the streams of
// those that no longer exist (their store lost them, as a Redis restart
// without persistence does). Tasks whose check failed are asked again
// after a backoff, within the store retry budget that b paces. It runs on
// a retrySet callback, after a feed Resync.
func (h *Hub) checkGone(only []*taskState, b backoff) {
	tasks := only
	if tasks == nil {
		h.mu.RLock()
		for _, t := range h.tasks {
			tasks = append(tasks, t)
		}
		h.mu.RUnlock()
	}
	var failed []*taskState
	var lastErr error
	for _, t := range tasks {
		t.mu.Lock()
		subs := append([]*subscriber(nil), t.subs...)
		t.mu.Unlock()
		if len(subs) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(h.ctx, goneCheckTimeout)
		exists, err := h.cfg.taskExists(ctx, t.id)
		cancel()
		if err != nil {
			failed, lastErr = append(failed, t), err
			continue
		}
		if exists {
			continue
		}
		h.cfg.log.Info("task no longer exists; ending its streams", observe.Entry{
			TaskID: t.id, Transport: observe.TransportInternal, Outcome: "task_gone",
		})
		for _, s := range subs {
			s.conn.endSub(s, endTaskGone)
		}
	}
	if len(failed) == 0 || h.ctx.Err() != nil {
		return
	}
	if d, again := b.next(time.Now(), h.cfg.retryBudget); again {
		h.retries.after(d, func() { h.checkGone(failed, b) })
		return
	}
	h.cfg.log.Warn("could not check whether tasks still exist", observe.Entry{
		Transport: observe.TransportInternal, Err: lastErr, Details: map[string]any{"tasks": len(failed)},
	})
}

// failTask ends every stream of t after its fan-out reads failed for the
// whole retry budget; clients reconnect with their cursor.
func (h *Hub) failTask(t *taskState, err error) {
	h.cfg.log.Error("fan-out read failed; ending the task's streams", observe.Entry{
		TaskID: t.id, Transport: observe.TransportInternal, Err: err,
	})
	t.mu.Lock()
	subs := append([]*subscriber(nil), t.subs...)
	t.mu.Unlock()
	for _, s := range subs {
		s.conn.endSub(s, endStoreUnavailable)
	}
}

// runQueue is a FIFO of tasks waiting for a fan-out pass. A task is in it at
// most once (taskState.running).
type runQueue struct {
	mu   sync.Mutex
	head *taskState
	tail *taskState
	kick chan struct{}
}

func (q *runQueue) push(t *taskState) {
	q.mu.Lock()
	t.next = nil
	if q.tail == nil {
		q.head = t
	} else {
		q.tail.next = t
	}
	q.tail = t
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

func (q *runQueue) pop() *taskState {
	q.mu.Lock()
	t := q.head
	if t != nil {
		q.head = t.next
		if q.head == nil {
			q.tail = nil
		}
		t.next = nil
	}
	more := q.head != nil
	q.mu.Unlock()
	if more {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return t
}
