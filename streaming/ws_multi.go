package streaming

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Reasons of an UNSUBSCRIBED frame.
const (
	unsubClient      = "unsubscribed"      // the client asked
	unsubEnded       = "ended"             // the task had ended at or before the cursor
	unsubStore       = "store unavailable" // reads failed for the whole retry budget
	unsubRetentionGp = "retention gap"     // retention dropped events the subscriber had not seen
)

// Why the hub ends one subscriber (subscriber.end, Hub.endSub): how a
// connection that follows one task closes, and the UNSUBSCRIBED reason a
// multi-task connection reports instead.
const (
	endNone uint8 = iota
	endStoreUnavailable
	endTaskGone
)

var subEnds = [...]struct {
	code   int
	reason string
}{
	endStoreUnavailable: {closeInternalError, unsubStore},
	endTaskGone:         {closeInternalError, "task no longer exists"},
}

// wsMulti is what a WebSocket that follows several tasks needs besides a
// single-task one; it exists once the connection is multi-task (opted in
// with WebSocketRequest.Multi, or sent a second subscribe or an
// unsubscribe frame).
type wsMulti struct {
	reqs  []wsRequest // guarded by conn.mu: frames waiting for the writer
	extra []func()    // writer-owned: releases of the slots taken beyond the first
}

// wsRequest is a subscribe or unsubscribe frame after the first.
type wsRequest struct {
	unsubscribe bool
	taskID      string
	lastEventID *string
}

// request queues a client text frame after the subscribe for the writer
// (which may call the store and the host's Authorize, so the reader never
// does). It returns the close reason of a violation, or "".
func (c *conn) request(p []byte) string {
	r, ok := parseRequest(p)
	if !ok {
		return "unexpected frame"
	}
	c.mu.Lock()
	m := c.ws.multi
	if m == nil {
		m = &wsMulti{}
		c.ws.multi = m
	}
	if len(m.reqs) >= 2*c.hub.cfg.wsMaxSubs {
		c.mu.Unlock()
		return "too many requests"
	}
	m.reqs = append(m.reqs, r)
	run := c.kickLocked()
	c.mu.Unlock()
	if run {
		c.hub.writers.start(c.runFn)
	}
	return ""
}

// parseRequest decodes a subscribe or unsubscribe frame as strictly as
// the first subscribe (exact key names, no duplicates, valid UTF-8, then
// the protocol's rules).
func parseRequest(p []byte) (wsRequest, bool) {
	if sub, err := parseSubscribe(p); err == nil {
		return wsRequest{taskID: sub.TaskID, lastEventID: sub.LastEventID}, true
	}
	if !utf8.Valid(p) {
		return wsRequest{}, false
	}
	var un contracts.UnsubscribeRequest
	if strictjson.Unmarshal(p, &un) == nil && un.Validate() == nil {
		return wsRequest{unsubscribe: true, taskID: un.TaskID}, true
	}
	return wsRequest{}, false
}

// takeRequestsLocked returns the queued requests and whether any subscriber was
// ended by the hub; requests are dropped once the stream is ending. Call
// with c.mu held.
func (c *conn) takeRequestsLocked(ending bool) (reqs []wsRequest, ended bool) {
	if c.ws == nil || c.ws.multi == nil {
		return nil, false
	}
	m := c.ws.multi
	if !ending {
		reqs = m.reqs
		for _, s := range c.subs {
			ended = ended || s.end != 0
		}
	}
	m.reqs = nil
	return reqs, ended
}

// serveRequests writes what the hub's ends and the client's requests call
// for: UNSUBSCRIBED for subscribers the hub ended, then each request's
// answer in order.
func (c *conn) serveRequests(w *out, reqs []wsRequest) {
	for i := 0; i < len(c.subs); {
		s := c.subs[i]
		c.mu.Lock()
		end := s.end
		c.mu.Unlock()
		if end == 0 {
			i++
			continue
		}
		w.unsubscribed(s.taskID, subEnds[end].reason)
		if !c.removeSub(s) {
			return // the connection is closing
		}
		// s is gone from c.subs: i is the next one
	}
	for _, r := range reqs {
		if r.unsubscribe {
			if s := c.find(r.taskID); s != nil {
				c.removeSub(s)
			}
			w.unsubscribed(r.taskID, unsubClient)
			continue
		}
		c.subscribe(w, r)
	}
}

