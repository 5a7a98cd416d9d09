package streaming

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/wsframe"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Close codes the runtime sends on WebSockets.
const (
	// closeNormal ends a stream after its terminal event.
	closeNormal = 1000
	// closeGoingAway ends streams on shutdown: reconnect elsewhere.
	closeGoingAway = 1001
	// closePolicyViolation ends a WebSocket whose client broke the protocol
	// or was not authorized.
	closePolicyViolation = 1008
	// closeInternalError ends streams whose store or feed failed.
	closeInternalError = 1011
)

// Wire formats, the index of a format in Hub.formats, a batch's encodings
// and a task's subscriber counts.
const (
	formatSSE = iota
	formatWS
	numFormats
)

// Control work a connection's writer picks up besides queued batches.
const (
	ctlBeat uint8 = 1 << iota
	ctlPing
	ctlPong
)

// wireFormat is how a stream frames what it writes: events, heartbeats,
// control frames and its end. A format is stateless and shared by every
// connection that uses it; the connection owns the bytes.
type wireFormat interface {
	// appendEvent appends ev as one frame.
	appendEvent(dst []byte, ev *contracts.TaskEvent) []byte
	// appendHeartbeat appends the idle frame for a stream of taskID.
	appendHeartbeat(dst []byte, taskID string) []byte
	// appendControl appends the pings and pongs ctl asks for (WebSocket
	// only; SSE has none).
	appendControl(dst []byte, ctl uint8, pong []byte) []byte
	// appendEnd appends the end of the stream: a WebSocket close frame
	// with code and reason (an SSE body ends with the final chunk, which
	// the connection writes).
	appendEnd(dst []byte, code int, reason string) []byte
}

// sseWire frames Server-Sent Events.
type sseWire struct {
	jsonBeat bool // add the JSON HEARTBEAT data line to each comment ping
}

func (sseWire) appendEvent(dst []byte, ev *contracts.TaskEvent) []byte {
	return appendSSEEvent(dst, ev)
}

func (f sseWire) appendHeartbeat(dst []byte, taskID string) []byte {
	if !f.jsonBeat {
		return append(dst, ": ping\n\n"...)
	}
	dst = append(dst, ": ping\ndata: {\"type\":\"HEARTBEAT\",\"taskId\":"...)
	dst = contracts.AppendJSONString(dst, taskID)
	dst = append(dst, `,"eventId":"`+contracts.HeartbeatEventIDPrefix...)
	return appendSSEHeartbeatTail(dst, time.Now())
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

func (sseWire) appendControl(dst []byte, _ uint8, _ []byte) []byte { return dst }

func (sseWire) appendEnd(dst []byte, _ int, _ string) []byte { return dst }

// wsWire frames WebSocket text frames, unmasked (server to client).
type wsWire struct{}

func (wsWire) appendEvent(dst []byte, ev *contracts.TaskEvent) []byte {
	return appendWSEvent(dst, ev)
}

func (wsWire) appendHeartbeat(dst []byte, taskID string) []byte {
	dst, start := wsframe.Begin(dst)
	dst = appendHeartbeatJSON(dst, taskID)
	return wsframe.End(dst, start, wsframe.OpText)
}

func (wsWire) appendControl(dst []byte, ctl uint8, pong []byte) []byte {
	if ctl&ctlPing != 0 {
		dst = wsframe.AppendControl(dst, wsframe.OpPing, nil)
	}
	if ctl&ctlPong != 0 {
		dst = wsframe.AppendControl(dst, wsframe.OpPong, pong)
	}
	return dst
}

func (wsWire) appendEnd(dst []byte, code int, reason string) []byte {
	return wsframe.AppendClose(dst, code, reason)
}

// transportOf is the observe transport of a format, for logs and hooks.
var transportOf = [numFormats]observe.Transport{formatSSE: observe.TransportSSE, formatWS: observe.TransportWS}

func appendHeartbeatJSON(dst []byte, taskID string) []byte {
	dst = append(dst, `{"type":`...)
	dst = contracts.AppendJSONString(dst, string(contracts.FrameHeartbeat))
	dst = append(dst, `,"taskId":`...)
	dst = contracts.AppendJSONString(dst, taskID)
	dst = append(dst, `,"live":`...)
	dst = strconv.AppendBool(dst, true)
	return append(dst, '}')
}

// appendSSEEvent appends ev as one Server-Sent Events frame,
// `id: <eventId>\ndata: <event JSON>\n\n`, to dst and returns the result. The
// JSON is contracts.TaskEvent.AppendJSON, which never contains a raw line
// break, so a payload cannot inject lines into the stream.
func appendSSEEvent(dst []byte, ev *contracts.TaskEvent) []byte {
	dst = append(dst, "id: "...)
	dst = ev.EventID.AppendText(dst)
	dst = append(dst, "\ndata: "...)
	dst = ev.AppendJSON(dst)
	return append(dst, '\n', '\n')
}

// appendWSEvent appends ev as one complete, unmasked WebSocket text frame
// (a server-to-client frame) to dst and returns the result.
func appendWSEvent(dst []byte, ev *contracts.TaskEvent) []byte {
	dst, start := wsframe.Begin(dst)
	dst = ev.AppendJSON(dst)
	return wsframe.End(dst, start, wsframe.OpText)
}

// appendWSJSON appends a text frame whose payload is the JSON that enc
// appends.
func appendWSJSON(dst []byte, enc func([]byte) []byte) []byte {
	dst, start := wsframe.Begin(dst)
	dst = enc(dst)
	return wsframe.End(dst, start, wsframe.OpText)
}
