package frames

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
)

// Frame is one decoded server frame: exactly one field is set.
type Frame struct {
	Event             *contracts.TaskEvent
	Confirmation      *contracts.SubscriptionConfirmed
	Heartbeat         *contracts.Heartbeat
	SubscriptionError *contracts.SubscriptionError
	Unsubscribed      *contracts.Unsubscribed
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", contracts.ErrInvalidFrame, fmt.Sprintf(format, args...))
}

// Decode decodes one server frame. An event must satisfy the protocol's
// schema of its type (contracts.TaskEvent's UnmarshalJSON).
func Decode(data []byte) (Frame, error) {
	var head struct {
		Type contracts.EventType `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Frame{}, invalid("frame: %v", err)
	}
	switch head.Type {
	case contracts.FrameSubscriptionConfirmed:
		var c contracts.SubscriptionConfirmed
		if err := strictjson.Unmarshal(data, &c); err != nil {
			return Frame{}, invalid("confirmation: %v", err)
		}
		if c.TaskID == "" {
			return Frame{}, invalid("confirmation: taskId is required")
		}
		if c.ReplayStartedAfterEventID != nil {
			if _, err := contracts.ParseCursor(*c.ReplayStartedAfterEventID); err != nil {
				return Frame{}, invalid("confirmation: %v", err)
			}
		}
		return Frame{Confirmation: &c}, nil
	case contracts.FrameHeartbeat:
		h, err := decodeHeartbeat(data)
		if err != nil {
			return Frame{}, err
		}
		return Frame{Heartbeat: &h}, nil
	case contracts.FrameSubscriptionError:
		var e contracts.SubscriptionError
		if err := strictjson.Unmarshal(data, &e); err != nil {
			return Frame{}, invalid("subscription error: %v", err)
		}
		if e.TaskID == "" || e.Code == "" {
			return Frame{}, invalid("subscription error: taskId and code are required")
		}
		return Frame{SubscriptionError: &e}, nil
	case contracts.FrameUnsubscribed:
		var u contracts.Unsubscribed
		if err := strictjson.Unmarshal(data, &u); err != nil {
			return Frame{}, invalid("unsubscribed: %v", err)
		}
		if u.TaskID == "" || u.Reason == "" {
			return Frame{}, invalid("unsubscribed: taskId and reason are required")
		}
		return Frame{Unsubscribed: &u}, nil
	}
	var ev contracts.TaskEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return Frame{}, invalid("%v", err)
	}
	return Frame{Event: &ev}, nil
}

// decodeHeartbeat decodes either wire form of a heartbeat: the WebSocket
// form, or else the SSE envelope form of taskbridge-fastapi.
func decodeHeartbeat(data []byte) (contracts.Heartbeat, error) {
	var h contracts.Heartbeat
	if err := strictjson.Unmarshal(data, &h); err != nil {
		var env struct {
			Type      contracts.EventType `json:"type"`
			TaskID    string              `json:"taskId"`
			EventID   *string             `json:"eventId"`
			CreatedAt *string             `json:"createdAt"`
			Payload   *struct {
				Live bool `json:"live"`
			} `json:"payload"`
		}
		if envErr := strictjson.Unmarshal(data, &env); envErr != nil {
			return contracts.Heartbeat{}, invalid("heartbeat: %v", err)
		}
		switch {
		case env.EventID == nil || !strings.HasPrefix(*env.EventID, contracts.HeartbeatEventIDPrefix):
			return contracts.Heartbeat{}, invalid("heartbeat: eventId must start with %q", contracts.HeartbeatEventIDPrefix)
		case env.CreatedAt == nil:
			return contracts.Heartbeat{}, invalid("heartbeat: createdAt is required")
		case env.Payload == nil:
			return contracts.Heartbeat{}, invalid("heartbeat: payload is required")
		}
		created, err := time.Parse(time.RFC3339Nano, *env.CreatedAt)
		if err != nil {
			return contracts.Heartbeat{}, invalid("heartbeat: createdAt: %v", err)
		}
		h = contracts.Heartbeat{Type: env.Type, TaskID: env.TaskID, Live: env.Payload.Live, EventID: *env.EventID, CreatedAt: created}
	}
	if h.TaskID == "" {
		return contracts.Heartbeat{}, invalid("heartbeat: taskId is required")
	}
	return h, nil
}
