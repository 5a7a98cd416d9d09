package fiberbridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
)

func TestCreateJSON(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	body := map[string]any{"clientRequestId": "req-1", "taskType": "test.steps", "input": map[string]any{"steps": 2},
		"metadata": map[string]any{"trace": "a"}}

	first := h.postJSON("/api/v1/tasks", "alice", body)
	require.Equal(t, http.StatusCreated, first.status, string(first.body))
	conformance.CheckBody(t, conformance.TaskCreatedResponse, first.body)
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(first.body, &created))
	assert.Equal(t, "req-1", created.ClientRequestID)
	assert.False(t, created.Deduplicated)
	assert.NotEmpty(t, created.TaskID)

	// Same request (metadata differs, which is not compared): 200, same task.
	body["metadata"] = map[string]any{"trace": "b"}
	again := h.postJSON("/api/v1/tasks", "alice", body)
	require.Equal(t, http.StatusOK, again.status, string(again.body))
	conformance.CheckBody(t, conformance.TaskCreatedResponse, again.body)
	var dup contracts.TaskCreated
	require.NoError(t, json.Unmarshal(again.body, &dup))
	assert.Equal(t, created.TaskID, dup.TaskID)
	assert.True(t, dup.Deduplicated)

	// Another owner may reuse the key: a new task.
	other := h.postJSON("/api/v1/tasks", "bob", body)
	require.Equal(t, http.StatusCreated, other.status, string(other.body))

	// Different input under the same key: 409.
	body["input"] = map[string]any{"steps": 3}
	checkEnvelope(t, h.postJSON("/api/v1/tasks", "alice", body), http.StatusConflict, bridgeerr.CodeIdempotencyConflict)

	// The task runs to completion.
	events := h.pollUntilTerminal("alice", created.TaskID)
	require.Len(t, events, 4)
	assert.Equal(t, contracts.EventStarted, events[0].Type)
	assert.Equal(t, contracts.EventCompleted, events[3].Type)
	assert.JSONEq(t, `{"result":{"steps":2}}`, string(events[3].Payload))
}

func TestCreateUnknownTaskType(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	env := checkEnvelope(t, h.postJSON("/api/v1/tasks", "alice",
		map[string]any{"clientRequestId": "x", "taskType": "no.such"}), http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
	assert.Equal(t, "no.such", env.Details["taskType"])
}

// multipartBody builds a multipart create body.
type formFile struct {
	field, filename, contentType string
	content                      []byte
}

func multipartBody(t testing.TB, fields map[string]string, files ...formFile) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	for _, f := range files {
		hdr := textproto.MIMEHeader{}
		disposition := `form-data; name="` + f.field + `"; filename="` + f.filename + `"`
		if ext, ok := strings.CutPrefix(f.filename, "*="); ok {
			disposition = `form-data; name="` + f.field + `"; filename*=` + ext
		}
		hdr.Set("Content-Disposition", disposition)
		if f.contentType != "" {
			hdr.Set("Content-Type", f.contentType)
		}
		part, err := w.CreatePart(hdr)
		require.NoError(t, err)
		_, err = part.Write(f.content)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), buf.Bytes()
}

