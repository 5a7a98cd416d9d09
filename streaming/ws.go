package streaming

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/contrib/websocket"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// WebSocketConfig returns cfg adjusted for ServeWebSocket. The runtime
// frames the connection itself (pre-encoded frames shared by every
// subscriber, written straight to the socket), so the upgrader's own read
// and write buffers are cut to the minimum it allows and never used, and
// per-message compression is off. Pass the result to websocket.New.
func WebSocketConfig(cfg websocket.Config) websocket.Config {
	cfg.ReadBufferSize = 1
	cfg.WriteBufferSize = 1
	cfg.WriteBufferPool = unusedWritePool
	cfg.EnableCompression = false
	return cfg
}

var unusedWritePool = &sync.Pool{}

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
}

// AttachWebSocket takes an upgraded WebSocket over and runs its stream;
// use it as the handler of websocket.New (ideally configured with
// WebSocketConfig). Where it can (a plain TCP connection on Linux while
// Run runs), the hub takes the socket away from fasthttp and returns as
// soon as the stream is live: fasthttp's and contrib's per-connection
// state is released and an idle stream holds no goroutine; the hub's poller
// notices client frames and disconnects. Otherwise (TLS, other platforms)
// AttachWebSocket returns when the stream ends. OnClose tells the end in
// both cases.
//
// The first client frame must arrive within the handshake timeout and be a
// text frame that contracts.ParseSubscribeRequest accepts, its keys spelled
// exactly as the protocol names them and none repeated. The hub answers
// SUBSCRIPTION_CONFIRMED, replays the events after lastEventId, goes live,
// sends HEARTBEAT frames when idle and pings for dead peers, and closes
// 1000 after the terminal event. It closes 1008 on an invalid, binary or
// oversized first frame, a timed-out handshake, a refused authorization, or
// any data frame after the subscribe; 1001 on shutdown; 1011 when the store
// fails.
func (h *Hub) AttachWebSocket(conn *websocket.Conn, req WebSocketRequest) {
	if conn == nil || conn.Conn == nil || conn.NetConn() == nil || req.Authorize == nil {
		if req.OnClose != nil {
			req.OnClose()
		}
		return
	}
	s := h.newSession(observe.TransportWS, "", contracts.EventID{})
	s.subject, s.onClose = req.Subject, req.OnClose
	s.attach(conn.NetConn())
	// A conforming client sends nothing before it has read the 101
	// response, so nothing is lost in fasthttp's read buffer by detaching
	// before the subscribe frame. Detach before the session is visible to
	// Shutdown, so its connection fields never change under a reader.
	if p := h.currentPoller(); p != nil {
		if c, ok := detach(s.raw); ok {
			s.nc, s.raw, s.detached, s.poller = c, c, true, p
		}
	}
	if !h.addConn(s) {
		s.closeHandshake(&wsReader{r: s.nc}, CloseGoingAway, "going away")
		if s.detached {
			_ = s.raw.Close()
		}
		if s.onClose != nil {
			s.onClose()
		}
		return
	}
	rd := &wsReader{r: s.nc}
	reason, ok := s.handshakeWS(rd, req.Authorize)
	if ok && s.detached {
		if err := s.poller.add(s); err != nil {
			reason, ok = s.closeHandshake(rd, CloseInternalError, "internal error"), false
		}
	}
	if !ok {
		if s.detached {
			_ = s.raw.Close()
		}
		s.teardown(reason)
		return
	}
	s.start()
	if s.detached {
		return
	}
	s.teardown(s.readLoop(rd))
}

// ServeWebSocket runs one WebSocket stream and returns when it has ended;
// use it as the handler of websocket.New when the caller needs the handler
// to last as long as the stream. It is AttachWebSocket with Authorize set
// to authorize, plus a wait, so the upgrade goroutine and fasthttp's
// per-connection state stay held for the life of the stream; prefer
// AttachWebSocket with OnClose.
func (h *Hub) ServeWebSocket(conn *websocket.Conn, authorize func(ctx context.Context, taskID string) error) {
	done := make(chan struct{})
	h.AttachWebSocket(conn, WebSocketRequest{Authorize: authorize, OnClose: func() { close(done) }})
	<-done
}

