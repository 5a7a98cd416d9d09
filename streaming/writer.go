package streaming

import (
	"time"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// run is the writer: it loops until there is nothing left to write. A
// detached connection whose stream ended is released by its last writer.
func (c *conn) run() {
	for c.step() {
	}
	c.maybeRelease()
}

// step does one drain: it takes everything queued for every subscriber,
// writes it in one write (or reads the next catch-up page of one
// subscriber), and reports whether to continue.
func (c *conn) step() bool {
	c.mu.Lock()
	if c.state >= connClosing {
		c.stopLocked()
		c.mu.Unlock()
		return false
	}
	ending := c.state == connEnding
	queued := false
	var reader *subscriber
	for _, s := range c.subs {
		if ending && c.dropQueued {
			s.taken(s.pending())
		}
		if s.qLen > 0 {
			queued = true
		} else if reader == nil && s.needsRead() {
			reader = s
		}
	}
	switch {
	case ending:
		reader = nil
	case reader != nil && queued:
		// Live batches of some tasks and a catch-up read of another
		// (a multi-task connection): take turns, so a busy task cannot
		// hold a catching-up one back for ever.
		if c.readTurn {
			c.readTurn = false
			queued = false
		} else {
			c.readTurn = true
			reader = nil
		}
	}
	ctl, prefix, lead := c.ctl, c.prefix, c.lead
	c.ctl, c.prefix, c.lead = 0, nil, nil
	var pong []byte
	if ctl&ctlPong != 0 {
		pong, c.ws.pong = c.ws.pong, nil
	}
	reqs, ended := c.takeRequestsLocked(ending)
	requests := len(reqs) > 0 || ended
	if !ending && !queued && !requests && reader == nil && ctl == 0 && prefix == nil && lead == nil {
		c.stopLocked()
		c.mu.Unlock()
		return false
	}
	multi := c.multiLocked()
	c.mu.Unlock()

	var w out
	w.init(c, lead)
	w.multi = multi
	w.add(prefix, true)
	w.control(ctl, pong)
	if requests {
		c.serveRequests(&w, reqs)
		return c.complete(&w, false)
	}
	if reader != nil {
		return c.catchUp(&w, reader)
	}
	for _, s := range c.subs {
		if w.final || w.err != nil {
			break
		}
		c.drain(&w, s)
	}
	return c.complete(&w, ending)
}

// drain adds what is queued for s to w.
func (c *conn) drain(w *out, s *subscriber) {
	c.mu.Lock()
	head, n := s.pending()
	c.mu.Unlock()
	if n == 0 {
		return
	}
	for i := 0; i < n && !w.final && w.err == nil; i++ {
		w.batch(s, s.at(head, i))
	}
	c.mu.Lock()
	s.taken(head, n)
	c.mu.Unlock()
}

// complete finishes a drain: it adds the end of the stream when the
// terminal event was written or an end was requested, flushes, and ends
// the connection when that was the last write.
func (c *conn) complete(w *out, ending bool) bool {
	final := w.final || ending
	if final {
		code, reason := closeNormal, ""
		if !w.final {
			c.mu.Lock()
			code, reason = int(c.endCode), c.endReason
			c.mu.Unlock()
		}
		w.end(code, reason)
	}
	w.flush(final)
	err := w.err
	w.release()
	if err != nil {
		c.abort("write failed", err)
		c.mu.Lock()
		c.stopLocked()
		c.mu.Unlock()
		return false
	}
	if final {
		c.finish()
		return false
	}
	if w.subsDone {
		c.removeDone()
	}
	return true
}

// catchUp writes the next page read by s's own cursor (the initial page
// first) and joins live delivery once a read came back short.
func (c *conn) catchUp(w *out, s *subscriber) bool {
	h := c.hub
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
			return c.readFailed(w, s, err)
		}
		if s.fail.attempts > 0 {
			h.cfg.log.Info("store reads recovered", observe.Entry{
				TaskID: s.taskID, Transport: transportOf[c.format], Outcome: reasonCatchup,
				Details: map[string]any{"failedReads": s.fail.attempts},
			})
			s.fail = backoff{}
		}
		page, limit = &p, h.cfg.replayBatch
	}
	if page.RetentionGap && !s.replaying {
		// Retention dropped events this subscriber has not seen: the gap
		// cannot be filled on this connection. End it; the client's
		// reconnect (or resubscribe) reports the gap (WebSocket
		// confirmation, poll result).
		if w.multi {
			h.cfg.log.Warn("subscription ended", observe.Entry{TaskID: s.taskID, Transport: transportOf[c.format], Outcome: unsubRetentionGp})
			w.subEnded(s, unsubRetentionGp)
			return c.complete(w, c.ending())
		}
		c.endNow(w, s, closeInternalError, unsubRetentionGp, nil)
		return false
	}
	for i := range page.Events {
		if w.final || s.done || w.err != nil {
			break
		}
		ev := &page.Events[i]
		if s.cursor.Less(ev.EventID) {
			w.event(s, ev)
		}
	}
	ending := c.ending()
	// Ended without a terminal written: the terminal is at or before the
	// cursor, nothing will ever follow.
	if page.Ended && !w.final && !s.done && !ending {
		if w.multi {
			w.subEnded(s, unsubEnded)
		} else {
			w.final = true
		}
	}
	more := w.final || s.done || ending || w.err != nil || len(page.Events) >= limit || limit <= 0
	if !c.complete(w, ending) {
		return false
	}
	if !more && h.join(s, len(page.Events) == 0, unseen) {
		s.replaying = false
	}
	return true
}

