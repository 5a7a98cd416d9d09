package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidFrame is wrapped by the errors of TaskEvent.UnmarshalJSON and of
// the Validate methods of client frames, for input that is not a valid
// protocol frame.
var ErrInvalidFrame = errors.New("taskbridge: invalid frame")

func invalidFrame(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidFrame, fmt.Sprintf(format, args...))
}

// MaxTaskIDLen is the longest task id the library accepts from clients.
const MaxTaskIDLen = 256

// SubscribeRequest is the first client frame on a WebSocket (and the
// frame that adds a task to a connection following several):
// `{action:"subscribe", taskId, lastEventId}`.
type SubscribeRequest struct {
	Action      string  `json:"action"`
	TaskID      string  `json:"taskId"`
	LastEventID *string `json:"lastEventId,omitempty"`
}

// Cursor returns the parsed lastEventId; null, absent and "" are the zero
// cursor.
func (r SubscribeRequest) Cursor() (EventID, error) {
	if r.LastEventID == nil {
		return EventID{}, nil
	}
	return ParseCursor(*r.LastEventID)
}

// Validate checks a decoded subscribe frame: action "subscribe", a
// non-empty taskId of at most MaxTaskIDLen bytes, and a lastEventId that is
// absent, null, "" or a valid cursor. Errors wrap ErrInvalidFrame.
func (r SubscribeRequest) Validate() error {
	switch {
	case r.Action != "subscribe":
		return invalidFrame("subscribe: action must be \"subscribe\"")
	case r.TaskID == "":
		return invalidFrame("subscribe: taskId is required")
	case len(r.TaskID) > MaxTaskIDLen:
		return invalidFrame("subscribe: taskId is longer than %d bytes", MaxTaskIDLen)
	}
	if _, err := r.Cursor(); err != nil {
		return invalidFrame("subscribe: lastEventId: %v", err)
	}
	return nil
}

// SubscriptionConfirmed is the server's answer to a subscribe frame.
// RetentionGap is a TaskBridge-for-Fiber extension, present only when true:
// events after the requested cursor were dropped by retention.
type SubscriptionConfirmed struct {
	Type                      EventType `json:"type"`
	TaskID                    string    `json:"taskId"`
	ReplayStartedAfterEventID *string   `json:"replayStartedAfterEventId"`
	Live                      bool      `json:"live"`
	RetentionGap              bool      `json:"retentionGap,omitempty"`
}

// HeartbeatEventIDPrefix starts the eventId of every SSE JSON heartbeat
// ("hb-" and 32 random hex digits). Such an id is no event id: it never
// appears in an id: line and must never be used as a cursor.
const HeartbeatEventIDPrefix = "hb-"

// Heartbeat is the idle frame of a stream. It has two wire forms:
//
//   - WebSocket: {"type":"HEARTBEAT","taskId":..,"live":true} (how it
//     marshals);
//   - SSE data line, in the event envelope's shape as taskbridge-fastapi
//     sends it, because its clients decode every data line as an envelope:
//     {"type":"HEARTBEAT","taskId":..,"eventId":"hb-<random>",
//     "createdAt":..,"payload":{"live":true}}, never with an id: line.
//
// It marshals to the WebSocket form; EventID and CreatedAt hold the SSE
// form's fields when a client decoded one (Live comes from payload.live
// there).
type Heartbeat struct {
	Type      EventType `json:"type"`
	TaskID    string    `json:"taskId"`
	Live      bool      `json:"live"`
	EventID   string    `json:"-"`
	CreatedAt time.Time `json:"-"`
}

// decodeEvent strictly decodes an event envelope: all five keys present, no
// others, a known type, a valid eventId and createdAt, and a payload that
// satisfies ParseDraft.
func decodeEvent(data []byte) (TaskEvent, error) {
	var env struct {
		Type      *EventType      `json:"type"`
		TaskID    *string         `json:"taskId"`
		EventID   *string         `json:"eventId"`
		CreatedAt *string         `json:"createdAt"`
		Payload   json.RawMessage `json:"payload"`
	}
	if err := strictUnmarshal(data, &env); err != nil {
		return TaskEvent{}, invalidFrame("event: %v", err)
	}
	switch {
	case env.Type == nil:
		return TaskEvent{}, invalidFrame("event: type is required")
	case env.TaskID == nil || *env.TaskID == "":
		return TaskEvent{}, invalidFrame("event: taskId is required")
	case env.EventID == nil:
		return TaskEvent{}, invalidFrame("event: eventId is required")
	case env.CreatedAt == nil:
		return TaskEvent{}, invalidFrame("event: createdAt is required")
	case env.Payload == nil:
		return TaskEvent{}, invalidFrame("event: payload is required")
	}
	id, err := ParseEventID(*env.EventID)
	if err != nil {
		return TaskEvent{}, invalidFrame("event: %v", err)
	}
	created, err := time.Parse(time.RFC3339Nano, *env.CreatedAt)
	if err != nil {
		return TaskEvent{}, invalidFrame("event: createdAt: %v", err)
	}
	draft, err := ParseDraft(*env.Type, env.Payload)
	if err != nil {
		return TaskEvent{}, fmt.Errorf("%w: event: %w", ErrInvalidFrame, err)
	}
	return TaskEvent{Type: draft.typ, TaskID: *env.TaskID, EventID: id, CreatedAt: created, Payload: draft.payload}, nil
}

// strictUnmarshal decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
