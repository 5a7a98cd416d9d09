package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrInvalidPayload is wrapped by every payload validation failure.
var ErrInvalidPayload = errors.New("taskbridge: invalid event payload")

func invalid(t EventType, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidPayload, t, fmt.Sprintf(format, args...))
}

// EventDraft is a validated event that has no id yet: its type, its
// compact JSON payload and, optionally, the idempotency key of its append.
// Drafts come only from the typed constructors and ParseDraft, so a
// non-zero draft is always schema-valid; stores reject the zero draft.
// EventDraft is immutable and safe to share.
type EventDraft struct {
	typ     EventType
	payload json.RawMessage
	key     string
}

// WithIdempotencyKey returns a copy of d whose append carries key. An
// EventStore holds each key it has stored for a task as long as it retains
// the event stored with it, and answers a second append with that key to
// that task with the event the first one stored, storing nothing (see
// EventStore.Append). A retry of an append whose outcome is unknown (a
// timeout, a reset connection) is therefore safe when it carries the same
// key: whether the first attempt was applied or not, the task's log holds
// the event once.
//
// The key identifies the append within its task: give every distinct event
// its own key and every retry of one event the same key, for example a
// random id drawn once per emit (what orchestration.Emitter does when the
// draft has none) or a deterministic key derived from the caller's own
// identity of the step (a workflow's activity id and a sequence number).
// The key alone decides: a second append with a held key answers the first
// event even when its draft differs. Keys are opaque bytes, stored with
// their event; keep them short (well under 128 bytes). The empty key (the
// default) means no idempotency: every such append stores a new event.
func (d EventDraft) WithIdempotencyKey(key string) EventDraft {
	d.key = key
	return d
}

// IdempotencyKey returns the key set by WithIdempotencyKey, or "".
func (d EventDraft) IdempotencyKey() string { return d.key }

// Type returns the draft's event type.
func (d EventDraft) Type() EventType { return d.typ }

// Payload returns the draft's compact JSON payload. Do not modify it.
func (d EventDraft) Payload() json.RawMessage { return d.payload }

// IsZero reports whether d is the zero draft (not built by a constructor).
func (d EventDraft) IsZero() bool { return d.typ == "" }

// Payload is implemented by the eight typed payloads.
type Payload interface {
	// EventType returns the event type this payload belongs to.
	EventType() EventType
	// Validate reports whether the payload satisfies the protocol's rules.
	Validate() error
}

// NewDraft validates p and encodes it into a draft.
func NewDraft(p Payload) (EventDraft, error) {
	if err := p.Validate(); err != nil {
		return EventDraft{}, err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return EventDraft{}, invalid(p.EventType(), "encode: %v", err)
	}
	return EventDraft{typ: p.EventType(), payload: raw}, nil
}

// StartedPayload is the payload of TASK_STARTED.
type StartedPayload struct {
	Message string `json:"message,omitempty"`
}

// EventType implements Payload.
func (StartedPayload) EventType() EventType { return EventStarted }

// Validate implements Payload; every StartedPayload is valid.
func (StartedPayload) Validate() error { return nil }

// ProgressPayload is the payload of TASK_PROGRESS. Progress is a percentage
// in [0, 100].
type ProgressPayload struct {
	Progress float64 `json:"progress"`
	Stage    string  `json:"stage,omitempty"`
	Message  string  `json:"message,omitempty"`
}

// EventType implements Payload.
func (ProgressPayload) EventType() EventType { return EventProgress }

// Validate implements Payload.
func (p ProgressPayload) Validate() error {
	if math.IsNaN(p.Progress) || p.Progress < 0 || p.Progress > 100 {
		return invalid(EventProgress, "progress %v is outside 0..100", p.Progress)
	}
	return nil
}

// MessageLevel is the level of a TASK_MESSAGE.
type MessageLevel string

// Message levels defined by the protocol; empty means unspecified.
const (
	LevelInfo    MessageLevel = "info"
	LevelWarning MessageLevel = "warning"
	LevelDebug   MessageLevel = "debug"
)

// MessagePayload is the payload of TASK_MESSAGE.
type MessagePayload struct {
	Message string       `json:"message"`
	Level   MessageLevel `json:"level,omitempty"`
}

// EventType implements Payload.
func (MessagePayload) EventType() EventType { return EventMessage }

// Validate implements Payload.
func (p MessagePayload) Validate() error {
	switch p.Level {
	case "", LevelInfo, LevelWarning, LevelDebug:
		return nil
	}
	return invalid(EventMessage, "level %q is not info, warning or debug", p.Level)
}

