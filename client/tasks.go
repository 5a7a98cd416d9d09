package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// CreateRequest is a task to create.
type CreateRequest struct {
	// ClientRequestID is the idempotency key: the same key with the same
	// TaskType, Input and Attachments returns the existing task (with
	// Deduplicated set) instead of a second one; with another payload the
	// server answers 409 IDEMPOTENCY_CONFLICT. Empty: Create makes a random
	// one, which its own retries reuse (read it back from the result).
	ClientRequestID string
	// TaskType names the server's handler. Required.
	TaskType string
	// Input is the task's input, encoded as a JSON object (a
	// json.RawMessage is sent as is). Nil sends {}.
	Input any
	// Metadata is optional data for the host, a JSON object; it is not
	// compared for idempotency.
	Metadata any
	// Attachments, when any, make Create send multipart/form-data.
	Attachments []Attachment
}

// Attachment is a file sent with a create request.
type Attachment struct {
	// Filename is the file's name (the server keeps its base name).
	Filename string
	// ContentType is the file's media type. Default: application/octet-stream.
	ContentType string
	// Data is the content; it is kept in memory so retries can resend it.
	Data []byte
}

// Create creates a task (JSON, or multipart/form-data with attachments).
// Transport failures and 5xx answers are retried with the same
// clientRequestId, so a retry never creates a second task.
func (c *Client) Create(ctx context.Context, r CreateRequest) (contracts.TaskCreated, error) {
	if r.TaskType == "" {
		return contracts.TaskCreated{}, errors.New("taskbridge: create: TaskType is required")
	}
	if r.ClientRequestID == "" {
		r.ClientRequestID = contracts.NewID()
	}
	input, err := jsonObject("input", r.Input)
	if err != nil {
		return contracts.TaskCreated{}, err
	}
	var metadata json.RawMessage
	if r.Metadata != nil {
		if metadata, err = jsonObject("metadata", r.Metadata); err != nil {
			return contracts.TaskCreated{}, err
		}
	}
	body := jsonBody(struct {
		ClientRequestID string          `json:"clientRequestId"`
		TaskType        string          `json:"taskType"`
		Input           json.RawMessage `json:"input"`
		Metadata        json.RawMessage `json:"metadata,omitempty"`
	}{r.ClientRequestID, r.TaskType, input, metadata})
	if len(r.Attachments) > 0 {
		body = multipartBody(r, input, metadata)
	}
	var out contracts.TaskCreated
	_, err = c.do(ctx, request{
		method: http.MethodPost, url: c.url(c.routes.CreateTask, "", nil), body: body,
		okStatus: []int{http.StatusCreated, http.StatusOK}, out: &out, idempotency: r.ClientRequestID,
	})
	return out, err
}

// jsonObject encodes v as a JSON object ({} for nil).
func jsonObject(field string, v any) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage(`{}`), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("taskbridge: %s: %w", field, err)
	}
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("taskbridge: %s must be a JSON object", field)
	}
	return b, nil
}

