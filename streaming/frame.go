package streaming

import (
	"encoding/binary"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// WebSocket opcodes and close codes the runtime uses.
const (
	opText         = 0x1
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
	opContinuation = 0x0
	opBinary       = 0x2

	// CloseNormal ends a stream after its terminal event.
	CloseNormal = 1000
	// CloseGoingAway ends streams on shutdown: reconnect elsewhere.
	CloseGoingAway = 1001
	// ClosePolicyViolation ends a WebSocket whose client broke the protocol
	// or was not authorized.
	ClosePolicyViolation = 1008
	// CloseInternalError ends streams whose store or feed failed.
	CloseInternalError = 1011

	maxWSHeader       = 10
	maxControlPayload = 125
)

// AppendSSEEvent appends ev as one Server-Sent Events frame,
// `id: <eventId>\ndata: <event JSON>\n\n`, to dst and returns the result. The
// JSON is contracts.TaskEvent.AppendJSON, which never contains a raw line
// break, so a payload cannot inject lines into the stream.
func AppendSSEEvent(dst []byte, ev *contracts.TaskEvent) []byte {
	dst = append(dst, "id: "...)
	dst = ev.EventID.AppendText(dst)
	dst = append(dst, "\ndata: "...)
	dst = ev.AppendJSON(dst)
	return append(dst, '\n', '\n')
}

// AppendWSEvent appends ev as one complete, unmasked WebSocket text frame
// (a server-to-client frame) to dst and returns the result.
func AppendWSEvent(dst []byte, ev *contracts.TaskEvent) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, maxWSHeader)...)
	dst = ev.AppendJSON(dst)
	return closeWSFrame(dst, start, opText)
}

// closeWSFrame turns dst[start:], which is maxWSHeader reserved bytes followed
// by a payload, into a frame: the header is written in place and the payload
// moved to follow it.
func closeWSFrame(dst []byte, start int, op byte) []byte {
	n := len(dst) - start - maxWSHeader
	var hdr [maxWSHeader]byte
	h := wsHeader(hdr[:0], op, n)
	copy(dst[start+len(h):], dst[start+maxWSHeader:])
	copy(dst[start:], h)
	return dst[:start+len(h)+n]
}

// wsHeader appends a final, unmasked frame header for a payload of n bytes.
func wsHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n <= 125:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return append(dst, 126, byte(n>>8), byte(n))
	}
	dst = append(dst, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// appendWSControl appends a control frame (ping, pong) with payload.
func appendWSControl(dst []byte, op byte, payload []byte) []byte {
	if len(payload) > maxControlPayload {
		payload = payload[:maxControlPayload]
	}
	dst = wsHeader(dst, op, len(payload))
	return append(dst, payload...)
}

// appendWSClose appends a close frame with code and reason (cut to fit a
// control frame).
func appendWSClose(dst []byte, code int, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
	}
	dst = wsHeader(dst, opClose, 2+len(reason))
	dst = append(dst, byte(code>>8), byte(code))
	return append(dst, reason...)
}

// appendWSJSON appends a text frame whose payload is the JSON that enc
// appends.
func appendWSJSON(dst []byte, enc func([]byte) []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, maxWSHeader)...)
	dst = enc(dst)
	return closeWSFrame(dst, start, opText)
}

// frame is one event encoded once per wire format. It is immutable once
// built and shared by every subscriber that receives it.
type frame struct {
	id       contracts.EventID
	created  time.Time
	terminal bool
	sse      []byte // AppendSSEEvent bytes
	ws       []byte // AppendWSEvent bytes
}

// batch is one fan-out read of a task, encoded once and handed by pointer to
// every live subscriber's queue. Encodings are added under the task's lock
// (encode) and read by writers after they dequeued the batch, so they never
// change while a writer can see them.
type batch struct {
	events []contracts.TaskEvent
	frames []frame
	hasSSE bool
	hasWS  bool
	last   contracts.EventID
}

func newBatch(events []contracts.TaskEvent) *batch {
	b := &batch{events: events, frames: make([]frame, len(events))}
	for i := range events {
		ev := &events[i]
		b.frames[i] = frame{id: ev.EventID, created: ev.CreatedAt, terminal: ev.Type.IsTerminal()}
	}
	b.last = events[len(events)-1].EventID
	return b
}

// estimate is a generous size of one encoding of the batch, so the arena
// rarely grows. Growth stays correct: earlier frames keep pointing into the
// old array, which is never written again.
func (b *batch) estimate() int {
	n := 0
	for i := range b.events {
		ev := &b.events[i]
		n += len(ev.Payload) + len(ev.TaskID) + len(ev.Type) + 160
	}
	return n
}

// encode adds the SSE and/or WebSocket encodings the batch lacks.
func (b *batch) encode(sse, ws bool) {
	if sse && !b.hasSSE {
		arena := make([]byte, 0, b.estimate())
		for i := range b.events {
			start := len(arena)
			arena = AppendSSEEvent(arena, &b.events[i])
			b.frames[i].sse = arena[start:len(arena):len(arena)]
		}
		b.hasSSE = true
	}
	if ws && !b.hasWS {
		arena := make([]byte, 0, b.estimate())
		for i := range b.events {
			start := len(arena)
			arena = AppendWSEvent(arena, &b.events[i])
			b.frames[i].ws = arena[start:len(arena):len(arena)]
		}
		b.hasWS = true
	}
}
