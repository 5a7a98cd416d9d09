package streaming

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/taskbridge/taskbridge-fiber/internal/netpoll"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

const (
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
	// maxIgnoredInput bounds what an SSE client may send after its request
	// before the stream is dropped.
	maxIgnoredInput = 64 << 10
)

var errConnDead = errors.New("taskbridge: stream ended")

// connState is where a connection is in its life. It only moves forward,
// through moveLocked, along the arrows of connMoves.
type connState uint8

const (
	// connHandshake: a WebSocket reads its subscribe frame; the goroutine
	// that took the connection over owns all its I/O.
	connHandshake connState = iota
	// connReady: set up, no writer has run yet (SSE starts here).
	connReady
	// connCancelled: an end was asked for (endCode, endReason) before the
	// stream started; the start turns it into connEnding, so the first
	// drain writes it. No writer runs before.
	connCancelled
	// connOpen: streaming; everything is written by the writer.
	connOpen
	// connEnding: an end was asked for (endCode, endReason); the writer's
	// next drain writes it.
	connEnding
	// connClosing: a WebSocket wrote its close frame and waits up to
	// wsCloseGrace for the client's.
	connClosing
	// connDead: nothing more is written; the subscribers are gone. The
	// connection is released once no writer runs.
	connDead
	// connReleased: unwatched, closed, forgotten by the hub, OnClose
	// called.
	connReleased
)

// connMoves lists, for each state, the states it may move to.
var connMoves = [...]uint8{
	connHandshake: 1<<connReady | 1<<connCancelled | 1<<connDead,
	connReady:     1<<connOpen | 1<<connCancelled | 1<<connDead,
	connCancelled: 1<<connEnding | 1<<connDead,
	connOpen:      1<<connEnding | 1<<connClosing | 1<<connDead,
	connEnding:    1<<connClosing | 1<<connDead,
	connClosing:   1 << connDead,
	connDead:      1 << connReleased,
	connReleased:  0,
}

// conn is one stream's connection: its socket, its writer, its deadlines
// and its lifecycle. An SSE connection carries one subscriber; a WebSocket
// carries one per task it follows. A writer goroutine runs only while
// there is something to write: it drains the subscribers' queues,
// coalescing everything queued into one write, performs their catch-up
// reads, and exits when idle. Input is read by the goroutine that took the
// connection over (held) or by the hub's poller (detached).
type conn struct {
	hub     *Hub
	subject string
	onClose func()
	runFn   func() // c.run, allocated once so starting a writer costs no allocation

	// Set while the connection is set up, before anything else sees it.
	nc       net.Conn // reads go through it
	raw      net.Conn // the underlying connection: writes, deadlines, hard close
	ws       *wsInput // WebSocket state; nil for SSE
	format   uint8    // formatSSE or formatWS
	chunked  bool     // SSE: chunked transfer encoding
	detached bool     // taken from fasthttp and watched by the hub's poller
	readTurn bool     // writer-owned: a catch-up read goes before the next drain

	// Owned by the reader: the goroutine that took the connection over,
	// then, for a detached connection, the poller.
	ignored uint32 // SSE: bytes the client sent after its request

	wheelPos  int32        // guarded by the wheel's mu
	wheelTick int64        // guarded by the wheel's mu; 0: not in a slot
	lastPing  int64        // owned by the wheel
	lastWrite atomic.Int64 // UnixNano of the last data write (idle clock)
	lastRead  atomic.Int64 // UnixNano of the last client input (WebSocket)

	mu         sync.Mutex // see the lock order in hub.go
	state      connState
	writing    bool // a writer runs (or was started)
	ctl        uint8
	dropQueued bool // the end is written without what is still queued
	endCode    uint16
	idle       chan struct{} // closed when the writer stops (waitIdle)
	lead       []byte        // SSE: the response head, written before any chunk
	prefix     []byte        // payload written first: SSE preamble, WS confirmation
	endReason  string
	reason     string      // why the stream ended; the first reason wins
	pollKey    netpoll.Key // the poller's key of a detached connection (watch)
	// subs are the connection's subscribers. They change under mu, only
	// while the connection is set up and then by its writer, and never
	// once it is closing; anyone may read them under mu.
	subs []*subscriber
	one  [1]*subscriber // backing array of subs for a single subscriber
}

func (h *Hub) newConn(format uint8) *conn {
	c := &conn{hub: h, format: format}
	c.init()
	return c
}

