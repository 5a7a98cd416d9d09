package tbtemporal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// progressHandler emits input.steps progress events and completes with
// {"steps": n}.
func progressHandler(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	var in struct{ Steps int }
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	for i := 1; i <= in.Steps; i++ {
		if err := task.Progress(ctx, float64(i*100/in.Steps), "working", fmt.Sprintf("step %d", i)); err != nil {
			return nil, err
		}
	}
	return map[string]int{"steps": in.Steps}, nil
}

func TestCompletesWithEveryEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("progress", progressHandler)
	e.start()

	id := e.create("progress", `{"Steps":3}`)
	evs := e.waitEnd(id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventProgress,
		contracts.EventProgress, contracts.EventCompleted}, types(evs))
	assert.JSONEq(t, `{"steps":3}`, string(payload(t, evs[4]).(contracts.CompletedPayload).Result))
	rec, err := e.stores.Tasks.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, contracts.StatusCompleted, rec.Status)
}

func TestSubmitTwiceRunsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("progress", progressHandler)
	e.start()

	id := e.create("progress", `{"Steps":1}`)
	rec, err := e.stores.Tasks.Get(context.Background(), id)
	require.NoError(t, err)
	// A repeated submit (a retried create, another instance) while the
	// workflow runs, and another after it has finished.
	require.NoError(t, e.exec.Submit(context.Background(), rec))
	e.waitEnd(id)
	require.NoError(t, e.exec.Submit(context.Background(), rec))

	evs := e.waitEnd(id)
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventCompleted}, types(evs))
	// Exactly one run of that workflow id exists.
	runs, err := e.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", tbtemporal.WorkflowID("", id)),
	})
	require.NoError(t, err)
	require.Len(t, runs.Executions, 1)
	assert.Equal(t, tbtemporal.WorkflowName, runs.Executions[0].Type.Name)
}

// sleeper emits progress every 50 ms of workflow time until cancelled.
func sleeper(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	for n := 1; ; n++ {
		if err := workflow.Sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
		if err := task.Progress(ctx, float64(min(n, 99)), "sleeping", ""); err != nil {
			return nil, err
		}
	}
}

func TestCancelEndsCancelledWithReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("sleep", sleeper)
	e.start()

	id := e.create("sleep", "")
	e.waitFor(id, func(ev contracts.TaskEvent) bool { return ev.Type == contracts.EventProgress })
	res, err := e.services.Cancellation.Cancel(context.Background(),
		contracts.CancelTaskCommand{Auth: owner, TaskID: id, Reason: "changed_my_mind"})
	require.NoError(t, err)
	assert.Equal(t, contracts.CancelRequested, res.Status)

	evs := e.waitEnd(id)
	last := evs[len(evs)-1]
	require.Equal(t, contracts.EventCancelled, last.Type)
	assert.Equal(t, "changed_my_mind", payload(t, last).(contracts.CancelledPayload).Reason)
	rec, err := e.stores.Tasks.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, contracts.StatusCancelled, rec.Status)
}

