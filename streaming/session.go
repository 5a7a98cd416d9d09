package streaming

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"go.uber.org/zap/zapcore"
)

const (
	sseIndex = 1
	wsIndex  = 2

	// maxWrite bounds one write; a larger drain is split into several.
	maxWrite = 64 << 10
	// chunkRoom is reserved at the start of an SSE write buffer for the
	// chunk-size line, written once the chunk is complete.
	chunkRoom = 10
	// finalWriteTimeout bounds the last write of a stream that is being
	// ended (shutdown, errors), so a stalled client cannot hold Shutdown.
	finalWriteTimeout = time.Second
	// wsCloseGrace is how long a WebSocket waits for the client's close
	// frame after sending its own.
	wsCloseGrace = time.Second
)

// Control work a session's writer picks up besides queued batches.
const (
	ctlBeat uint8 = 1 << iota
	ctlPing
	ctlPong
)

type subState uint8

const (
	stateCatchup subState = iota // reads the store by its own cursor
	stateLive                    // receives the hub's batches
)

type phase uint8

const (
	phaseHandshake phase = iota // not registered yet: the connection goroutine owns all I/O
	phaseReady                  // WebSocket subscribe done, not started yet
	phaseStreaming              // registered: writes go through the writer
)

var errSessionDead = errors.New("taskbridge: stream ended")

// session is one open stream (SSE or WebSocket). The connection goroutine
// (fasthttp's hijack goroutine) reads from the connection and tears the
// session down when reading ends; a writer goroutine runs only while there
// is something to write: it drains the queue, coalescing everything queued
// into one write, performs catch-up reads, and exits when idle.
type session struct {
	hub       *Hub
	transport observe.Transport
	tags      []observe.Tag
	taskID    string
	subject   string
	nc        net.Conn // as handed over: reads go through it
	raw       net.Conn // the underlying connection: writes, hard close
	chunked   bool     // SSE: chunked transfer encoding
	onClose   func()
	runFn     func() // s.run, allocated once so starting a writer costs no allocation

	// Writer-owned (one writer at a time; handed over under mu).
	cursor       contracts.EventID
	replaying    bool
	initial      *contracts.EventPage
	initialLimit int
	// initialUnseen: initial was read before the session was registered,
	// so a change notice in between may have found nobody to record it.
	initialUnseen bool
	fail          backoff // failed catch-up reads in a row

	lastWrite atomic.Int64 // UnixNano of the last data write (idle clock)
	lastRead  atomic.Int64 // UnixNano of the last client frame (WebSocket)
	lastPing  int64        // wheel-owned
	wheelTick int64        // guarded by the wheel's mu; 0: not in a slot
	wheelPos  int          // guarded by the wheel's mu

	task       *taskState // set by register under the hub's mu
	idx        int        // index in task.subs; guarded by task.mu; -1 when not registered
	registered bool       // register was called (connection goroutine only)

	// Detached mode: the connection was taken over from fasthttp and the
	// hub's poller watches it; no goroutine is parked on it.
	detached bool
	poller   *poller
	polled   bool   // guarded by the poller's mu
	pollIdx  int32  // guarded by the poller's mu
	rbuf     []byte // poller-owned: a partial client frame (WebSocket)
	ignoreIn bool   // poller-owned: input after a violation is discarded
	ignored  int    // poller-owned: bytes an SSE client sent

	mu         sync.Mutex
	phase      phase
	state      subState
	q          []*batch
	qHead      int
	qLen       int
	writing    bool
	dead       bool
	ending     bool
	endCode    int
	endReason  string
	dropQueued bool
	ctl        uint8
	pong       []byte
	lead       []byte // SSE: the response head, written before any chunk
	prefix     []byte // payload written first: SSE preamble, WS confirmation
	idle       chan struct{}
	retrying   bool   // a catch-up read failed; the retry timer restarts the writer
	reason     string // why the stream ended; first reason wins
	lingering  bool   // detached WebSocket: close sent, awaiting the client's
	linger     *time.Timer
	released   bool
}

func (h *Hub) newSession(transport observe.Transport, taskID string, cursor contracts.EventID) *session {
	s := &session{
		hub:       h,
		transport: transport,
		taskID:    taskID,
		cursor:    cursor,
		replaying: true,
		idx:       -1,
		q:         make([]*batch, h.cfg.queueSize),
	}
	if transport == observe.TransportSSE {
		s.tags = h.tags[sseIndex]
	} else {
		s.tags = h.tags[wsIndex]
	}
	s.runFn = s.run
	return s
}

