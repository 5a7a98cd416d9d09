package orchestration_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// TestExecutorSharesQueueFairly: with one worker held by a task, two heavy
// subjects queue five tasks each and then a light subject queues one. Once
// the worker is free the queue is served round-robin over the subjects:
// the light subject's task starts third, before the rest of the heavy
// backlog (a single FIFO would start it last), and each subject's tasks
// start in the order submitted. The order is the handlers' own record of
// their starts; with one worker it is exact.
func TestExecutorSharesQueueFairly(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	starts := make(chan string, 16)
	h := newExecHarness(t, orchestration.ExecutorOptions{MaxConcurrent: 1}, map[string]orchestration.Handler{
		"block": func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
			blocked <- struct{}{}
			<-release
			return nil, nil
		},
		"work": func(_ context.Context, task *orchestration.TaskContext) (any, error) {
			var in struct{ N int }
			if err := task.DecodeInput(&in); err != nil {
				return nil, err
			}
			starts <- fmt.Sprintf("%s%d", task.Task().OwnerID, in.N)
			return nil, nil
		},
	})
	owners := map[string]string{}
	create := func(subject, taskType string, n int) string {
		res, err := h.svc.Creation.Create(context.Background(),
			createCmd(subject, fmt.Sprintf("%s-%d", subject, n), taskType, fmt.Sprintf(`{"n":%d}`, n)))
		require.NoError(t, err)
		owners[res.TaskID] = subject
		return res.TaskID
	}
	ids := []string{create("x", "block", 0)}
	recv(t, blocked, "the blocking task starts")
	for _, subject := range []string{"a", "b"} {
		for n := 1; n <= 5; n++ {
			ids = append(ids, create(subject, "work", n))
		}
	}
	ids = append(ids, create("c", "work", 1))
	close(release)

	var order []string
	for range 11 {
		order = append(order, recv(t, starts, "a start"))
	}
	assert.Equal(t, []string{"a1", "b1", "c1", "a2", "b2", "a3", "b3", "a4", "b4", "a5", "b5"}, order)
	for _, id := range ids {
		evs := waitEnded(t, h.svc.Polling, auth(owners[id]), id)
		assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type)
	}
}
