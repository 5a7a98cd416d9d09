package streaming

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

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
	events contracts.EventStore
	batch  contracts.BatchReader // events, when it reads batches and batching is on
	cfg    config
	tags   [3][]observe.Tag // transport tags, by sseIndex and wsIndex

	// ctx is the hub's lifetime context for store reads and authorization
	// made on behalf of streams; cancelled when the hub is shut down.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.RWMutex // guards tasks, closed, started, runCancel, poller
	tasks     map[string]*taskState
	closed    bool
	shutdown  bool // Shutdown was called (Run then leaves draining to it)
	started   bool
	runCancel context.CancelFunc
	runDone   chan struct{} // closed when Run returns
	stopped   chan struct{} // closed when closed is set (Done)
	poller    *poller       // watches detached connections while Run runs

	connMu  sync.Mutex // guards conns, drained
	conns   map[*session]struct{}
	drained chan struct{} // closed when closed and conns is empty

	queue    runQueue
	wheel    *wheel
	writers  *writers      // goroutines that run the sessions' drains
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
		conns:   make(map[*session]struct{}),
		stopped: make(chan struct{}),
	}
	if br, ok := events.(contracts.BatchReader); ok && h.cfg.readBatch > 1 {
		h.batch = br
	}
	h.handover = handoverTimeout
	h.tags[sseIndex] = []observe.Tag{{Key: observe.TagTransport, Value: string(observe.TransportSSE)}}
	h.tags[wsIndex] = []observe.Tag{{Key: observe.TagTransport, Value: string(observe.TransportWS)}}
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
	p, perr := newPoller()
	if perr == nil {
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
		go func() {
			defer wg.Done()
			h.work(stopCtx)
		}()
	}
	go func() {
		defer wg.Done()
		h.wheel.run(stopCtx)
	}()
	if p != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run()
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
		h.closeStreams(CloseGoingAway, "going away")
	default:
		if err == nil {
			err = errors.New("taskbridge: change feed stopped")
		}
		h.cfg.log.Error("change feed failed; ending streams", observe.Entry{Transport: observe.TransportInternal, Err: err})
		h.closeStreams(CloseInternalError, "change feed failed")
	}
	if !shutdown {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = h.drain(dctx)
		dcancel()
	}
	h.mu.Lock()
	h.poller = nil
	h.mu.Unlock()
	stop()
	h.writers.close()
	h.retries.stop()
	if p != nil {
		p.stop()
	}
	wg.Wait()
	return err
}

// currentPoller returns the poller while Run runs (nil otherwise).
func (h *Hub) currentPoller() *poller {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil
	}
	return h.poller
}

// closeStreams marks the hub closed and asks every open stream to end.
func (h *Hub) closeStreams(code int, reason string) []*session {
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
	open := make([]*session, 0, len(h.conns))
	for s := range h.conns {
		open = append(open, s)
	}
	h.connMu.Unlock()
	for _, s := range open {
		s.requestEnd(code, reason, false)
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
	open := h.closeStreams(CloseGoingAway, "going away")
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
	rest := make([]*session, 0, len(h.conns))
	for s := range h.conns {
		rest = append(rest, s)
	}
	h.connMu.Unlock()
	for _, s := range rest {
		s.forceClose()
	}
	return ctx.Err()
}

// Done returns a channel that is closed once the hub has stopped: Shutdown
// was called, or Run returned. From then on the channels Watch returns are
// closed at once, so a long-lived waiter sharing the hub (an executor's
// suspended handlers) turns to a waiter of its own.
func (h *Hub) Done() <-chan struct{} { return h.stopped }

// OpenStreams returns the number of open SSE and WebSocket connections,
// including WebSockets still in their subscribe handshake.
func (h *Hub) OpenStreams() int {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	return len(h.conns)
}

func (h *Hub) isClosed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}

// addConn tracks s for Shutdown; false when the hub is closed.
func (h *Hub) addConn(s *session) bool {
	if h.isClosed() {
		return false
	}
	h.connMu.Lock()
	h.conns[s] = struct{}{}
	h.connMu.Unlock()
	h.cfg.metrics.AddGauge(observe.MetricStreamsActive, 1, s.tags...)
	return true
}

func (h *Hub) removeConn(s *session) {
	h.connMu.Lock()
	_, ok := h.conns[s]
	delete(h.conns, s)
	if h.drained != nil && len(h.conns) == 0 {
		select {
		case <-h.drained:
		default:
			close(h.drained)
		}
	}
	h.connMu.Unlock()
	if ok {
		h.cfg.metrics.AddGauge(observe.MetricStreamsActive, -1, s.tags...)
	}
}

// taskState is the hub's view of one task with local subscribers or
// watchers.
type taskState struct {
	id string

	mu       sync.Mutex
	subs     []*session // registered subscribers, live or catching up
	live     int        // subscribers in stateLive
	nSSE     int
	nWS      int
	watchers []chan struct{}
	pos      contracts.EventID // the next fan-out read starts after pos
	noticed  contracts.EventID // highest id the feed announced
	more     bool              // read again even without a newer notice
	running  bool              // a pass is queued, running or waiting to retry a read
	fail     backoff           // failed fan-out reads in a row (the pass's)
	dead     bool              // removed from the hub's map
	next     *taskState        // run queue link
	beat     [3][]byte         // heartbeat bytes by transportIndex, built lazily
}

// wantPass reports whether a fan-out pass must run; it marks one running.
// Call with t.mu held.
func (t *taskState) wantPass() bool {
	if t.running || t.live == 0 || (!t.more && !t.pos.Less(t.noticed)) {
		return false
	}
	t.running = true
	return true
}

func (t *taskState) empty() bool { return len(t.subs) == 0 && len(t.watchers) == 0 }

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