func (s *session) index() int {
	if s.transport == observe.TransportSSE {
		return sseIndex
	}
	return wsIndex
}

// attach records the connection the session runs on.
func (s *session) attach(nc net.Conn) {
	s.nc, s.raw = nc, nc
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		if c := u.UnsafeConn(); c != nil {
			s.raw = c
		}
	}
}

// start registers the session with its task unless that was done before
// its first read (in catch-up state, so its first write replays from the
// cursor), with the heartbeat wheel, and starts its writer.
func (s *session) start() {
	now := time.Now()
	s.lastWrite.Store(now.UnixNano())
	s.lastRead.Store(now.UnixNano())
	s.lastPing = now.UnixNano()
	if !s.registered {
		s.registered = true
		s.hub.register(s)
	}
	s.mu.Lock()
	if s.dead {
		// Ended (the client left) before it started: its end already ran,
		// before the registration it could undo.
		s.mu.Unlock()
		s.hub.unregister(s)
		return
	}
	s.phase = phaseStreaming
	run := !s.writing
	if run {
		s.writing = true
	}
	s.mu.Unlock()
	s.hub.wheel.add(s, now)
	if run {
		s.hub.writers.start(s.runFn)
	}
}

// offer hands b to a live subscriber; it reports whether a writer must be
// started. A full queue switches the subscriber to catch-up reads. Called
// by the hub with the task's lock held.
func (s *session) offer(b *batch) bool {
	s.mu.Lock()
	if s.state != stateLive || s.dead {
		s.mu.Unlock()
		return false
	}
	slow := false
	if s.qLen == len(s.q) {
		s.state = stateCatchup
		s.task.live--
		slow = true
	} else {
		s.q[(s.qHead+s.qLen)%len(s.q)] = b
		s.qLen++
	}
	start := !s.writing
	if start {
		s.writing = true
	}
	s.mu.Unlock()
	if slow {
		h := s.hub
		h.cfg.metrics.IncCounter(observe.MetricSlowSubscribers, 1, s.tags...)
		h.cfg.diag.OnSlowSubscriber(s.transport, s.taskID)
		h.cfg.log.Debug("slow subscriber switched to catch-up reads", observe.Entry{TaskID: s.taskID, Transport: s.transport})
	}
	return start
}

// kickLocked starts a writer if one may run and none is running. Call with
// s.mu held; the caller starts the returned function after unlocking.
func (s *session) kickLocked() bool {
	if s.dead || s.writing || s.phase != phaseStreaming {
		return false
	}
	s.writing = true
	return true
}