func TestCreateMultipart(t *testing.T) {
	t.Parallel()
	var seen []contracts.Attachment
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.MaxUploadBytes = 64
		cfg.AllowedUploadTypes = []string{"text/plain", "image/*"}
		cfg.Upload = uploadPolicyFunc(func(_ context.Context, _ contracts.AuthContext, atts []contracts.Attachment) error {
			seen = append([]contracts.Attachment(nil), atts...)
			return nil
		})
	})
	fields := map[string]string{"clientRequestId": "m-1", "taskType": "test.steps", "input": `{"steps":1}`, "metadata": `{"k":"v"}`}
	files := []formFile{
		{field: "attachment", filename: `../../etc/passwd`, contentType: "text/plain; charset=utf-8", content: []byte("hello")},
		{field: "attachments", filename: `C:\Users\me\photo.png`, contentType: "image/png", content: []byte("png")},
	}
	ct, body := multipartBody(t, fields, files...)
	r := h.request(http.MethodPost, "/api/v1/tasks", "alice", ct, body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	conformance.CheckBody(t, conformance.TaskCreatedResponse, r.body)
	require.Len(t, seen, 2)
	assert.Equal(t, "passwd", seen[0].Filename)
	assert.Equal(t, "text/plain", seen[0].ContentType)
	assert.Equal(t, int64(5), seen[0].Size)
	assert.Equal(t, "photo.png", seen[1].Filename)
	assert.Equal(t, []byte("png"), seen[1].Content)

	// The same upload again is deduplicated.
	ct, body = multipartBody(t, fields, files...)
	r = h.request(http.MethodPost, "/api/v1/tasks", "alice", ct, body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	// Different file content under the same key conflicts.
	files[1].content = []byte("gif")
	ct, body = multipartBody(t, fields, files...)
	checkEnvelope(t, h.request(http.MethodPost, "/api/v1/tasks", "alice", ct, body), http.StatusConflict, bridgeerr.CodeIdempotencyConflict)

	tests := []struct {
		name   string
		fields map[string]string
		files  []formFile
		status int
		code   bridgeerr.Code
	}{
		{"file over MaxUploadBytes", fields, []formFile{{field: "attachment", filename: "a.txt", contentType: "text/plain", content: bytes.Repeat([]byte("x"), 65)}},
			http.StatusRequestEntityTooLarge, bridgeerr.CodeUploadValidation},
		{"disallowed content type", fields, []formFile{{field: "attachment", filename: "a.exe", contentType: "application/x-msdownload", content: []byte("x")}},
			http.StatusBadRequest, bridgeerr.CodeUploadValidation},
		{"file without content type is octet-stream, not allowed", fields, []formFile{{field: "attachment", filename: "a.bin", content: []byte("x")}},
			http.StatusBadRequest, bridgeerr.CodeUploadValidation},
		{"name reduces to nothing", fields, []formFile{{field: "attachment", filename: "/", contentType: "text/plain", content: []byte("x")}},
			http.StatusBadRequest, bridgeerr.CodeUploadValidation},
		// A raw NUL in a part header makes the whole body malformed.
		{"name with NUL", fields, []formFile{{field: "attachment", filename: "a\x00b.txt", contentType: "text/plain", content: []byte("x")}},
			http.StatusBadRequest, bridgeerr.CodeInvalidRequest},
		{"name with NUL, RFC 2231", fields, []formFile{{field: "attachment", filename: "*=UTF-8''a%00b.txt", contentType: "text/plain", content: []byte("x")}},
			http.StatusBadRequest, bridgeerr.CodeUploadValidation},
		{"file in an unknown field", fields, []formFile{{field: "upload", filename: "a.txt", contentType: "text/plain", content: []byte("x")}},
			http.StatusBadRequest, bridgeerr.CodeInvalidRequest},
		{"unknown text field", map[string]string{"clientRequestId": "m-2", "taskType": "test.steps", "extra": "1"}, nil,
			http.StatusBadRequest, bridgeerr.CodeInvalidRequest},
		{"input not an object", map[string]string{"clientRequestId": "m-3", "taskType": "test.steps", "input": `[1]`}, nil,
			http.StatusBadRequest, bridgeerr.CodeInvalidRequest},
		{"input not JSON", map[string]string{"clientRequestId": "m-4", "taskType": "test.steps", "input": `{`}, nil,
			http.StatusBadRequest, bridgeerr.CodeInvalidRequest},
		{"missing taskType", map[string]string{"clientRequestId": "m-5"}, nil,
			http.StatusBadRequest, bridgeerr.CodeInvalidRequest},
		{"attachment as a text field", map[string]string{"clientRequestId": "m-6", "taskType": "test.steps", "attachment": "x"}, nil,
			http.StatusBadRequest, bridgeerr.CodeUploadValidation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := multipartBody(t, tc.fields, tc.files...)
			checkEnvelope(t, h.request(http.MethodPost, "/api/v1/tasks", "alice", ct, body), tc.status, tc.code)
		})
	}
}

