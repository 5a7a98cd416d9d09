package fiberbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// TestParseErrorsEchoNoRequestBytes sends requests fasthttp cannot parse
// (a malformed request line, a header without a colon, a bad
// Content-Length) carrying a secret Authorization header: the answer is a
// generic 400 INVALID_REQUEST envelope that quotes nothing of the request.
func TestParseErrorsEchoNoRequestBytes(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	const secret = "s3cr3t-token-0123456789"
	for _, tc := range []struct{ name, raw string }{
		{"header without colon", "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nBroken header line\r\n\r\n"},
		{"bad request line", "GET\x01/health HTTP/1.1 extra\r\nAuthorization: Bearer " + secret + "\r\n\r\n"},
		{"bad content length", "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: -5x\r\n\r\n"},
		{"no method", " /health HTTP/1.1\r\nAuthorization: Bearer " + secret + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e2etest.RawExchange(h.srv.Addr, []byte(tc.raw), hwait)
			require.NoError(t, err)
			env := e2etest.CheckEnvelope(t, resp, http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
			assert.Equal(t, "invalid request", env.Message)
			assert.NotContains(t, string(resp.Body), secret)
			assert.NotContains(t, string(resp.Body), "Authorization")
			for k, v := range resp.Header {
				assert.NotContains(t, strings.Join(v, ","), secret, "header %s", k)
			}
		})
	}
}

// TestStrictKeys sends bodies and WebSocket subscribe frames whose keys are
// repeated or spelled in another letter case than the protocol's schemas:
// a proxy that inspects the exact key would see something else than the
// bridge, so each is 400 INVALID_REQUEST (WebSocket: close 1008) and no
// task is created.
func TestStrictKeys(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	taskID := h.create("alice", "test.block", nil)
	for _, tc := range []struct {
		name, path, body, field, reason string
	}{
		{"create duplicate key", "/api/v1/tasks", `{"clientRequestId":"a","clientRequestId":"b","taskType":"test.steps"}`, "clientRequestId", "duplicate field"},
		{"create upper-case key", "/api/v1/tasks", `{"CLIENTREQUESTID":"a","taskType":"test.steps"}`, "CLIENTREQUESTID", "unknown field"},
		{"create mixed-case key", "/api/v1/tasks", `{"clientRequestId":"a","TaskType":"test.steps"}`, "TaskType", "unknown field"},
		{"create duplicate key in input", "/api/v1/tasks", `{"clientRequestId":"a","taskType":"test.steps","input":{"steps":1,"steps":2}}`, "input.steps", "duplicate field"},
		{"cancel other-case key", "/api/v1/tasks/" + taskID + "/cancel", `{"Reason":"x"}`, "Reason", "unknown field"},
		{"action duplicate key", "/api/v1/tasks/" + taskID + "/actions", `{"clientActionId":"1","suspendId":"s","suspendId":"t","actionType":"approve"}`, "suspendId", "duplicate field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(http.MethodPost, tc.path, "alice", "application/json", []byte(tc.body))
			env := e2etest.CheckEnvelope(t, r, http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
			assert.Equal(t, tc.field, env.Details["field"])
			assert.Equal(t, tc.reason, env.Details["reason"])
		})
	}
	// Nothing was created under the refused clientRequestId.
	r := h.do(http.MethodPost, "/api/v1/tasks", "alice", "application/json", []byte(`{"clientRequestId":"a","taskType":"test.steps","input":{"steps":1}}`))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))

	for _, frame := range []string{
		`{"action":"subscribe","taskId":"` + taskID + `","taskId":"` + taskID + `"}`,
		`{"action":"subscribe","TaskID":"` + taskID + `"}`,
		`{"ACTION":"subscribe","taskId":"` + taskID + `"}`,
		`{"action":"subscribe","taskId":"` + taskID + `","lastEventId":null,"lastEventId":"1-0"}`,
	} {
		c, resp := h.dial(nil, "alice")
		require.NotNil(t, c, "upgrade refused: %d", resp.Status)
		require.NoError(t, c.Conn.WriteMessage(websocket.TextMessage, []byte(frame)))
		_, code, reason, err := c.ReadToClose(hwait)
		require.NoError(t, err, frame)
		assert.Equal(t, websocket.ClosePolicyViolation, code, frame)
		assert.Equal(t, "invalid subscribe frame", reason, frame)
	}
	// The exact spelling still subscribes.
	c := h.subscribe(nil, "alice", taskID, nil)
	require.NotNil(t, c)
}