// requestEnd asks the stream to end with a final write: an SSE stream ends
// its body, a WebSocket sends a close frame with code and reason. With drop,
// queued events are not written first.
func (s *session) requestEnd(code int, reason string, drop bool) {
	s.mu.Lock()
	if s.dead || s.ending {
		s.mu.Unlock()
		return
	}
	s.ending, s.endCode, s.endReason, s.dropQueued = true, code, reason, drop
	run := s.kickLocked()
	if s.phase == phaseHandshake && s.transport == observe.TransportWS && s.raw != nil {
		// The connection goroutine is reading the subscribe frame:
		// interrupt it; it answers the end itself. (Under mu, so it cannot
		// cross the handshake's end, which clears the deadline.)
		_ = s.raw.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	if run {
		s.hub.writers.start(s.runFn)
	}
}

// queuePong schedules a pong with payload (a client ping's payload).
func (s *session) queuePong(payload []byte) {
	s.mu.Lock()
	s.pong = append(s.pong[:0], payload...)
	s.ctl |= ctlPong
	run := s.kickLocked()
	s.mu.Unlock()
	if run {
		s.hub.writers.start(s.runFn)
	}
}

// stopLocked marks the writer stopped. Call with s.mu held.
func (s *session) stopLocked() {
	s.writing = false
	if s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// waitIdle waits until no writer runs.
func (s *session) waitIdle() {
	s.mu.Lock()
	if !s.writing {
		s.mu.Unlock()
		return
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	ch := s.idle
	s.mu.Unlock()
	<-ch
}

func (s *session) setReasonLocked(reason string) {
	if s.reason == "" {
		s.reason = reason
	}
}

// run is the writer: it loops until there is nothing left to write. A
// detached session whose stream ended is released by its last writer.
func (s *session) run() {
	for s.step() {
	}
	s.maybeRelease()
}

// step does one drain: it takes everything queued, writes it in one write
// (or reads the next catch-up page), and reports whether to continue.
func (s *session) step() bool {
	s.mu.Lock()
	if s.dead {
		s.stopLocked()
		s.mu.Unlock()
		return false
	}
	if s.ending && s.dropQueued {
		for i := 0; i < s.qLen; i++ {
			s.q[(s.qHead+i)%len(s.q)] = nil
		}
		s.qHead, s.qLen = 0, 0
	}
	n, head := s.qLen, s.qHead
	ctl, pong, prefix, lead := s.ctl, s.pong, s.prefix, s.lead
	s.ctl, s.prefix, s.lead = 0, nil, nil
	if ctl&ctlPong != 0 {
		s.pong = nil
	}
	ending := s.ending
	catchup := !ending && n == 0 && s.state == stateCatchup && !s.retrying
	if !ending && !catchup && n == 0 && ctl == 0 && prefix == nil && lead == nil {
		s.stopLocked()
		s.mu.Unlock()
		return false
	}
	s.mu.Unlock()

	var w out
	w.init(s, lead)
	w.add(prefix, true)
	w.control(ctl, pong)
	if catchup {
		return s.catchUp(&w)
	}
	for i := 0; i < n && !w.terminal && w.err == nil; i++ {
		w.batch(s.q[(head+i)%len(s.q)])
	}
	s.mu.Lock()
	for i := range n {
		s.q[(head+i)%len(s.q)] = nil
	}
	s.qHead = (head + n) % len(s.q)
	s.qLen -= n
	s.mu.Unlock()
	return s.complete(&w, ending)
}

// complete finishes a drain: it adds the end of the stream when the
// terminal event was written or an end was requested, flushes, and ends
// the session when that was the last write.
func (s *session) complete(w *out, ending bool) bool {
	final := w.terminal || ending
	if final {
		code, reason := CloseNormal, ""
		if !w.terminal {
			s.mu.Lock()
			code, reason = s.endCode, s.endReason
			s.mu.Unlock()
		}
		w.end(code, reason)
	}
	w.flush(final)
	err := w.err
	w.release()
	if err != nil {
		s.abort("write failed", err)
		s.mu.Lock()
		s.stopLocked()
		s.mu.Unlock()
		return false
	}
	if final {
		s.finish()
		return false
	}
	return true
}

// catchUp writes the next page read by the subscriber's own cursor (the
// initial page first) and joins live delivery once a read came back short.
func (s *session) catchUp(w *out) bool {
	h := s.hub
	page, limit, unseen := s.initial, s.initialLimit, s.initialUnseen
	s.initial, s.initialUnseen = nil, false
	if page == nil {
		tags := readTagsCatchup
		if s.replaying {
			tags = readTagsReplay
		}
		h.cfg.metrics.IncCounter(observe.MetricStoreReads, 1, tags...)
		p, err := h.events.Read(h.ctx, s.taskID, s.cursor, h.cfg.replayBatch)
		if err != nil {
			return s.readFailed(w, err)
		}
		if s.fail.attempts > 0 {
			h.cfg.log.Info("store reads recovered", observe.Entry{
				TaskID: s.taskID, Transport: s.transport, Outcome: reasonCatchup,
				Details: map[string]any{"failedReads": s.fail.attempts},
			})
			s.fail = backoff{}
		}
		page, limit = &p, h.cfg.replayBatch
	}
	if page.RetentionGap && !s.replaying {
		// Retention dropped events this subscriber has not seen: the gap
		// cannot be filled on this connection. End it; the client's
		// reconnect reports the gap (WebSocket confirmation, poll result).
		s.endNow(w, CloseInternalError, "retention gap", nil)
		return false
	}
	for i := range page.Events {
		if w.terminal || w.err != nil {
			break
		}
		ev := &page.Events[i]
		if s.cursor.Less(ev.EventID) {
			w.event(ev)
		}
	}
	s.mu.Lock()
	ending := s.ending
	s.mu.Unlock()
	// Ended without a terminal written: the terminal is at or before the
	// cursor, nothing will ever follow.
	if page.Ended && !w.terminal && !ending {
		w.terminal = true
	}
	more := w.terminal || ending || w.err != nil || len(page.Events) >= limit || limit <= 0
	if !s.complete(w, ending) {
		return false
	}
	if !more && h.join(s, len(page.Events) == 0, unseen) {
		s.replaying = false
	}
	return true
}

// readFailed handles a failed catch-up read on the writer: what w holds
// (the response head, a confirmation, a heartbeat) is written, and while
// the retry budget lasts the writer stops until a retry timer starts it
// again (heartbeats and an end request still get through meanwhile). Once
// the budget is spent, or when the hub is ending, the stream ends with
// 1011 "store unavailable"; an end already requested is written as asked.
// It reports whether the writer goes on.
func (s *session) readFailed(w *out, err error) bool {
	h := s.hub
	s.mu.Lock()
	ending := s.ending
	s.mu.Unlock()
	if ending {
		return s.complete(w, true)
	}
	d, again := s.fail.next(time.Now(), h.cfg.retryBudget)
	if again {
		// Marked before the timer exists, so a timer that fires at once
		// finds the mark and clears it.
		s.mu.Lock()
		s.retrying = true
		s.mu.Unlock()
		again = h.retries.after(d, s.retryNow)
	}
	if !again {
		s.mu.Lock()
		s.retrying = false
		s.mu.Unlock()
		s.fail = backoff{}
		s.endNow(w, CloseInternalError, "store unavailable", err)
		return false
	}
	entry := observe.Entry{
		TaskID: s.taskID, Transport: s.transport, Outcome: reasonCatchup, Err: err,
		Details: map[string]any{"attempt": s.fail.attempts, "retryIn": d.String()},
	}
	if s.fail.attempts == 1 {
		h.cfg.log.Warn("store read failed; retrying", entry)
	} else {
		h.cfg.log.Debug("store read failed again; retrying", entry)
	}
	if !s.complete(w, false) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retrying && !s.ending && !s.dead {
		s.stopLocked()
		return false
	}
	// The timer fired already, or an end was requested: go on.
	return true
}

// retryNow is a catch-up retry's timer: it restarts the writer, which
// reads again.
func (s *session) retryNow() {
	s.mu.Lock()
	s.retrying = false
	run := s.kickLocked()
	s.mu.Unlock()
	if run {
		s.hub.writers.start(s.runFn)
	}
}

// endNow ends the stream from the writer with code after a failure.
func (s *session) endNow(w *out, code int, reason string, err error) {
	entry := observe.Entry{TaskID: s.taskID, Transport: s.transport, Outcome: reason, Err: err}
	if err != nil {
		s.hub.cfg.log.Error("stream read failed", entry)
	} else {
		s.hub.cfg.log.Warn("stream ended", entry)
	}
	s.mu.Lock()
	s.ending, s.endCode, s.endReason = true, code, reason
	s.mu.Unlock()
	s.complete(w, true)
}

// finish runs after the last write: the session leaves its task and its
// connection is let go. A WebSocket first waits a moment for the client's
// close frame (wsCloseGrace).
func (s *session) finish() {
	ws := s.transport == observe.TransportWS
	s.mu.Lock()
	s.dead = true
	s.setReasonLocked(s.endReason)
	if s.reason == "" {
		s.reason = "terminal"
	}
	if s.detached && ws {
		s.lingering = true
		s.linger = time.AfterFunc(wsCloseGrace, s.lingerOver)
	}
	s.stopLocked()
	s.mu.Unlock()
	s.hub.unregister(s)
	if s.detached {
		return // released when the writer returns (SSE) or the linger ends
	}
	deadline := time.Now()
	if ws {
		deadline = deadline.Add(wsCloseGrace)
	}
	_ = s.raw.SetReadDeadline(deadline)
}

// lingerOver ends a detached WebSocket's wait for the client's close.
func (s *session) lingerOver() { s.abort("close timeout", nil) }

// abort ends the session without a final write (the connection failed, the
// peer is gone or dead, or a lingering close is over) and lets the
// connection go: a held connection's goroutine is released, a detached
// session is released by the last one out (here or its writer).
func (s *session) abort(reason string, err error) {
	s.mu.Lock()
	already := s.dead && !s.lingering
	s.dead = true
	s.lingering = false
	s.setReasonLocked(reason)
	if s.writing {
		_ = s.raw.SetWriteDeadline(time.Now())
	}
	s.mu.Unlock()
	if already {
		return
	}
	if err != nil {
		s.hub.cfg.log.Debug("stream aborted", observe.Entry{TaskID: s.taskID, Transport: s.transport, Outcome: reason, Err: err})
	}
	s.hub.unregister(s)
	if s.detached {
		s.maybeRelease()
		return
	}
	_ = s.raw.SetReadDeadline(time.Now())
}

// forceClose closes the connection hard (Shutdown past its deadline).
func (s *session) forceClose() {
	s.abort("shutdown timeout", nil)
	if s.raw != nil {
		_ = s.raw.Close()
	}
}

// maybeRelease releases a detached session once it is dead, no writer
// runs and no close is pending: it stops being watched, its connection is
// closed and the hub forgets it. It runs once.
func (s *session) maybeRelease() {
	s.mu.Lock()
	if !s.detached || !s.dead || s.writing || s.lingering || s.released {
		s.mu.Unlock()
		return
	}
	s.released = true
	reason := s.reason
	if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
	s.mu.Unlock()
	s.poller.remove(s)
	s.hub.unregister(s)
	s.hub.wheel.remove(s)
	_ = s.raw.Close()
	s.closed(reason)
}

// teardown runs on a held connection's goroutine when it stops reading:
// the session is dead, its writer has stopped, and it is forgotten by the
// hub. The connection is closed by the caller (fasthttp) afterwards.
func (s *session) teardown(reason string) {
	s.mu.Lock()
	s.dead = true
	s.setReasonLocked(reason)
	if s.writing && s.raw != nil {
		_ = s.raw.SetWriteDeadline(time.Now())
	}
	final := s.reason
	s.mu.Unlock()
	s.hub.unregister(s)
	s.hub.wheel.remove(s)
	s.waitIdle()
	s.closed(final)
}

// closed reports the end of the stream, once, in either mode.
func (s *session) closed(reason string) {
	s.hub.removeConn(s)
	s.hub.cfg.diag.OnDisconnect(s.transport, s.taskID, reason)
	s.hub.cfg.log.Info("stream closed", observe.Entry{
		TaskID: s.taskID, UserID: s.subject, Transport: s.transport, Outcome: reason,
	})
	if s.onClose != nil {
		s.onClose()
	}
}

// maxIgnoredInput bounds what an SSE client may send after its request
// before the stream is dropped.
const maxIgnoredInput = 64 << 10

// onReadable is the poller's callback for a detached connection with
// input: an SSE client should send nothing (its leaving shows as EOF); a
// WebSocket client's frames are handled like readLoop does.
func (s *session) onReadable(rc syscall.RawConn, buf []byte) {
	n, eof, err := readNow(rc, buf)
	switch {
	case err != nil:
		s.abort("read error", err)
		return
	case eof:
		s.abort("client closed", nil)
		return
	case n == 0:
		return
	}
	if s.transport == observe.TransportSSE {
		if s.ignored += n; s.ignored > maxIgnoredInput {
			s.abort("unexpected input", nil)
		}
		return
	}
	s.lastRead.Store(time.Now().UnixNano())
	s.consumeWS(buf[:n])
}

// appendHeartbeat appends the session's heartbeat to dst. The constant
// part is built once per task and transport; the SSE JSON heartbeat's
// eventId and createdAt are fresh each time.
func (s *session) appendHeartbeat(dst []byte) []byte {
	t := s.task
	i := s.index()
	sse := s.transport == observe.TransportSSE
	jsonBeat := sse && s.hub.cfg.sseJSONBeat
	t.mu.Lock()
	if t.beat[i] == nil {
		switch {
		case jsonBeat:
			b := append([]byte(nil), `: ping`+"\n"+`data: {"type":"HEARTBEAT","taskId":`...)
			b = contracts.AppendJSONString(b, t.id)
			t.beat[i] = append(b, `,"eventId":"`+contracts.HeartbeatEventIDPrefix...)
		case sse:
			t.beat[i] = []byte(": ping\n\n")
		default:
			hb := contracts.Heartbeat{Type: contracts.FrameHeartbeat, TaskID: t.id, Live: true}
			t.beat[i] = appendWSJSON(nil, func(dst []byte) []byte { return appendHeartbeatJSON(dst, &hb) })
		}
	}
	dst = append(dst, t.beat[i]...)
	t.mu.Unlock()
	if jsonBeat {
		dst = appendSSEHeartbeatTail(dst, time.Now())
	}
	return dst
}

// appendSSEHeartbeatTail completes the SSE JSON heartbeat after its
// `"eventId":"hb-`: 32 random hex digits (as a UUID4 without dashes, the
// form of taskbridge-fastapi), createdAt and the payload.
func appendSSEHeartbeatTail(dst []byte, now time.Time) []byte {
	const hex = "0123456789abcdef"
	for _, r := range [2]uint64{rand.Uint64(), rand.Uint64()} {
		for shift := 60; shift >= 0; shift -= 4 {
			dst = append(dst, hex[(r>>shift)&0xf])
		}
	}
	dst = append(dst, `","createdAt":"`...)
	dst = now.UTC().AppendFormat(dst, contracts.TimeLayout)
	return append(dst, `","payload":{"live":true}}`+"\n\n"...)
}

func appendHeartbeatJSON(dst []byte, hb *contracts.Heartbeat) []byte {
	dst = append(dst, `{"type":`...)
	dst = contracts.AppendJSONString(dst, string(hb.Type))
	dst = append(dst, `,"taskId":`...)
	dst = contracts.AppendJSONString(dst, hb.TaskID)
	dst = append(dst, `,"live":`...)
	dst = strconv.AppendBool(dst, hb.Live)
	return append(dst, '}')
}

// visit is the heartbeat wheel's callback: it queues a heartbeat when the
// stream has been idle for the interval, a ping when one is due, drops a
// WebSocket whose peer stopped answering, and returns when to look again.
func (s *session) visit(now time.Time) (time.Time, bool) {
	cfg := &s.hub.cfg
	nowNs := now.UnixNano()
	next := int64(1<<63 - 1)
	s.mu.Lock()
	if s.dead || s.ending {
		s.mu.Unlock()
		return time.Time{}, false
	}
	if hb := int64(cfg.heartbeat); hb > 0 {
		due := s.lastWrite.Load() + hb
		if nowNs >= due {
			s.ctl |= ctlBeat
			due = nowNs + hb
		}
		next = min(next, due)
	}
	if ping := int64(cfg.wsPing); ping > 0 && s.transport == observe.TransportWS {
		deadline := s.lastRead.Load() + ping + int64(cfg.wsPongTimeout)
		if nowNs >= deadline {
			s.mu.Unlock()
			s.abort("ping timeout", nil)
			return time.Time{}, false
		}
		if nowNs-s.lastPing >= ping {
			s.ctl |= ctlPing
			s.lastPing = nowNs
		}
		next = min(next, s.lastPing+ping, deadline)
	}
	run := s.ctl != 0 && s.kickLocked()
	s.mu.Unlock()
	if run {
		s.hub.writers.start(s.runFn)
	}
	if next == 1<<63-1 {
		return time.Time{}, false
	}
	return time.Unix(0, next), true
}

// out builds one coalesced write in a pooled buffer.
type out struct {
	s        *session
	bp       *[]byte
	buf      []byte
	lead     []byte // written before the first chunk (SSE response head)
	start    int    // first byte of payload: room for lead and chunk-size line
	events   int
	first    time.Time
	last     contracts.EventID
	data     bool // the write carries data (resets the idle clock)
	terminal bool
	err      error
}

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 16<<10)
	return &b
}}

