package orchestration_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func TestCancel(t *testing.T) {
	tests := []struct {
		name         string
		status       contracts.TaskStatus
		want         contracts.CancelStatus
		executorCall bool
	}{
		{"accepted", contracts.StatusAccepted, contracts.CancelRequested, true},
		{"running", contracts.StatusRunning, contracts.CancelRequested, true},
		{"completed", contracts.StatusCompleted, contracts.CancelAlreadyTerminal, false},
		{"failed", contracts.StatusFailed, contracts.CancelAlreadyTerminal, false},
		{"cancelled", contracts.StatusCancelled, contracts.CancelAlreadyTerminal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, orchestration.Options{})
			task := h.seedTask(t, "alice", tt.status)
			res, err := h.svc.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{
				Auth: auth("alice"), TaskID: task.TaskID, Reason: "user_clicked_stop",
			})
			require.NoError(t, err)
			assert.Equal(t, contracts.CancelResult{TaskID: task.TaskID, Status: tt.want}, res)
			_, cancels := h.exec.calls()
			if !tt.executorCall {
				assert.Zero(t, cancels, "a terminal task never reaches the executor")
				return
			}
			require.Equal(t, 1, cancels)
			got := h.exec.cancelled[0]
			assert.True(t, got.CancelRequested, "the executor gets the updated record")
			assert.Equal(t, "user_clicked_stop", got.CancelReason)
			rec, err := h.store.Get(context.Background(), task.TaskID)
			require.NoError(t, err)
			assert.True(t, rec.CancelRequested)
			assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricCancels))
		})
	}
}

func TestCancelRaceToTerminal(t *testing.T) {
	store := newFakeStore()
	reg := failingRegistry{fakeStore: store, cancelErr: contracts.ErrTerminal}
	h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Tasks: reg}})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	res, err := h.svc.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{Auth: auth("alice"), TaskID: task.TaskID})
	require.NoError(t, err)
	assert.Equal(t, contracts.CancelAlreadyTerminal, res.Status)
	_, cancels := h.exec.calls()
	assert.Zero(t, cancels)
}

func TestCancelFailures(t *testing.T) {
	t.Run("registry", func(t *testing.T) {
		store := newFakeStore()
		h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Tasks: failingRegistry{fakeStore: store, cancelErr: errors.New("io")}}})
		task := h.seedTask(t, "alice", contracts.StatusRunning)
		_, err := h.svc.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{Auth: auth("alice"), TaskID: task.TaskID})
		requireCode(t, err, bridgeerr.CodeInternal)
	})
	t.Run("executor", func(t *testing.T) {
		h := newHarness(t, orchestration.Options{})
		h.exec.cancelErr = errors.New("unreachable worker")
		task := h.seedTask(t, "alice", contracts.StatusRunning)
		_, err := h.svc.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{Auth: auth("alice"), TaskID: task.TaskID})
		requireCode(t, err, bridgeerr.CodeInternal)
	})
}

func TestCancelForeignIsNotFound(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	_, err := h.svc.Cancellation.Cancel(context.Background(), contracts.CancelTaskCommand{Auth: auth("bob"), TaskID: task.TaskID})
	requireCode(t, err, bridgeerr.CodeTaskNotFound)
	_, cancels := h.exec.calls()
	assert.Zero(t, cancels)
	rec, err := h.store.Get(context.Background(), task.TaskID)
	require.NoError(t, err)
	assert.False(t, rec.CancelRequested)
}
