package contracts

// Frames of a WebSocket that follows several tasks (a TaskBridge-for-Fiber
// addition to the v1 protocol; a connection that subscribes once never
// sees them).
const (
	// FrameSubscriptionError answers a subscribe frame after the first
	// that the server refused; the connection and its other subscriptions
	// go on.
	FrameSubscriptionError EventType = "SUBSCRIPTION_ERROR"
	// FrameUnsubscribed says the server sends no more events of a task on
	// this connection although no terminal event ended it: the client
	// unsubscribed, the task had ended at or before the cursor, or the
	// subscription failed (resubscribe with the cursor).
	FrameUnsubscribed EventType = "UNSUBSCRIBED"
)

// UnsubscribeRequest is the client frame that ends one subscription of a
// WebSocket: `{action:"unsubscribe", taskId}`.
type UnsubscribeRequest struct {
	Action string `json:"action"`
	TaskID string `json:"taskId"`
}

// Validate checks a decoded unsubscribe frame: action "unsubscribe" and a
// non-empty taskId of at most MaxTaskIDLen bytes.
func (r UnsubscribeRequest) Validate() error {
	switch {
	case r.Action != "unsubscribe":
		return invalidFrame("unsubscribe: action must be \"unsubscribe\"")
	case r.TaskID == "":
		return invalidFrame("unsubscribe: taskId is required")
	case len(r.TaskID) > MaxTaskIDLen:
		return invalidFrame("unsubscribe: taskId is longer than %d bytes", MaxTaskIDLen)
	}
	return nil
}

// SubscriptionError is the server's answer to a refused subscribe frame
// after the first one: `{type:"SUBSCRIPTION_ERROR", taskId, code,
// message}`, code being an error code of the error envelope
// (TASK_NOT_FOUND for a missing or foreign task, TOO_MANY_STREAMS over a
// limit, INTERNAL_ERROR when the server failed).
type SubscriptionError struct {
	Type    EventType `json:"type"`
	TaskID  string    `json:"taskId"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
}

// Unsubscribed is `{type:"UNSUBSCRIBED", taskId, reason}`: no more events
// of taskId follow on this connection. Reasons: "unsubscribed" (the client
// asked), "ended" (the task had ended at or before the subscription's
// cursor), "store unavailable" and "retention gap" (resubscribe with the
// cursor), "task no longer exists" (the store lost it: a resubscribe is
// refused TASK_NOT_FOUND).
type Unsubscribed struct {
	Type   EventType `json:"type"`
	TaskID string    `json:"taskId"`
	Reason string    `json:"reason"`
}
