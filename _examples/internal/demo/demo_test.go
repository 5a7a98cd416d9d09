package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

func TestMain(m *testing.M) {
	// fasthttp's process-wide date updater, started by app.Test.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

func TestValidateInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, taskType, input string
		field                 string // "" = accepted
	}{
		{"progress defaults", demo.TypeProgress, ``, ""},
		{"progress in range", demo.TypeProgress, `{"steps":1000,"delayMs":0}`, ""},
		{"steps too many", demo.TypeProgress, `{"steps":1001}`, "input.steps"},
		{"steps negative", demo.TypeProgress, `{"steps":-1}`, "input.steps"},
		{"delay too long", demo.TypeProgress, `{"delayMs":60001}`, "input.delayMs"},
		{"delay wrong type", demo.TypeProgress, `{"delayMs":"1"}`, "input.delayMs"},
		{"unknown field", demo.TypeProgress, `{"step":1}`, "input.step"},
		{"not an object", demo.TypeProgress, `[1]`, "input"},
		{"sleep default", demo.TypeSleep, `{}`, ""},
		{"sleep zero delay", demo.TypeSleep, `{"delayMs":0}`, "input.delayMs"},
		{"fail without input", demo.TypeFail, `{}`, ""},
		{"fail with input", demo.TypeFail, `{"x":1}`, "input.x"},
		{"approval with input", demo.TypeApproval, `{"x":1}`, "input.x"},
		{"other types pass", "other", `{"anything":true}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := &contracts.CreateTaskCommand{TaskType: tc.taskType, Input: json.RawMessage(tc.input)}
			err := demo.ValidateInput(nil, cmd)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			var be *bridgeerr.Error
			require.True(t, errors.As(err, &be), "%v", err)
			assert.Equal(t, bridgeerr.CodeInvalidRequest, be.Code)
			assert.Equal(t, tc.field, be.Details["field"])
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		auth, err := demo.Auth(c)
		if err != nil {
			var be *bridgeerr.Error
			if errors.As(err, &be) {
				return c.Status(be.HTTPStatus()).SendString(string(be.Code))
			}
			return err
		}
		return c.SendString(auth.Subject)
	})
	for _, tc := range []struct {
		name, header, query string
		status              int
		body                string
	}{
		{"bearer", "Bearer alice", "", 200, "alice"},
		{"query", "", "?access_token=bob", 200, "bob"},
		{"bearer wins", "Bearer alice", "?access_token=bob", 200, "alice"},
		{"empty bearer falls back", "Bearer  ", "?access_token=bob", 200, "bob"},
		{"none", "", "", 401, string(bridgeerr.CodeAuthentication)},
		{"other scheme", "Basic abc", "", 401, string(bridgeerr.CodeAuthentication)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/"+tc.query, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := app.Test(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var body [64]byte
			n, _ := resp.Body.Read(body[:])
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, tc.body, string(body[:n]))
		})
	}
}

// runner runs demo tasks on the memory stores through the services.
type runner struct {
	svc  *orchestration.Services
	auth contracts.AuthContext
}

func newRunner(t *testing.T) *runner {
	t.Helper()
	st := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: st})
	require.NoError(t, err)
	demo.Register(exec)
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores: st, Executor: exec,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, svc.Close(ctx))
		assert.NoError(t, exec.Close(ctx))
	})
	return &runner{svc: svc, auth: contracts.AuthContext{Subject: "alice"}}
}

func (r *runner) create(t *testing.T, taskType, input string) string {
	t.Helper()
	created, err := r.svc.Creation.Create(context.Background(), contracts.CreateTaskCommand{
		Auth: r.auth, ClientRequestID: contracts.NewID(), TaskType: taskType, Input: json.RawMessage(input),
	})
	require.NoError(t, err)
	return created.TaskID
}

// next long-polls the events after cursor, failing after 10 s without any.
func (r *runner) next(t *testing.T, taskID string, after contracts.EventID) []contracts.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := r.svc.Polling.Poll(context.Background(), contracts.PollQuery{
			Auth: r.auth, TaskID: taskID, After: after, Wait: time.Second,
		})
		require.NoError(t, err)
		if len(res.Events) > 0 {
			return res.Events
		}
	}
	t.Fatalf("no event of %s after %s", taskID, after)
	return nil
}

// until reads events until one of type stop arrives.
func (r *runner) until(t *testing.T, taskID string, stop contracts.EventType) []contracts.TaskEvent {
	t.Helper()
	var all []contracts.TaskEvent
	var cursor contracts.EventID
	for {
		evs := r.next(t, taskID, cursor)
		for _, ev := range evs {
			all = append(all, ev)
			if ev.Type == stop {
				return all
			}
			require.False(t, ev.Type.IsTerminal(), "ended with %s before %s", ev.Type, stop)
		}
		cursor = evs[len(evs)-1].EventID
	}
}

func typesOf(evs []contracts.TaskEvent) []contracts.EventType {
	out := make([]contracts.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func payload[T any](t *testing.T, ev contracts.TaskEvent) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(ev.Payload, &v))
	return v
}

func TestHandlers(t *testing.T) {
	t.Parallel()
	r := newRunner(t)

	t.Run("progress", func(t *testing.T) {
		evs := r.until(t, r.create(t, demo.TypeProgress, `{"steps":4,"delayMs":0}`), contracts.EventCompleted)
		assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventProgress,
			contracts.EventProgress, contracts.EventProgress, contracts.EventCompleted}, typesOf(evs))
		assert.InDelta(t, 100, payload[contracts.ProgressPayload](t, evs[4]).Progress, 1e-9)
		assert.JSONEq(t, `{"steps":4}`, string(payload[contracts.CompletedPayload](t, evs[5]).Result))
	})
	t.Run("fail", func(t *testing.T) {
		evs := r.until(t, r.create(t, demo.TypeFail, `{}`), contracts.EventFailed)
		assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventFailed}, typesOf(evs))
		assert.Equal(t, demo.FailureCode, payload[contracts.FailedPayload](t, evs[2]).Code)
	})
	t.Run("approval", func(t *testing.T) {
		id := r.create(t, demo.TypeApproval, `{}`)
		evs := r.until(t, id, contracts.EventSuspended)
		susp := payload[contracts.SuspendedPayload](t, evs[len(evs)-1])
		assert.Equal(t, []string{"approve", "reject"}, susp.AllowedActions)
		res, err := r.svc.Actions.Submit(context.Background(), contracts.SubmitActionCommand{
			Auth: r.auth, TaskID: id, SuspendID: susp.SuspendID, ClientActionID: "a1", ActionType: "reject",
		})
		require.NoError(t, err)
		require.Equal(t, contracts.ActionStatusAccepted, res.Status)
		evs = r.until(t, id, contracts.EventCompleted)
		assert.JSONEq(t, `{"decision":"reject"}`, string(payload[contracts.CompletedPayload](t, evs[len(evs)-1]).Result))
	})
	t.Run("sleep until cancelled", func(t *testing.T) {
		id := r.create(t, demo.TypeSleep, `{"delayMs":1}`)
		r.until(t, id, contracts.EventProgress)
		_, err := r.svc.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{Auth: r.auth, TaskID: id})
		require.NoError(t, err)
		evs := r.until(t, id, contracts.EventCancelled)
		assert.Equal(t, contracts.EventCancelled, evs[len(evs)-1].Type)
	})
}

// Example wires the demo task types into an executor and validates a
// create command the way the bridge's CreatePreprocessor does.
func Example() {
	st := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: st})
	if err != nil {
		panic(err)
	}
	defer func() { _ = exec.Close(context.Background()) }()
	demo.Register(exec)
	fmt.Println(exec.TaskTypes())

	err = demo.ValidateInput(nil, &contracts.CreateTaskCommand{
		TaskType: demo.TypeProgress, Input: json.RawMessage(`{"steps":5000}`),
	})
	fmt.Println(err)
	// Output:
	// [demo.approval demo.fail demo.progress demo.sleep]
	// taskbridge: INVALID_REQUEST: input.steps must be from 0 to 1000
}