// subscribe adds a task to a multi-task connection (on its writer): it
// checks the connection's limit, takes a stream slot, authorizes, reads
// the first page and answers SUBSCRIPTION_CONFIRMED, or answers
// SUBSCRIPTION_ERROR. A subscribe to a task the connection follows already
// is the protocol violation it always was (1008 "unexpected frame").
func (c *conn) subscribe(w *out, r wsRequest) {
	h := c.hub
	log := h.cfg.log
	if c.find(r.taskID) != nil {
		c.setReason("unexpected frame")
		c.requestEnd(closePolicyViolation, "unexpected frame", true)
		return
	}
	if len(c.subs) >= h.cfg.wsMaxSubs {
		w.refused(r.taskID, bridgeerr.CodeTooManyStreams, "too many subscriptions on this connection")
		log.Warn("websocket subscribe refused", observe.Entry{TaskID: r.taskID, UserID: c.subject, Transport: observe.TransportWS, Outcome: string(bridgeerr.CodeTooManyStreams)})
		return
	}
	var release func()
	if len(c.subs) > 0 && c.ws.acquire != nil {
		rel, err := c.ws.acquire(c.subject)
		if err != nil {
			be := bridgeerr.From(err)
			w.refused(r.taskID, be.Code, clientMessage(be))
			log.Warn("websocket subscribe refused", observe.Entry{TaskID: r.taskID, UserID: c.subject, Transport: observe.TransportWS, Outcome: string(be.Code)})
			return
		}
		release = rel
	}
	if err := c.ws.authorize(h.ctx, r.taskID); err != nil {
		if release != nil {
			release()
		}
		be := bridgeerr.From(err)
		log.Warn("websocket subscribe denied", observe.Entry{TaskID: r.taskID, UserID: c.subject, Transport: observe.TransportWS, Outcome: string(be.Code), Err: err})
		if be.Code.HTTPStatus() >= 500 && be.Code != bridgeerr.CodeServiceShuttingDown {
			be = bridgeerr.New(bridgeerr.CodeInternal, "")
		}
		w.refused(r.taskID, be.Code, clientMessage(be))
		return
	}
	cursor, _ := contracts.ParseCursor(deref(r.lastEventID))
	s := newSubscriber(c, r.taskID, cursor, h.cfg.queueSize)
	if !c.addSub(s) {
		if release != nil {
			release()
		}
		return
	}
	if release != nil {
		c.ws.multi.extra = append(c.ws.multi.extra, release)
	}
	h.register(s)
	c.mu.Lock()
	closing := c.state >= connClosing
	c.mu.Unlock()
	if closing {
		// The connection's end ran meanwhile and may have missed s.
		h.unregister(s)
		return
	}
	h.cfg.metrics.IncCounter(observe.MetricStoreReads, 1, readTagsReplay...)
	page, err := h.events.Read(h.ctx, s.taskID, s.cursor, h.cfg.replayBatch)
	if err != nil {
		c.removeSub(s)
		log.Error("websocket replay read failed", observe.Entry{TaskID: s.taskID, Transport: observe.TransportWS, Err: err})
		w.refused(r.taskID, bridgeerr.CodeInternal, "store unavailable")
		return
	}
	w.buf = appendConfirmation(w.buf, s.taskID, r.lastEventID, page.RetentionGap)
	w.data = true
	s.initial, s.initialLimit = &page, h.cfg.replayBatch
	if !s.cursor.IsZero() {
		h.cfg.metrics.IncCounter(observe.MetricReplays, 1, c.tags()...)
	}
	h.cfg.diag.OnReplayStart(observe.TransportWS, s.taskID, s.cursor)
	log.Info("subscription added", observe.Entry{TaskID: s.taskID, UserID: c.subject, Transport: observe.TransportWS})
}