// TestStreamedBodiesUnderAppConfig runs the body limits on an app built
// with fiberbridge.AppConfig, where fasthttp streams request bodies
// instead of reading them whole first: the bridge's own limits still hold
// (413 by the declared length before reading, 413 while reading a chunked
// body, 408 for a body trickled past ReadTimeout), valid JSON and
// multipart creates still work, and an upload within MaxUploadBytes is
// taken even though it is over the app's 4 MiB BodyLimit (which now bounds
// only what fasthttp pre-reads).
func TestStreamedBodiesUnderAppConfig(t *testing.T) {
	t.Parallel()
	// h cuts slow bodies after a second; full has AppConfig's own 30 s
	// read timeout, for bodies that take a while on a loaded machine.
	h := startHardened(t, hopts{fresh: true, app: func(cfg *fiber.Config) {
		*cfg = fiberbridge.AppConfig(*cfg)
		cfg.ReadTimeout = time.Second
	}})
	full := startHardened(t, hopts{fresh: true, app: func(cfg *fiber.Config) { *cfg = fiberbridge.AppConfig(*cfg) }})
	head := func(extra string) string {
		return "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}
	const twenty = 20 << 20
	t.Run("declared 20 MB: 413 before reading", func(t *testing.T) {
		resp, err, _ := sendBody(t, h.srv.Addr, head(fmt.Sprintf("Content-Length: %d\r\n", twenty)),
			io.LimitReader(zeros{}, twenty), 64<<10, 0)
		require.NoError(t, err)
		env := e2etest.CheckEnvelope(t, resp, http.StatusRequestEntityTooLarge, bridgeerr.CodeInvalidRequest)
		assert.EqualValues(t, fiberbridge.DefaultMaxBodyBytes, env.Details["maxBytes"])
	})
	t.Run("chunked 20 MB: 413 once MaxBodyBytes is passed", func(t *testing.T) {
		resp, err, _ := sendBody(t, h.srv.Addr, head("Transfer-Encoding: chunked\r\n"), &chunked{left: twenty}, 64<<10, 0)
		require.NoError(t, err)
		env := e2etest.CheckEnvelope(t, resp, http.StatusRequestEntityTooLarge, bridgeerr.CodeInvalidRequest)
		assert.EqualValues(t, fiberbridge.DefaultMaxBodyBytes, env.Details["maxBytes"])
	})
	t.Run("a body trickled in: ReadTimeout ends it", func(t *testing.T) {
		resp, err, _ := sendBody(t, h.srv.Addr, head("Content-Length: 900000\r\n"), io.LimitReader(zeros{}, 900000), 64, 20*time.Millisecond)
		require.NoError(t, err)
		e2etest.CheckEnvelope(t, resp, http.StatusRequestTimeout, bridgeerr.CodeInvalidRequest)
	})
	t.Run("a multipart body trickled in: ReadTimeout ends it as a JSON body", func(t *testing.T) {
		// A well-formed start (the text fields, a file part's header and
		// 16 KiB of it, past what fasthttp reads before the handler runs)
		// followed by file bytes that arrive too slowly: the answer is the
		// same 408 as for a JSON body, not a 400 blaming the body's form.
		fields := map[string]string{"clientRequestId": contracts.NewID(), "taskType": "test.steps", "input": `{"steps":1}`}
		ct, body := multipartBody(t, fields, formFile{field: "attachment", filename: "slow.bin",
			contentType: "application/octet-stream", content: bytes.Repeat([]byte{7}, 900000)})
		head := "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: " + ct +
			fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body)) + string(body[:16<<10])
		resp, err, _ := sendBody(t, h.srv.Addr, head, bytes.NewReader(body[16<<10:]), 64, 20*time.Millisecond)
		require.NoError(t, err)
		env := e2etest.CheckEnvelope(t, resp, http.StatusRequestTimeout, bridgeerr.CodeInvalidRequest)
		assert.Equal(t, "request body not received in time", env.Message)
	})
	t.Run("valid JSON, plain and chunked", func(t *testing.T) {
		body := `{"clientRequestId":"` + contracts.NewID() + `","taskType":"test.steps","input":{"steps":1},"metadata":{"pad":"` + strings.Repeat("p", 64<<10) + `"}}`
		r := full.do(http.MethodPost, "/api/v1/tasks", "alice", "application/json", []byte(body))
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		resp, err, _ := sendBody(t, full.srv.Addr, head("Transfer-Encoding: chunked\r\n"),
			strings.NewReader(fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 10, body[:10], len(body)-10, body[10:])), 4096, 0)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.Status, "the same create again, chunked: deduplicated: %s", resp.Body)
	})
	t.Run("multipart upload of MaxUploadBytes over the app's BodyLimit", func(t *testing.T) {
		fields := map[string]string{"clientRequestId": contracts.NewID(), "taskType": "test.steps", "input": `{"steps":1}`}
		big := formFile{field: "attachment", filename: "big.bin", contentType: "application/octet-stream",
			content: bytes.Repeat([]byte{7}, fiberbridge.DefaultMaxUploadBytes)}
		ct, body := multipartBody(t, fields, big)
		r := full.do(http.MethodPost, "/api/v1/tasks", "alice", ct, body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		fields["clientRequestId"] = contracts.NewID()
		big.content = append(big.content, 7)
		ct, body = multipartBody(t, fields, big)
		env := e2etest.CheckEnvelope(t, full.do(http.MethodPost, "/api/v1/tasks", "alice", ct, body),
			http.StatusRequestEntityTooLarge, bridgeerr.CodeUploadValidation)
		assert.EqualValues(t, fiberbridge.DefaultMaxUploadBytes, env.Details["maxBytes"])
	})
	h.healthy()
}

