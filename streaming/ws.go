package streaming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
	"github.com/taskbridge/taskbridge-fiber/internal/wsframe"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// WebSocketRequest describes one WebSocket stream for AttachWebSocket.
type WebSocketRequest struct {
	// Authorize returns nil when the caller may read taskID and otherwise
	// an error (a *bridgeerr.Error; TASK_NOT_FOUND for missing and foreign
	// tasks alike). The Fiber layer resolves authentication before the
	// upgrade and captures it here. Required.
	Authorize func(ctx context.Context, taskID string) error
	// Subject is the authenticated caller, for logs.
	Subject string
	// OnClose, when set, is called exactly once when the stream has ended,
	// however it ended (for example to release a per-subject stream slot).
	OnClose func()
	// Multi opens the connection as one that follows several tasks: a
	// task's terminal event (or its end) does not close it, whether or
	// not the client subscribes to a second task. Without it a connection
	// becomes multi-task with its first frame after the subscribe (a
	// second subscribe or an unsubscribe); until then it is the single-task
	// stream of the v1 protocol, closed 1000 after its terminal event.
	// Ignored when Options.WSMaxSubscriptions is 1.
	Multi bool
	// AcquireSlot, when set, takes one of Subject's stream slots for each
	// task the connection follows beyond the first (the first uses the
	// slot the host took for the connection) and returns its release,
	// called when that subscription ends. An error (a *bridgeerr.Error,
	// TOO_MANY_STREAMS) refuses the subscribe with SUBSCRIPTION_ERROR. One
	// function for every connection (it gets the subject) costs nothing
	// per connection.
	AcquireSlot func(subject string) (release func(), err error)
}

// AttachWebSocket takes an upgraded WebSocket over and runs its stream; use
// it as the handler of websocket.New (fiberbridge's WebSocketHandler does,
// with an upgrader whose own buffers are cut to the minimum, since the hub
// frames the socket itself). Where it can (a plain TCP connection on Linux
// while Run runs, unless Options.DisableDetach), the hub takes the socket
// away from fasthttp and returns as soon as the stream is live: fasthttp's
// and contrib's per-connection state is released and an idle stream holds no
// goroutine; the hub's poller notices client frames and disconnects.
// Otherwise (TLS, other platforms) AttachWebSocket returns when the stream
// ends. OnClose tells the end in both cases.
//
// The first client frame must arrive within the handshake timeout and be a
// text frame holding a subscribe request
// (contracts.SubscribeRequest.Validate) with its keys spelled exactly as the
// protocol names them, none repeated and no other key. The hub answers
// SUBSCRIPTION_CONFIRMED, replays the events after lastEventId, goes live,
// sends HEARTBEAT frames when idle and pings for dead peers, and closes 1000
// after the terminal event. It closes 1008 on an invalid, binary or
// oversized first frame, a timed-out handshake, a refused authorization, or
// any data frame after the subscribe that is no valid subscribe (to another
// task) or unsubscribe frame; 1001 on shutdown; 1011 when the store fails.
//
// Up to Options.WSMaxSubscriptions tasks may follow on the same connection,
// one subscribe frame each, and {action:"unsubscribe", taskId} ends one.
// From its first such frame (or from the start, with req.Multi) the
// connection is multi-task: a task's terminal event ends only that task's
// subscription, a later refused subscribe is answered SUBSCRIPTION_ERROR,
// and a subscription the server ends otherwise UNSUBSCRIBED (see the
// package README for the frames).
func (h *Hub) AttachWebSocket(conn *websocket.Conn, req WebSocketRequest) {
	if conn == nil || conn.Conn == nil || conn.NetConn() == nil || req.Authorize == nil {
		if req.OnClose != nil {
			req.OnClose()
		}
		return
	}
	c := h.newWSConn()
	c.subject, c.onClose = req.Subject, req.OnClose
	*c.ws = wsInput{dec: wsframe.Decoder{Limit: h.cfg.wsReadLimit}, authorize: req.Authorize, acquire: req.AcquireSlot}
	if req.Multi && h.cfg.wsMaxSubs > 1 {
		c.ws.multi = &wsMulti{}
	}
	c.attach(conn.NetConn())
	// A conforming client sends nothing before it has read the 101
	// response, so nothing is lost in fasthttp's read buffer by detaching
	// before the subscribe frame.
	c.tryDetach()
	if !h.addConn(c) {
		c.closeHandshake(closeGoingAway, "going away")
		if c.detached {
			_ = c.raw.Close()
		}
		if c.onClose != nil {
			c.onClose()
		}
		return
	}
	reason, ok := c.handshakeWS(req.Authorize)
	if ok {
		// Frames the client sent right after its subscribe were read with
		// it: handle them before the poller or the read loop takes over.
		if r, done := c.ws.consume(c, nil); done {
			reason, ok = r, false
		}
	}
	if ok && c.detached {
		if err := c.watch(); err != nil {
			reason, ok = c.closeHandshake(closeInternalError, "internal error"), false
		}
	}
	if !ok {
		if c.detached {
			_ = c.raw.Close()
		}
		c.teardown(reason)
		return
	}
	c.start(true)
	if c.detached {
		return
	}
	c.teardown(c.readLoop())
}