// readFailed handles a failed catch-up read on the writer: what w holds
// (the response head, a confirmation, a heartbeat) is written, and while
// the retry budget lasts the subscriber waits for a retry timer to start
// the writer again (heartbeats and an end request still get through
// meanwhile). Once the budget is spent, or when the hub is ending, the
// stream ends with 1011 "store unavailable"; an end already requested is
// written as asked. It reports whether the writer goes on.
func (c *conn) readFailed(w *out, s *subscriber, err error) bool {
	h := c.hub
	if c.ending() {
		return c.complete(w, true)
	}
	d, again := s.fail.next(time.Now(), h.cfg.retryBudget)
	if again {
		// Marked before the timer exists, so a timer that fires at once
		// finds the mark and clears it.
		c.mu.Lock()
		s.retrying = true
		c.mu.Unlock()
		again = h.retries.after(d, func() { c.retryNow(s) })
	}
	if !again {
		c.mu.Lock()
		s.retrying = false
		c.mu.Unlock()
		s.fail = backoff{}
		if w.multi {
			h.cfg.log.Error("stream read failed", observe.Entry{TaskID: s.taskID, Transport: transportOf[c.format], Outcome: unsubStore, Err: err})
			w.subEnded(s, unsubStore)
			return c.complete(w, false)
		}
		c.endNow(w, s, closeInternalError, unsubStore, err)
		return false
	}
	entry := observe.Entry{
		TaskID: s.taskID, Transport: transportOf[c.format], Outcome: reasonCatchup, Err: err,
		Details: map[string]any{"attempt": s.fail.attempts, "retryIn": d.String()},
	}
	if s.fail.attempts == 1 {
		h.cfg.log.Warn("store read failed; retrying", entry)
	} else {
		h.cfg.log.Debug("store read failed again; retrying", entry)
	}
	// The next step finds s waiting and stops, unless there is other work
	// (or the timer fired already).
	return c.complete(w, false)
}

// retryNow is a catch-up retry's timer: it restarts the writer, which
// reads again.
func (c *conn) retryNow(s *subscriber) {
	c.mu.Lock()
	s.retrying = false
	run := c.kickLocked()
	c.mu.Unlock()
	if run {
		c.hub.writers.start(c.runFn)
	}
}

// endNow ends the stream of s from the writer with code after a failure.
func (c *conn) endNow(w *out, s *subscriber, code int, reason string, err error) {
	entry := observe.Entry{TaskID: s.taskID, Transport: transportOf[c.format], Outcome: reason, Err: err}
	if err != nil {
		c.hub.cfg.log.Error("stream read failed", entry)
	} else {
		c.hub.cfg.log.Warn("stream ended", entry)
	}
	c.mu.Lock()
	if c.moveLocked(connEnding) {
		c.endCode, c.endReason = uint16(code), reason
	}
	c.mu.Unlock()
	c.complete(w, true)
}