// TestOneSubjectCannotStarveOthers: alice floods the create route with 100
// long tasks at once. She gets DefaultMaxActiveTasksPerSubject of them and
// 429 QUOTA_EXCEEDED with Retry-After for the rest, with nothing stored for
// the refused requests; bob's create during her flood succeeds and his
// task runs to its end (alice holds half the workers at most); and a
// refused request of alice, retried once one of her tasks ended, creates
// a new task instead of answering a deduplicated FAILED one.
func TestOneSubjectCannotStarveOthers(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	const flood = 100
	type answer struct {
		request string
		r       e2etest.Response
	}
	answers := make(chan answer, flood)
	var wg sync.WaitGroup
	for range flood {
		wg.Add(1)
		go func() { // owner: this test
			defer wg.Done()
			request := contracts.NewID()
			body := `{"clientRequestId":"` + request + `","taskType":"test.block"}`
			answers <- answer{request, h.do(http.MethodPost, "/api/v1/tasks", "alice", "application/json", []byte(body))}
		}()
	}
	// bob, while alice's flood is on.
	bob := h.create("bob", "test.steps", map[string]any{"steps": 2})
	wg.Wait()
	close(answers)
	var created []string
	var refused []string
	for a := range answers {
		switch a.r.Status {
		case http.StatusCreated:
			var tc contracts.TaskCreated
			require.NoError(t, json.Unmarshal(a.r.Body, &tc))
			created = append(created, tc.TaskID)
		default:
			env := e2etest.CheckEnvelope(t, a.r, http.StatusTooManyRequests, bridgeerr.CodeQuotaExceeded)
			assert.Equal(t, "MaxActiveTasks", env.Details["limit"])
			assert.Equal(t, "1", a.r.Header.Get("Retry-After"))
			refused = append(refused, a.request)
		}
	}
	assert.Len(t, created, orchestration.DefaultMaxActiveTasksPerSubject)
	require.Len(t, refused, flood-orchestration.DefaultMaxActiveTasksPerSubject)
	evs := h.allEvents("bob", bob)
	require.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type, "bob's task ran during alice's flood")

	// One of alice's tasks ends; her refused request, retried, is a new task.
	r := h.do(http.MethodPost, "/api/v1/tasks/"+created[0]+"/cancel", "alice", "", nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	evs = h.allEvents("alice", created[0])
	require.Equal(t, contracts.EventCancelled, evs[len(evs)-1].Type)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r := h.do(http.MethodPost, "/api/v1/tasks", "alice", "application/json",
			[]byte(`{"clientRequestId":"`+refused[0]+`","taskType":"test.block"}`))
		assert.Equal(c, http.StatusCreated, r.Status, "the retried request creates its task: %s", r.Body)
	}, hwait, 250*time.Millisecond)
	for _, id := range created[1:] {
		h.do(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "", nil)
	}
}

// TestHeavySubjectsCannotStarveALightOne: alice and bob each create 20
// long tasks at once on an executor of two workers, so 38 of them wait in
// the queue; then carol creates one short task. Each time the test lets
// one long task end, a worker starts the next task, as the handlers record
// it: carol's starts within three starts (one per subject waiting), not
// after alice's and bob's whole backlog, and she sees it complete over
// HTTP while they still have over thirty tasks waiting.
func TestHeavySubjectsCannotStarveALightOne(t *testing.T) {
	t.Parallel()
	const perSubject = 20
	starts := make(chan string, 2*perSubject+1)
	gate := make(chan struct{})
	h := startHardened(t, hopts{
		exec: func(o *orchestration.ExecutorOptions) { o.MaxConcurrent, o.QueueSize = 2, 64 },
		bridge: func(cfg *fiberbridge.Config) {
			cfg.SubjectLimits = orchestration.SubjectLimits{MaxActiveTasks: perSubject}
		},
		handlers: map[string]orchestration.Handler{
			"test.long": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
				starts <- task.Task().OwnerID
				select {
				case <-gate:
					return nil, nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			},
			"test.short": func(_ context.Context, task *orchestration.TaskContext) (any, error) {
				starts <- task.Task().OwnerID
				return map[string]any{"done": true}, nil
			},
		},
	})
	var wg sync.WaitGroup
	for _, subject := range []string{"alice", "bob"} {
		for range perSubject {
			wg.Add(1)
			go func() { // owner: this test
				defer wg.Done()
				body := `{"clientRequestId":"` + contracts.NewID() + `","taskType":"test.long"}`
				r := h.do(http.MethodPost, "/api/v1/tasks", subject, "application/json", []byte(body))
				assert.Equal(t, http.StatusCreated, r.Status, string(r.Body))
			}()
		}
	}
	wg.Wait()
	for range 2 {
		recvWithin(t, starts, "the two workers start a long task")
	}
	carol := h.create("carol", "test.short", nil)

	released := 0
	for {
		require.Less(t, released, 2*perSubject-1, "carol's task never started")
		select {
		case gate <- struct{}{}:
		case <-time.After(hwait):
			t.Fatal("no long task took the gate")
		}
		released++
		if recvWithin(t, starts, "the next start") == "carol" {
			break
		}
	}
	assert.LessOrEqual(t, released, 3, "carol's task started after %d of the %d queued tasks of alice and bob", released-1, 2*perSubject-2)
	evs := h.allEvents("carol", carol)
	require.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type)
}

