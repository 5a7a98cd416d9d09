package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// Two instances on one Redis: a task runs on A, its cancellation is
// requested through B, and the relay stops the handler on A.
func ExampleNewCancelRelay() {
	client, prefix, done := exampleClient()
	defer done()
	ctx := context.Background()
	opts := redisstore.Options{KeyPrefix: prefix}
	started := make(chan struct{}, 1)

	// instance wires one instance: stores, an in-process executor, the
	// relay in front of it, and the services (or a fiberbridge.Config)
	// given the relay as their executor.
	instance := func() (*orchestration.Services, func()) {
		stores, err := redisstore.New(client, opts)
		if err != nil {
			panic(err)
		}
		exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
		if err != nil {
			panic(err)
		}
		exec.Handle("wait", func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
			started <- struct{}{}
			<-ctx.Done() // cancelled, wherever the request arrived
			return nil, ctx.Err()
		})
		relay, err := redisstore.NewCancelRelay(client, opts, stores.Tasks, exec)
		if err != nil {
			panic(err)
		}
		svc, err := orchestration.NewServices(orchestration.Options{Stores: stores, Executor: relay})
		if err != nil {
			panic(err)
		}
		return svc, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = svc.Close(ctx)
			_ = relay.Close(ctx) // stops the relay, then the executor
		}
	}
	a, closeA := instance()
	defer closeA()
	b, closeB := instance()
	defer closeB()

	alice := contracts.AuthContext{Subject: "alice"}
	task, err := a.Creation.Create(ctx, contracts.CreateTaskCommand{Auth: alice, ClientRequestID: "r1", TaskType: "wait"})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-started
	res, _ := b.Cancellation.Cancel(ctx, contracts.CancelTaskCommand{Auth: alice, TaskID: task.TaskID, Reason: "not needed"})
	fmt.Println("through B:", res.Status)

	var after contracts.EventID
	for {
		page, err := b.Polling.Poll(ctx, contracts.PollQuery{Auth: alice, TaskID: task.TaskID, After: after, Wait: time.Second})
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, ev := range page.Events {
			fmt.Println(ev.Type, string(ev.Payload))
		}
		if page.NextAfterEventID != nil {
			after = *page.NextAfterEventID
		}
		if n := len(page.Events); n > 0 && page.Events[n-1].Type.IsTerminal() {
			break
		}
	}
	// Output:
	// through B: CANCELLATION_REQUESTED
	// TASK_STARTED {}
	// TASK_CANCELLED {"reason":"not needed"}
}
