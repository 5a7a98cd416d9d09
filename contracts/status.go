package contracts

// TaskStatus is the lifecycle state of a task as reported on the wire.
type TaskStatus string

// Task lifecycle states. ACCEPTED -> RUNNING -> COMPLETED | FAILED | CANCELLED;
// ACCEPTED may also go straight to CANCELLED or FAILED; terminal states are final.
const (
	StatusAccepted  TaskStatus = "ACCEPTED"
	StatusRunning   TaskStatus = "RUNNING"
	StatusCompleted TaskStatus = "COMPLETED"
	StatusFailed    TaskStatus = "FAILED"
	StatusCancelled TaskStatus = "CANCELLED"
)

// Valid reports whether s is one of the five protocol states.
func (s TaskStatus) Valid() bool {
	switch s {
	case StatusAccepted, StatusRunning, StatusCompleted, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// IsTerminal reports whether s is final (COMPLETED, FAILED or CANCELLED).
func (s TaskStatus) IsTerminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// CanTransitionTo reports whether a task in state s may move to next.
// Staying in the same non-terminal state is not a transition and reports false;
// callers treat it as a no-op.
func (s TaskStatus) CanTransitionTo(next TaskStatus) bool {
	switch s {
	case StatusAccepted:
		return next == StatusRunning || next == StatusCancelled || next == StatusFailed
	case StatusRunning:
		return next == StatusCompleted || next == StatusFailed || next == StatusCancelled
	}
	return false
}

// TerminalStatusFor returns the task status that a terminal event type leads
// to, and false for non-terminal event types.
func TerminalStatusFor(t EventType) (TaskStatus, bool) {
	switch t {
	case EventCompleted:
		return StatusCompleted, true
	case EventFailed:
		return StatusFailed, true
	case EventCancelled:
		return StatusCancelled, true
	}
	return "", false
}

// SuspensionStatus is the lifecycle state of a suspension.
type SuspensionStatus string

// Suspension states. Only OPEN suspensions accept actions.
const (
	SuspensionOpen      SuspensionStatus = "OPEN"
	SuspensionResolved  SuspensionStatus = "RESOLVED"
	SuspensionExpired   SuspensionStatus = "EXPIRED"
	SuspensionCancelled SuspensionStatus = "CANCELLED"
)

// SuspensionKind is the protocol's category of a suspension.
type SuspensionKind string

// Suspension kinds defined by the protocol.
const (
	KindUserActionRequired          SuspensionKind = "USER_ACTION_REQUIRED"
	KindExternalConfirmationPending SuspensionKind = "EXTERNAL_CONFIRMATION_PENDING"
	KindSystemPaused                SuspensionKind = "SYSTEM_PAUSED"
)

// Valid reports whether k is one of the protocol's kinds.
func (k SuspensionKind) Valid() bool {
	switch k {
	case KindUserActionRequired, KindExternalConfirmationPending, KindSystemPaused:
		return true
	}
	return false
}

// HandoffStatus tracks whether an accepted action has been handed back to the
// executor (the resume hook). PENDING handoffs are retried by reconciliation.
type HandoffStatus string

// Handoff states.
const (
	HandoffNone       HandoffStatus = "NONE"
	HandoffPending    HandoffStatus = "PENDING"
	HandoffDispatched HandoffStatus = "DISPATCHED"
)

// CancelStatus is the outcome of a cancellation request.
type CancelStatus string

// Cancellation outcomes.
const (
	CancelRequested       CancelStatus = "CANCELLATION_REQUESTED"
	CancelAlreadyTerminal CancelStatus = "ALREADY_TERMINAL"
)

// ActionStatus is the outcome of an action submitted to a suspended task.
type ActionStatus string

// Action outcomes. ACCEPTED answers 202, DEDUPLICATED 200, the rejections 202.
const (
	ActionStatusAccepted                ActionStatus = "ACCEPTED"
	ActionStatusDeduplicated            ActionStatus = "DEDUPLICATED"
	ActionStatusRejectedAlreadyResolved ActionStatus = "REJECTED_ALREADY_RESOLVED"
	ActionStatusRejectedExpired         ActionStatus = "REJECTED_EXPIRED"
)