func TestCreateUploadCountAndPolicy(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.MaxUploads = 1
		cfg.Upload = uploadPolicyFunc(func(_ context.Context, auth contracts.AuthContext, atts []contracts.Attachment) error {
			if auth.Subject == "mallory" {
				return errTest // a foreign error: generic UPLOAD_VALIDATION_ERROR, text hidden
			}
			return nil
		})
	})
	fields := map[string]string{"clientRequestId": "c-1", "taskType": "test.steps"}
	f := formFile{field: "attachment", filename: "a.txt", contentType: "text/plain", content: []byte("x")}
	ct, body := multipartBody(t, fields, f, f)
	env := checkEnvelope(t, h.request(http.MethodPost, "/api/v1/tasks", "alice", ct, body), http.StatusBadRequest, bridgeerr.CodeUploadValidation)
	assert.EqualValues(t, 1, env.Details["maxUploads"])

	env = checkEnvelope(t, h.postJSON("/api/v1/tasks", "mallory", map[string]any{"clientRequestId": "c-2", "taskType": "test.steps"}),
		http.StatusBadRequest, bridgeerr.CodeUploadValidation)
	assert.NotContains(t, env.Message, errTest.Error())
}

type uploadPolicyFunc func(ctx context.Context, auth contracts.AuthContext, atts []contracts.Attachment) error

func (f uploadPolicyFunc) CheckUpload(ctx context.Context, auth contracts.AuthContext, atts []contracts.Attachment) error {
	return f(ctx, auth, atts)
}

func TestCreatePreprocessor(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.Routes.CreateTask = "/projects/:projectId/tasks"
		cfg.CreatePreprocessor = func(c *fiber.Ctx, cmd *contracts.CreateTaskCommand) error {
			switch c.Params("projectId") {
			case "closed":
				return bridgeerr.New(bridgeerr.CodeTaskOwnership, "project is closed")
			case "boom":
				panic("preprocessor bug")
			}
			cmd.Metadata = json.RawMessage(`{"projectId":"` + c.Params("projectId") + `"}`)
			cmd.Input = json.RawMessage(`{"steps":1}`)
			return nil
		}
	})
	req := map[string]any{"clientRequestId": "p-1", "taskType": "test.steps", "input": map[string]any{"steps": 50}}
	r := h.postJSON("/api/v1/projects/p7/tasks", "alice", req)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(r.body, &created))
	task, err := h.stores.Tasks.Get(context.Background(), created.TaskID)
	require.NoError(t, err)
	assert.JSONEq(t, `{"projectId":"p7"}`, string(task.Metadata))
	assert.JSONEq(t, `{"steps":1}`, string(task.Input))

	env := checkEnvelope(t, h.postJSON("/api/v1/projects/closed/tasks", "alice", req), http.StatusForbidden, bridgeerr.CodeTaskOwnership)
	assert.Equal(t, "project is closed", env.Message)

	env = checkEnvelope(t, h.postJSON("/api/v1/projects/boom/tasks", "alice", req), http.StatusInternalServerError, bridgeerr.CodeInternal)
	assert.Equal(t, "internal error", env.Message)
	assert.NotContains(t, string(mustJSON(t, env)), "preprocessor bug")

	// The default path is not mounted any more.
	checkEnvelope(t, h.postJSON("/api/v1/tasks", "alice", req), http.StatusNotFound, bridgeerr.CodeRouteNotFound)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestPollReplayAndCursors(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.steps", map[string]any{"steps": 4})
	all := h.pollUntilTerminal("alice", id)
	require.Len(t, all, 6) // STARTED, 4 x PROGRESS, COMPLETED
	for i := 1; i < len(all); i++ {
		require.True(t, all[i-1].EventID.Less(all[i].EventID), "ids increase")
	}

	// Page through with maxEvents=2 from the start.
	var paged []contracts.TaskEvent
	cursor := ""
	for range 10 {
		res, r := h.poll("alice", id, "?maxEvents=2&afterEventId="+cursor)
		require.Equal(t, http.StatusOK, r.status)
		paged = append(paged, res.Events...)
		require.NotNil(t, res.NextAfterEventID)
		cursor = res.NextAfterEventID.String()
		if !res.HasMore {
			break
		}
	}
	require.Equal(t, ids(all), ids(paged))

	// Strictly after a cursor in the middle.
	res, _ := h.poll("alice", id, "?afterEventId="+all[2].EventID.String())
	assert.Equal(t, ids(all[3:]), ids(res.Events))
	assert.False(t, res.HasMore)

	// At the end: nothing, cursor kept, no wait for an ended stream.
	start := time.Now()
	res, _ = h.poll("alice", id, "?waitTimeoutMs=60000&afterEventId="+all[5].EventID.String())
	assert.Empty(t, res.Events)
	require.NotNil(t, res.NextAfterEventID)
	assert.Equal(t, all[5].EventID, *res.NextAfterEventID)
	assert.Less(t, time.Since(start), 30*time.Second)
}

