package client_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/client"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

func TestNewRejectsBadConfigurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		base string
		opts []client.Option
	}{
		{"no scheme", "localhost:8080", nil},
		{"ftp", "ftp://host", nil},
		{"no host", "http://", nil},
		{"no transports", "http://h", []client.Option{client.WithTransports()}},
		{"unknown transport", "http://h", []client.Option{client.WithTransports("carrier-pigeon")}},
		{"twice", "http://h", []client.Option{client.WithTransports(client.TransportSSE, client.TransportSSE)}},
		{"route without taskId", "http://h", []client.Option{client.WithRoutes(client.Routes{PollEvents: "/events"})}},
		{"route with a host parameter", "http://h", []client.Option{client.WithRoutes(client.Routes{CreateTask: "/p/:projectId/tasks"})}},
		{"relative route", "http://h", []client.Option{client.WithRoutes(client.Routes{CreateTask: "tasks"})}},
		{"poll wait", "http://h", []client.Option{client.WithPollWait(61 * time.Second)}},
		{"backoff", "http://h", []client.Option{client.WithBackoff(time.Second, time.Millisecond)}},
		{"retries", "http://h", []client.Option{client.WithRetries(0)}},
		{"nil http client", "http://h", []client.Option{client.WithHTTPClient(nil)}},
	} {
		_, err := client.New(tc.base, tc.opts...)
		assert.Error(t, err, tc.name)
	}
	_, err := client.New("https://api.example/prefix/", client.WithRoutes(client.Routes{
		CreateTask: "/p/42/tasks", PollEvents: "/p/42/tasks/:taskId/events"}))
	assert.NoError(t, err)
}

// TestCreateIsIdempotent: the same clientRequestId and payload answer the
// same task (deduplicated); another payload is a typed 409.
func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	c := newClient(t, srv.Base, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req := client.CreateRequest{ClientRequestID: "r-1", TaskType: "t.steps", Input: map[string]int{"steps": 1},
		Metadata: map[string]string{"source": "test"}}
	first, err := c.Create(ctx, req)
	require.NoError(t, err)
	assert.False(t, first.Deduplicated)
	assert.Equal(t, "r-1", first.ClientRequestID)
	again, err := c.Create(ctx, req)
	require.NoError(t, err)
	assert.True(t, again.Deduplicated)
	assert.Equal(t, first.TaskID, again.TaskID)

	req.Input = map[string]int{"steps": 2}
	_, err = c.Create(ctx, req)
	assert.ErrorIs(t, err, client.ErrConflict)
	assert.ErrorIs(t, err, bridgeerr.ErrIdempotencyConflict)

	// Without a key, Create makes one.
	res, err := c.Create(ctx, client.CreateRequest{TaskType: "t.steps", Input: map[string]int{"steps": 1}})
	require.NoError(t, err)
	assert.Len(t, res.ClientRequestID, 32)

	_, err = c.Create(ctx, client.CreateRequest{TaskType: "t.steps", Input: []int{1}})
	assert.ErrorContains(t, err, "JSON object")
}

// TestCreateMultipart sends attachments as multipart/form-data; the
// server stores them byte for byte.
func TestCreateMultipart(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	c := newClient(t, srv.Base, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	png := []byte("\x89PNG\r\n\x1a\n\x00binary")
	res, err := c.Create(ctx, client.CreateRequest{TaskType: "t.steps", Input: map[string]int{"steps": 1},
		Attachments: []client.Attachment{
			{Filename: "dir/a.png", ContentType: "image/png", Data: png},
			{Filename: "b.txt", Data: []byte("hello")},
		}})
	require.NoError(t, err)
	rec, err := srv.stores.Tasks.Get(ctx, res.TaskID)
	require.NoError(t, err)
	require.Len(t, rec.Attachments, 2)
	assert.Equal(t, "a.png", rec.Attachments[0].Filename)
	assert.Equal(t, "image/png", rec.Attachments[0].ContentType)
	assert.Equal(t, png, rec.Attachments[0].Content)
	assert.Equal(t, "application/octet-stream", rec.Attachments[1].ContentType)
	assert.JSONEq(t, `{"steps":1}`, string(rec.Input))
}

// TestCreateRetryAfterLostAnswer: the server created the task but the
// answer was lost (a 502 from a proxy); the retry carries the same key and
// gets the same task, so exactly one exists.
func TestCreateRetryAfterLostAnswer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	var calls atomic.Int32
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, srv.Base+r.URL.RequestURI(), r.Body)
		if !assert.NoError(t, err) {
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if !assert.NoError(t, err) {
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if calls.Add(1) == 1 {
			http.Error(w, "bad gateway", http.StatusBadGateway) // the answer is lost
			return
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = proxy.Serve(ln) }()
	t.Cleanup(func() { _ = proxy.Close() })

	c := newClient(t, "http://"+ln.Addr().String(), "alice")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := c.Create(ctx, client.CreateRequest{TaskType: "t.steps", Input: map[string]int{"steps": 1}})
	require.NoError(t, err)
	assert.True(t, res.Deduplicated, "the retry found the task the first attempt made")
	assert.EqualValues(t, 2, calls.Load())

	// With retries off, the 502 is the answer: a typed error without an envelope.
	calls.Store(0)
	one := newClient(t, "http://"+ln.Addr().String(), "alice", client.WithRetries(1))
	_, err = one.Create(ctx, client.CreateRequest{TaskType: "t.steps", Input: map[string]int{"steps": 1}})
	var re *client.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusBadGateway, re.StatusCode)
	assert.Empty(t, re.Code)
}

