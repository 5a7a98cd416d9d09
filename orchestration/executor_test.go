package orchestration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// execHarness is an Executor and the Services over memstore.
type execHarness struct {
	stores  contracts.Stores
	exec    *orchestration.Executor
	svc     *orchestration.Services
	metrics *observe.MemoryMetrics
	logs    *observer.ObservedLogs
}

// newExecHarness builds an executor with handlers over fresh memstores and
// services using it. Both are closed at cleanup; Close must succeed.
func newExecHarness(t testing.TB, opts orchestration.ExecutorOptions, handlers map[string]orchestration.Handler) *execHarness {
	t.Helper()
	h := &execHarness{stores: memstore.New(memstore.Options{}), metrics: observe.NewMemoryMetrics()}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	log := zap.New(core)
	opts.Stores = h.stores
	opts.Logger, opts.Metrics = log, h.metrics
	h.exec = must(orchestration.NewExecutor(opts))(t)
	for typ, fn := range handlers {
		h.exec.Handle(typ, fn)
	}
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores: h.stores, Executor: h.exec, Logger: log, Metrics: h.metrics,
		// These tests run many tasks of one subject at once; the quotas
		// have tests of their own.
		SubjectLimits: orchestration.SubjectLimits{MaxActiveTasks: -1, CreatesPerSecond: -1},
	})
	require.NoError(t, err)
	h.svc = svc
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, h.exec.Close(ctx))
		require.NoError(t, svc.Close(ctx))
	})
	return h
}

// create creates a task of taskType for alice.
func (h *execHarness) create(t testing.TB, taskType, input string) string {
	t.Helper()
	res, err := h.svc.Creation.Create(context.Background(), createCmd("alice", contracts.NewID(), taskType, input))
	require.NoError(t, err)
	return res.TaskID
}

// finish waits for taskID's terminal event and checks that there is exactly
// one, last, and that the registry agrees.
func (h *execHarness) finish(t testing.TB, taskID string) []contracts.TaskEvent {
	t.Helper()
	evs := waitEnded(t, h.svc.Polling, auth("alice"), taskID)
	terminal := 0
	for _, ev := range evs {
		if ev.Type.IsTerminal() {
			terminal++
		}
	}
	require.Equal(t, 1, terminal, "exactly one terminal event: %v", types(evs))
	want, _ := contracts.TerminalStatusFor(evs[len(evs)-1].Type)
	require.Eventually(t, func() bool {
		rec, err := h.stores.Tasks.Get(context.Background(), taskID)
		return err == nil && rec.Status == want
	}, 10*time.Second, time.Millisecond, "registry status follows the terminal event")
	return evs
}

func (h *execHarness) cancel(t testing.TB, taskID, reason string) {
	t.Helper()
	res, err := h.svc.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{
		Auth: auth("alice"), TaskID: taskID, Reason: reason,
	})
	require.NoError(t, err)
	require.Equal(t, contracts.CancelRequested, res.Status)
}

// waitFor long-polls until an event of type typ arrives and returns it.
func (h *execHarness) waitFor(t testing.TB, taskID string, typ contracts.EventType) contracts.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var after contracts.EventID
	for time.Now().Before(deadline) {
		res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{
			Auth: auth("alice"), TaskID: taskID, After: after, Limit: 500, Wait: 250 * time.Millisecond,
		})
		require.NoError(t, err)
		for _, ev := range res.Events {
			if ev.Type == typ {
				return ev
			}
		}
		if res.NextAfterEventID != nil {
			after = *res.NextAfterEventID
		}
	}
	t.Fatalf("no %s event on task %s", typ, taskID)
	return contracts.TaskEvent{}
}

func lastPayload(t testing.TB, evs []contracts.TaskEvent) map[string]any {
	t.Helper()
	return payloadOf(t, evs[len(evs)-1])
}

func TestExecutorOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		handler  orchestration.Handler
		wantType contracts.EventType
		check    func(t *testing.T, p map[string]any)
	}{
		{"progress then result", func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			if err := tc.Progress(ctx, 50, "half", "halfway"); err != nil {
				return nil, err
			}
			if err := tc.Message(ctx, "almost", contracts.LevelInfo); err != nil {
				return nil, err
			}
			return map[string]any{"ok": true}, nil
		}, contracts.EventCompleted, func(t *testing.T, p map[string]any) {
			assert.Equal(t, map[string]any{"ok": true}, p["result"])
		}},
		{"nil result", func(context.Context, *orchestration.TaskContext) (any, error) {
			return nil, nil
		}, contracts.EventCompleted, func(t *testing.T, p map[string]any) {
			assert.Contains(t, p, "result")
			assert.Nil(t, p["result"])
		}},
		{"raw JSON result", func(context.Context, *orchestration.TaskContext) (any, error) {
			return json.RawMessage(`{"n": 1}`), nil
		}, contracts.EventCompleted, func(t *testing.T, p map[string]any) {
			assert.Equal(t, map[string]any{"n": 1.0}, p["result"])
		}},
		{"plain error hides its text", func(context.Context, *orchestration.TaskContext) (any, error) {
			return nil, errors.New("dial db: password=hunter2")
		}, contracts.EventFailed, func(t *testing.T, p map[string]any) {
			assert.Equal(t, "TASK_FAILED", p["code"])
			assert.NotContains(t, p["message"], "hunter2")
			assert.Equal(t, false, p["retryable"])
		}},
		{"wrapped TaskError keeps its code", func(context.Context, *orchestration.TaskContext) (any, error) {
			return nil, fmt.Errorf("quota: %w", &orchestration.TaskError{Code: "QUOTA_EXCEEDED", Message: "monthly quota used up", Retryable: true})
		}, contracts.EventFailed, func(t *testing.T, p map[string]any) {
			assert.Equal(t, "QUOTA_EXCEEDED", p["code"])
			assert.Equal(t, "monthly quota used up", p["message"])
			assert.Equal(t, true, p["retryable"])
		}},
		{"panic", func(context.Context, *orchestration.TaskContext) (any, error) {
			panic("index out of range")
		}, contracts.EventFailed, func(t *testing.T, p map[string]any) {
			assert.Equal(t, "TASK_PANIC", p["code"])
			assert.NotContains(t, p["message"], "index")
		}},
		{"unencodable result", func(context.Context, *orchestration.TaskContext) (any, error) {
			return make(chan int), nil
		}, contracts.EventFailed, func(t *testing.T, p map[string]any) {
			assert.Equal(t, orchestration.CodeInvalidResult, p["code"])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{"job": tt.handler})
			evs := h.finish(t, h.create(t, "job", `{}`))
			assert.Equal(t, contracts.EventStarted, evs[0].Type)
			assert.Equal(t, tt.wantType, evs[len(evs)-1].Type)
			tt.check(t, lastPayload(t, evs))
		})
	}
}

func TestExecutorProgressEventsInOrder(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"job": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			var in struct{ Steps int }
			if err := tc.DecodeInput(&in); err != nil {
				return nil, err
			}
			for i := 1; i <= in.Steps; i++ {
				if err := tc.Progress(ctx, float64(i*100/in.Steps), "step", ""); err != nil {
					return nil, err
				}
			}
			return in.Steps, nil
		},
	})
	evs := h.finish(t, h.create(t, "job", `{"steps":4}`))
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventProgress,
		contracts.EventProgress, contracts.EventProgress, contracts.EventCompleted}, types(evs))
	assert.Equal(t, 4.0, lastPayload(t, evs)["result"])
}

func TestExecutorPanicIsLoggedAndCounted(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"boom": func(context.Context, *orchestration.TaskContext) (any, error) { panic("kaboom") },
		"ok":   func(context.Context, *orchestration.TaskContext) (any, error) { return "fine", nil },
	})
	h.finish(t, h.create(t, "boom", ""))
	panics := h.logs.FilterMessage("task.run.panic").All()
	require.Len(t, panics, 1)
	assert.Equal(t, zapcore.ErrorLevel, panics[0].Level)
	assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricTaskFailures, observe.Tag{Key: observe.TagReason, Value: "TASK_PANIC"}))
	// The process and its workers carry on.
	evs := h.finish(t, h.create(t, "ok", ""))
	assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type)
}