// recvWithin receives from ch, failing the test after hwait.
func recvWithin[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hwait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestRetryOfARefusedCreateAnswersItsTask: a client that lost the answer
// of a create that did succeed and retries it gets its task back (200,
// deduplicated), also when a new create would be refused: alice is at her
// quota of two active tasks (a new request of hers is 429 and stores
// nothing), and the executor's queue is full with bob's task (a new create
// of carol's is 503 and stores nothing), yet alice's and bob's retries
// answer their tasks; a retry with another payload is 409.
func TestRetryOfARefusedCreateAnswersItsTask(t *testing.T) {
	t.Parallel()
	started := make(chan string, 3)
	h := startHardened(t, hopts{
		exec: func(o *orchestration.ExecutorOptions) { o.MaxConcurrent, o.QueueSize = 2, 1 },
		bridge: func(cfg *fiberbridge.Config) {
			cfg.SubjectLimits = orchestration.SubjectLimits{MaxActiveTasks: 2}
		},
		handlers: map[string]orchestration.Handler{
			"test.held": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
				started <- task.Task().TaskID
				<-ctx.Done()
				return nil, ctx.Err()
			},
		},
	})
	create := func(subject, request, input string) e2etest.Response {
		return h.do(http.MethodPost, "/api/v1/tasks", subject, "application/json",
			[]byte(`{"clientRequestId":"`+request+`","taskType":"test.held","input":`+input+`}`))
	}
	created := func(r e2etest.Response, status int) contracts.TaskCreated {
		t.Helper()
		require.Equal(t, status, r.Status, string(r.Body))
		var tc contracts.TaskCreated
		require.NoError(t, json.Unmarshal(r.Body, &tc))
		return tc
	}
	a1 := created(create("alice", "a1", `{}`), http.StatusCreated)
	created(create("alice", "a2", `{}`), http.StatusCreated)
	for range 2 {
		recvWithin(t, started, "alice's tasks hold both workers")
	}
	b1 := created(create("bob", "b1", `{}`), http.StatusCreated) // queued: the queue is full

	// At the quota.
	again := created(create("alice", "a1", `{}`), http.StatusOK)
	assert.Equal(t, a1.TaskID, again.TaskID)
	assert.True(t, again.Deduplicated)
	assert.Equal(t, contracts.StatusRunning, again.Status)
	env := e2etest.CheckEnvelope(t, create("alice", "a3", `{}`), http.StatusTooManyRequests, bridgeerr.CodeQuotaExceeded)
	assert.Equal(t, "MaxActiveTasks", env.Details["limit"])
	e2etest.CheckEnvelope(t, create("alice", "a2", `{"other":1}`), http.StatusConflict, bridgeerr.CodeIdempotencyConflict)

	// At the executor's capacity.
	again = created(create("bob", "b1", `{}`), http.StatusOK)
	assert.Equal(t, b1.TaskID, again.TaskID)
	assert.True(t, again.Deduplicated)
	assert.Equal(t, contracts.StatusAccepted, again.Status)
	e2etest.CheckEnvelope(t, create("carol", "c1", `{}`), http.StatusServiceUnavailable, bridgeerr.CodeTaskSubmission)

	// The refused requests left nothing behind.
	finder := h.stores.Tasks.(contracts.TaskFinder)
	for _, k := range [][2]string{{"alice", "a3"}, {"carol", "c1"}} {
		_, err := finder.FindByClientRequestID(context.Background(), k[0], k[1])
		require.ErrorIs(t, err, contracts.ErrNotFound, "%s/%s", k[0], k[1])
	}
}