// wsInput is what only a WebSocket connection has. The decoder and ignore
// are owned by its reader (the connection goroutine, then the poller for
// a detached connection); pong and linger are guarded by the
// connection's mu.
type wsInput struct {
	dec    wsframe.Decoder
	ignore bool        // input after a violation is discarded
	pong   []byte      // payload of the pong to send
	linger *time.Timer // detached: ends the wait for the client's close
	// multi is set once the connection follows several tasks; guarded by
	// the connection's mu.
	multi *wsMulti
	// From the WebSocketRequest, for later subscribe frames.
	authorize func(ctx context.Context, taskID string) error
	acquire   func(subject string) (func(), error)
}

// handshakeWS reads and checks the subscribe frame, authorizes it and
// prepares the confirmation and the first replay page. It reports false
// (after answering the client) when the stream must not start.
func (c *conn) handshakeWS(authorize func(ctx context.Context, taskID string) error) (string, bool) {
	h := c.hub
	log := h.cfg.log
	_ = c.raw.SetReadDeadline(time.Now().Add(h.cfg.wsHandshake))
	msg, err := c.readSubscribe()
	if err != nil {
		if c.ending() {
			return c.closeHandshake(closeGoingAway, "going away"), false
		}
		var pe *wsframe.ProtocolError
		switch {
		case errors.As(err, &pe):
			log.Warn("websocket subscribe refused", observe.Entry{Transport: observe.TransportWS, UserID: c.subject, Outcome: pe.Reason})
			return c.closeHandshake(closePolicyViolation, pe.Reason), false
		case errors.Is(err, os.ErrDeadlineExceeded):
			log.Warn("websocket subscribe refused", observe.Entry{Transport: observe.TransportWS, UserID: c.subject, Outcome: "handshake timeout"})
			return c.closeHandshake(closePolicyViolation, "handshake timeout"), false
		case errors.Is(err, errPeerClosed):
			return "client closed", false
		}
		return readReason(err), false
	}
	req, err := parseSubscribe(msg)
	if err != nil {
		log.Warn("websocket subscribe refused", observe.Entry{Transport: observe.TransportWS, UserID: c.subject, Outcome: "invalid subscribe frame", Err: err})
		return c.closeHandshake(closePolicyViolation, "invalid subscribe frame"), false
	}
	cursor, _ := req.Cursor()
	if err := authorize(h.ctx, req.TaskID); err != nil {
		be := bridgeerr.From(err)
		log.Warn("websocket subscribe denied", observe.Entry{TaskID: req.TaskID, UserID: c.subject, Transport: observe.TransportWS, Outcome: string(be.Code), Err: err})
		if be.Code.HTTPStatus() >= 500 && be.Code != bridgeerr.CodeServiceShuttingDown {
			return c.closeHandshake(closeInternalError, "internal error"), false
		}
		return c.closeHandshake(closePolicyViolation, string(be.Code)), false
	}
	s := newSubscriber(c, req.TaskID, cursor, h.cfg.queueSize)
	c.addSub(s)
	// Register before the first read, so a change notice that arrives
	// between the read and the start of the stream is recorded for the
	// task instead of lost (the subscriber stays in catch-up until it
	// starts).
	h.register(s)
	h.cfg.metrics.IncCounter(observe.MetricStoreReads, 1, readTagsReplay...)
	page, err := h.events.Read(h.ctx, s.taskID, s.cursor, h.cfg.replayBatch)
	if err != nil {
		if c.ending() {
			return c.closeHandshake(closeGoingAway, "going away"), false
		}
		log.Error("websocket replay read failed", observe.Entry{TaskID: s.taskID, Transport: observe.TransportWS, Err: err})
		return c.closeHandshake(closeInternalError, "store unavailable"), false
	}
	c.prefix = appendConfirmation(nil, s.taskID, req.LastEventID, page.RetentionGap)
	s.initial, s.initialLimit = &page, h.cfg.replayBatch
	if h.cfg.wsMaxSubs <= 1 {
		// From here on the connection follows one task: any data frame is
		// a violation.
		c.ws.dec.Limit = 0
	}
	c.mu.Lock()
	c.moveLocked(connReady)
	_ = c.raw.SetReadDeadline(time.Time{})
	c.mu.Unlock()
	if !s.cursor.IsZero() {
		h.cfg.metrics.IncCounter(observe.MetricReplays, 1, c.tags()...)
	}
	h.cfg.diag.OnReplayStart(observe.TransportWS, s.taskID, s.cursor)
	log.Info("stream opened", observe.Entry{TaskID: s.taskID, UserID: c.subject, Transport: observe.TransportWS})
	return "", true
}