func TestExecutorCancelRunning(t *testing.T) {
	for _, reason := range []string{"user_clicked_stop", ""} {
		t.Run("reason "+reason, func(t *testing.T) {
			started := make(chan struct{})
			h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
				"wait": func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
					close(started)
					<-ctx.Done()
					return nil, ctx.Err()
				},
			})
			id := h.create(t, "wait", "")
			recv(t, started, "handler start")
			h.cancel(t, id, reason)
			evs := h.finish(t, id)
			assert.Equal(t, contracts.EventCancelled, evs[len(evs)-1].Type)
			want := reason
			if want == "" {
				want = orchestration.DefaultCancelReason
			}
			assert.Equal(t, want, lastPayload(t, evs)["reason"])
		})
	}
}

func TestExecutorCancelWinsOverLateResult(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	ctxErr := make(chan error, 1)
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"stubborn": func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
			close(started)
			<-release // ignores ctx
			ctxErr <- ctx.Err()
			return "done anyway", nil
		},
	})
	id := h.create(t, "stubborn", "")
	recv(t, started, "handler start")
	h.cancel(t, id, "stop")
	close(release)
	evs := h.finish(t, id)
	assert.Equal(t, contracts.EventCancelled, evs[len(evs)-1].Type)
	assert.ErrorIs(t, recv(t, ctxErr, "handler ctx"), context.Canceled, "the handler's ctx was cancelled")
}

func TestExecutorCancelQueued(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	var calls atomic.Int32
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 1}, map[string]orchestration.Handler{
		"block": func(context.Context, *orchestration.TaskContext) (any, error) {
			calls.Add(1)
			started <- struct{}{}
			<-release
			return "ok", nil
		},
	})
	first := h.create(t, "block", "")
	recv(t, started, "first start")
	queued := h.create(t, "block", "")
	h.cancel(t, queued, "changed my mind")
	evs := h.finish(t, queued)
	assert.Equal(t, []contracts.EventType{contracts.EventCancelled}, types(evs), "a queued task never starts")

	close(release)
	h.finish(t, first)
	// Closing drains the workers: the cancelled task's queue slot is skipped.
	require.NoError(t, h.exec.Close(context.Background()))
	assert.Equal(t, int32(1), calls.Load())
}

func TestExecutorCancelSuspended(t *testing.T) {
	suspendErr := make(chan error, 1)
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"ask": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			_, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "CONFIRM", AllowedActions: []string{"yes"}})
			suspendErr <- err
			return nil, err
		},
	})
	id := h.create(t, "ask", "")
	ev := h.waitFor(t, id, contracts.EventSuspended)
	h.cancel(t, id, "")
	evs := h.finish(t, id)
	assert.Equal(t, contracts.EventCancelled, evs[len(evs)-1].Type)
	assert.ErrorIs(t, recv(t, suspendErr, "suspend"), context.Canceled)
	suspendID := payloadOf(t, ev)["suspendId"].(string)
	s, err := h.stores.Suspensions.Get(context.Background(), id, suspendID)
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionCancelled, s.Status)
	// A late action is rejected.
	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", s, "late", "yes", ""))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusRejectedAlreadyResolved, res.Status)
}