func ids(evs []contracts.TaskEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.EventID.String()
	}
	return out
}

func TestPollWaitsForNextEvent(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.gated", nil)
	first, _ := h.poll("alice", id, "?waitTimeoutMs=10000")
	require.NotEmpty(t, first.Events) // TASK_STARTED
	cursor := first.Events[len(first.Events)-1].EventID.String()

	got := make(chan contracts.PollResult, 1)
	go func() {
		res, _ := h.poll("alice", id, "?waitTimeoutMs=60000&afterEventId="+cursor)
		got <- res
	}()
	h.gates.get(id) <- "hello" // the handler emits TASK_MESSAGE
	select {
	case res := <-got:
		require.Len(t, res.Events, 1)
		assert.Equal(t, contracts.EventMessage, res.Events[0].Type)
	case <-time.After(20 * time.Second):
		t.Fatal("long-poll did not return after the event")
	}
	close(h.gates.get(id))
}

func TestPollParameters(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.steps", map[string]any{"steps": 1})
	tests := []struct {
		query  string
		status int
		code   bridgeerr.Code
		param  string
	}{
		{"?maxEvents=0", 422, bridgeerr.CodeRequestValidation, "maxEvents"},
		{"?maxEvents=501", 422, bridgeerr.CodeRequestValidation, "maxEvents"},
		{"?maxEvents=abc", 422, bridgeerr.CodeRequestValidation, "maxEvents"},
		{"?maxEvents=99999999999999999999999", 422, bridgeerr.CodeRequestValidation, "maxEvents"},
		{"?waitTimeoutMs=-1", 422, bridgeerr.CodeRequestValidation, "waitTimeoutMs"},
		{"?waitTimeoutMs=60001", 422, bridgeerr.CodeRequestValidation, "waitTimeoutMs"},
		{"?waitTimeoutMs=1.5", 422, bridgeerr.CodeRequestValidation, "waitTimeoutMs"},
		{"?afterEventId=abc", 400, bridgeerr.CodeInvalidRequest, "afterEventId"},
		{"?afterEventId=-1", 400, bridgeerr.CodeInvalidRequest, "afterEventId"},
		{"?afterEventId=1-2-3", 400, bridgeerr.CodeInvalidRequest, "afterEventId"},
		{"?afterEventId=" + strings.Repeat("9", 100), 400, bridgeerr.CodeInvalidRequest, "afterEventId"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			_, r := h.poll("alice", id, tc.query)
			env := checkEnvelope(t, r, tc.status, tc.code)
			assert.Equal(t, tc.param, env.Details["parameter"])
		})
	}
	for _, q := range []string{"", "?maxEvents=1", "?maxEvents=500&waitTimeoutMs=0", "?afterEventId=", "?afterEventId=0-0", "?unknown=1"} {
		_, r := h.poll("alice", id, q)
		assert.Equal(t, http.StatusOK, r.status, q)
	}
}

