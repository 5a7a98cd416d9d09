package orchestration_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func createCmd(subject, crid, taskType, input string) contracts.CreateTaskCommand {
	cmd := contracts.CreateTaskCommand{Auth: auth(subject), ClientRequestID: crid, TaskType: taskType}
	if input != "" {
		cmd.Input = json.RawMessage(input)
	}
	return cmd
}

func requireCode(t testing.TB, err error, code bridgeerr.Code) *bridgeerr.Error {
	t.Helper()
	require.Error(t, err)
	var be *bridgeerr.Error
	require.True(t, errors.As(err, &be), "not a *bridgeerr.Error: %v", err)
	require.Equal(t, code, be.Code, "error: %v", err)
	return be
}

func TestCreateNewTask(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	cmd := createCmd("alice", "r1", "report", `{"b":1, "a":[1,2]}`)
	cmd.Metadata = json.RawMessage(`{"trace":"x"}`)
	res, err := h.svc.Creation.Create(context.Background(), cmd)
	require.NoError(t, err)
	assert.False(t, res.Deduplicated)
	assert.Equal(t, contracts.StatusAccepted, res.Status)
	assert.Equal(t, "r1", res.ClientRequestID)
	assert.Len(t, res.TaskID, 32)

	rec, err := h.store.Get(context.Background(), res.TaskID)
	require.NoError(t, err)
	assert.Equal(t, "alice", rec.OwnerID)
	assert.Equal(t, "report", rec.TaskType)
	assert.JSONEq(t, `{"a":[1,2],"b":1}`, string(rec.Input))
	assert.Equal(t, `{"a":[1,2],"b":1}`, string(rec.Input), "input is canonical")
	assert.JSONEq(t, `{"trace":"x"}`, string(rec.Metadata))
	assert.Equal(t, contracts.Fingerprint("report", rec.Input, nil), rec.Fingerprint)

	require.Len(t, h.exec.submitted, 1)
	assert.Equal(t, res.TaskID, h.exec.submitted[0].TaskID)
	assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricTaskStarts))
	accepted := h.logged("task.create.accepted")
	require.Len(t, accepted, 1)
	assert.Equal(t, zapcore.InfoLevel, accepted[0].Level)
	assert.Equal(t, res.TaskID, fieldOf(accepted[0], observe.FieldTaskID))
	assert.Equal(t, "r1", fieldOf(accepted[0], observe.FieldClientRequestID))
	assert.Equal(t, "alice", fieldOf(accepted[0], observe.FieldUserID))
	assert.Equal(t, "internal", fieldOf(accepted[0], observe.FieldTransport))
}

func TestCreateNilInputIsEmptyObject(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	res, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "t", ""))
	require.NoError(t, err)
	rec, err := h.store.Get(context.Background(), res.TaskID)
	require.NoError(t, err)
	assert.Equal(t, "{}", string(rec.Input))
	again, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "t", `{}`))
	require.NoError(t, err)
	assert.True(t, again.Deduplicated, "no input and {} are the same request")
}

