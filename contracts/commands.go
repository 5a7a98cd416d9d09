package contracts

import (
	"encoding/json"
	"time"
)

// CreateTaskCommand asks the creation service for a task. Input and Metadata
// are JSON objects (nil means {}); Input should be canonical (CanonicalJSON)
// when it is compared for idempotency.
type CreateTaskCommand struct {
	Auth            AuthContext
	ClientRequestID string
	TaskType        string
	Input           json.RawMessage
	Metadata        json.RawMessage
	Attachments     []Attachment
}

// TaskCreated is the result of a create request. Deduplicated is true when an
// existing task was returned for a repeated request (HTTP 200 instead of 201).
type TaskCreated struct {
	TaskID          string     `json:"taskId"`
	Status          TaskStatus `json:"status"`
	ClientRequestID string     `json:"clientRequestId"`
	Deduplicated    bool       `json:"deduplicated"`
}

// PollQuery asks for the events of a task strictly after After (zero: from
// the start of what is retained), at most Limit of them, waiting up to Wait
// for the first one when none is there yet (0: do not wait).
type PollQuery struct {
	Auth   AuthContext
	TaskID string
	After  EventID
	Limit  int
	Wait   time.Duration
}

// PollResult is the answer to a poll: the events, the cursor to continue
// from (the last returned id, or the query's cursor when nothing was
// returned; null for a zero cursor with no events) and whether more events
// are ready now. RetentionGap is a TaskBridge-for-Fiber extension, present
// only when true: events after the cursor were dropped by retention.
type PollResult struct {
	TaskID           string      `json:"taskId"`
	Events           []TaskEvent `json:"events"`
	NextAfterEventID *EventID    `json:"nextAfterEventId"`
	HasMore          bool        `json:"hasMore"`
	RetentionGap     bool        `json:"retentionGap,omitempty"`
}

// CancelTaskCommand asks for a task to be cancelled.
type CancelTaskCommand struct {
	Auth   AuthContext
	TaskID string
	Reason string
}

// CancelResult is the answer to a cancellation request (HTTP 202).
type CancelResult struct {
	TaskID string       `json:"taskId"`
	Status CancelStatus `json:"status"`
}

// SubmitActionCommand submits a client action against a suspension. Payload
// is canonical JSON of an object (nil means none).
type SubmitActionCommand struct {
	Auth           AuthContext
	TaskID         string
	SuspendID      string
	ClientActionID string
	ActionType     string
	Payload        json.RawMessage
	Metadata       json.RawMessage
}

// ActionResult is the answer to an action submission.
type ActionResult struct {
	TaskID         string       `json:"taskId"`
	SuspendID      string       `json:"suspendId"`
	ClientActionID string       `json:"clientActionId"`
	Status         ActionStatus `json:"status"`
}

// EventPage is what EventStore.Read returns: events in id order, whether
// retention dropped events after the requested cursor (a gap the reader
// cannot fill), and whether the stream has ended: the task's terminal event
// is the last of Events or at or before the cursor, so no event will ever
// follow this page. Readers must not modify Events; the slice may be shared.
type EventPage struct {
	Events       []TaskEvent
	RetentionGap bool
	Ended        bool
}