func (w *out) init(s *session, lead []byte) {
	w.s = s
	w.bp = bufPool.Get().(*[]byte)
	w.lead = lead
	w.start = len(lead)
	if s.chunked {
		w.start += chunkRoom
	}
	w.buf = append((*w.bp)[:0], make([]byte, w.start)...)
	w.data = len(lead) > 0
}

func (w *out) release() {
	if w.bp == nil {
		return
	}
	if cap(w.buf) <= 4*maxWrite {
		*w.bp = w.buf[:0]
		bufPool.Put(w.bp)
	}
	w.bp, w.buf = nil, nil
}

func (w *out) add(b []byte, data bool) {
	if len(b) == 0 {
		return
	}
	w.buf = append(w.buf, b...)
	w.data = w.data || data
}

func (w *out) control(ctl uint8, pong []byte) {
	if ctl == 0 {
		return
	}
	if ctl&ctlBeat != 0 {
		w.buf = w.s.appendHeartbeat(w.buf)
		w.data = true
		h := w.s.hub
		h.cfg.metrics.IncCounter(observe.MetricHeartbeats, 1, w.s.tags...)
		h.cfg.diag.OnHeartbeat(w.s.transport, w.s.taskID)
		h.cfg.log.Debug("heartbeat", observe.Entry{TaskID: w.s.taskID, Transport: w.s.transport})
	}
	if w.s.transport == observe.TransportWS {
		if ctl&ctlPing != 0 {
			w.buf = appendWSControl(w.buf, opPing, nil)
		}
		if ctl&ctlPong != 0 {
			w.buf = appendWSControl(w.buf, opPong, pong)
		}
	}
}