// newWSConn returns a WebSocket connection, its wsInput allocated with it
// (one object instead of two for every idle connection).
func (h *Hub) newWSConn() *conn {
	both := &struct {
		c  conn
		in wsInput
	}{}
	c := &both.c
	c.hub, c.format, c.ws = h, formatWS, &both.in
	c.init()
	return c
}

func (c *conn) init() {
	c.subs = c.one[:0]
	c.runFn = c.run
}

// wire is the connection's wire format.
func (c *conn) wire() wireFormat { return c.hub.formats[c.format] }

// tags are the connection's metric tags (its transport).
func (c *conn) tags() []observe.Tag { return c.hub.tags[c.format] }

// moveLocked is the lifecycle's one transition: it moves c to next if
// connMoves allows it and reports whether it did. Call with c.mu held.
func (c *conn) moveLocked(next connState) bool {
	if connMoves[c.state]&(1<<next) == 0 {
		return false
	}
	c.state = next
	return true
}

// attach records the connection the stream runs on.
func (c *conn) attach(nc net.Conn) {
	c.nc, c.raw = nc, nc
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		if r := u.UnsafeConn(); r != nil {
			c.raw = r
		}
	}
}

// tryDetach takes the connection away from fasthttp when the hub runs a
// poller (Linux, detaching not disabled) and the connection is plain TCP.
// Call before the connection is visible to Shutdown, so its fields never
// change under a concurrent reader.
func (c *conn) tryDetach() {
	if c.hub.currentPoller() == nil {
		return
	}
	if d, ok := netpoll.Detach(c.raw); ok {
		c.nc, c.raw, c.detached = d, d, true
	}
}

// watch hands a detached connection's input to the hub's poller. The
// poller may call OnReadable (a client that left at once: EOF) before Add
// returns, and that call may release the connection, which unwatches it by
// its key: c.mu, held from Add until the key is stored, keeps the release
// from reading the key before it is there (it would unwatch nothing and
// leave the poller holding the connection).
func (c *conn) watch() error {
	p := c.hub.currentPoller()
	if p == nil {
		return errors.New("taskbridge: poller stopped")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k, err := p.Add(c.raw.(syscall.Conn), c)
	if err != nil {
		return err
	}
	c.pollKey = k
	return nil
}

// addSub adds s to the connection's subscribers. Call before the
// connection starts, or from its writer.
func (c *conn) addSub(s *subscriber) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state >= connClosing {
		return false
	}
	c.subs = append(c.subs, s)
	return true
}

// start registers the subscribers that are not yet (in catch-up state, so
// the first write replays from their cursor), puts the connection on the
// heartbeat wheel and starts its writer.
func (c *conn) start(registered bool) {
	now := time.Now()
	c.lastWrite.Store(now.UnixNano())
	c.lastRead.Store(now.UnixNano())
	c.lastPing = now.UnixNano()
	if !registered {
		for _, s := range c.subs {
			c.hub.register(s)
		}
	}
	c.mu.Lock()
	if c.state >= connClosing {
		// Ended (the client left) before it started: its end already
		// ran, before the registrations it could undo.
		c.mu.Unlock()
		c.dropSubs()
		return
	}
	if !c.moveLocked(connOpen) { // from ready
		c.moveLocked(connEnding) // from cancelled: the first drain ends it
	}
	run := !c.writing
	c.writing = true
	c.mu.Unlock()
	c.hub.wheel.add(c, now)
	if run {
		c.hub.writers.start(c.runFn)
	}
}

// kickLocked marks a writer running when one may run (the connection has
// started and is not closing) and none does; the caller starts it
// (c.hub.writers.start(c.runFn)) after unlocking. Call with c.mu held.
func (c *conn) kickLocked() bool {
	if c.writing || (c.state != connOpen && c.state != connEnding) {
		return false
	}
	c.writing = true
	return true
}

// requestEnd asks the stream to end with a final write: an SSE stream ends
// its body, a WebSocket sends a close frame with code and reason. With
// drop, queued events are not written first. The first request wins.
func (c *conn) requestEnd(code int, reason string, drop bool) {
	c.mu.Lock()
	from := c.state
	next := connEnding
	if from < connOpen {
		next = connCancelled
	}
	if !c.moveLocked(next) {
		c.mu.Unlock()
		return
	}
	c.endCode, c.endReason, c.dropQueued = uint16(code), reason, drop
	run := from == connOpen && !c.writing
	if run {
		c.writing = true
	}
	if from == connHandshake && c.raw != nil {
		// The connection goroutine is reading the subscribe frame:
		// interrupt it; it answers the end itself. (Under mu, so it cannot
		// cross the handshake's end, which clears the deadline.)
		_ = c.raw.SetReadDeadline(time.Now())
	}
	c.mu.Unlock()
	if run {
		c.hub.writers.start(c.runFn)
	}
}