// register adds s to its task's subscribers in catch-up state. From then
// on the task's change notices are recorded (a pass runs once a subscriber
// is live), so a read s makes afterwards misses nothing. Call it once per
// session.
func (h *Hub) register(s *session) {
	h.mu.Lock()
	t := h.getTask(s.taskID)
	t.mu.Lock()
	s.task = t
	s.idx = len(t.subs)
	t.subs = append(t.subs, s)
	if s.transport == observe.TransportSSE {
		t.nSSE++
	} else {
		t.nWS++
	}
	t.mu.Unlock()
	h.mu.Unlock()
}

// unregister removes s from its task; it is idempotent.
func (h *Hub) unregister(s *session) {
	h.mu.Lock()
	t := s.task
	if t == nil {
		h.mu.Unlock()
		return
	}
	t.mu.Lock()
	if s.idx >= 0 {
		last := len(t.subs) - 1
		moved := t.subs[last]
		t.subs[s.idx] = moved
		moved.idx = s.idx
		t.subs[last] = nil
		t.subs = t.subs[:last]
		s.idx = -1
		if s.transport == observe.TransportSSE {
			t.nSSE--
		} else {
			t.nWS--
		}
		s.mu.Lock()
		wasLive := s.state == stateLive
		s.state = stateCatchup
		s.mu.Unlock()
		if wasLive {
			t.live--
		}
		if len(t.subs) == 0 {
			t.subs = nil
		}
	}
	h.dropIfEmpty(t)
	t.mu.Unlock()
	h.mu.Unlock()
}

// join switches s, which has read the store up to its cursor, to live
// delivery and reports whether it did. With no other live subscriber the
// hub's position simply moves to the cursor; when s's last read was made
// before s was registered (unseen: the first page, read by the caller or
// by ServeSSE before the stream existed), a change notice may have come
// in between and found no subscriber to record it, so the hub reads once
// from the cursor instead of waiting for the next notice. A live
// subscriber, by contrast, proves the task's notices have been recorded
// since before s's read. If the position is past the cursor, events the
// hub fanned out before s joined are missing: s reads on (false) while its
// reads still find events; when its last read found none (the position
// came from a client cursor beyond the store's end), the position is
// rewound instead, so the next pass re-reads from s's cursor and the
// others drop the repeats by id.
func (h *Hub) join(s *session, lastReadEmpty, unseen bool) bool {
	t := s.task
	t.mu.Lock()
	s.mu.Lock()
	if s.dead || s.idx < 0 {
		s.mu.Unlock()
		t.mu.Unlock()
		return true
	}
	switch {
	case t.live == 0:
		t.pos = s.cursor
		if unseen {
			t.more = true
		}
	case s.cursor.Less(t.pos):
		if !lastReadEmpty {
			s.mu.Unlock()
			t.mu.Unlock()
			return false
		}
		t.pos = s.cursor
		t.more = true
	}
	s.state = stateLive
	s.mu.Unlock()
	t.live++
	sched := t.wantPass()
	t.mu.Unlock()
	if sched {
		h.queue.push(t)
	}
	return true
}

// work runs fan-out passes for queued tasks until ctx ends: one task at a
// time, or batches of tasks when the store reads batches.
func (h *Hub) work(ctx context.Context) {
	if h.batch != nil {
		h.workBatches(ctx)
		return
	}
	var starts []*session
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
func (h *Hub) pass(ctx context.Context, t *taskState, starts []*session) []*session {
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

// fanoutRead is one read of a task's pass, as nextRead started it.
type fanoutRead struct {
	after   contracts.EventID // the position read after
	noticed contracts.EventID // the highest announced id when the read began
	sse, ws bool              // transports of the task's subscribers then
}

// nextRead starts the next read of t's pass, or reports false when the
// pass is over (nothing new, or no live subscriber left), in which case t
// is no longer marked running.
func (t *taskState) nextRead() (fanoutRead, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == 0 || (!t.more && !t.pos.Less(t.noticed)) {
		t.running = false
		t.fail = backoff{}
		return fanoutRead{}, false
	}
	t.more = false
	return fanoutRead{after: t.pos, noticed: t.noticed, sse: t.nSSE > 0, ws: t.nWS > 0}, true
}

// readDone completes the read rd of t's pass: it offers the page's events
// to t's live subscribers and moves t's position, or, after a failed read,
// arranges its retry. It reports whether the pass goes on (call nextRead
// again); false after a failure.
func (h *Hub) readDone(ctx context.Context, t *taskState, rd fanoutRead,
	page contracts.EventPage, err error, starts []*session) (bool, []*session) {
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
	b.encode(rd.sse, rd.ws)

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
	starts = t.offerLocked(b, starts)
	t.mu.Unlock()
	return true, startWriters(starts)
}

// offerLocked hands b (encoded for every transport present) to each live
// subscriber and collects those whose writer must be started. Call with
// t.mu held. It allocates nothing per subscriber.
func (t *taskState) offerLocked(b *batch, starts []*session) []*session {
	b.encode(t.nSSE > 0, t.nWS > 0)
	for _, s := range t.subs {
		if s.offer(b) {
			starts = append(starts, s)
		}
	}
	return starts
}

// startWriters starts the collected writers (outside the task's lock) and
// returns the emptied slice for reuse.
func startWriters(starts []*session) []*session {
	for i, s := range starts {
		s.hub.writers.start(s.runFn)
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
		subs := append([]*session(nil), t.subs...)
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
			s.requestEnd(CloseInternalError, "task no longer exists", false)
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
	subs := append([]*session(nil), t.subs...)
	t.mu.Unlock()
	for _, s := range subs {
		s.requestEnd(CloseInternalError, "store unavailable", false)
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