func TestExecutorSuspendResumedByAction(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"review": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			act, err := tc.Suspend(ctx, orchestration.SuspendSpec{
				ReasonCode: "NEEDS_APPROVAL", AllowedActions: []string{"approve", "reject"}, Timeout: time.Minute,
			})
			if err != nil {
				return nil, err
			}
			return map[string]any{"decision": act.ActionType, "payload": act.Payload, "by": act.ActorID, "id": act.ClientActionID}, nil
		},
	})
	id := h.create(t, "review", "")
	ev := h.waitFor(t, id, contracts.EventSuspended)
	p := payloadOf(t, ev)
	susp := contracts.SuspensionRecord{TaskID: id, SuspendID: p["suspendId"].(string)}
	assert.Contains(t, p, "expiresAt")

	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "c1", "approve", `{"note":"lgtm"}`))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusAccepted, res.Status)
	evs := h.finish(t, id)
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended,
		contracts.EventActionAccepted, contracts.EventCompleted}, types(evs))
	assert.Equal(t, map[string]any{"decision": "approve", "payload": map[string]any{"note": "lgtm"}, "by": "alice", "id": "c1"},
		lastPayload(t, evs)["result"])
	s, err := h.stores.Suspensions.Get(context.Background(), id, susp.SuspendID)
	require.NoError(t, err)
	assert.Equal(t, contracts.HandoffDispatched, s.Handoff)
}

func TestExecutorSuspendTwice(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"two": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			var got []string
			for _, reason := range []string{"FIRST", "SECOND"} {
				act, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: reason, AllowedActions: []string{"go"}})
				if err != nil {
					return nil, err
				}
				got = append(got, act.ClientActionID)
			}
			return got, nil
		},
	})
	id := h.create(t, "two", "")
	var after contracts.EventID
	for _, clientID := range []string{"x", "y"} {
		ev := waitAfter(t, h, id, &after, contracts.EventSuspended)
		s := contracts.SuspensionRecord{TaskID: id, SuspendID: payloadOf(t, ev)["suspendId"].(string)}
		res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", s, clientID, "go", ""))
		require.NoError(t, err)
		require.Equal(t, contracts.ActionStatusAccepted, res.Status)
	}
	evs := h.finish(t, id)
	assert.Equal(t, []any{"x", "y"}, lastPayload(t, evs)["result"])
}

// waitAfter is waitFor from a moving cursor.
func waitAfter(t testing.TB, h *execHarness, taskID string, after *contracts.EventID, typ contracts.EventType) contracts.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{
			Auth: auth("alice"), TaskID: taskID, After: *after, Limit: 1, Wait: 250 * time.Millisecond,
		})
		require.NoError(t, err)
		for _, ev := range res.Events {
			*after = ev.EventID
			if ev.Type == typ {
				return ev
			}
		}
	}
	t.Fatalf("no %s event on task %s", typ, taskID)
	return contracts.TaskEvent{}
}

func TestExecutorSuspendWokenByAnotherProcess(t *testing.T) {
	// The task runs in this executor; the action is accepted by services
	// whose resume hook cannot reach it (as in another process sharing the
	// stores). Only the TASK_ACTION_ACCEPTED event, seen through the
	// executor's Waiter, wakes the handler.
	stores := memstore.New(memstore.Options{})
	fw := orchestration.NewFeedWaiter(stores.Events)
	ctx, stop := context.WithCancel(context.Background())
	waiterDone := make(chan struct{})
	go func() {
		defer close(waiterDone)
		_ = fw.Run(ctx)
	}()
	defer func() {
		stop()
		recv(t, (<-chan struct{})(waiterDone), "the waiter to stop")
	}()
	barrier(t, fw, stores.Events)

	exec := must(orchestration.NewExecutor(orchestration.ExecutorOptions{
		Stores: stores, Waiter: fw,
	}))(t)
	defer func() { require.NoError(t, exec.Close(context.Background())) }()
	exec.Handle("ask", func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
		act, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"ok"}})
		if err != nil {
			return nil, err
		}
		return act.ClientActionID, nil
	})
	hooked := &recordingHook{}
	remote, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: exec, Resume: hooked,
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, remote.Close(context.Background())) }()

	res, err := remote.Creation.Create(context.Background(), createCmd("alice", "r", "ask", ""))
	require.NoError(t, err)
	h := &execHarness{stores: stores, exec: exec, svc: remote}
	ev := h.waitFor(t, res.TaskID, contracts.EventSuspended)
	s := contracts.SuspensionRecord{TaskID: res.TaskID, SuspendID: payloadOf(t, ev)["suspendId"].(string)}
	ar, err := remote.Actions.Submit(context.Background(), actionCmd("alice", s, "remote-1", "ok", ""))
	require.NoError(t, err)
	require.Equal(t, contracts.ActionStatusAccepted, ar.Status)
	assert.Equal(t, 1, hooked.count(), "the executor's own Resume was not used")
	evs := h.finish(t, res.TaskID)
	assert.Equal(t, "remote-1", lastPayload(t, evs)["result"])
}