func TestCreateIdempotency(t *testing.T) {
	attachment := contracts.NewAttachment("a.txt", "text/plain", []byte("hello"))
	other := contracts.NewAttachment("a.txt", "text/plain", []byte("world"))
	tests := []struct {
		name    string
		second  func(contracts.CreateTaskCommand) contracts.CreateTaskCommand
		dedup   bool
		errCode bridgeerr.Code
	}{
		{"same payload", func(c contracts.CreateTaskCommand) contracts.CreateTaskCommand { return c }, true, ""},
		{"same input in another key order", func(c contracts.CreateTaskCommand) contracts.CreateTaskCommand {
			c.Input = json.RawMessage(`{ "y" : "2", "x":1 }`)
			return c
		}, true, ""},
		{"different metadata is not compared", func(c contracts.CreateTaskCommand) contracts.CreateTaskCommand {
			c.Metadata = json.RawMessage(`{"other":true}`)
			return c
		}, true, ""},
		{"different input", func(c contracts.CreateTaskCommand) contracts.CreateTaskCommand {
			c.Input = json.RawMessage(`{"x":2,"y":"2"}`)
			return c
		}, false, bridgeerr.CodeIdempotencyConflict},
		{"different task type", func(c contracts.CreateTaskCommand) contracts.CreateTaskCommand {
			c.TaskType = "other"
			return c
		}, false, bridgeerr.CodeIdempotencyConflict},
		{"different attachment content", func(c contracts.CreateTaskCommand) contracts.CreateTaskCommand {
			c.Attachments = []contracts.Attachment{other}
			return c
		}, false, bridgeerr.CodeIdempotencyConflict},
		{"no attachment", func(c contracts.CreateTaskCommand) contracts.CreateTaskCommand {
			c.Attachments = nil
			return c
		}, false, bridgeerr.CodeIdempotencyConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, orchestration.Options{})
			first := createCmd("alice", "r1", "t", `{"x":1,"y":"2"}`)
			first.Metadata = json.RawMessage(`{"m":1}`)
			first.Attachments = []contracts.Attachment{attachment}
			created, err := h.svc.Creation.Create(context.Background(), first)
			require.NoError(t, err)

			res, err := h.svc.Creation.Create(context.Background(), tt.second(first))
			if tt.errCode != "" {
				be := requireCode(t, err, tt.errCode)
				assert.Equal(t, 409, be.HTTPStatus())
			} else {
				require.NoError(t, err)
				assert.True(t, res.Deduplicated)
				assert.Equal(t, created.TaskID, res.TaskID)
				assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricDuplicates))
			}
			submits, _ := h.exec.calls()
			assert.Equal(t, 1, submits, "a repeat is never submitted")
		})
	}
}

func TestCreateDeduplicatedReportsCurrentStatus(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	cmd := createCmd("alice", "r1", "t", `{}`)
	first, err := h.svc.Creation.Create(context.Background(), cmd)
	require.NoError(t, err)
	_, err = h.store.UpdateStatus(context.Background(), first.TaskID, contracts.StatusRunning)
	require.NoError(t, err)
	again, err := h.svc.Creation.Create(context.Background(), cmd)
	require.NoError(t, err)
	assert.Equal(t, contracts.StatusRunning, again.Status)
}

func TestCreateOwnerScopesIdempotency(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	a, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "t", `{}`))
	require.NoError(t, err)
	b, err := h.svc.Creation.Create(context.Background(), createCmd("bob", "r1", "t", `{"other":1}`))
	require.NoError(t, err)
	assert.False(t, b.Deduplicated)
	assert.NotEqual(t, a.TaskID, b.TaskID)
}

func TestCreateValidation(t *testing.T) {
	tests := []struct {
		name  string
		cmd   contracts.CreateTaskCommand
		field string
	}{
		{"missing clientRequestId", createCmd("alice", "", "t", `{}`), "clientRequestId"},
		{"missing taskType", createCmd("alice", "r1", "", `{}`), "taskType"},
		{"input is an array", createCmd("alice", "r1", "t", `[1]`), "input"},
		{"input is a string", createCmd("alice", "r1", "t", `"x"`), "input"},
		{"input is malformed", createCmd("alice", "r1", "t", `{"a":`), "input"},
		{"metadata is a number", func() contracts.CreateTaskCommand {
			c := createCmd("alice", "r1", "t", `{}`)
			c.Metadata = json.RawMessage(`5`)
			return c
		}(), "metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, orchestration.Options{})
			_, err := h.svc.Creation.Create(context.Background(), tt.cmd)
			be := requireCode(t, err, bridgeerr.CodeInvalidRequest)
			assert.Equal(t, 400, be.HTTPStatus())
			assert.Equal(t, tt.field, be.Details["field"])
			submits, _ := h.exec.calls()
			assert.Zero(t, submits)
		})
	}
}

func TestCreateUnknownTaskType(t *testing.T) {
	exec := &typedExecutor{types: []string{"a", "b"}}
	h := newHarness(t, orchestration.Options{Executor: exec})
	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "c", `{}`))
	be := requireCode(t, err, bridgeerr.CodeInvalidRequest)
	assert.Equal(t, "c", be.Details["taskType"])
	assert.Equal(t, []string{"a", "b"}, be.Details["knownTaskTypes"])
	assert.Empty(t, exec.submitted)

	_, err = h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "b", `{}`))
	require.NoError(t, err)
}