// SuspendedPayload is the payload of TASK_SUSPENDED: the task waits for one
// of AllowedActions to be submitted against SuspendID.
type SuspendedPayload struct {
	SuspendID      string         `json:"suspendId"`
	Kind           SuspensionKind `json:"kind"`
	ReasonCode     string         `json:"reasonCode"`
	AllowedActions []string       `json:"allowedActions"`
	SchemaVersion  int            `json:"schemaVersion"`
	ExpiresAt      *time.Time     `json:"expiresAt,omitempty"`
	UIHints        map[string]any `json:"uiHints,omitempty"`
	Interaction    map[string]any `json:"interaction,omitempty"`
}

// EventType implements Payload.
func (SuspendedPayload) EventType() EventType { return EventSuspended }

// Validate implements Payload.
func (p SuspendedPayload) Validate() error {
	switch {
	case p.SuspendID == "":
		return invalid(EventSuspended, "suspendId is required")
	case !p.Kind.Valid():
		return invalid(EventSuspended, "kind %q is not a suspension kind", p.Kind)
	case p.ReasonCode == "":
		return invalid(EventSuspended, "reasonCode is required")
	case len(p.AllowedActions) == 0:
		return invalid(EventSuspended, "allowedActions needs at least one action")
	case p.SchemaVersion < 1:
		return invalid(EventSuspended, "schemaVersion must be at least 1")
	}
	for _, a := range p.AllowedActions {
		if a == "" {
			return invalid(EventSuspended, "allowedActions holds an empty action")
		}
	}
	return nil
}

// ActionAcceptedPayload is the payload of TASK_ACTION_ACCEPTED.
type ActionAcceptedPayload struct {
	SuspendID      string    `json:"suspendId"`
	ClientActionID string    `json:"clientActionId"`
	ActionType     string    `json:"actionType"`
	AcceptedAt     time.Time `json:"acceptedAt"`
	Message        string    `json:"message,omitempty"`
}

// EventType implements Payload.
func (ActionAcceptedPayload) EventType() EventType { return EventActionAccepted }

// Validate implements Payload.
func (p ActionAcceptedPayload) Validate() error {
	switch {
	case p.SuspendID == "":
		return invalid(EventActionAccepted, "suspendId is required")
	case p.ClientActionID == "":
		return invalid(EventActionAccepted, "clientActionId is required")
	case p.ActionType == "":
		return invalid(EventActionAccepted, "actionType is required")
	case p.AcceptedAt.IsZero():
		return invalid(EventActionAccepted, "acceptedAt is required")
	}
	return nil
}

// MarshalJSON writes acceptedAt in the library's UTC millisecond layout.
func (p ActionAcceptedPayload) MarshalJSON() ([]byte, error) {
	type wire struct {
		SuspendID      string `json:"suspendId"`
		ClientActionID string `json:"clientActionId"`
		ActionType     string `json:"actionType"`
		AcceptedAt     string `json:"acceptedAt"`
		Message        string `json:"message,omitempty"`
	}
	return json.Marshal(wire{p.SuspendID, p.ClientActionID, p.ActionType,
		p.AcceptedAt.UTC().Format(TimeLayout), p.Message})
}

// CompletedPayload is the payload of TASK_COMPLETED. Result is any JSON
// value, including null; it must be present.
type CompletedPayload struct {
	Result json.RawMessage `json:"result"`
}

// EventType implements Payload.
func (CompletedPayload) EventType() EventType { return EventCompleted }

// Validate implements Payload.
func (p CompletedPayload) Validate() error {
	if len(p.Result) == 0 {
		return invalid(EventCompleted, "result is required")
	}
	if !json.Valid(p.Result) {
		return invalid(EventCompleted, "result is not valid JSON")
	}
	return nil
}

// FailedPayload is the payload of TASK_FAILED.
type FailedPayload struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// EventType implements Payload.
func (FailedPayload) EventType() EventType { return EventFailed }

// Validate implements Payload.
func (p FailedPayload) Validate() error {
	switch {
	case p.Code == "":
		return invalid(EventFailed, "code is required")
	case p.Message == "":
		return invalid(EventFailed, "message is required")
	}
	return nil
}