// barrier returns once fw's feed listener delivers changes: it appends to a
// scratch task until a watch on it fires (a FeedWaiter cannot tell when its
// feed has subscribed).
func barrier(t testing.TB, fw *orchestration.FeedWaiter, es contracts.EventStore) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	scratch := "barrier-" + contracts.NewID()
	for time.Now().Before(deadline) {
		ch, release := fw.Watch(scratch)
		_, err := es.Append(context.Background(), scratch, contracts.Started(""))
		require.NoError(t, err)
		select {
		case <-ch:
			release()
			return
		case <-time.After(50 * time.Millisecond):
			release()
		}
	}
	t.Fatal("the waiter never received a change")
}

func TestExecutorSuspendExpires(t *testing.T) {
	suspendErr := make(chan error, 1)
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"ask": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			_, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"ok"}, Timeout: 30 * time.Millisecond})
			suspendErr <- err
			return nil, err
		},
	})
	id := h.create(t, "ask", "")
	evs := h.finish(t, id)
	err := recv(t, suspendErr, "suspend")
	assert.ErrorIs(t, err, orchestration.ErrSuspensionExpired)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, contracts.EventFailed, evs[len(evs)-1].Type)
	assert.Equal(t, orchestration.CodeSuspensionExpired, lastPayload(t, evs)["code"])
	suspendID := payloadOf(t, evs[1])["suspendId"].(string)
	s, err := h.stores.Suspensions.Get(context.Background(), id, suspendID)
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionExpired, s.Status)
	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", s, "late", "ok", ""))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusRejectedExpired, res.Status)
}

func TestExecutorSuspendAlreadyExpiredDeadline(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"ask": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			_, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"ok"},
				ExpiresAt: time.Now().Add(-time.Second)})
			return nil, err
		},
	})
	evs := h.finish(t, h.create(t, "ask", ""))
	assert.Equal(t, orchestration.CodeSuspensionExpired, lastPayload(t, evs)["code"])
}

func TestExecutorTaskContextAfterEnd(t *testing.T) {
	leaked := make(chan *orchestration.TaskContext, 1)
	terminalErr := make(chan error, 1)
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"leak": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			d, err := contracts.Completed("sneaky")
			if err != nil {
				return nil, err
			}
			terminalErr <- tc.Emit(ctx, d)
			leaked <- tc
			return "ok", nil
		},
	})
	id := h.create(t, "leak", "")
	requireCode(t, recv(t, terminalErr, "terminal emit"), bridgeerr.CodeInvalidRequest)
	evs := h.finish(t, id)
	tc := recv(t, leaked, "task context")
	assert.Equal(t, id, tc.Task().TaskID)
	err := tc.Progress(context.Background(), 10, "", "")
	requireCode(t, err, bridgeerr.CodeTaskAlreadyTerminal)
	assert.ErrorIs(t, err, contracts.ErrTerminal)
	assert.ErrorIs(t, tc.Message(context.Background(), "late", ""), contracts.ErrTerminal)
	_, err = tc.Suspend(context.Background(), orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"x"}})
	assert.ErrorIs(t, err, contracts.ErrTerminal)
	after := waitEnded(t, h.svc.Polling, auth("alice"), id)
	assert.Equal(t, types(evs), types(after), "nothing was appended after the terminal event")
}

