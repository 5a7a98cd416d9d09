package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

// Sentinels matched by errors.Is against a *ResponseError's HTTP status, so
// callers need not know the envelope codes. errors.Is also matches a
// *ResponseError against the bridgeerr sentinels by code (for example
// bridgeerr.ErrIdempotencyConflict).
var (
	// ErrUnauthorized: 401, the credentials were missing or refused.
	ErrUnauthorized = errors.New("taskbridge: unauthorized")
	// ErrForbidden: 403, the caller may not do this.
	ErrForbidden = errors.New("taskbridge: forbidden")
	// ErrNotFound: 404, the task does not exist or belongs to another owner.
	ErrNotFound = errors.New("taskbridge: not found")
	// ErrConflict: 409, for example a clientRequestId reused with another
	// payload, or an action on a task that is already over.
	ErrConflict = errors.New("taskbridge: conflict")
	// ErrRateLimited: 429, too many streams or requests.
	ErrRateLimited = errors.New("taskbridge: rate limited")
)

// ResponseError is a refused request: an HTTP error answer, or a WebSocket
// closed with 1008 and an error code as its reason (StatusCode is then the
// code's HTTP status). Code, Message and Details come from the server's
// error envelope; Code is empty when the answer carried none (a proxy's
// error page).
type ResponseError struct {
	StatusCode int
	Code       bridgeerr.Code
	Message    string
	Details    map[string]any
	// RetryAfter is the answer's Retry-After in seconds, 0 when absent.
	RetryAfter time.Duration
}

// Error implements error: "taskbridge: 404 TASK_NOT_FOUND: task not found".
func (e *ResponseError) Error() string {
	s := "taskbridge: " + strconv.Itoa(e.StatusCode)
	if e.Code != "" {
		s += " " + string(e.Code)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is matches the package's sentinels by status and the bridgeerr sentinels
// by code.
func (e *ResponseError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	}
	var be *bridgeerr.Error
	if errors.As(target, &be) {
		return e.Code != "" && be.Code == e.Code
	}
	return false
}

// readResponseError builds the error of a non-success answer from its
// envelope, when it has one.
func readResponseError(resp *http.Response) *ResponseError {
	e := &ResponseError{StatusCode: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var env bridgeerr.Envelope
	if json.Unmarshal(data, &env) == nil && env.Code != "" {
		e.Code, e.Message, e.Details = env.Code, env.Message, env.Details
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// closeError is the error of a WebSocket the server closed with 1008: its
// reason is an error code.
func closeError(code int, reason string) *ResponseError {
	c := bridgeerr.Code(reason)
	status := c.HTTPStatus()
	if reason == "" {
		status = http.StatusBadRequest
	}
	return &ResponseError{StatusCode: status, Code: c, Message: fmt.Sprintf("websocket closed %d", code)}
}

// fatal reports whether err ends a Watch: a refusal that retrying cannot
// fix (4xx but 408), or a failing token source.
func fatal(err error) bool {
	var re *ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusRequestTimeout
	}
	return errors.Is(err, errTokenSource)
}

// errTokenSource marks a failing TokenSource.
var errTokenSource = errors.New("taskbridge: token source failed")