// approval suspends for approve or reject, with input.timeoutMs as the
// suspension's timeout (0: none), and completes with the decision.
func approval(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	var in struct{ TimeoutMs int }
	if err := task.DecodeInput(&in); err != nil {
		return nil, err
	}
	act, err := task.Suspend(ctx, orchestration.SuspendSpec{
		ReasonCode: "approval_required", AllowedActions: []string{"approve", "reject"},
		Timeout: time.Duration(in.TimeoutMs) * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"decision": act.ActionType, "by": act.ActorID, "payload": act.Payload}, nil
}

// suspendID waits for TASK_SUSPENDED and returns its suspend id.
func (e *env) suspendID(taskID string) string {
	e.t.Helper()
	evs := e.waitFor(taskID, func(ev contracts.TaskEvent) bool { return ev.Type == contracts.EventSuspended })
	last := evs[len(evs)-1]
	require.Equal(e.t, contracts.EventSuspended, last.Type, "events: %v", types(evs))
	return payload(e.t, last).(contracts.SuspendedPayload).SuspendID
}

func TestApproveResumesSuspendedTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("approval", approval)
	e.start()

	id := e.create("approval", "")
	sid := e.suspendID(id)
	res, err := e.services.Actions.Submit(context.Background(), contracts.SubmitActionCommand{
		Auth: owner, TaskID: id, SuspendID: sid, ClientActionID: "a1", ActionType: "approve",
		Payload: json.RawMessage(`{"note":"ok"}`),
	})
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusAccepted, res.Status)

	evs := e.waitEnd(id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended,
		contracts.EventActionAccepted, contracts.EventCompleted}, types(evs))
	assert.JSONEq(t, `{"decision":"approve","by":"alice","payload":{"note":"ok"}}`,
		string(payload(t, evs[3]).(contracts.CompletedPayload).Result))
	s, err := e.stores.Suspensions.Get(context.Background(), id, sid)
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionResolved, s.Status)
	assert.Equal(t, contracts.HandoffDispatched, s.Handoff)
}

func TestSuspensionExpiresOnDurableTimer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("approval", approval)
	e.start()

	id := e.create("approval", `{"TimeoutMs":500}`)
	sid := e.suspendID(id)
	evs := e.waitEnd(id)
	last := evs[len(evs)-1]
	require.Equal(t, contracts.EventFailed, last.Type, "events: %v", types(evs))
	f := payload(t, last).(contracts.FailedPayload)
	assert.Equal(t, orchestration.CodeSuspensionExpired, f.Code)
	assert.False(t, f.Retryable)
	s, err := e.stores.Suspensions.Get(context.Background(), id, sid)
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionExpired, s.Status)

	// An action after the expiry is rejected as the in-process executor's.
	res, err := e.services.Actions.Submit(context.Background(), contracts.SubmitActionCommand{
		Auth: owner, TaskID: id, SuspendID: sid, ClientActionID: "late", ActionType: "approve",
	})
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusRejectedExpired, res.Status)
}

func TestCancelWhileSuspended(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("approval", approval)
	e.start()

	id := e.create("approval", "")
	sid := e.suspendID(id)
	_, err := e.services.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{Auth: owner, TaskID: id})
	require.NoError(t, err)
	evs := e.waitEnd(id)
	last := evs[len(evs)-1]
	require.Equal(t, contracts.EventCancelled, last.Type)
	assert.Equal(t, orchestration.DefaultCancelReason, payload(t, last).(contracts.CancelledPayload).Reason)
	s, err := e.stores.Suspensions.Get(context.Background(), id, sid)
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionCancelled, s.Status)
}