// TestPollCancelActAndOpenSuspension drive a task through the unary
// calls: poll with a cursor, find the open suspension, approve it
// (retries deduplicated), and cancel a task.
func TestPollCancelActAndOpenSuspension(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	c := newClient(t, srv.Base, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	id := create(t, c, "t.approval", nil)
	var susp *contracts.SuspendedPayload
	require.Eventually(t, func() bool {
		s, err := c.OpenSuspension(ctx, id)
		susp = s
		return assert.NoError(t, err) && s != nil
	}, wait, 10*time.Millisecond)
	assert.Equal(t, []string{"approve", "reject"}, susp.AllowedActions)

	res, err := c.Poll(ctx, id, client.PollRequest{})
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	assert.Equal(t, contracts.EventSuspended, res.Events[1].Type)
	empty, err := c.Poll(ctx, id, client.PollRequest{After: res.Events[1].EventID, Wait: 50 * time.Millisecond})
	require.NoError(t, err)
	assert.Empty(t, empty.Events)

	act := client.Action{SuspendID: susp.SuspendID, ActionType: "approve", ClientActionID: "a-1",
		Payload: map[string]string{"note": "ok"}}
	ar, err := c.Act(ctx, id, act)
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusAccepted, ar.Status)
	ar, err = c.Act(ctx, id, act)
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusDeduplicated, ar.Status)

	rest, err := c.Poll(ctx, id, client.PollRequest{After: res.Events[1].EventID, Wait: 5 * time.Second, MaxEvents: 1})
	require.NoError(t, err)
	require.Len(t, rest.Events, 1)
	assert.Equal(t, contracts.EventActionAccepted, rest.Events[0].Type)
	assert.True(t, rest.HasMore)
	s, err := c.OpenSuspension(ctx, id)
	require.NoError(t, err)
	assert.Nil(t, s)

	_, err = c.Act(ctx, "no-such-task", act)
	assert.ErrorIs(t, err, client.ErrNotFound)

	blocked := create(t, c, "t.gated", nil)
	cr, err := c.Cancel(ctx, blocked, "changed my mind")
	require.NoError(t, err)
	assert.Equal(t, contracts.CancelRequested, cr.Status)
	var last contracts.TaskEvent
	for ev, err := range c.Watch(ctx, blocked, contracts.EventID{}) {
		require.NoError(t, err)
		last = ev
	}
	require.Equal(t, contracts.EventCancelled, last.Type)
	assert.True(t, strings.Contains(string(last.Payload), "changed my mind"), string(last.Payload))
	cr, err = c.Cancel(ctx, blocked, "")
	require.NoError(t, err)
	assert.Equal(t, contracts.CancelAlreadyTerminal, cr.Status)

	_, err = c.Poll(ctx, id, client.PollRequest{Wait: 61 * time.Second})
	assert.Error(t, err)
	_, err = newClient(t, srv.Base, "").Poll(ctx, id, client.PollRequest{})
	assert.ErrorIs(t, err, client.ErrUnauthorized)
}

// TestTokenSourceAndHeaders: a token source is asked per request; static
// headers go along.
func TestTokenSourceAndHeaders(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	var asked atomic.Int32
	c := newClient(t, srv.Base, "", client.WithTokenSource(func(context.Context) (string, error) {
		asked.Add(1)
		return "alice", nil
	}), client.WithHeader("X-Trace", "1"))
	id := create(t, c, "t.steps", map[string]int{"steps": 1})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, err := range c.Watch(ctx, id, contracts.EventID{}) {
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, asked.Load(), int32(2))

	failing := newClient(t, srv.Base, "", client.WithTokenSource(func(context.Context) (string, error) {
		return "", io.ErrUnexpectedEOF
	}))
	for _, err := range failing.Watch(ctx, id, contracts.EventID{}) {
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a failing token source ends the Watch")
	}
}
