package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// Schema names a shape of the protocol by its component name in the
// project's OpenAPI document (spec/openapi.json); the shapes the reference
// describes have the same names there.
type Schema string

// Shapes of the protocol and of the library's additions.
const (
	TaskEvent             Schema = "TaskEvent"
	SubscriptionConfirmed Schema = "WebSocketSubscriptionConfirmed"
	Heartbeat             Schema = "WebSocketHeartbeat"
	SSEHeartbeat          Schema = "SseHeartbeat"
	SSEData               Schema = "SseData"
	SubscribeRequest      Schema = "WebSocketSubscribeRequest"
	UnsubscribeRequest    Schema = "WebSocketUnsubscribeRequest"
	ClientFrame           Schema = "WebSocketClientFrame"
	ServerFrame           Schema = "WebSocketServerFrame"
	SubscriptionError     Schema = "WebSocketSubscriptionError"
	Unsubscribed          Schema = "WebSocketUnsubscribed"
	PollEventsResponse    Schema = "PollEventsResponse"
	CreateRequest         Schema = "TaskCreateJsonRequest"
	TaskCreatedResponse   Schema = "TaskCreatedResponse"
	CancelTaskRequest     Schema = "CancelTaskRequest"
	CancelTaskResponse    Schema = "CancelTaskResponse"
	ErrorResponse         Schema = "ErrorResponse"
	ActionResponse        Schema = "TaskClientActionResponse"
	ActionRequest         Schema = "TaskClientActionRequest"
	TaskSnapshot          Schema = "TaskSnapshot"
	TaskList              Schema = "TaskList"
	HealthResponse        Schema = "HealthResponse"
	ReadyResponse         Schema = "ReadyResponse"
)

// Validate checks body against the named shape: the project's schema
// always, and the reference's when the reference directory exists and
// describes that shape. The error says which of the two refused it.
func Validate(s Schema, body []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: not JSON: %w", s, err)
	}
	ours, err := ourSchema(s)
	if err != nil {
		return err
	}
	if err := ours.Validate(v); err != nil {
		return fmt.Errorf("our schema %s: %w", s, err)
	}
	ref, err := referenceSchema(s)
	if err != nil {
		return err
	}
	if ref != nil {
		if err := ref.Validate(v); err != nil {
			return fmt.Errorf("reference schema %s: %w", s, err)
		}
	}
	return nil
}

// CheckFrame asserts that a server stream frame (an event, a
// SUBSCRIPTION_CONFIRMED, a heartbeat of either form, a SUBSCRIPTION_ERROR
// or an UNSUBSCRIBED) passes the strict decoder and its schemas. It returns
// the decoded frame.
func CheckFrame(t testing.TB, frame []byte) frames.Frame {
	t.Helper()
	f, err := frames.Decode(frame)
	if err != nil {
		t.Fatalf("frame fails the strict decoder: %v\n%s", err, frame)
	}
	CheckBody(t, FrameSchema(f), frame)
	return f
}

// FrameSchema names the shape of a decoded server frame. The SSE JSON
// heartbeat (the event envelope's shape with type HEARTBEAT, as
// taskbridge-fastapi sends it) and the frames of a WebSocket following
// several tasks (SUBSCRIPTION_ERROR, UNSUBSCRIBED) have shapes only the
// project's schemas describe.
func FrameSchema(f frames.Frame) Schema {
	switch {
	case f.SubscriptionError != nil:
		return SubscriptionError
	case f.Unsubscribed != nil:
		return Unsubscribed
	case f.Heartbeat != nil && f.Heartbeat.EventID != "":
		return SSEHeartbeat
	case f.Heartbeat != nil:
		return Heartbeat
	case f.Confirmation != nil:
		return SubscriptionConfirmed
	}
	return TaskEvent
}

// CheckBody asserts that body validates against the named shape.
func CheckBody(t testing.TB, s Schema, body []byte) {
	t.Helper()
	if err := Validate(s, body); err != nil {
		t.Fatalf("protocol schema: %v\n%s", err, truncate(body))
	}
}

// errUnknownSchema is returned for a shape the project's document lacks.
var errUnknownSchema = errors.New("conformance: no such schema in spec/openapi.json")

func truncate(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return strings.TrimSpace(string(b))
}