// clientMessage is the message of a refusal as the error envelope shows
// it: an internal failure says no more than "internal error".
func clientMessage(be *bridgeerr.Error) string {
	if be.Code == bridgeerr.CodeInternal || be.Message == "" {
		return "internal error"
	}
	return be.Message
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// find returns the subscriber of taskID, or nil. Writer only.
func (c *conn) find(taskID string) *subscriber {
	for _, s := range c.subs {
		if s.taskID == taskID {
			return s
		}
	}
	return nil
}

// removeSub ends one subscription of a multi-task connection (on its
// writer): s leaves its task, what was queued for it is dropped, and a
// stream slot taken beyond the first is given back. It reports false,
// leaving the subscribers as they are, once the connection is closing
// (its end drops them all).
func (c *conn) removeSub(s *subscriber) bool {
	c.hub.unregister(s)
	c.mu.Lock()
	if c.state >= connClosing {
		c.mu.Unlock()
		return false
	}
	for i, x := range c.subs {
		if x == s {
			copy(c.subs[i:], c.subs[i+1:])
			c.subs[len(c.subs)-1] = nil
			c.subs = c.subs[:len(c.subs)-1]
			break
		}
	}
	s.taken(s.pending())
	m := c.ws.multi
	var release func()
	if n := len(m.extra); n > 0 && n > len(c.subs)-1 {
		release = m.extra[n-1]
		m.extra[n-1] = nil
		m.extra = m.extra[:n-1]
	}
	c.mu.Unlock()
	if release != nil {
		release()
	}
	return true
}

// removeDone removes the subscribers whose task ended on this write (their
// terminal event, or UNSUBSCRIBED, went out). Writer only.
func (c *conn) removeDone() {
	for i := 0; i < len(c.subs); {
		if s := c.subs[i]; s.done {
			if !c.removeSub(s) {
				return // the connection is closing
			}
			continue
		}
		i++
	}
}

// releaseSlots gives back the stream slots a multi-task connection still
// holds beyond its own; called once the connection is let go.
func (c *conn) releaseSlots() {
	if c.ws == nil || c.ws.multi == nil {
		return
	}
	c.mu.Lock()
	extra := c.ws.multi.extra
	c.ws.multi.extra = nil
	c.mu.Unlock()
	for _, release := range extra {
		release()
	}
}

// multiLocked reports whether the connection follows several tasks: a
// task's end is then its own, not the connection's. Call with c.mu held.
func (c *conn) multiLocked() bool { return c.ws != nil && c.ws.multi != nil }

// subEnded records the end of s's stream on a multi-task connection: the
// frame that tells it (UNSUBSCRIBED with reason; none after a terminal
// event) and s's removal after the write.
func (w *out) subEnded(s *subscriber, reason string) {
	if reason != "" {
		w.unsubscribed(s.taskID, reason)
	}
	s.done = true
	w.subsDone = true
}

// unsubscribed appends an UNSUBSCRIBED frame.
func (w *out) unsubscribed(taskID, reason string) {
	w.buf = appendWSJSON(w.buf, func(dst []byte) []byte {
		raw, _ := json.Marshal(contracts.Unsubscribed{Type: contracts.FrameUnsubscribed, TaskID: taskID, Reason: reason})
		return append(dst, raw...)
	})
	w.data = true
}

// refused appends a SUBSCRIPTION_ERROR frame.
func (w *out) refused(taskID string, code bridgeerr.Code, message string) {
	w.buf = appendWSJSON(w.buf, func(dst []byte) []byte {
		raw, _ := json.Marshal(contracts.SubscriptionError{
			Type: contracts.FrameSubscriptionError, TaskID: taskID, Code: string(code), Message: message,
		})
		return append(dst, raw...)
	})
	w.data = true
}