// batch appends the batch's frames after the cursor.
func (w *out) batch(b *batch) {
	s := w.s
	ws := s.transport == observe.TransportWS
	for i := range b.frames {
		f := &b.frames[i]
		if !s.cursor.Less(f.id) {
			continue
		}
		if ws {
			w.frame(f.ws, f.id, f.created, f.terminal)
		} else {
			w.frame(f.sse, f.id, f.created, f.terminal)
		}
		if w.terminal || w.err != nil {
			return
		}
	}
}

// event encodes ev (a catch-up or replay event) straight into the buffer.
func (w *out) event(ev *contracts.TaskEvent) {
	if len(w.buf) > maxWrite {
		w.flush(false)
		if w.err != nil {
			return
		}
	}
	if w.s.transport == observe.TransportWS {
		w.buf = AppendWSEvent(w.buf, ev)
	} else {
		w.buf = AppendSSEEvent(w.buf, ev)
	}
	w.account(ev.EventID, ev.CreatedAt, ev.Type.IsTerminal())
}

func (w *out) frame(b []byte, id contracts.EventID, created time.Time, terminal bool) {
	if len(w.buf)+len(b) > maxWrite && len(w.buf) > w.start {
		w.flush(false)
		if w.err != nil {
			return
		}
	}
	w.buf = append(w.buf, b...)
	w.account(id, created, terminal)
}

