package orchestration_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// terminalFaults fails the first fail appends of terminal events with an
// ambiguous error; with applied, each failed attempt was in fact stored (a
// timed-out call that ran once the store woke up).
type terminalFaults struct {
	contracts.EventStore
	mu       sync.Mutex
	fail     int
	applied  bool
	attempts int
}

func (f *terminalFaults) Append(ctx context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	if !d.Type().IsTerminal() {
		return f.EventStore.Append(ctx, taskID, d)
	}
	f.mu.Lock()
	f.attempts++
	failing := f.attempts <= f.fail
	f.mu.Unlock()
	if !failing {
		return f.EventStore.Append(ctx, taskID, d)
	}
	if f.applied {
		if _, err := f.EventStore.Append(ctx, taskID, d); err != nil {
			return contracts.TaskEvent{}, err
		}
	}
	return contracts.TaskEvent{}, errors.New("read tcp: i/o timeout")
}

// TestExecutorTerminalEventIsRetried: the terminal event is retried past
// the emit retry budget until it is written, with one idempotency key, so
// the task ends exactly once whether the failed attempts were applied or
// not, and never stays RUNNING.
func TestExecutorTerminalEventIsRetried(t *testing.T) {
	for _, applied := range []bool{false, true} {
		name := "lost"
		if applied {
			name = "applied"
		}
		t.Run(name, func(t *testing.T) {
			stores := memstore.New(memstore.Options{})
			events := &terminalFaults{EventStore: stores.Events, fail: 4, applied: applied}
			stores.Events = events
			core, logs := observer.New(zap.DebugLevel)
			exec := must(orchestration.NewExecutor(orchestration.ExecutorOptions{
				Stores: stores, Logger: zap.New(core),
				EmitRetry: orchestration.RetryPolicy{Budget: time.Millisecond}, // the terminal event ignores it
			}))(t)
			exec.Handle("quick", func(context.Context, *orchestration.TaskContext) (any, error) { return "ok", nil })
			svc := must(orchestration.NewServices(orchestration.Options{Stores: stores, Executor: exec}))(t)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				require.NoError(t, exec.Close(ctx))
				require.NoError(t, svc.Close(ctx))
			})
			res, err := svc.Creation.Create(context.Background(), createCmd("alice", "r1", "quick", ""))
			require.NoError(t, err)

			evs := waitEnded(t, svc.Polling, auth("alice"), res.TaskID)
			assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventCompleted}, types(evs),
				"the terminal event is stored exactly once")
			require.Eventually(t, func() bool {
				rec, err := stores.Tasks.Get(context.Background(), res.TaskID)
				return err == nil && rec.Status == contracts.StatusCompleted
			}, 10*time.Second, time.Millisecond)
			events.mu.Lock()
			assert.Equal(t, 5, events.attempts, "retried until written")
			events.mu.Unlock()
			assert.NotZero(t, logs.FilterMessage("task.emit.retrying").Len())
		})
	}
}

// progressDown fails every TASK_PROGRESS append (a store that stays down
// for the handler's emits).
type progressDown struct{ contracts.EventStore }

func (p progressDown) Append(ctx context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	if d.Type() == contracts.EventProgress {
		return contracts.TaskEvent{}, errors.New("dial tcp: connection refused")
	}
	return p.EventStore.Append(ctx, taskID, d)
}

// TestExecutorStoreFailureIsRetryable: a handler that returns the error of
// an emit the store kept failing past the retry budget ends TASK_FAILED
// STORE_UNAVAILABLE, retryable (the task may be submitted again), not as a
// handler bug.
func TestExecutorStoreFailureIsRetryable(t *testing.T) {
	stores := memstore.New(memstore.Options{})
	stores.Events = progressDown{stores.Events}
	exec := must(orchestration.NewExecutor(orchestration.ExecutorOptions{
		Stores: stores, EmitRetry: orchestration.RetryPolicy{Budget: 50 * time.Millisecond},
	}))(t)
	exec.Handle("emits", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		if err := task.Progress(ctx, 10, "", ""); err != nil {
			return nil, err
		}
		return "unreachable", nil
	})
	svc := must(orchestration.NewServices(orchestration.Options{Stores: stores, Executor: exec}))(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, exec.Close(ctx))
		require.NoError(t, svc.Close(ctx))
	})
	res, err := svc.Creation.Create(context.Background(), createCmd("alice", "r1", "emits", ""))
	require.NoError(t, err)
	evs := waitEnded(t, svc.Polling, auth("alice"), res.TaskID)
	p := payloadOf(t, evs[len(evs)-1])
	assert.Equal(t, orchestration.CodeStoreUnavailable, p["code"])
	assert.Equal(t, true, p["retryable"])
}
