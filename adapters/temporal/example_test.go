package tbtemporal_test

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// The workflow id of a task is a pure function of its id: a create
// repeated on any bridge instance finds the same workflow.
func ExampleWorkflowID() {
	fmt.Println(tbtemporal.WorkflowID("", "3f2a"))
	fmt.Println(tbtemporal.WorkflowID("billing-", "3f2a"))
	// Output:
	// taskbridge-task-3f2a
	// billing-3f2a
}

// A worker process: one handler (workflow code) that runs a step (an
// ordinary function, retried on a live worker) and waits for an approval.
// The bridges submit to the same task queue with an Executor.
func ExampleNewWorker() {
	log := zap.NewExample()
	tc, err := client.Dial(client.Options{HostPort: "127.0.0.1:7233", Logger: tbtemporal.Logger(log)})
	if err != nil {
		return // Temporal is not running
	}
	defer tc.Close()
	stores := memstore.New(memstore.Options{}) // Redis (redisstore.New) across processes

	w, err := tbtemporal.NewWorker(tc, tbtemporal.WorkerOptions{Stores: stores, Logger: log})
	if err != nil {
		return
	}
	w.Handle("invoice", func(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
		var total int
		if err := task.ExecuteStep(ctx, "invoice.total", task.Record().Input).Get(ctx, &total); err != nil {
			return nil, err
		}
		if err := task.Progress(ctx, 50, "computed", fmt.Sprintf("total %d", total)); err != nil {
			return nil, err
		}
		act, err := task.Suspend(ctx, orchestration.SuspendSpec{
			ReasonCode: "send_approval", AllowedActions: []string{"send", "cancel"}, Timeout: 48 * time.Hour,
		})
		if err != nil {
			return nil, err
		}
		return map[string]any{"total": total, "decision": act.ActionType}, nil
	}, tbtemporal.TypeOptions{
		StartToCloseTimeout: time.Minute,
		Retry:               &temporal.RetryPolicy{MaximumAttempts: 5, InitialInterval: time.Second, BackoffCoefficient: 2},
	})
	w.RegisterStep(func(ctx context.Context, input []byte) (int, error) {
		step, _ := tbtemporal.StepFrom(ctx)
		_ = step.Progress(ctx, 10, "summing", "")
		return len(input), nil
	}, "invoice.total")
	if err := w.Start(); err != nil {
		return
	}
	defer w.Stop()

	// A bridge instance, in another process, uses
	//	x, _ := tbtemporal.NewExecutor(tc, tbtemporal.ExecutorOptions{TaskTypes: []string{"invoice"}})
	// as its fiberbridge.Config.Executor.
}