// appendConfirmation appends the SUBSCRIPTION_CONFIRMED frame of taskID,
// echoing the client's lastEventId ("" as null).
func appendConfirmation(dst []byte, taskID string, lastEventID *string, gap bool) []byte {
	confirm := contracts.SubscriptionConfirmed{
		Type:                      contracts.FrameSubscriptionConfirmed,
		TaskID:                    taskID,
		ReplayStartedAfterEventID: lastEventID,
		Live:                      true,
		RetentionGap:              gap,
	}
	if lastEventID != nil && *lastEventID == "" {
		confirm.ReplayStartedAfterEventID = nil
	}
	return appendWSJSON(dst, func(dst []byte) []byte {
		raw, _ := json.Marshal(confirm)
		return append(dst, raw...)
	})
}

// readSubscribe reads the first message: one text message of at most the
// read limit, possibly fragmented; pings are answered (the connection
// goroutine is the only writer during the handshake). Frames after it stay
// in the decoder.
func (c *conn) readSubscribe() ([]byte, error) {
	dec := &c.ws.dec
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp) // the decoder copies what it keeps
	buf := *bp
	var rerr error
	for {
		f, ok, err := dec.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			if rerr != nil {
				return nil, rerr
			}
			var n int
			n, rerr = c.nc.Read(buf)
			dec.Feed(buf[:n])
			continue
		}
		switch f.Op {
		case wsframe.OpPing:
			if err := c.writeDirect(wsframe.AppendControl(nil, wsframe.OpPong, f.Payload)); err != nil {
				return nil, err
			}
		case wsframe.OpClose:
			return nil, errPeerClosed
		case wsframe.OpText:
			return f.Payload, nil
		}
	}
}

// readLoop reads client frames after the subscribe on a held connection
// until the connection ends, and returns why it ended.
func (c *conn) readLoop() string {
	buf := make([]byte, 512)
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			if reason, done := c.ws.consume(c, buf[:n]); done {
				return reason
			}
		}
		if err != nil {
			return readReason(err)
		}
	}
}

