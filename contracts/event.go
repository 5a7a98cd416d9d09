package contracts

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// EventType is the type of a task event, or of a WebSocket control frame.
type EventType string

// The eight event types of the protocol.
const (
	EventStarted        EventType = "TASK_STARTED"
	EventProgress       EventType = "TASK_PROGRESS"
	EventMessage        EventType = "TASK_MESSAGE"
	EventSuspended      EventType = "TASK_SUSPENDED"
	EventActionAccepted EventType = "TASK_ACTION_ACCEPTED"
	EventCompleted      EventType = "TASK_COMPLETED"
	EventFailed         EventType = "TASK_FAILED"
	EventCancelled      EventType = "TASK_CANCELLED"
)

// Control frame types sent by the server on streams; they are not events and
// carry no eventId.
const (
	FrameSubscriptionConfirmed EventType = "SUBSCRIPTION_CONFIRMED"
	FrameHeartbeat             EventType = "HEARTBEAT"
)

// Valid reports whether t is one of the eight event types.
func (t EventType) Valid() bool {
	switch t {
	case EventStarted, EventProgress, EventMessage, EventSuspended,
		EventActionAccepted, EventCompleted, EventFailed, EventCancelled:
		return true
	}
	return false
}

// IsTerminal reports whether t ends a task (COMPLETED, FAILED, CANCELLED).
func (t EventType) IsTerminal() bool {
	return t == EventCompleted || t == EventFailed || t == EventCancelled
}

// TaskEvent is one event of a task's stream as stored and as sent on the
// wire: `{type, taskId, eventId, createdAt, payload}`. Payload is the
// validated, compact JSON object of the event's type. A TaskEvent read from a
// store is immutable by convention; share it, do not modify it.
type TaskEvent struct {
	Type      EventType       `json:"type"`
	TaskID    string          `json:"taskId"`
	EventID   EventID         `json:"eventId"`
	CreatedAt time.Time       `json:"createdAt"`
	Payload   json.RawMessage `json:"payload"`
}

// TimeLayout is the wire form of every timestamp the library writes: RFC 3339
// in UTC with millisecond precision.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTime appends t in TimeLayout (converted to UTC): the bytes
// t.UTC().AppendFormat(dst, TimeLayout) appends, written directly for
// years 0 to 9999 (a poll or a stream frame writes one per event).
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// AppendJSON appends the event's wire JSON to dst and returns the result. It
// is the single encoder for events: polling bodies, SSE data lines and
// WebSocket frames all carry these bytes.
func (e *TaskEvent) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = AppendJSONString(dst, string(e.Type))
	dst = append(dst, `,"taskId":`...)
	dst = AppendJSONString(dst, e.TaskID)
	dst = append(dst, `,"eventId":"`...)
	dst = e.EventID.AppendText(dst)
	dst = append(dst, `","createdAt":"`...)
	dst = appendTime(dst, e.CreatedAt)
	dst = append(dst, `","payload":`...)
	if len(e.Payload) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, e.Payload...)
	}
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (e TaskEvent) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 128+len(e.Payload))), nil
}

// UnmarshalJSON implements json.Unmarshaler strictly: all five keys present,
// no others, a known type, a valid eventId and createdAt, and a payload that
// satisfies ParseDraft; errors wrap ErrInvalidFrame.
func (e *TaskEvent) UnmarshalJSON(data []byte) error {
	ev, err := decodeEvent(data)
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

// Draft returns the event's type and payload as a draft, for re-appending a
// copied event to another store. The payload is re-validated.
func (e *TaskEvent) Draft() (EventDraft, error) {
	return ParseDraft(e.Type, e.Payload)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s to dst as a JSON string literal. Control
// characters, quotes and backslashes are escaped, as are U+2028 and U+2029;
// invalid UTF-8 becomes U+FFFD. The output never contains a raw newline, which
// keeps SSE `data:` lines intact.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
