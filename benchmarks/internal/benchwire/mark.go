package benchwire

import (
	"bytes"
	"strconv"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// markPrefix starts the message of every benchmark event: "b <seq> <ns>",
// where seq is the event's 1-based number within its task and ns the Unix
// time in nanoseconds at which the emitter appended it.
const markPrefix = "b "

// markKey is what precedes the mark in an encoded event.
var markKey = []byte(`"message":"` + markPrefix)

// AppendMark appends the mark text for event seq appended at.
func AppendMark(dst []byte, seq uint64, at time.Time) []byte {
	dst = append(dst, markPrefix...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, at.UnixNano(), 10)
}

// Draft returns the TASK_MESSAGE draft of benchmark event seq, stamped with
// at, which should be taken immediately before the append.
func Draft(seq uint64, at time.Time) (contracts.EventDraft, error) {
	var buf [48]byte
	return contracts.Message(string(AppendMark(buf[:0], seq, at)), "")
}

// ParseMark finds the benchmark mark in an encoded event (an SSE data line,
// a WebSocket message or a poll response element) and returns its sequence
// number and append time in Unix nanoseconds. ok is false when frame holds
// no mark (a heartbeat, a confirmation, a foreign event).
func ParseMark(frame []byte) (seq uint64, atNs int64, ok bool) {
	i := bytes.Index(frame, markKey)
	if i < 0 {
		return 0, 0, false
	}
	rest := frame[i+len(markKey):]
	seq, rest, ok = parseUint(rest)
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, 0, false
	}
	ns, rest, ok := parseUint(rest[1:])
	if !ok || len(rest) == 0 || rest[0] != '"' || seq == 0 {
		return 0, 0, false
	}
	return seq, int64(ns), true
}

func parseUint(b []byte) (uint64, []byte, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i >= 19 {
			return 0, b, false
		}
		n = n*10 + uint64(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// eventIDKey is what precedes the event id in an encoded event.
var eventIDKey = []byte(`"eventId":"`)

// EventID returns the text of the eventId field of an encoded event, or nil.
// The result aliases frame.
func EventID(frame []byte) []byte {
	i := bytes.Index(frame, eventIDKey)
	if i < 0 {
		return nil
	}
	rest := frame[i+len(eventIDKey):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 {
		return nil
	}
	return rest[:end]
}