func TestTaskIDFromPath(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	long := strings.Repeat("a", contracts.MaxTaskIDLen+1)
	for _, path := range []string{
		"/api/v1/tasks/" + long + "/events",
		"/api/v1/tasks/" + long + "/cancel",
	} {
		method := http.MethodGet
		if strings.HasSuffix(path, "cancel") {
			method = http.MethodPost
		}
		env := checkEnvelope(t, h.request(method, path, "alice", "", nil), http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
		assert.Equal(t, "taskId", env.Details["parameter"])
	}
	for _, id := range []string{"..", "%00", "a%2Fb", strings.Repeat("b", contracts.MaxTaskIDLen)} {
		_, r := h.poll("alice", id, "")
		checkEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)

	// Empty body, no content type.
	id := h.create("alice", "test.block", nil)
	r := h.request(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "", nil)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	conformance.CheckBody(t, conformance.CancelTaskResponse, r.body)
	var res contracts.CancelResult
	require.NoError(t, json.Unmarshal(r.body, &res))
	assert.Equal(t, contracts.CancelRequested, res.Status)
	events := h.pollUntilTerminal("alice", id)
	assert.Equal(t, contracts.EventCancelled, events[len(events)-1].Type)
	assert.JSONEq(t, `{"reason":"cancelled_by_user"}`, onlyKey(t, events[len(events)-1].Payload, "reason"))

	// Already terminal.
	r = h.request(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "", nil)
	require.Equal(t, http.StatusAccepted, r.status)
	require.NoError(t, json.Unmarshal(r.body, &res))
	assert.Equal(t, contracts.CancelAlreadyTerminal, res.Status)

	// With a reason.
	id = h.create("alice", "test.block", nil)
	r = h.postJSON("/api/v1/tasks/"+id+"/cancel", "alice", map[string]any{"reason": "user_closed_tab"})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	events = h.pollUntilTerminal("alice", id)
	assert.JSONEq(t, `{"reason":"user_closed_tab"}`, onlyKey(t, events[len(events)-1].Payload, "reason"))

	// Bodies that are not accepted.
	checkEnvelope(t, h.request(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "text/plain", []byte("stop")),
		http.StatusUnsupportedMediaType, bridgeerr.CodeInvalidRequest)
	checkEnvelope(t, h.request(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "application/json", []byte(`{"reason":1}`)),
		http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
	checkEnvelope(t, h.request(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "application/json", []byte(`{"why":"x"}`)),
		http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
}

// onlyKey returns {key: value} of a JSON object, as JSON.
func onlyKey(t testing.TB, raw json.RawMessage, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return `{"` + key + `":` + string(m[key]) + `}`
}

// waitSuspended polls until TASK_SUSPENDED and returns its payload.
func (h *harness) waitSuspended(token, taskID string) contracts.SuspendedPayload {
	h.t.Helper()
	cursor := ""
	for range 100 {
		res, r := h.poll(token, taskID, "?waitTimeoutMs=5000&afterEventId="+cursor)
		require.Equal(h.t, http.StatusOK, r.status)
		for i := range res.Events {
			if res.Events[i].Type == contracts.EventSuspended {
				p, err := contracts.DecodePayload(&res.Events[i])
				require.NoError(h.t, err)
				return p.(contracts.SuspendedPayload)
			}
		}
		if res.NextAfterEventID != nil {
			cursor = res.NextAfterEventID.String()
		}
	}
	h.t.Fatal("no TASK_SUSPENDED")
	return contracts.SuspendedPayload{}
}

func TestActionFlow(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.approval", nil)
	susp := h.waitSuspended("alice", id)
	assert.Equal(t, []string{"approve", "reject"}, susp.AllowedActions)
	path := "/api/v1/tasks/" + id + "/actions"
	action := map[string]any{"clientActionId": "a-1", "suspendId": susp.SuspendID, "actionType": "approve", "payload": map[string]any{"note": "ok"}}
	conformance.CheckBody(t, conformance.ActionRequest, mustJSON(t, action))

	check := func(r response, status int, want contracts.ActionStatus) {
		t.Helper()
		if r.status != status {
			res, _ := h.poll("alice", id, "")
			for _, e := range res.Events {
				t.Logf("task event: %s %s", e.Type, e.Payload)
			}
		}
		require.Equal(t, status, r.status, string(r.body))
		conformance.CheckBody(t, conformance.ActionResponse, r.body)
		var res contracts.ActionResult
		require.NoError(t, json.Unmarshal(r.body, &res))
		assert.Equal(t, want, res.Status)
	}
	check(h.postJSON(path, "alice", action), http.StatusAccepted, contracts.ActionStatusAccepted)
	check(h.postJSON(path, "alice", action), http.StatusOK, contracts.ActionStatusDeduplicated)
	check(h.postJSON(path, "alice", map[string]any{"clientActionId": "a-2", "suspendId": susp.SuspendID, "actionType": "reject"}),
		http.StatusAccepted, contracts.ActionStatusRejectedAlreadyResolved)
	action["payload"] = map[string]any{"note": "changed"}
	checkEnvelope(t, h.postJSON(path, "alice", action), http.StatusConflict, bridgeerr.CodeIdempotencyConflict)

	events := h.pollUntilTerminal("alice", id)
	types := make([]contracts.EventType, len(events))
	for i, e := range events {
		types[i] = e.Type
	}
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended, contracts.EventActionAccepted, contracts.EventCompleted}, types)
	assert.JSONEq(t, `{"result":{"decision":"approve"}}`, string(events[3].Payload))

	tests := []struct {
		name   string
		body   string
		status int
		code   bridgeerr.Code
	}{
		{"not allowed action", `{"clientActionId":"a-3","suspendId":"` + susp.SuspendID + `","actionType":"delete"}`, 400, bridgeerr.CodeInvalidRequest},
		{"unknown suspension", `{"clientActionId":"a-4","suspendId":"nope","actionType":"approve"}`, 404, bridgeerr.CodeTaskNotFound},
		{"missing suspendId", `{"clientActionId":"a-5","actionType":"approve"}`, 400, bridgeerr.CodeInvalidRequest},
		{"unknown field", `{"clientActionId":"a-6","suspendId":"s","actionType":"approve","extra":1}`, 400, bridgeerr.CodeInvalidRequest},
		{"payload not an object", `{"clientActionId":"a-7","suspendId":"s","actionType":"approve","payload":"x"}`, 400, bridgeerr.CodeInvalidRequest},
		{"empty body", ``, 400, bridgeerr.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkEnvelope(t, h.request(http.MethodPost, path, "alice", "application/json", []byte(tc.body)), tc.status, tc.code)
		})
	}
}

