package bridgeerr

import (
	"errors"
	"net/http"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Code is a stable, machine-readable error code of the protocol.
type Code string

// The stable codes. Their HTTP statuses are given by Code.HTTPStatus.
const (
	CodeAuthentication      Code = "AUTHENTICATION_ERROR"
	CodeTaskNotFound        Code = "TASK_NOT_FOUND"
	CodeTaskOwnership       Code = "TASK_OWNERSHIP_ERROR"
	CodeTaskConflict        Code = "TASK_CONFLICT"
	CodeIdempotencyConflict Code = "IDEMPOTENCY_CONFLICT"
	CodeTaskAlreadyTerminal Code = "TASK_ALREADY_TERMINAL"
	CodeInvalidTaskState    Code = "INVALID_TASK_STATE"
	CodeInvalidRequest      Code = "INVALID_REQUEST"
	CodeRequestValidation   Code = "REQUEST_VALIDATION_ERROR"
	CodeUploadValidation    Code = "UPLOAD_VALIDATION_ERROR"
	CodeTaskSubmission      Code = "TASK_SUBMISSION_ERROR"
	CodeInternal            Code = "INTERNAL_ERROR"
	CodeTooManyStreams      Code = "TOO_MANY_STREAMS"
	CodeServiceShuttingDown Code = "SERVICE_UNAVAILABLE"
	CodeRouteNotFound       Code = "ROUTE_NOT_FOUND"
	// CodeQuotaExceeded: the caller's subject reached one of its limits
	// (tasks, creates per second, stored bytes); 429 with Retry-After.
	CodeQuotaExceeded Code = "QUOTA_EXCEEDED"
	// CodeStorageFull: the store as a whole is full; 507.
	CodeStorageFull Code = "STORAGE_FULL"
)

const (
	internalMessage = "internal error"
	messagePrefix   = "taskbridge: "
)

// HTTPStatus returns the status a code answers with. Unknown codes are 500.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeAuthentication:
		return http.StatusUnauthorized
	case CodeTaskNotFound, CodeRouteNotFound:
		return http.StatusNotFound
	case CodeTaskOwnership:
		return http.StatusForbidden
	case CodeTaskConflict, CodeIdempotencyConflict, CodeTaskAlreadyTerminal, CodeInvalidTaskState:
		return http.StatusConflict
	case CodeInvalidRequest, CodeUploadValidation:
		return http.StatusBadRequest
	case CodeRequestValidation:
		return http.StatusUnprocessableEntity
	case CodeTooManyStreams, CodeQuotaExceeded:
		return http.StatusTooManyRequests
	case CodeStorageFull:
		return http.StatusInsufficientStorage
	case CodeTaskSubmission, CodeServiceShuttingDown:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Error is a failure with a stable code. Message is safe to show a client
// (except for INTERNAL_ERROR, whose envelope hides it); Details is optional
// structured data for the envelope; Status overrides the code's HTTP status
// when non-zero (413 for an upload over the size limit); Cause is the
// internal error, kept for errors.Is/As and logs only.
//
// Errors are values: build a new one per failure, do not mutate shared ones.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	Status  int
	Cause   error
}