// stepper runs the "work" step with the task's input and completes with
// the step's result.
func stepper(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
	var out string
	if err := task.ExecuteStep(ctx, "work", task.Record().Input).Get(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// work is a step: it reports progress, then behaves as input.mode says:
// "slow" outlasts any timeout (until its context ends), "flaky" fails its
// first attempt, "verdict" returns a TaskError, "broken" always fails.
func work(ctx context.Context, input json.RawMessage) (string, error) {
	var in struct{ Mode string }
	if err := json.Unmarshal(input, &in); err != nil {
		return "", err
	}
	step, ok := tbtemporal.StepFrom(ctx)
	if !ok {
		return "", errors.New("no step in context")
	}
	if err := step.Progress(ctx, 10, "work", "started"); err != nil {
		return "", err
	}
	attempt := activity.GetInfo(ctx).Attempt
	switch in.Mode {
	case "slow":
		<-ctx.Done()
		return "", ctx.Err()
	case "flaky":
		if attempt == 1 {
			return "", errors.New("transient failure")
		}
	case "verdict":
		return "", &orchestration.TaskError{Code: "BAD_INPUT", Message: "the input cannot be processed", Retryable: false}
	case "broken":
		return "", errors.New("always fails")
	}
	return fmt.Sprintf("done on attempt %d", attempt), nil
}

// stepEnv is an env with stepper registered under the given step options.
func stepEnv(t *testing.T, opts tbtemporal.TypeOptions) *env {
	e := newEnv(t)
	e.worker.Handle("step", stepper, opts)
	e.worker.RegisterStep(work, "work")
	e.start()
	return e
}

var fastRetry = &temporal.RetryPolicy{InitialInterval: 50 * time.Millisecond, BackoffCoefficient: 1, MaximumAttempts: 2}

func TestStepRetryIsVisibleAndEventsAreNotRepeated(t *testing.T) {
	t.Parallel()
	e := stepEnv(t, tbtemporal.TypeOptions{Retry: fastRetry})

	id := e.create("step", `{"Mode":"flaky"}`)
	evs := e.waitEnd(id)
	// The second attempt reports the same progress as the first: it is
	// stored once; the retry notice comes before it is repeated.
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventMessage,
		contracts.EventCompleted}, types(evs))
	m := payload(t, evs[2]).(contracts.MessagePayload)
	assert.Equal(t, "retrying step work: attempt 2 of 2", m.Message)
	assert.Equal(t, contracts.LevelWarning, m.Level)
	assert.JSONEq(t, `"done on attempt 2"`, string(payload(t, evs[3]).(contracts.CompletedPayload).Result))
}

func TestStepTimeoutFailsTaskWithCode(t *testing.T) {
	t.Parallel()
	e := stepEnv(t, tbtemporal.TypeOptions{StartToCloseTimeout: 300 * time.Millisecond, Retry: fastRetry})

	id := e.create("step", `{"Mode":"slow"}`)
	evs := e.waitEnd(id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventMessage,
		contracts.EventFailed}, types(evs))
	f := payload(t, evs[3]).(contracts.FailedPayload)
	assert.Equal(t, tbtemporal.CodeTaskTimeout, f.Code)
	assert.True(t, f.Retryable)
}

func TestStepGiveUpIsRetryable(t *testing.T) {
	t.Parallel()
	e := stepEnv(t, tbtemporal.TypeOptions{Retry: fastRetry})

	id := e.create("step", `{"Mode":"broken"}`)
	evs := e.waitEnd(id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventMessage,
		contracts.EventFailed}, types(evs))
	f := payload(t, evs[3]).(contracts.FailedPayload)
	assert.Equal(t, tbtemporal.CodeTaskFailed, f.Code)
	assert.True(t, f.Retryable, "Temporal gave up on a retryable failure")
	assert.NotContains(t, f.Message, "always fails", "an error's text never reaches clients")
}

func TestStepTaskErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	e := stepEnv(t, tbtemporal.TypeOptions{Retry: fastRetry})

	id := e.create("step", `{"Mode":"verdict"}`)
	evs := e.waitEnd(id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventFailed}, types(evs))
	f := payload(t, evs[2]).(contracts.FailedPayload)
	assert.Equal(t, "BAD_INPUT", f.Code)
	assert.Equal(t, "the input cannot be processed", f.Message)
	assert.False(t, f.Retryable)
}

func TestPanicFailsTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("panic", func(workflow.Context, *tbtemporal.Task) (any, error) { panic("boom") })
	e.start()

	id := e.create("panic", "")
	evs := e.waitEnd(id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventFailed}, types(evs))
	assert.Equal(t, tbtemporal.CodeTaskPanic, payload(t, evs[1]).(contracts.FailedPayload).Code)
}

func TestHandlerTaskErrorKeepsCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("fail", func(workflow.Context, *tbtemporal.Task) (any, error) {
		return nil, &orchestration.TaskError{Code: "DEMO_FAILURE", Message: "on purpose", Retryable: true}
	})
	e.start()

	id := e.create("fail", "")
	evs := e.waitEnd(id)
	f := payload(t, evs[len(evs)-1]).(contracts.FailedPayload)
	assert.Equal(t, contracts.FailedPayload{Code: "DEMO_FAILURE", Message: "on purpose", Retryable: true}, f)
}

func TestReadyProbe(t *testing.T) {
	t.Parallel()
	c := dial(t)
	x, err := tbtemporal.NewExecutor(c, tbtemporal.ExecutorOptions{TaskTypes: []string{"a"}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, x.Probe().Check(ctx))

	// A frontend that does not answer: a lazy client of a closed port.
	dead, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	require.NoError(t, err)
	defer dead.Close()
	xd, err := tbtemporal.NewExecutor(dead, tbtemporal.ExecutorOptions{TaskTypes: []string{"a"}})
	require.NoError(t, err)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	err = xd.Ready(ctx2)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "127.0.0.1", "the readiness message shows no address")
}

func TestUnknownTypeRejectedAtCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.worker.Handle("progress", progressHandler)
	e.start()
	_, err := e.services.Creation.Create(context.Background(), contracts.CreateTaskCommand{
		Auth: owner, ClientRequestID: "r", TaskType: "nope", Input: []byte(`{}`),
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown task type")
}

// lossyEvents stores an append and then reports it failed, once per event
// type in lose: the answer was lost on the way back, as when a store's
// connection resets after the write. The writer cannot tell and retries.
type lossyEvents struct {
	contracts.EventStore
	mu   sync.Mutex
	lose map[contracts.EventType]bool
}

func (l *lossyEvents) Append(ctx context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	ev, err := l.EventStore.Append(ctx, taskID, d)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.lose[d.Type()] {
		delete(l.lose, d.Type())
		return contracts.TaskEvent{}, errors.New("connection reset by peer")
	}
	return ev, err
}

func TestRetriedWritesAppendOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lossy := &lossyEvents{EventStore: e.stores.Events, lose: map[contracts.EventType]bool{
		contracts.EventStarted: true, contracts.EventProgress: true, contracts.EventSuspended: true,
		contracts.EventCompleted: true,
	}}
	w, err := tbtemporal.NewWorker(e.c, tbtemporal.WorkerOptions{
		Stores:    contracts.Stores{Tasks: e.stores.Tasks, Events: lossy, Suspensions: e.stores.Suspensions},
		TaskQueue: e.queue,
	})
	require.NoError(t, err)
	e.worker = w
	w.Handle("approval", func(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
		if err := task.Progress(ctx, 50, "half", ""); err != nil {
			return nil, err
		}
		return approval(ctx, task)
	})
	e.start()

	id := e.create("approval", "")
	sid := e.suspendID(id)
	_, err = e.services.Actions.Submit(context.Background(), contracts.SubmitActionCommand{
		Auth: owner, TaskID: id, SuspendID: sid, ClientActionID: "a1", ActionType: "approve",
	})
	require.NoError(t, err)
	evs := e.waitEnd(id)
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventSuspended,
		contracts.EventActionAccepted, contracts.EventCompleted}, types(evs))
	lossy.mu.Lock()
	assert.Empty(t, lossy.lose, "every write lost one answer and was retried")
	lossy.mu.Unlock()
}

// suspendedEvents marks each task whose TASK_SUSPENDED it has stored.
type suspendedEvents struct {
	contracts.EventStore
	stored sync.Map // task id -> true
}

func (s *suspendedEvents) Append(ctx context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	ev, err := s.EventStore.Append(ctx, taskID, d)
	if err == nil && d.Type() == contracts.EventSuspended {
		s.stored.Store(taskID, true)
	}
	return ev, err
}