// multipartBody builds the multipart form of a create request: text
// fields clientRequestId, taskType, input and metadata (JSON), and one
// "attachments" file part per attachment.
func multipartBody(r CreateRequest, input, metadata json.RawMessage) func() (io.Reader, string, error) {
	return func() (io.Reader, string, error) {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		fields := [][2]string{{"clientRequestId", r.ClientRequestID}, {"taskType", r.TaskType}, {"input", string(input)}}
		if metadata != nil {
			fields = append(fields, [2]string{"metadata", string(metadata)})
		}
		for _, f := range fields {
			if err := w.WriteField(f[0], f[1]); err != nil {
				return nil, "", err
			}
		}
		for _, a := range r.Attachments {
			ct := a.ContentType
			if ct == "" {
				ct = "application/octet-stream"
			}
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="attachments"; filename=%q`, a.Filename))
			h.Set("Content-Type", ct)
			part, err := w.CreatePart(h)
			if err != nil {
				return nil, "", err
			}
			if _, err := part.Write(a.Data); err != nil {
				return nil, "", err
			}
		}
		if err := w.Close(); err != nil {
			return nil, "", err
		}
		return &buf, w.FormDataContentType(), nil
	}
}

// PollRequest is one long-poll.
type PollRequest struct {
	// After is the cursor: events strictly after it. Zero: from the start
	// of what the server retains.
	After contracts.EventID
	// Wait is how long the server may wait for the first event (at most
	// 60 s); 0 answers at once.
	Wait time.Duration
	// MaxEvents bounds the page (1..500). 0: the server's default (100).
	MaxEvents int
}

// Poll reads the task's events after r.After, waiting up to r.Wait for
// the first. The result's NextAfterEventID is the cursor of the next poll.
func (c *Client) Poll(ctx context.Context, taskID string, r PollRequest) (contracts.PollResult, error) {
	return c.poll(ctx, taskID, r, c.retries)
}

// poll is Poll with tries attempts.
func (c *Client) poll(ctx context.Context, taskID string, r PollRequest, tries int) (contracts.PollResult, error) {
	if taskID == "" {
		return contracts.PollResult{}, errors.New("taskbridge: poll: empty task id")
	}
	if r.Wait < 0 || r.Wait > contracts.MaxWaitTimeoutMs*time.Millisecond {
		return contracts.PollResult{}, errors.New("taskbridge: poll: Wait must be within 0..60s")
	}
	q := url.Values{}
	if !r.After.IsZero() {
		q.Set(contracts.QueryAfterEventID, r.After.String())
	}
	if r.Wait > 0 {
		q.Set(contracts.QueryWaitTimeoutMs, strconv.FormatInt(r.Wait.Milliseconds(), 10))
	}
	if r.MaxEvents > 0 {
		q.Set(contracts.QueryMaxEvents, strconv.Itoa(r.MaxEvents))
	}
	var out contracts.PollResult
	_, err := c.do(ctx, request{
		method: http.MethodGet, url: c.url(c.routes.PollEvents, taskID, q), extraWait: r.Wait,
		okStatus: []int{http.StatusOK}, out: &out, tries: tries,
	})
	return out, err
}

// Cancel asks the server to cancel the task; reason ("" for none) is
// recorded on the TASK_CANCELLED event. The status is
// CANCELLATION_REQUESTED, or ALREADY_TERMINAL for a task that has ended.
// Repeating a cancel is harmless, so failures are retried.
func (c *Client) Cancel(ctx context.Context, taskID, reason string) (contracts.CancelResult, error) {
	if taskID == "" {
		return contracts.CancelResult{}, errors.New("taskbridge: cancel: empty task id")
	}
	var body func() (io.Reader, string, error)
	if reason != "" {
		body = jsonBody(map[string]string{"reason": reason})
	}
	var out contracts.CancelResult
	_, err := c.do(ctx, request{
		method: http.MethodPost, url: c.url(c.routes.CancelTask, taskID, nil), body: body,
		okStatus: []int{http.StatusAccepted, http.StatusOK}, out: &out,
	})
	return out, err
}

// Action is a client's answer to a suspension (TASK_SUSPENDED).
type Action struct {
	// SuspendID is the suspension's id (SuspendedPayload.SuspendID). Required.
	SuspendID string
	// ActionType is one of the suspension's AllowedActions, for example
	// "approve" or "reject". Required.
	ActionType string
	// ClientActionID is the idempotency key: a repeat answers DEDUPLICATED.
	// Empty: Act makes a random one, which its retries reuse.
	ClientActionID string
	// Payload is optional data for the task, a JSON object.
	Payload any
	// Metadata is optional data for the host, a JSON object.
	Metadata any
}

// Act submits an action on a suspended task. The result's Status says
// what happened: ACCEPTED (the task resumes), DEDUPLICATED (a repeat), or
// a REJECTED_* status when the suspension is gone, expired, or does not
// allow the action.
func (c *Client) Act(ctx context.Context, taskID string, a Action) (contracts.ActionResult, error) {
	if taskID == "" || a.SuspendID == "" || a.ActionType == "" {
		return contracts.ActionResult{}, errors.New("taskbridge: act: task id, SuspendID and ActionType are required")
	}
	if a.ClientActionID == "" {
		a.ClientActionID = contracts.NewID()
	}
	body := struct {
		ClientActionID string          `json:"clientActionId"`
		SuspendID      string          `json:"suspendId"`
		ActionType     string          `json:"actionType"`
		Payload        json.RawMessage `json:"payload,omitempty"`
		Metadata       json.RawMessage `json:"metadata,omitempty"`
	}{ClientActionID: a.ClientActionID, SuspendID: a.SuspendID, ActionType: a.ActionType}
	var err error
	if a.Payload != nil {
		if body.Payload, err = jsonObject("payload", a.Payload); err != nil {
			return contracts.ActionResult{}, err
		}
	}
	if a.Metadata != nil {
		if body.Metadata, err = jsonObject("metadata", a.Metadata); err != nil {
			return contracts.ActionResult{}, err
		}
	}
	var out contracts.ActionResult
	_, err = c.do(ctx, request{
		method: http.MethodPost, url: c.url(c.routes.SubmitAction, taskID, nil), body: jsonBody(body),
		okStatus: []int{http.StatusAccepted, http.StatusOK}, out: &out, idempotency: a.ClientActionID,
	})
	return out, err
}

// OpenSuspension reads the task's retained events and returns its open
// suspension: the last TASK_SUSPENDED not yet answered by a
// TASK_ACTION_ACCEPTED, on a task that has not ended. It returns nil and
// no error when there is none.
func (c *Client) OpenSuspension(ctx context.Context, taskID string) (*contracts.SuspendedPayload, error) {
	var (
		open   *contracts.SuspendedPayload
		cursor contracts.EventID
	)
	for {
		res, err := c.Poll(ctx, taskID, PollRequest{After: cursor, MaxEvents: 500})
		if err != nil {
			return nil, err
		}
		for i := range res.Events {
			ev := &res.Events[i]
			switch {
			case ev.Type == contracts.EventSuspended:
				p, err := contracts.DecodePayload(ev)
				if err != nil {
					return nil, err
				}
				sp := p.(contracts.SuspendedPayload)
				open = &sp
			case ev.Type == contracts.EventActionAccepted:
				open = nil
			case ev.Type.IsTerminal():
				return nil, nil
			}
		}
		if !res.HasMore || res.NextAfterEventID == nil || len(res.Events) == 0 {
			return open, nil
		}
		cursor = *res.NextAfterEventID
	}
}

// describe names a request for errors without leaking query values.
func describe(method, rawURL string) string {
	if i := strings.IndexByte(rawURL, '?'); i >= 0 {
		rawURL = rawURL[:i]
	}
	return method + " " + rawURL
}