// consume handles client input after the subscribe, on the connection's
// reader: pings are answered through the writer, pongs and any frame
// prove the peer alive, a close is answered (or completes ours), and a
// data frame is a violation (close 1008 "unexpected frame"). It reports
// true with a reason when reading must stop (the close handshake is done).
// consume(c, nil) handles what the decoder holds already.
func (in *wsInput) consume(c *conn, data []byte) (string, bool) {
	if in.ignore {
		return "", false
	}
	in.dec.Feed(data)
	for {
		f, ok, err := in.dec.Next()
		switch {
		case errors.Is(err, wsframe.ErrBinary):
			in.violation(c, wsframe.ErrUnexpected) // a binary frame after the subscribe
			return "", false
		case err != nil:
			in.violation(c, err)
			return "", false
		case !ok:
			return "", false
		}
		switch f.Op {
		case wsframe.OpPing:
			c.queuePong(f.Payload)
		case wsframe.OpClose:
			if c.ending() {
				return "closed", true
			}
			c.setReason("client closed")
			c.requestEnd(echoCloseCode(f.Payload), "", true)
		case wsframe.OpText:
			if reason := c.request(f.Payload); reason != "" {
				in.violation(c, &wsframe.ProtocolError{Reason: reason})
				return "", false
			}
		}
	}
}

// violation answers a client protocol violation with 1008 and ignores
// further input.
func (in *wsInput) violation(c *conn, err error) {
	reason := wsframe.ErrInvalidFrame.Reason
	var pe *wsframe.ProtocolError
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	in.ignore, in.dec = true, wsframe.Decoder{}
	c.setReason(reason)
	c.requestEnd(closePolicyViolation, reason, true)
}

// parseSubscribe decodes a subscribe frame the way every subscribe frame of
// a connection is read: valid UTF-8, keys spelled exactly as the protocol
// names them, none repeated and no other (so what a proxy inspecting the
// frame sees is what the hub acts on), then the protocol's rules
// (contracts.SubscribeRequest.Validate). Errors wrap
// contracts.ErrInvalidFrame.
func parseSubscribe(p []byte) (contracts.SubscribeRequest, error) {
	if !utf8.Valid(p) {
		return contracts.SubscribeRequest{}, fmt.Errorf("%w: subscribe: invalid UTF-8", contracts.ErrInvalidFrame)
	}
	var req contracts.SubscribeRequest
	if err := strictjson.Unmarshal(p, &req); err != nil {
		return contracts.SubscribeRequest{}, fmt.Errorf("%w: subscribe: %v", contracts.ErrInvalidFrame, err)
	}
	if err := req.Validate(); err != nil {
		return contracts.SubscribeRequest{}, err
	}
	return req, nil
}

// echoCloseCode returns the code of a client close frame to echo back.
func echoCloseCode(payload []byte) int {
	code, ok := wsframe.CloseCode(payload)
	switch {
	case !ok:
		return closeNormal
	case code >= 3000 && code <= 4999,
		code >= 1000 && code <= 1003,
		code >= 1007 && code <= 1011:
		return code
	}
	return closeNormal
}

// writeDirect writes b from the connection goroutine while no writer can
// run (handshake).
func (c *conn) writeDirect(b []byte) error {
	_ = c.raw.SetWriteDeadline(time.Now().Add(finalWriteTimeout))
	_, err := c.raw.Write(b)
	return err
}

// closeHandshake sends a close frame from the connection goroutine and
// waits a moment for the client's close before the connection is dropped.
func (c *conn) closeHandshake(code int, reason string) string {
	if err := c.writeDirect(wsframe.AppendClose(nil, code, reason)); err != nil {
		return reason
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(wsCloseGrace))
	dec := wsframe.Decoder{Limit: c.hub.cfg.wsReadLimit}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		n, err := c.nc.Read(buf)
		dec.Feed(buf[:n])
		for {
			f, ok, derr := dec.Next()
			if derr != nil || (ok && f.Op == wsframe.OpClose) {
				return reason
			}
			if !ok {
				break
			}
		}
		if err != nil {
			return reason
		}
	}
}

// readBufs are the read buffers of handshakes: connections are set up in
// bursts, and a buffer per handshake would be garbage scattered among the
// connections' long-lived objects.
var readBufs = sync.Pool{New: func() any {
	b := make([]byte, 512)
	return &b
}}

// errPeerClosed: the client sent a close frame during the handshake.
var errPeerClosed = errors.New("taskbridge: websocket closed by peer")