// endSub ends one subscriber's stream after a failure of its own (end,
// one of subEnds: its store reads failed for the whole retry budget): a
// connection that follows one task ends with that close code and reason;
// on a multi-task connection only s ends, and its writer tells the client
// with UNSUBSCRIBED.
func (c *conn) endSub(s *subscriber, end uint8) {
	c.mu.Lock()
	if !c.multiLocked() {
		c.mu.Unlock()
		c.requestEnd(subEnds[end].code, subEnds[end].reason, false)
		return
	}
	s.end = end
	run := c.kickLocked()
	c.mu.Unlock()
	if run {
		c.hub.writers.start(c.runFn)
	}
}

// ending reports whether an end was asked for or written.
func (c *conn) ending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == connCancelled || c.state >= connEnding
}

// queuePong schedules a pong with payload (a client ping's payload).
func (c *conn) queuePong(payload []byte) {
	c.mu.Lock()
	c.ws.pong = append(c.ws.pong[:0], payload...)
	c.ctl |= ctlPong
	run := c.kickLocked()
	c.mu.Unlock()
	if run {
		c.hub.writers.start(c.runFn)
	}
}

// stopLocked marks the writer stopped. Call with c.mu held.
func (c *conn) stopLocked() {
	c.writing = false
	if c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// waitIdle waits until no writer runs.
func (c *conn) waitIdle() {
	c.mu.Lock()
	if !c.writing {
		c.mu.Unlock()
		return
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	ch := c.idle
	c.mu.Unlock()
	<-ch
}

func (c *conn) setReasonLocked(reason string) {
	if c.reason == "" {
		c.reason = reason
	}
}

func (c *conn) setReason(reason string) {
	c.mu.Lock()
	c.setReasonLocked(reason)
	c.mu.Unlock()
}

// subsLocked returns the subscribers; once the connection is closing the
// slice no longer changes, so it may be used after unlocking.
func (c *conn) subsLocked() []*subscriber { return c.subs }

// dropSubs unregisters every subscriber. Call once the connection is
// closing (its subscribers no longer change); it is idempotent.
func (c *conn) dropSubs() {
	c.mu.Lock()
	subs := c.subsLocked()
	c.mu.Unlock()
	for _, s := range subs {
		c.hub.unregister(s)
	}
}

// finish runs after the last write: the subscribers leave their tasks and
// the connection is let go. A WebSocket first waits a moment for the
// client's close frame (wsCloseGrace).
func (c *conn) finish() {
	grace := c.ws != nil
	c.mu.Lock()
	c.setReasonLocked(c.endReason)
	c.setReasonLocked("terminal")
	switch {
	case !grace:
		c.moveLocked(connDead)
	case c.moveLocked(connClosing) && c.detached:
		c.ws.linger = time.AfterFunc(wsCloseGrace, c.lingerOver)
	}
	c.stopLocked()
	c.mu.Unlock()
	c.dropSubs()
	if c.detached {
		return // released when the writer returns (SSE) or the linger ends
	}
	deadline := time.Now()
	if grace {
		deadline = deadline.Add(wsCloseGrace)
	}
	_ = c.raw.SetReadDeadline(deadline)
}

// lingerOver ends a detached WebSocket's wait for the client's close.
func (c *conn) lingerOver() { c.abort("close timeout", nil) }

// abort ends the stream without a final write (the connection failed, the
// peer is gone or dead, or a lingering close is over) and lets the
// connection go: a held connection's goroutine is released, a detached
// connection is released by the last one out (here or its writer).
func (c *conn) abort(reason string, err error) {
	c.mu.Lock()
	if !c.moveLocked(connDead) {
		c.mu.Unlock()
		return
	}
	c.setReasonLocked(reason)
	if c.writing {
		_ = c.raw.SetWriteDeadline(time.Now())
	}
	c.mu.Unlock()
	if err != nil {
		c.hub.cfg.log.Debug("stream aborted", observe.Entry{TaskID: c.taskID(), Transport: transportOf[c.format], Outcome: reason, Err: err})
	}
	c.dropSubs()
	if c.detached {
		c.maybeRelease()
		return
	}
	_ = c.raw.SetReadDeadline(time.Now())
}

// forceClose closes the connection hard (Shutdown past its deadline).
func (c *conn) forceClose() {
	c.abort("shutdown timeout", nil)
	if c.raw != nil {
		_ = c.raw.Close()
	}
}

// maybeRelease releases a detached connection once it is dead and no
// writer runs: it stops being watched, its socket is closed and the hub
// forgets it. It runs once.
func (c *conn) maybeRelease() {
	c.mu.Lock()
	if !c.detached || c.state != connDead || c.writing {
		c.mu.Unlock()
		return
	}
	c.moveLocked(connReleased)
	reason, key := c.reason, c.pollKey
	if c.ws != nil && c.ws.linger != nil {
		c.ws.linger.Stop()
		c.ws.linger = nil
	}
	c.mu.Unlock()
	c.hub.unwatch(key)
	c.dropSubs()
	c.hub.wheel.remove(c)
	_ = c.raw.Close()
	c.closed(reason)
}

// teardown runs on a held connection's goroutine when it stops reading
// (and on any connection whose setup failed before it was watched): the
// stream is dead, its writer has stopped, and it is forgotten by the hub.
// The socket is closed by the caller (fasthttp) afterwards.
func (c *conn) teardown(reason string) {
	c.mu.Lock()
	c.moveLocked(connDead)
	c.setReasonLocked(reason)
	if c.writing && c.raw != nil {
		_ = c.raw.SetWriteDeadline(time.Now())
	}
	c.mu.Unlock()
	c.dropSubs()
	c.hub.wheel.remove(c)
	c.waitIdle()
	c.mu.Lock()
	c.moveLocked(connReleased)
	final := c.reason
	c.mu.Unlock()
	c.closed(final)
}

// closed reports the end of the stream, once, in either mode.
func (c *conn) closed(reason string) {
	tr := transportOf[c.format]
	taskID := c.taskID()
	c.hub.removeConn(c)
	c.hub.cfg.diag.OnDisconnect(tr, taskID, reason)
	c.hub.cfg.log.Info("stream closed", observe.Entry{
		TaskID: taskID, UserID: c.subject, Transport: tr, Outcome: reason,
	})
	c.releaseSlots()
	if c.onClose != nil {
		c.onClose()
	}
}

// taskID names the connection's task for logs: its first subscriber's.
func (c *conn) taskID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) == 0 {
		return ""
	}
	return c.subs[0].taskID
}