// TestExecutorQueueFullRefusesCreate: with the queue full, a create is
// refused before anything is stored (503 TASK_SUBMISSION_ERROR), so the
// same request succeeds once there is room again instead of answering a
// deduplicated FAILED task.
func TestExecutorQueueFullRefusesCreate(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 1, QueueSize: 1}, map[string]orchestration.Handler{
		"block": func(context.Context, *orchestration.TaskContext) (any, error) {
			started <- struct{}{}
			<-release
			return nil, nil
		},
	})
	running := h.create(t, "block", "")
	recv(t, started, "first start")
	queued := h.create(t, "block", "")
	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "overflow", "block", ""))
	be := requireCode(t, err, bridgeerr.CodeTaskSubmission)
	assert.ErrorIs(t, err, orchestration.ErrQueueFull)
	assert.NotContains(t, be.Details, "taskId", "no task was stored")

	close(release)
	h.finish(t, running)
	h.finish(t, queued)
	// The same request again: a new task that runs, not a FAILED one.
	res, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "overflow", "block", ""))
	require.NoError(t, err)
	assert.False(t, res.Deduplicated)
	recv(t, started, "the retried task starts")
	assert.Equal(t, contracts.EventCompleted, h.finish(t, res.TaskID)[len(h.finish(t, res.TaskID))-1].Type)
}

func TestExecutorBoundedConcurrency(t *testing.T) {
	const workers, tasks = 2, 6
	var running, peak atomic.Int32
	started, gate := make(chan struct{}, tasks), make(chan struct{})
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: workers}, map[string]orchestration.Handler{
		"work": func(context.Context, *orchestration.TaskContext) (any, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			started <- struct{}{}
			<-gate
			running.Add(-1)
			return nil, nil
		},
	})
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = h.create(t, "work", "")
	}
	for range workers {
		recv(t, started, "worker start")
	}
	// The rest wait in the queue, not yet started.
	accepted := 0
	for _, id := range ids {
		rec, err := h.stores.Tasks.Get(context.Background(), id)
		require.NoError(t, err)
		if rec.Status == contracts.StatusAccepted {
			accepted++
		}
	}
	assert.Equal(t, tasks-workers, accepted)
	close(gate)
	for _, id := range ids {
		h.finish(t, id)
	}
	assert.Equal(t, int32(workers), peak.Load())
}

func TestExecutorClose(t *testing.T) {
	started := make(chan struct{}, 1)
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 1, DrainTimeout: 20 * time.Millisecond}, map[string]orchestration.Handler{
		"wait": func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	running := h.create(t, "wait", "")
	recv(t, started, "start")
	queued := h.create(t, "wait", "")
	require.NoError(t, h.exec.Close(context.Background()))
	require.NoError(t, h.exec.Close(context.Background()), "Close is idempotent")

	for _, id := range []string{running, queued} {
		evs := h.finish(t, id)
		p := lastPayload(t, evs)
		assert.Equal(t, orchestration.CodeExecutorShutdown, p["code"])
		assert.Equal(t, true, p["retryable"])
	}
	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "after-close", "wait", ""))
	requireCode(t, err, bridgeerr.CodeTaskSubmission)
	assert.ErrorIs(t, err, orchestration.ErrExecutorClosed)
}

// TestExecutorDrain: Close lets a running handler finish (its result
// stands), ends the queued task at once FAILED EXECUTOR_SHUTDOWN
// (retryable, it never ran), refuses new tasks meanwhile, and returns once
// the handler's terminal event is written.
func TestExecutorDrain(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 1, DrainTimeout: time.Minute}, map[string]orchestration.Handler{
		"work": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if err := task.Progress(ctx, 90, "", "finishing during the drain"); err != nil {
				return nil, err
			}
			return "done", nil
		},
	})
	running := h.create(t, "work", "")
	recv(t, started, "start")
	queued := h.create(t, "work", "")
	closed := make(chan error, 1)
	go func() { closed <- h.exec.Close(context.Background()) }()

	evs := h.finish(t, queued) // ended while the other one still runs
	p := lastPayload(t, evs)
	assert.Equal(t, orchestration.CodeExecutorShutdown, p["code"])
	assert.Equal(t, true, p["retryable"])
	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "during-drain", "work", ""))
	assert.ErrorIs(t, err, orchestration.ErrExecutorClosed)
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was still running", err)
	default:
	}

	close(release)
	require.NoError(t, recv(t, closed, "Close"))
	page, err := h.stores.Events.Read(context.Background(), running, contracts.EventID{}, 100)
	require.NoError(t, err)
	evs = page.Events
	require.NotEmpty(t, evs, "Close returns after the terminal event is written")
	assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type, "the drained handler completed")
	assert.Equal(t, contracts.EventProgress, evs[len(evs)-2].Type)
}