// A worker that dies after a suspension is stored but before Temporal
// recorded its workflow task (the task is failed here, at that very point,
// so the next run of the workflow starts from the beginning of its history)
// leaves the next run waiting on the suspension the clients were shown:
// an approve on it resumes the task, and its deadline ends the task
// SUSPENSION_EXPIRED with that suspension EXPIRED.
func TestSuspensionSurvivesLostWorkflowTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	events := &suspendedEvents{EventStore: e.stores.Events}
	w, err := tbtemporal.NewWorker(e.c, tbtemporal.WorkerOptions{
		Stores:    contracts.Stores{Tasks: e.stores.Tasks, Events: events, Suspensions: e.stores.Suspensions},
		TaskQueue: e.queue,
	})
	require.NoError(t, err)
	e.worker = w
	var lost sync.Map // task id -> true once its workflow task was failed
	w.Handle("approval", func(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
		id := task.Record().TaskID
		workflow.Go(ctx, func(ctx workflow.Context) {
			_ = workflow.Await(ctx, func() bool { _, ok := events.stored.Load(id); return ok })
			if _, done := lost.LoadOrStore(id, true); !done {
				panic("the worker is gone before Temporal recorded the suspension")
			}
		})
		return approval(ctx, task)
	})
	e.start()

	approved := e.create("approval", "")
	expiring := e.create("approval", `{"TimeoutMs":1000}`)
	sid := e.suspendID(approved)
	res, err := e.services.Actions.Submit(context.Background(), contracts.SubmitActionCommand{
		Auth: owner, TaskID: approved, SuspendID: sid, ClientActionID: "a1", ActionType: "approve",
	})
	require.NoError(t, err)
	require.Equal(t, contracts.ActionStatusAccepted, res.Status)
	evs := e.waitEnd(approved)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended,
		contracts.EventActionAccepted, contracts.EventCompleted}, types(evs))
	_, ok := lost.Load(approved)
	assert.True(t, ok, "the first workflow task was lost")

	sid = e.suspendID(expiring)
	evs = e.waitEnd(expiring)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended, contracts.EventFailed}, types(evs))
	assert.Equal(t, orchestration.CodeSuspensionExpired, payload(t, evs[2]).(contracts.FailedPayload).Code)
	s, err := e.stores.Suspensions.Get(context.Background(), expiring, sid)
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionExpired, s.Status)
	res, err = e.services.Actions.Submit(context.Background(), contracts.SubmitActionCommand{
		Auth: owner, TaskID: expiring, SuspendID: sid, ClientActionID: "late", ActionType: "approve",
	})
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusRejectedExpired, res.Status)
}

func TestNewWorkerNamesMissingStores(t *testing.T) {
	t.Parallel()
	_, err := tbtemporal.NewWorker(nil, tbtemporal.WorkerOptions{Stores: contracts.Stores{Events: nil}})
	require.Error(t, err)
	assert.Equal(t, "tbtemporal: NewWorker needs a Temporal client, Stores.Tasks, Stores.Events, Stores.Suspensions", err.Error())
	_, err = tbtemporal.NewExecutor(nil, tbtemporal.ExecutorOptions{TaskTypes: []string{"a"}})
	require.Error(t, err)
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	require.NoError(t, err)
	defer c.Close()
	_, err = tbtemporal.NewExecutor(c, tbtemporal.ExecutorOptions{})
	require.ErrorContains(t, err, "TaskTypes")
}

func TestCancelReachesRunningStep(t *testing.T) {
	t.Parallel()
	e := stepEnv(t, tbtemporal.TypeOptions{HeartbeatTimeout: time.Second, Retry: fastRetry})

	id := e.create("step", `{"Mode":"slow"}`)
	// The step has reported its progress: it is waiting on its context.
	e.waitFor(id, func(ev contracts.TaskEvent) bool { return ev.Type == contracts.EventProgress })
	_, err := e.services.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{Auth: owner, TaskID: id})
	require.NoError(t, err)
	evs := e.waitEnd(id)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventCancelled}, types(evs))
}