func TestBadJSONBodies(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) { cfg.MaxBodyBytes = 1024 })
	tests := []struct {
		name, contentType string
		body              []byte
		status            int
		field             string
	}{
		{"malformed", "application/json", []byte(`{"clientRequestId":`), 400, ""},
		{"array", "application/json", []byte(`[1,2]`), 400, ""},
		{"string", "application/json", []byte(`"x"`), 400, ""},
		{"empty", "application/json", nil, 400, ""},
		{"trailing data", "application/json", []byte(`{"clientRequestId":"a","taskType":"test.steps"} {}`), 400, ""},
		{"unknown field", "application/json", []byte(`{"clientRequestId":"a","taskType":"test.steps","extra":true}`), 400, "extra"},
		{"wrong type", "application/json", []byte(`{"clientRequestId":5,"taskType":"test.steps"}`), 400, "clientRequestId"},
		{"input a string", "application/json", []byte(`{"clientRequestId":"a","taskType":"test.steps","input":"{}"}`), 400, "input"},
		{"missing clientRequestId", "application/json", []byte(`{"taskType":"test.steps"}`), 400, "clientRequestId"},
		{"empty taskType", "application/json", []byte(`{"clientRequestId":"a","taskType":""}`), 400, "taskType"},
		{"over-long clientRequestId", "application/json", []byte(`{"clientRequestId":"` + strings.Repeat("x", 257) + `","taskType":"t"}`), 400, "clientRequestId"},
		{"non-UTF-8", "application/json", []byte("{\"clientRequestId\":\"\xff\xfe\",\"taskType\":\"test.steps\"}"), 400, ""},
		{"over MaxBodyBytes", "application/json", []byte(`{"clientRequestId":"` + strings.Repeat("x", 2000) + `"}`), 413, ""},
		{"unsupported type", "text/plain", []byte(`{}`), 415, ""},
		{"no content type", "", []byte(`{}`), 415, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := checkEnvelope(t, h.request(http.MethodPost, "/api/v1/tasks", "alice", tc.contentType, tc.body), tc.status, bridgeerr.CodeInvalidRequest)
			if tc.field != "" {
				assert.Equal(t, tc.field, env.Details["field"])
			}
		})
	}
	// Still healthy.
	assert.Equal(t, http.StatusOK, h.request(http.MethodGet, "/health", "", "", nil).status)
}