func TestExecutorCloseHonoursContext(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 1}, map[string]orchestration.Handler{
		"stubborn": func(context.Context, *orchestration.TaskContext) (any, error) {
			close(started)
			<-release
			return "late", nil
		},
	})
	id := h.create(t, "stubborn", "")
	recv(t, started, "start")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, h.exec.Close(ctx), context.DeadlineExceeded)
	close(release)
	require.NoError(t, h.exec.Close(context.Background()))
	evs := h.finish(t, id)
	assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type, "a result returned despite shutdown stands")
}

func TestExecutorRegistration(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{}, map[string]orchestration.Handler{
		"b": func(context.Context, *orchestration.TaskContext) (any, error) { return nil, nil },
		"a": func(context.Context, *orchestration.TaskContext) (any, error) { return nil, nil },
	})
	assert.Equal(t, []string{"a", "b"}, h.exec.TaskTypes())
	noop := func(context.Context, *orchestration.TaskContext) (any, error) { return nil, nil }
	assert.Panics(t, func() { h.exec.Handle("a", noop) })
	assert.Panics(t, func() { h.exec.Handle("", noop) })
	assert.Panics(t, func() { h.exec.Handle("c", nil) })

	_, err := h.svc.Creation.Create(context.Background(), createCmd("alice", "r", "zzz", ""))
	be := requireCode(t, err, bridgeerr.CodeInvalidRequest)
	assert.Equal(t, []string{"a", "b"}, be.Details["knownTaskTypes"])

	err = h.exec.Submit(context.Background(), contracts.TaskRecord{TaskID: "x", TaskType: "zzz"})
	assert.ErrorIs(t, err, orchestration.ErrUnknownTaskType)
}

func TestNewExecutorNeedsStores(t *testing.T) {
	_, err := orchestration.NewExecutor(orchestration.ExecutorOptions{})
	require.ErrorContains(t, err, "Stores.Tasks, Stores.Events, Stores.Suspensions, Stores.Receipts must be set")
	stores := memstore.New(memstore.Options{})
	stores.Receipts = nil
	_, err = orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
	require.ErrorContains(t, err, "Stores.Receipts must be set")
}

func TestExecutorCancelUnknownTaskIsNoop(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{}, nil)
	require.NoError(t, h.exec.Cancel(context.Background(), contracts.TaskRecord{TaskID: "elsewhere"}))
	require.NoError(t, h.exec.Resume(context.Background(), contracts.SubmitActionCommand{}, contracts.SuspensionRecord{TaskID: "elsewhere"}))
}

func TestExecutorManyTasksConcurrently(t *testing.T) {
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 4}, map[string]orchestration.Handler{
		"job": func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
			for i := range 3 {
				if err := tc.Progress(ctx, float64(i*30), "", ""); err != nil {
					return nil, err
				}
			}
			return tc.Task().ClientRequestID, nil
		},
	})
	const n = 40
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := h.svc.Creation.Create(context.Background(), createCmd("alice", fmt.Sprintf("r%d", i), "job", ""))
			assert.NoError(t, err)
			ids[i] = res.TaskID
		})
	}
	wg.Wait()
	for i, id := range ids {
		evs := h.finish(t, id)
		assert.Len(t, evs, 5)
		assert.Equal(t, fmt.Sprintf("r%d", i), lastPayload(t, evs)["result"])
	}
}