// CancelledPayload is the payload of TASK_CANCELLED.
type CancelledPayload struct {
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// EventType implements Payload.
func (CancelledPayload) EventType() EventType { return EventCancelled }

// Validate implements Payload.
func (p CancelledPayload) Validate() error {
	if p.Reason == "" {
		return invalid(EventCancelled, "reason is required")
	}
	return nil
}

// Started builds a TASK_STARTED draft; it cannot fail.
func Started(message string) EventDraft {
	d, _ := NewDraft(StartedPayload{Message: message})
	return d
}

// Progress builds a TASK_PROGRESS draft; progress must be within 0..100.
func Progress(progress float64, stage, message string) (EventDraft, error) {
	return NewDraft(ProgressPayload{Progress: progress, Stage: stage, Message: message})
}

// Message builds a TASK_MESSAGE draft; level is "", info, warning or debug.
func Message(message string, level MessageLevel) (EventDraft, error) {
	return NewDraft(MessagePayload{Message: message, Level: level})
}

// Suspended builds a TASK_SUSPENDED draft.
func Suspended(p SuspendedPayload) (EventDraft, error) { return NewDraft(p) }

// ActionAccepted builds a TASK_ACTION_ACCEPTED draft.
func ActionAccepted(p ActionAcceptedPayload) (EventDraft, error) { return NewDraft(p) }

// Completed builds a TASK_COMPLETED draft whose result is result encoded as
// JSON (a json.RawMessage is used as is, after validation).
func Completed(result any) (EventDraft, error) {
	raw, ok := result.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(result); err != nil {
			return EventDraft{}, invalid(EventCompleted, "encode result: %v", err)
		}
	}
	var buf bytes.Buffer
	if len(raw) > 0 && json.Valid(raw) {
		_ = json.Compact(&buf, raw)
		raw = buf.Bytes()
	}
	return NewDraft(CompletedPayload{Result: raw})
}

// Failed builds a TASK_FAILED draft; code and message are required.
func Failed(code, message string, retryable bool) (EventDraft, error) {
	return NewDraft(FailedPayload{Code: code, Message: message, Retryable: retryable})
}

// Cancelled builds a TASK_CANCELLED draft; reason is required.
func Cancelled(reason, message string) (EventDraft, error) {
	return NewDraft(CancelledPayload{Reason: reason, Message: message})
}

// required lists the payload keys the schema requires per event type.
var required = map[EventType][]string{
	EventProgress:       {"progress"},
	EventMessage:        {"message"},
	EventSuspended:      {"suspendId", "kind", "reasonCode", "allowedActions", "schemaVersion"},
	EventActionAccepted: {"suspendId", "clientActionId", "actionType", "acceptedAt"},
	EventCompleted:      {"result"},
	EventFailed:         {"code", "message", "retryable"},
	EventCancelled:      {"reason"},
}

// ParseDraft strictly decodes a JSON payload of type t: the payload must be a
// JSON object, required keys must be present, unknown keys are rejected
// (except on TASK_COMPLETED, whose schema allows them) and the typed rules
// apply. The stored payload is the compacted input, so extra keys of a
// completed payload survive. Errors wrap ErrInvalidPayload.
func ParseDraft(t EventType, payload []byte) (EventDraft, error) {
	if !t.Valid() {
		return EventDraft{}, fmt.Errorf("%w: unknown event type %q", ErrInvalidPayload, t)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(payload, &keys); err != nil || keys == nil {
		return EventDraft{}, invalid(t, "payload is not a JSON object")
	}
	for _, k := range required[t] {
		v, ok := keys[k]
		if !ok {
			return EventDraft{}, invalid(t, "%s is required", k)
		}
		if k != "result" && string(v) == "null" {
			return EventDraft{}, invalid(t, "%s must not be null", k)
		}
	}
	p, err := decodeTyped(t, payload)
	if err != nil {
		return EventDraft{}, err
	}
	if err := p.Validate(); err != nil {
		return EventDraft{}, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, payload); err != nil {
		return EventDraft{}, invalid(t, "payload: %v", err)
	}
	return EventDraft{typ: t, payload: buf.Bytes()}, nil
}

func decodeTyped(t EventType, payload []byte) (Payload, error) {
	var p Payload
	switch t {
	case EventStarted:
		p = &StartedPayload{}
	case EventProgress:
		p = &ProgressPayload{}
	case EventMessage:
		p = &MessagePayload{}
	case EventSuspended:
		p = &SuspendedPayload{}
	case EventActionAccepted:
		p = &ActionAcceptedPayload{}
	case EventCompleted:
		var c CompletedPayload
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(payload, &keys); err != nil {
			return nil, invalid(t, "payload: %v", err)
		}
		c.Result = keys["result"]
		return c, nil
	case EventFailed:
		p = &FailedPayload{}
	case EventCancelled:
		p = &CancelledPayload{}
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		return nil, invalid(t, "payload: %v", err)
	}
	if dec.More() {
		return nil, invalid(t, "payload has trailing data")
	}
	return derefPayload(p), nil
}

func derefPayload(p Payload) Payload {
	switch v := p.(type) {
	case *StartedPayload:
		return *v
	case *ProgressPayload:
		return *v
	case *MessagePayload:
		return *v
	case *SuspendedPayload:
		return *v
	case *ActionAcceptedPayload:
		return *v
	case *FailedPayload:
		return *v
	case *CancelledPayload:
		return *v
	}
	return p
}

// DecodePayload decodes an event's payload into its typed form. It is the
// reader's counterpart of the constructors, for hosts and Go clients.
func DecodePayload(e *TaskEvent) (Payload, error) {
	return decodeTyped(e.Type, e.Payload)
}