// handshakeWS reads and checks the subscribe frame, authorizes it and
// prepares the confirmation and the first replay page. It reports false
// (after answering the client) when the stream must not start.
func (s *session) handshakeWS(rd *wsReader, authorize func(ctx context.Context, taskID string) error) (string, bool) {
	h := s.hub
	log := h.cfg.log
	_ = s.raw.SetReadDeadline(time.Now().Add(h.cfg.wsHandshake))
	msg, err := s.readSubscribe(rd)
	if err != nil {
		if s.endRequested() {
			return s.closeHandshake(rd, CloseGoingAway, "going away"), false
		}
		var pe *wsProtocolError
		switch {
		case errors.As(err, &pe):
			log.Warn("websocket subscribe refused", observe.Entry{Transport: observe.TransportWS, UserID: s.subject, Outcome: pe.reason})
			return s.closeHandshake(rd, ClosePolicyViolation, pe.reason), false
		case errors.Is(err, os.ErrDeadlineExceeded):
			log.Warn("websocket subscribe refused", observe.Entry{Transport: observe.TransportWS, UserID: s.subject, Outcome: "handshake timeout"})
			return s.closeHandshake(rd, ClosePolicyViolation, "handshake timeout"), false
		case errors.Is(err, errPeerClosed):
			return "client closed", false
		}
		return readReason(err), false
	}
	// Exact key names, no duplicates (what a proxy inspecting the frame
	// sees is what the hub acts on), then the protocol's rules.
	var req contracts.SubscribeRequest
	err = strictjson.Unmarshal(msg, &req)
	if err == nil {
		err = req.Validate()
	}
	if err != nil || !utf8.Valid(msg) {
		log.Warn("websocket subscribe refused", observe.Entry{Transport: observe.TransportWS, UserID: s.subject, Outcome: "invalid subscribe frame", Err: err})
		return s.closeHandshake(rd, ClosePolicyViolation, "invalid subscribe frame"), false
	}
	s.taskID = req.TaskID
	s.cursor, _ = req.Cursor()
	if err := authorize(h.ctx, req.TaskID); err != nil {
		be := bridgeerr.From(err)
		log.Warn("websocket subscribe denied", observe.Entry{TaskID: s.taskID, UserID: s.subject, Transport: observe.TransportWS, Outcome: string(be.Code), Err: err})
		if be.Code.HTTPStatus() >= 500 && be.Code != bridgeerr.CodeServiceShuttingDown {
			return s.closeHandshake(rd, CloseInternalError, "internal error"), false
		}
		return s.closeHandshake(rd, ClosePolicyViolation, string(be.Code)), false
	}
	// Register before the first read, so a change notice that arrives
	// between the read and the start of the stream is recorded for the
	// task instead of lost (the stream stays in catch-up until it starts).
	s.registered = true
	h.register(s)
	h.cfg.metrics.IncCounter(observe.MetricStoreReads, 1, readTagsReplay...)
	page, err := h.events.Read(h.ctx, s.taskID, s.cursor, h.cfg.replayBatch)
	if err != nil {
		if s.endRequested() {
			return s.closeHandshake(rd, CloseGoingAway, "going away"), false
		}
		log.Error("websocket replay read failed", observe.Entry{TaskID: s.taskID, Transport: observe.TransportWS, Err: err})
		return s.closeHandshake(rd, CloseInternalError, "store unavailable"), false
	}
	confirm := contracts.SubscriptionConfirmed{
		Type:                      contracts.FrameSubscriptionConfirmed,
		TaskID:                    s.taskID,
		ReplayStartedAfterEventID: req.LastEventID,
		Live:                      true,
		RetentionGap:              page.RetentionGap,
	}
	if req.LastEventID != nil && *req.LastEventID == "" {
		confirm.ReplayStartedAfterEventID = nil
	}
	s.prefix = appendWSJSON(nil, func(dst []byte) []byte {
		raw, _ := json.Marshal(confirm)
		return append(dst, raw...)
	})
	s.initial, s.initialLimit = &page, h.cfg.replayBatch
	s.mu.Lock()
	s.phase = phaseReady
	_ = s.raw.SetReadDeadline(time.Time{})
	s.mu.Unlock()
	if !s.cursor.IsZero() {
		h.cfg.metrics.IncCounter(observe.MetricReplays, 1, s.tags...)
	}
	h.cfg.diag.OnReplayStart(observe.TransportWS, s.taskID, s.cursor)
	log.Info("stream opened", observe.Entry{TaskID: s.taskID, UserID: s.subject, Transport: observe.TransportWS})
	return "", true
}

