package contracts

import (
	"encoding/json"
	"time"
)

// AuthContext is who is calling: resolved by the host from a request and
// carried to every service call. Subject is the owner id of the tasks the
// caller creates.
type AuthContext struct {
	Subject    string         `json:"subject"`
	Scopes     []string       `json:"scopes,omitempty"`
	AppID      string         `json:"appId,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// HasScope reports whether the context carries scope.
func (a AuthContext) HasScope(scope string) bool {
	for _, s := range a.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Attachment is a file uploaded with a create request. Filename is already
// reduced to its base name. SHA256 is the hex digest of Content and is what
// idempotency compares.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Content     []byte `json:"content,omitempty"`
}

// TaskRecord is the registry's state of one task. Input and Metadata are JSON
// objects. Fingerprint identifies the idempotent payload (task type, input
// and attachments; see Fingerprint) so stores compare it without decoding.
type TaskRecord struct {
	TaskID          string          `json:"taskId"`
	OwnerID         string          `json:"ownerId"`
	ClientRequestID string          `json:"clientRequestId"`
	TaskType        string          `json:"taskType"`
	Input           json.RawMessage `json:"input"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	Attachments     []Attachment    `json:"attachments,omitempty"`
	Fingerprint     string          `json:"fingerprint"`
	Status          TaskStatus      `json:"status"`
	CancelRequested bool            `json:"cancelRequested,omitempty"`
	CancelReason    string          `json:"cancelReason,omitempty"`
	CreatedAt       time.Time       `json:"createdAt"`
	UpdatedAt       time.Time       `json:"updatedAt"`
}

// SuspensionRecord is the stored state of one suspension of a task.
type SuspensionRecord struct {
	TaskID             string           `json:"taskId"`
	SuspendID          string           `json:"suspendId"`
	OwnerID            string           `json:"ownerId"`
	Status             SuspensionStatus `json:"status"`
	Kind               SuspensionKind   `json:"kind"`
	ReasonCode         string           `json:"reasonCode"`
	AllowedActions     []string         `json:"allowedActions"`
	SchemaVersion      int              `json:"schemaVersion"`
	Interaction        map[string]any   `json:"interaction,omitempty"`
	UIHints            map[string]any   `json:"uiHints,omitempty"`
	SuccessfulActionID string           `json:"successfulActionId,omitempty"`
	Handoff            HandoffStatus    `json:"handoff"`
	CreatedAt          time.Time        `json:"createdAt"`
	ExpiresAt          time.Time        `json:"expiresAt,omitzero"`
	ResolvedAt         time.Time        `json:"resolvedAt,omitzero"`
}

// Allows reports whether actionType is one of the suspension's allowed actions.
func (s SuspensionRecord) Allows(actionType string) bool {
	for _, a := range s.AllowedActions {
		if a == actionType {
			return true
		}
	}
	return false
}

// ExpiredAt reports whether the suspension has a deadline at or before now.
func (s SuspensionRecord) ExpiredAt(now time.Time) bool {
	return !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// Resolution is a compare-and-set on an OPEN suspension: it moves it to
// Status (RESOLVED, EXPIRED or CANCELLED) at At. For RESOLVED,
// ClientActionID names the winning action and the handoff becomes PENDING.
type Resolution struct {
	Status         SuspensionStatus
	ClientActionID string
	At             time.Time
}

// ActionReceipt records an accepted client action, keyed by (TaskID,
// ClientActionID). Payload is canonical JSON (see CanonicalJSON) so equal
// payloads compare equal as bytes.
type ActionReceipt struct {
	TaskID         string          `json:"taskId"`
	SuspendID      string          `json:"suspendId"`
	ClientActionID string          `json:"clientActionId"`
	ActionType     string          `json:"actionType"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	ActorID        string          `json:"actorId"`
	CreatedAt      time.Time       `json:"createdAt"`
	ExpiresAt      time.Time       `json:"expiresAt,omitzero"`
}

// SameAction reports whether r records the same action as cmd (same
// suspension, type and payload), which makes a repeat DEDUPLICATED rather
// than a conflict.
func (r ActionReceipt) SameAction(cmd SubmitActionCommand) bool {
	return r.SuspendID == cmd.SuspendID && r.ActionType == cmd.ActionType &&
		string(r.Payload) == string(cmd.Payload)
}