func (w *out) account(id contracts.EventID, created time.Time, terminal bool) {
	if w.events == 0 {
		w.first = created
	}
	w.events++
	w.last = id
	w.s.cursor = id
	w.data = true
	if terminal {
		w.terminal = true
	}
}

// end appends the end of the stream: a WebSocket close frame (SSE ends
// with the final chunk in flush).
func (w *out) end(code int, reason string) {
	if w.s.transport == observe.TransportWS {
		w.buf = appendWSClose(w.buf, code, reason)
	}
}

// flush writes the buffer in one write with a deadline and reports the
// delivery. final marks the stream's last write.
func (w *out) flush(final bool) {
	s := w.s
	if w.err != nil {
		return
	}
	payload := len(w.buf) - w.start
	if payload == 0 && len(w.lead) == 0 && !(final && s.chunked) {
		return
	}
	var hdr [chunkRoom]byte
	h := hdr[:0]
	b := w.buf
	if s.chunked && payload > 0 {
		h = strconv.AppendInt(h, int64(payload), 16)
		h = append(h, '\r', '\n')
		b = append(b, '\r', '\n')
	}
	if s.chunked && final {
		b = append(b, "0\r\n\r\n"...)
	}
	from := w.start - len(h) - len(w.lead)
	copy(b[from:], w.lead)
	copy(b[from+len(w.lead):], h)
	w.buf = b
	b = b[from:]
	timeout := s.hub.cfg.writeTimeout
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		w.err = errSessionDead
		return
	}
	if s.ending && (timeout == 0 || timeout > finalWriteTimeout) {
		timeout = finalWriteTimeout
	}
	if timeout > 0 {
		_ = s.raw.SetWriteDeadline(time.Now().Add(timeout))
	}
	s.mu.Unlock()
	_, err := s.raw.Write(b)
	if err != nil {
		w.err = err
		return
	}
	now := time.Now()
	if w.data {
		s.lastWrite.Store(now.UnixNano())
	}
	if w.events > 0 {
		h := s.hub
		h.cfg.metrics.IncCounter(observe.MetricEventsDelivered, float64(w.events), s.tags...)
		h.cfg.metrics.ObserveHistogram(observe.MetricDeliveryLatency, now.Sub(w.first).Seconds(), s.tags...)
		h.cfg.diag.OnDelivery(s.transport, s.taskID, w.last, w.events)
		if h.cfg.log.Enabled(zapcore.DebugLevel) {
			h.cfg.log.Debug("events delivered", observe.Entry{
				TaskID: s.taskID, EventID: w.last.String(), Transport: s.transport,
				Details: map[string]any{"events": w.events},
			})
		}
	}
	w.events, w.data, w.lead = 0, false, nil
	w.buf = w.buf[:w.start]
}