func TestCreateOwnershipDenied(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	_, err := h.svc.Creation.Create(context.Background(), createCmd("", "r1", "t", `{}`))
	be := requireCode(t, err, bridgeerr.CodeTaskOwnership)
	assert.Equal(t, 403, be.HTTPStatus())
	denied := h.logged("task.create.denied")
	require.Len(t, denied, 1)
	assert.Equal(t, zapcore.WarnLevel, denied[0].Level)
	assert.Equal(t, "denied", fieldOf(denied[0], observe.FieldOutcome))
	submits, _ := h.exec.calls()
	assert.Zero(t, submits)
}

type policyFunc struct {
	create func(contracts.AuthContext) error
}

func (p policyFunc) CanCreate(_ context.Context, a contracts.AuthContext) error { return p.create(a) }
func (policyFunc) CanAccess(ctx context.Context, a contracts.AuthContext, t contracts.TaskRecord) error {
	return orchestration.SubjectOwnership{}.CanAccess(ctx, a, t)
}

func TestCreatePolicyMayChooseItsCode(t *testing.T) {
	h := newHarness(t, orchestration.Options{Ownership: policyFunc{create: func(contracts.AuthContext) error {
		return bridgeerr.New(bridgeerr.CodeAuthentication, "token expired")
	}}})
	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "t", `{}`))
	requireCode(t, err, bridgeerr.CodeAuthentication)
}

func TestCreateSubmitFailureFailsTask(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	boom := errors.New("executor down")
	h.exec.submitErr = boom
	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "t", `{}`))
	be := requireCode(t, err, bridgeerr.CodeTaskSubmission)
	assert.Equal(t, 503, be.HTTPStatus())
	assert.ErrorIs(t, err, boom)
	assert.NotContains(t, be.Envelope(time.Now()).Message, "executor down")

	taskID := h.exec.submitted[0].TaskID
	rec, err := h.store.Get(context.Background(), taskID)
	require.NoError(t, err)
	assert.Equal(t, contracts.StatusFailed, rec.Status)
	evs := h.store.all(taskID)
	require.Len(t, evs, 1)
	assert.Equal(t, contracts.EventFailed, evs[0].Type)
	p := payloadOf(t, evs[0])
	assert.Equal(t, "TASK_SUBMISSION_ERROR", p["code"])
	assert.Equal(t, true, p["retryable"])
	assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricTaskFailures,
		observe.Tag{Key: observe.TagReason, Value: "TASK_SUBMISSION_ERROR"}))
	failed := h.logged("task.create.submit_failed")
	require.Len(t, failed, 1)
	assert.Equal(t, zapcore.ErrorLevel, failed[0].Level)

	// A repeat of the request finds the failed task.
	again, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "t", `{}`))
	require.NoError(t, err)
	assert.True(t, again.Deduplicated)
	assert.Equal(t, contracts.StatusFailed, again.Status)
}

func TestCreateConcurrentIdenticalMakeOneTask(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	const n = 50
	results := make([]contracts.TaskCreated, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = h.svc.Creation.Create(context.Background(), createCmd("alice", "same", "t", `{"k":"v"}`))
		})
	}
	close(start)
	wg.Wait()
	dedup := 0
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, results[0].TaskID, results[i].TaskID)
		if results[i].Deduplicated {
			dedup++
		}
	}
	assert.Equal(t, n-1, dedup)
	submits, _ := h.exec.calls()
	assert.Equal(t, 1, submits)
	assert.Equal(t, float64(n-1), h.metrics.Counter(observe.MetricDuplicates))
}

func TestCreateRegistryFailureIsInternal(t *testing.T) {
	store := newFakeStore()
	h := newHarness(t, orchestration.Options{Stores: contracts.Stores{Tasks: failingRegistry{fakeStore: store, createErr: errors.New("disk full")}, Events: store}})
	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r1", "t", `{}`))
	be := requireCode(t, err, bridgeerr.CodeInternal)
	assert.Equal(t, "internal error", be.Envelope(time.Now()).Message)
}