// endRequested reports whether the stream is ending: an end was requested
// or the last write (a WebSocket's close frame) is done.
func (s *session) endRequested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ending || s.dead
}

// readSubscribe reads the first message: one text message of at most the
// read limit, possibly fragmented; pings are answered (the connection
// goroutine is the only writer during the handshake).
func (s *session) readSubscribe(rd *wsReader) ([]byte, error) {
	limit := int64(s.hub.cfg.wsReadLimit)
	var msg []byte
	started := false
	for {
		f, err := rd.next()
		if err != nil {
			return nil, err
		}
		switch f.op {
		case opPing:
			p, err := rd.payload(f, nil)
			if err != nil {
				return nil, err
			}
			if err := s.writeDirect(appendWSControl(nil, opPong, p)); err != nil {
				return nil, err
			}
			continue
		case opPong:
			if err := rd.skip(f); err != nil {
				return nil, err
			}
			continue
		case opClose:
			return nil, errPeerClosed
		case opBinary:
			return nil, protocolError("binary frame")
		case opText:
			if started {
				return nil, protocolError("invalid frame")
			}
			started = true
		case opContinuation:
			if !started {
				return nil, protocolError("invalid frame")
			}
		}
		if int64(len(msg))+f.n > limit {
			return nil, protocolError("frame too large")
		}
		if msg, err = rd.payload(f, msg); err != nil {
			return nil, err
		}
		if f.fin {
			return msg, nil
		}
	}
}

// readLoop reads client frames after the subscribe until the connection
// ends: pings are answered through the writer, pongs and any other frame
// prove the peer alive, a close is answered, and a data frame is a
// protocol violation (close 1008 "unexpected frame").
func (s *session) readLoop(rd *wsReader) string {
	var ctl []byte
	for {
		f, err := rd.next()
		if err != nil {
			var pe *wsProtocolError
			if errors.As(err, &pe) {
				s.requestEnd(ClosePolicyViolation, pe.reason, true)
				return s.discardUntilReleased(pe.reason)
			}
			return readReason(err)
		}
		s.lastRead.Store(time.Now().UnixNano())
		switch f.op {
		case opPing:
			if ctl, err = rd.payload(f, ctl[:0]); err != nil {
				return readReason(err)
			}
			s.queuePong(ctl)
		case opPong:
			if err := rd.skip(f); err != nil {
				return readReason(err)
			}
		case opClose:
			if ctl, err = rd.payload(f, ctl[:0]); err != nil {
				return readReason(err)
			}
			if s.endRequested() {
				return "closed"
			}
			s.setReason("client closed")
			s.requestEnd(echoCloseCode(ctl), "", true)
		default:
			if !s.endRequested() {
				s.setReason("unexpected frame")
				s.requestEnd(ClosePolicyViolation, "unexpected frame", true)
			}
			if err := rd.skip(f); err != nil {
				return readReason(err)
			}
		}
	}
}