func TestAppBodyLimitAnswersEnvelope(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	// The app's default BodyLimit (4 MiB) rejects this before any handler,
	// from the Content-Length alone. The body is not sent: the server
	// answers and closes, and a client still writing would see a reset.
	conn, err := net.DialTimeout("tcp", h.addr, hwait)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(hwait)))
	_, err = conn.Write([]byte("POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n" +
		"Content-Type: application/json\r\nContent-Length: 5242880\r\n\r\n{"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	checkEnvelope(t, response{status: resp.StatusCode, header: resp.Header, body: body},
		http.StatusRequestEntityTooLarge, bridgeerr.CodeInvalidRequest)
}

func TestAuthenticationOnEveryRoute(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.block", nil)
	routes := []struct{ method, path string }{
		{http.MethodPost, "/api/v1/tasks"},
		{http.MethodGet, "/api/v1/tasks/" + id + "/events"},
		{http.MethodGet, "/api/v1/tasks/" + id + "/events/stream"},
		{http.MethodPost, "/api/v1/tasks/" + id + "/cancel"},
		{http.MethodPost, "/api/v1/tasks/" + id + "/actions"},
		{http.MethodGet, "/api/v1/tasks/ws"},
	}
	for _, rt := range routes {
		t.Run("missing credentials "+rt.method+" "+rt.path, func(t *testing.T) {
			checkEnvelope(t, h.request(rt.method, rt.path, "", "application/json", []byte(`{}`)), http.StatusUnauthorized, bridgeerr.CodeAuthentication)
		})
	}
	// Another subject sees the task as missing on every task route.
	foreign := []struct {
		method, path, body string
	}{
		{http.MethodGet, "/api/v1/tasks/" + id + "/events", ""},
		{http.MethodGet, "/api/v1/tasks/" + id + "/events/stream", ""},
		{http.MethodPost, "/api/v1/tasks/" + id + "/cancel", ""},
		{http.MethodPost, "/api/v1/tasks/" + id + "/actions", `{"clientActionId":"a","suspendId":"s","actionType":"approve"}`},
	}
	for _, rt := range foreign {
		t.Run("foreign "+rt.method+" "+rt.path, func(t *testing.T) {
			env := checkEnvelope(t, h.request(rt.method, rt.path, "bob", "application/json", []byte(rt.body)), http.StatusNotFound, bridgeerr.CodeTaskNotFound)
			missing := checkEnvelope(t, h.request(rt.method, strings.Replace(rt.path, id, contracts.NewID(), 1), "bob", "application/json", []byte(rt.body)),
				http.StatusNotFound, bridgeerr.CodeTaskNotFound)
			assert.Equal(t, missing.Message, env.Message, "foreign and missing tasks look the same")
		})
	}
	// The task is untouched.
	res, _ := h.poll("alice", id, "")
	for _, ev := range res.Events {
		assert.NotEqual(t, contracts.EventCancelled, ev.Type)
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	ready := &toggleProbe{}
	h := startHarness(t, func(cfg *fiberbridge.Config) { cfg.Readiness = ready })
	r := h.request(http.MethodGet, "/health", "", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ok"}`, string(r.body))

	r = h.request(http.MethodGet, "/ready", "", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"status":"not_ready","details":{"store":"down"}}`, string(r.body))

	ready.set(true)
	r = h.request(http.MethodGet, "/ready", "", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ready","details":{"store":"up"}}`, string(r.body))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	require.NoError(t, h.bridge.Shutdown(ctx))
	r = h.request(http.MethodGet, "/ready", "", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"status":"not_ready","details":{"store":"up","bridge":"shutting_down"}}`, string(r.body))
}

type toggleProbe struct{ up atomic.Bool }

func (p *toggleProbe) set(v bool) { p.up.Store(v) }

func (p *toggleProbe) CheckReadiness(context.Context) (bool, map[string]any) {
	if p.up.Load() {
		return true, map[string]any{"store": "up"}
	}
	return false, map[string]any{"store": "down"}
}

func TestShutdownEndsLongPolls(t *testing.T) {
	t.Parallel()
	reads := &countingEvents{}
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		reads.EventStore = cfg.Stores.Events
		cfg.Stores.Events = reads
	})
	id := h.create("alice", "test.gated", nil)
	first, _ := h.poll("alice", id, "?waitTimeoutMs=10000")
	require.NotEmpty(t, first.Events)
	last := first.Events[len(first.Events)-1].EventID
	reads.watch(id, last)

	const n = 5
	results := make(chan response, n)
	for i := range n {
		go func() {
			// Distinct page sizes: polls with the same cursor and size
			// share their reads, and each should read once here.
			_, r := h.poll("alice", id, fmt.Sprintf("?waitTimeoutMs=60000&maxEvents=%d&afterEventId=%s", i+1, last))
			results <- r
		}()
	}
	// A poll registers its watch and then reads the store once before it
	// parks; once all n have read, they are parked (or about to, on a
	// registered watch that Shutdown's cancellation reaches).
	require.Eventually(t, func() bool { return reads.count() >= n }, 10*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, h.bridge.Shutdown(ctx))
	for range n {
		select {
		case r := <-results:
			assert.Equal(t, http.StatusOK, r.status, string(r.body))
		case <-time.After(5 * time.Second):
			t.Fatal("long-poll still open after Shutdown")
		}
	}
	assert.Less(t, time.Since(start), 2*time.Second)
	close(h.gates.get(id))
}

// countingEvents counts the reads of one (task, cursor) pair.
type countingEvents struct {
	contracts.EventStore
	mu     sync.Mutex
	taskID string
	after  contracts.EventID
	n      int
}

func (c *countingEvents) watch(taskID string, after contracts.EventID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.taskID, c.after, c.n = taskID, after, 0
}

func (c *countingEvents) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *countingEvents) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	c.mu.Lock()
	if taskID == c.taskID && after == c.after {
		c.n++
	}
	c.mu.Unlock()
	return c.EventStore.Read(ctx, taskID, after, limit)
}