// OnReadable is the poller's callback for a detached connection with
// input: an SSE client should send nothing (its leaving shows as EOF); a
// WebSocket client's frames are handled as the held reader handles them.
func (c *conn) OnReadable(rc syscall.RawConn, buf []byte) {
	n, eof, err := netpoll.ReadNow(rc, buf)
	switch {
	case err != nil:
		c.abort("read error", err)
		return
	case eof:
		c.abort("client closed", nil)
		return
	case n == 0:
		return
	}
	if c.ws == nil {
		if c.ignored += uint32(n); c.ignored > maxIgnoredInput {
			c.abort("unexpected input", nil)
		}
		return
	}
	c.lastRead.Store(time.Now().UnixNano())
	if reason, done := c.ws.consume(c, buf[:n]); done {
		c.abort(reason, nil)
	}
}

// visit is the heartbeat wheel's callback: it queues a heartbeat when the
// stream has been idle for the interval, a ping when one is due, drops a
// WebSocket whose peer stopped answering, and returns when to look again.
func (c *conn) visit(now time.Time) (time.Time, bool) {
	cfg := &c.hub.cfg
	nowNs := now.UnixNano()
	next := int64(1<<63 - 1)
	c.mu.Lock()
	if c.state != connOpen {
		c.mu.Unlock()
		return time.Time{}, false
	}
	if hb := int64(cfg.heartbeat); hb > 0 {
		due := c.lastWrite.Load() + hb
		if nowNs >= due {
			c.ctl |= ctlBeat
			due = nowNs + hb
		}
		next = min(next, due)
	}
	if ping := int64(cfg.wsPing); ping > 0 && c.ws != nil {
		deadline := c.lastRead.Load() + ping + int64(cfg.wsPongTimeout)
		if nowNs >= deadline {
			c.mu.Unlock()
			c.abort("ping timeout", nil)
			return time.Time{}, false
		}
		if nowNs-c.lastPing >= ping {
			c.ctl |= ctlPing
			c.lastPing = nowNs
		}
		next = min(next, c.lastPing+ping, deadline)
	}
	run := c.ctl != 0 && c.kickLocked()
	c.mu.Unlock()
	if run {
		c.hub.writers.start(c.runFn)
	}
	if next == 1<<63-1 {
		return time.Time{}, false
	}
	return time.Unix(0, next), true
}