func (s *session) setReason(reason string) {
	s.mu.Lock()
	s.setReasonLocked(reason)
	s.mu.Unlock()
}

// discardUntilReleased reads raw bytes until the session releases the
// connection goroutine (after its close frame) or the peer leaves.
func (s *session) discardUntilReleased(reason string) string {
	_ = discardReads(s.nc)
	return reason
}

// echoCloseCode returns the code of a client close frame to echo back.
func echoCloseCode(payload []byte) int {
	if len(payload) < 2 {
		return CloseNormal
	}
	code := int(binary.BigEndian.Uint16(payload))
	switch {
	case code >= 3000 && code <= 4999,
		code >= 1000 && code <= 1003,
		code >= 1007 && code <= 1011:
		return code
	}
	return CloseNormal
}

// writeDirect writes b from the connection goroutine while no writer can
// run (handshake).
func (s *session) writeDirect(b []byte) error {
	_ = s.raw.SetWriteDeadline(time.Now().Add(finalWriteTimeout))
	_, err := s.raw.Write(b)
	return err
}

// closeHandshake sends a close frame from the connection goroutine and
// waits a moment for the client's close before the connection is dropped.
func (s *session) closeHandshake(rd *wsReader, code int, reason string) string {
	if err := s.writeDirect(appendWSClose(nil, code, reason)); err != nil {
		return reason
	}
	_ = s.raw.SetReadDeadline(time.Now().Add(wsCloseGrace))
	for {
		f, err := rd.next()
		if err != nil || f.op == opClose {
			return reason
		}
		if err := rd.skip(f); err != nil {
			return reason
		}
	}
}

// errPeerClosed: the client sent a close frame during the handshake.
var errPeerClosed = errors.New("taskbridge: websocket closed by peer")

// wsProtocolError is a client frame the runtime refuses; reason is the
// close reason sent back.
type wsProtocolError struct{ reason string }

func (e *wsProtocolError) Error() string { return "taskbridge: websocket: " + e.reason }

func protocolError(reason string) error { return &wsProtocolError{reason: reason} }

// wsReader reads client (masked) WebSocket frames from the connection.
type wsReader struct {
	r   io.Reader
	hdr [8]byte
}

type wsFrame struct {
	fin bool
	op  byte
	n   int64
	key [4]byte
}

// next reads a frame header.
func (rd *wsReader) next() (wsFrame, error) {
	if _, err := io.ReadFull(rd.r, rd.hdr[:2]); err != nil {
		return wsFrame{}, err
	}
	b0, b1 := rd.hdr[0], rd.hdr[1]
	f := wsFrame{fin: b0&0x80 != 0, op: b0 & 0x0F, n: int64(b1 & 0x7F)}
	if b0&0x70 != 0 {
		return f, protocolError("invalid frame")
	}
	if b1&0x80 == 0 {
		return f, protocolError("unmasked frame")
	}
	switch f.n {
	case 126:
		if _, err := io.ReadFull(rd.r, rd.hdr[:2]); err != nil {
			return f, err
		}
		f.n = int64(binary.BigEndian.Uint16(rd.hdr[:2]))
	case 127:
		if _, err := io.ReadFull(rd.r, rd.hdr[:8]); err != nil {
			return f, err
		}
		n := binary.BigEndian.Uint64(rd.hdr[:8])
		if n > 1<<62 {
			return f, protocolError("frame too large")
		}
		f.n = int64(n)
	}
	if _, err := io.ReadFull(rd.r, f.key[:]); err != nil {
		return f, err
	}
	switch f.op {
	case opClose, opPing, opPong:
		if !f.fin || f.n > maxControlPayload {
			return f, protocolError("invalid control frame")
		}
	case opText, opBinary, opContinuation:
	default:
		return f, protocolError("invalid frame")
	}
	return f, nil
}

