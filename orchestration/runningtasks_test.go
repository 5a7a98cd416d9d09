package orchestration_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// TestExecutorRunningTasks: RunningTasks lists the queued and running
// tasks, and drops a task once it is cancelled while queued or its handler
// has returned.
func TestExecutorRunningTasks(t *testing.T) {
	started, release := make(chan string, 4), make(chan struct{})
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 1}, map[string]orchestration.Handler{
		"hold": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			started <- task.Task().TaskID
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		},
	})
	assert.Empty(t, h.exec.RunningTasks(), "a fresh executor runs nothing")

	running := h.create(t, "hold", "")
	require.Equal(t, running, recv(t, started, "first handler"))
	queued := h.create(t, "hold", "") // the only worker is busy
	another := h.create(t, "hold", "")
	assert.ElementsMatch(t, []string{running, queued, another}, h.exec.RunningTasks())

	h.cancel(t, queued, "not needed") // a queued task ends at once
	assert.ElementsMatch(t, []string{running, another}, h.exec.RunningTasks())
	evs := h.finish(t, queued)
	assert.Equal(t, contracts.EventCancelled, evs[len(evs)-1].Type)

	release <- struct{}{} // the first handler returns
	h.finish(t, running)
	require.Equal(t, another, recv(t, started, "third handler"))
	assert.Equal(t, []string{another}, h.exec.RunningTasks(), "a returned handler is no longer listed")

	close(release)
	h.finish(t, another)
	assert.Empty(t, h.exec.RunningTasks())
}
