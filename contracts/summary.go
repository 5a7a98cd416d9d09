package contracts

import (
	"context"
	"encoding/json"
	"time"
)

// TaskLogSummary is what a task's event log says about the task as of its
// latest event: the cursor to stream from, the latest progress, the open
// suspension and the terminal event. Event stores that implement
// SummaryReader keep it current on every append, in the same atomic step as
// the append, so a reader learns a task's state with one small read instead
// of replaying the log (which retention may have cut anyway).
//
// The payloads are the compact JSON the events carry; they are shared with
// the store and must not be modified. The zero TaskLogSummary is the summary
// of a task without events.
type TaskLogSummary struct {
	// LastEventID is the id of the latest event; zero when there is none.
	LastEventID EventID
	// LastEventAt is the latest event's CreatedAt.
	LastEventAt time.Time
	// Progress is the payload of the latest TASK_PROGRESS; nil when none.
	Progress json.RawMessage
	// Suspended is the payload of the latest TASK_SUSPENDED that no
	// TASK_ACTION_ACCEPTED for its suspendId and no terminal event has
	// followed yet; nil when no suspension is open. (An open suspension
	// whose deadline passed is still here: compare its expiresAt.)
	Suspended json.RawMessage
	// TerminalType is the type of the terminal event; "" while the task
	// has not ended.
	TerminalType EventType
	// Terminal is the terminal event's payload: {result} for
	// TASK_COMPLETED, {code, message, retryable} for TASK_FAILED, {reason,
	// message?} for TASK_CANCELLED.
	Terminal json.RawMessage
}

// Apply folds ev, the task's next event in id order, into s. It is how
// stores keep the summary current; it costs no allocation except for a
// TASK_ACTION_ACCEPTED while a suspension is open (one small decode).
func (s *TaskLogSummary) Apply(ev *TaskEvent) {
	s.LastEventID = ev.EventID
	s.LastEventAt = ev.CreatedAt
	switch {
	case ev.Type == EventProgress:
		s.Progress = ev.Payload
	case ev.Type == EventSuspended:
		s.Suspended = ev.Payload
	case ev.Type == EventActionAccepted:
		if s.Suspended != nil && suspendIDOf(ev.Payload) == suspendIDOf(s.Suspended) {
			s.Suspended = nil
		}
	case ev.Type.IsTerminal():
		s.Suspended = nil
		s.TerminalType = ev.Type
		s.Terminal = ev.Payload
	}
}

// suspendIDOf returns the suspendId of a TASK_SUSPENDED or
// TASK_ACTION_ACCEPTED payload ("" when it has none).
func suspendIDOf(payload json.RawMessage) string {
	var p struct {
		SuspendID string `json:"suspendId"`
	}
	_ = json.Unmarshal(payload, &p)
	return p.SuspendID
}

// SummaryReader is implemented by event stores that keep a TaskLogSummary
// per task (both stores of this library do). The task read API (snapshots
// and lists) needs it.
type SummaryReader interface {
	// Summaries returns the summary of each task of taskIDs, in the same
	// order: the zero summary for a task without events, unknown or
	// expired. It reads all of them in one go (one round trip on a
	// networked store).
	Summaries(ctx context.Context, taskIDs []string) ([]TaskLogSummary, error)
}