// payload reads f's payload, unmasked, appended to dst.
func (rd *wsReader) payload(f wsFrame, dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, f.n)...)
	p := dst[start:]
	if _, err := io.ReadFull(rd.r, p); err != nil {
		return dst[:start], err
	}
	for i := range p {
		p[i] ^= f.key[i&3]
	}
	return dst, nil
}

func (rd *wsReader) skip(f wsFrame) error {
	_, err := io.CopyN(io.Discard, rd.r, f.n)
	return err
}

// consumeWS handles client frames the poller read from a detached
// WebSocket: pings are answered, pongs and any frame prove the peer alive,
// a close is answered (or completes ours), anything else is a violation.
// Runs on the poller goroutine, which owns rbuf and ignoreIn.
func (s *session) consumeWS(data []byte) {
	if s.ignoreIn {
		return
	}
	if len(s.rbuf) > 0 {
		s.rbuf = append(s.rbuf, data...)
		data = s.rbuf
	}
	for len(data) > 0 {
		f, hlen, err := parseWSHeader(data)
		if err != nil {
			s.violation(err)
			return
		}
		if hlen == 0 || int64(len(data)-hlen) < f.n && f.op >= opClose {
			break // incomplete header or control frame
		}
		if f.op < opClose {
			s.violation(protocolError("unexpected frame"))
			return
		}
		var payload [maxControlPayload]byte
		p := payload[:f.n]
		copy(p, data[hlen:])
		for i := range p {
			p[i] ^= f.key[i&3]
		}
		data = data[hlen+int(f.n):]
		switch f.op {
		case opPing:
			s.queuePong(p)
		case opClose:
			if s.endRequested() {
				s.abort("closed", nil)
				return
			}
			s.setReason("client closed")
			s.requestEnd(echoCloseCode(p), "", true)
		}
	}
	if len(data) > 2*maxControlPayload {
		s.violation(protocolError("invalid frame"))
		return
	}
	s.rbuf = append(s.rbuf[:0], data...)
}

// violation answers a client protocol violation with 1008 and ignores
// further input.
func (s *session) violation(err error) {
	reason := "invalid frame"
	var pe *wsProtocolError
	if errors.As(err, &pe) {
		reason = pe.reason
	}
	s.ignoreIn, s.rbuf = true, nil
	s.setReason(reason)
	s.requestEnd(ClosePolicyViolation, reason, true)
}

// parseWSHeader parses a client frame header at the start of data; hlen is
// 0 when data does not hold the whole header yet.
func parseWSHeader(data []byte) (f wsFrame, hlen int, err error) {
	if len(data) < 2 {
		return f, 0, nil
	}
	b0, b1 := data[0], data[1]
	f = wsFrame{fin: b0&0x80 != 0, op: b0 & 0x0F, n: int64(b1 & 0x7F)}
	switch {
	case b0&0x70 != 0:
		return f, 0, protocolError("invalid frame")
	case b1&0x80 == 0:
		return f, 0, protocolError("unmasked frame")
	}
	hlen = 2
	switch f.n {
	case 126:
		if len(data) < 4 {
			return f, 0, nil
		}
		f.n = int64(binary.BigEndian.Uint16(data[2:4]))
		hlen = 4
	case 127:
		if len(data) < 10 {
			return f, 0, nil
		}
		n := binary.BigEndian.Uint64(data[2:10])
		if n > 1<<62 {
			return f, 0, protocolError("frame too large")
		}
		f.n = int64(n)
		hlen = 10
	}
	switch f.op {
	case opClose, opPing, opPong:
		if !f.fin || f.n > maxControlPayload {
			return f, 0, protocolError("invalid control frame")
		}
	case opText, opBinary, opContinuation:
	default:
		return f, 0, protocolError("invalid frame")
	}
	if len(data) < hlen+4 {
		return f, 0, nil
	}
	copy(f.key[:], data[hlen:hlen+4])
	return f, hlen + 4, nil
}
