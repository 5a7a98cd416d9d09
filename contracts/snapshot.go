package contracts

import (
	"encoding/json"
	"time"
)

// TaskSnapshot is a task's state at one moment, the answer of the task read
// API (a TaskBridge-for-Fiber addition to TaskBridge v1): who it is, its
// status, the cursor to stream from, its latest progress, the suspension it
// waits on and, once it has ended, its result, failure or cancellation.
//
// Status uses the protocol's five statuses; a task waiting on a client
// action is RUNNING with Suspension set. LastEventID is nil while the task
// has no event; a stream resumed from it (lastEventId / Last-Event-ID)
// delivers exactly what happens after the snapshot. UpdatedAt is the later
// of the record's last change and the latest event. Of Result, Failure and
// Cancellation at most one is set, matching a terminal Status; Result is
// the TASK_COMPLETED payload's result, which may be JSON null.
type TaskSnapshot struct {
	TaskID          string            `json:"taskId"`
	TaskType        string            `json:"taskType"`
	Status          TaskStatus        `json:"status"`
	CreatedAt       time.Time         `json:"createdAt"`
	UpdatedAt       time.Time         `json:"updatedAt"`
	LastEventID     *EventID          `json:"lastEventId"`
	CancelRequested bool              `json:"cancelRequested"`
	Progress        *ProgressSnapshot `json:"progress,omitempty"`
	Suspension      *SuspendedPayload `json:"suspension,omitempty"`
	Result          json.RawMessage   `json:"result,omitempty"`
	Failure         *FailedPayload    `json:"failure,omitempty"`
	Cancellation    *CancelledPayload `json:"cancellation,omitempty"`
}

// ProgressSnapshot is a task's latest TASK_PROGRESS: Percent in [0, 100]
// and the optional stage and message.
type ProgressSnapshot struct {
	Percent float64 `json:"percent"`
	Stage   string  `json:"stage,omitempty"`
	Message string  `json:"message,omitempty"`
}

// MarshalJSON writes the timestamps in the library's UTC millisecond layout
// (TimeLayout), like every other timestamp it sends.
func (s TaskSnapshot) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		TaskID          string            `json:"taskId"`
		TaskType        string            `json:"taskType"`
		Status          TaskStatus        `json:"status"`
		CreatedAt       string            `json:"createdAt"`
		UpdatedAt       string            `json:"updatedAt"`
		LastEventID     *EventID          `json:"lastEventId"`
		CancelRequested bool              `json:"cancelRequested"`
		Progress        *ProgressSnapshot `json:"progress,omitempty"`
		Suspension      *SuspendedPayload `json:"suspension,omitempty"`
		Result          json.RawMessage   `json:"result,omitempty"`
		Failure         *FailedPayload    `json:"failure,omitempty"`
		Cancellation    *CancelledPayload `json:"cancellation,omitempty"`
	}{s.TaskID, s.TaskType, s.Status, s.CreatedAt.UTC().Format(TimeLayout), s.UpdatedAt.UTC().Format(TimeLayout),
		s.LastEventID, s.CancelRequested, s.Progress, s.Suspension, s.Result, s.Failure, s.Cancellation})
}

// TaskList is one page of the caller's tasks, newest first. NextCursor
// continues the listing (the cursor query parameter); nil when it has no
// more tasks. A page may hold fewer tasks than asked for, even none, while
// NextCursor is set: filters skipped many tasks and the server bounds the
// work of one request.
type TaskList struct {
	Tasks      []TaskSnapshot `json:"tasks"`
	NextCursor *string        `json:"nextCursor"`
}