// New returns an Error with code and message.
func New(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Wrap returns an Error with code and message that wraps cause.
func Wrap(code Code, cause error, message string) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// Error implements error: "taskbridge: CODE: message: cause".
func (e *Error) Error() string {
	s := messagePrefix + string(e.Code) + ": " + e.Message
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is an *Error with the same code, so
// errors.Is(err, bridgeerr.ErrTaskNotFound) matches any TASK_NOT_FOUND.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// HTTPStatus returns Status when set, otherwise the code's status.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.HTTPStatus()
}

// WithDetails returns a copy of e with details set.
func (e *Error) WithDetails(details map[string]any) *Error {
	c := *e
	c.Details = details
	return &c
}

// WithStatus returns a copy of e answering with status.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

// Sentinels for errors.Is; compare by code. Build returned errors with New or
// Wrap so each carries its own message and cause.
var (
	ErrAuthentication      = New(CodeAuthentication, "authentication required")
	ErrTaskNotFound        = New(CodeTaskNotFound, "task not found")
	ErrTaskOwnership       = New(CodeTaskOwnership, "not allowed")
	ErrTaskConflict        = New(CodeTaskConflict, "task conflict")
	ErrIdempotencyConflict = New(CodeIdempotencyConflict, "idempotency key reused with a different payload")
	ErrTaskAlreadyTerminal = New(CodeTaskAlreadyTerminal, "task is already terminal")
	ErrInvalidTaskState    = New(CodeInvalidTaskState, "invalid task state")
	ErrInvalidRequest      = New(CodeInvalidRequest, "invalid request")
	ErrRequestValidation   = New(CodeRequestValidation, "request validation failed")
	ErrUploadValidation    = New(CodeUploadValidation, "upload rejected")
	ErrTaskSubmission      = New(CodeTaskSubmission, "task could not be submitted")
	ErrInternal            = New(CodeInternal, internalMessage)
	ErrTooManyStreams      = New(CodeTooManyStreams, "too many open streams")
	ErrShuttingDown        = New(CodeServiceShuttingDown, "server is shutting down")
	ErrRouteNotFound       = New(CodeRouteNotFound, "route not found")
)

// From turns any error into an *Error: an *Error in the chain is returned as
// is; the ports' sentinel errors and malformed cursors map to their codes;
// anything else becomes INTERNAL_ERROR wrapping err — including context errors: a store call
// that timed out is an internal failure to the client, whose envelope never
// says why (callers that end a request on purpose, such as a shutdown,
// answer with their own code). From(nil) is nil.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var be *Error
	if errors.As(err, &be) {
		return be
	}
	var le *contracts.LimitError
	if errors.As(err, &le) {
		return fromLimit(le, err)
	}
	switch {
	case errors.Is(err, contracts.ErrNotFound):
		return Wrap(CodeTaskNotFound, err, "task not found")
	case errors.Is(err, contracts.ErrTerminal):
		return Wrap(CodeTaskAlreadyTerminal, err, "task is already terminal")
	case errors.Is(err, contracts.ErrInvalidTransition):
		return Wrap(CodeInvalidTaskState, err, "invalid task state")
	case errors.Is(err, contracts.ErrMalformedEventID):
		return Wrap(CodeInvalidRequest, err, "malformed event id")
	case errors.Is(err, contracts.ErrInvalidFrame):
		return Wrap(CodeInvalidRequest, err, "invalid frame")
	}
	return Wrap(CodeInternal, err, internalMessage)
}

// Envelope is the JSON body of every error response.
type Envelope struct {
	Code      Code           `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details"`
	Timestamp string         `json:"timestamp"`
}

// Envelope renders e for a client at now. INTERNAL_ERROR (and any code that
// answers 500) says only "internal error" with empty details, whatever the
// message and cause.
func (e *Error) Envelope(now time.Time) Envelope {
	env := Envelope{
		Code:      e.Code,
		Message:   e.Message,
		Details:   e.Details,
		Timestamp: now.UTC().Format(contracts.TimeLayout),
	}
	if e.HTTPStatus() >= http.StatusInternalServerError && e.Code != CodeTaskSubmission &&
		e.Code != CodeServiceShuttingDown {
		env.Code = CodeInternal
		env.Message = internalMessage
		env.Details = nil
	}
	if env.Details == nil {
		env.Details = map[string]any{}
	}
	if env.Message == "" {
		env.Message = string(env.Code)
	}
	return env
}

// fromLimit maps a refusal by a limit: 429 QUOTA_EXCEEDED for a subject's
// quota (details.retryAfterSeconds, at least 1, becomes the Retry-After
// header), 507 STORAGE_FULL for a full store.
func fromLimit(le *contracts.LimitError, err error) *Error {
	details := map[string]any{"limit": le.Limit, "max": le.Max}
	if errors.Is(le.Err, contracts.ErrStoreFull) {
		return Wrap(CodeStorageFull, err, "storage is full").WithDetails(details)
	}
	details["retryAfterSeconds"] = max(1, int64((le.RetryAfter+time.Second-1)/time.Second))
	return Wrap(CodeQuotaExceeded, err, "quota exceeded: "+le.Limit).WithDetails(details)
}
