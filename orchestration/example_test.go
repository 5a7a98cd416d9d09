package orchestration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// follow long-polls a task's stream until its terminal event, calling fn for
// each event, as an HTTP client of the polling route would.
func follow(ctx context.Context, svc *orchestration.Services, owner contracts.AuthContext, taskID string, fn func(contracts.TaskEvent)) {
	var after contracts.EventID
	for {
		res, err := svc.Polling.Poll(ctx, contracts.PollQuery{Auth: owner, TaskID: taskID, After: after, Wait: time.Second})
		if err != nil {
			fmt.Println("poll:", err)
			return
		}
		for _, ev := range res.Events {
			fn(ev)
			if ev.Type.IsTerminal() {
				return
			}
		}
		if res.NextAfterEventID != nil {
			after = *res.NextAfterEventID
		}
	}
}

// A handler that reports progress and completes with a result.
func ExampleExecutor() {
	ctx := context.Background()
	stores := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
	if err != nil {
		panic(err)
	}
	defer exec.Close(ctx)
	exec.Handle("resize", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		var in struct {
			Width int `json:"width"`
		}
		if err := task.DecodeInput(&in); err != nil {
			return nil, err
		}
		for _, pct := range []float64{25, 50, 100} {
			if err := task.Progress(ctx, pct, "resizing", ""); err != nil {
				return nil, err
			}
		}
		return map[string]int{"width": in.Width}, nil
	})

	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: exec,
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close(ctx)

	alice := contracts.AuthContext{Subject: "alice"}
	created, err := svc.Creation.Create(ctx, contracts.CreateTaskCommand{
		Auth: alice, ClientRequestID: "req-1", TaskType: "resize", Input: json.RawMessage(`{"width": 640}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("created:", created.Status)
	follow(ctx, svc, alice, created.TaskID, func(ev contracts.TaskEvent) {
		fmt.Println(ev.Type, string(ev.Payload))
	})
	// Output:
	// created: ACCEPTED
	// TASK_STARTED {}
	// TASK_PROGRESS {"progress":25,"stage":"resizing"}
	// TASK_PROGRESS {"progress":50,"stage":"resizing"}
	// TASK_PROGRESS {"progress":100,"stage":"resizing"}
	// TASK_COMPLETED {"result":{"width":640}}
}

// A handler that suspends until a client action is accepted through the
// action service, then completes with the action's payload.
func ExampleTaskContext_Suspend() {
	ctx := context.Background()
	stores := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
	if err != nil {
		panic(err)
	}
	defer exec.Close(ctx)
	exec.Handle("publish", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		act, err := task.Suspend(ctx, orchestration.SuspendSpec{
			ReasonCode: "APPROVAL_REQUIRED", AllowedActions: []string{"approve", "reject"}, Timeout: time.Hour,
		})
		if err != nil {
			return nil, err // cancelled or expired
		}
		if act.ActionType == "reject" {
			return nil, &orchestration.TaskError{Code: "REJECTED", Message: "the reviewer rejected the post"}
		}
		return map[string]any{"approvedBy": act.ActorID, "note": act.Payload}, nil
	})
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: exec,
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close(ctx)

	alice := contracts.AuthContext{Subject: "alice"}
	created, err := svc.Creation.Create(ctx, contracts.CreateTaskCommand{Auth: alice, ClientRequestID: "post-7", TaskType: "publish"})
	if err != nil {
		panic(err)
	}
	follow(ctx, svc, alice, created.TaskID, func(ev contracts.TaskEvent) {
		fmt.Println(ev.Type)
		if ev.Type != contracts.EventSuspended {
			if ev.Type.IsTerminal() {
				fmt.Println(string(ev.Payload))
			}
			return
		}
		p, _ := contracts.DecodePayload(&ev)
		suspended := p.(contracts.SuspendedPayload)
		fmt.Println("allowed:", suspended.AllowedActions)
		res, err := svc.Actions.Submit(ctx, contracts.SubmitActionCommand{
			Auth: alice, TaskID: created.TaskID, SuspendID: suspended.SuspendID, ClientActionID: "click-1",
			ActionType: "approve", Payload: json.RawMessage(`{"comment": "ship it"}`),
		})
		if err != nil {
			panic(err)
		}
		fmt.Println("action:", res.Status)
	})
	// Output:
	// TASK_STARTED
	// TASK_SUSPENDED
	// allowed: [approve reject]
	// action: ACCEPTED
	// TASK_ACTION_ACCEPTED
	// TASK_COMPLETED
	// {"result":{"approvedBy":"alice","note":{"comment":"ship it"}}}
}

// queueExecutor hands tasks to workers elsewhere, here through a channel
// standing in for a job queue.
type queueExecutor chan contracts.TaskRecord

func (q queueExecutor) Submit(_ context.Context, task contracts.TaskRecord) error {
	select {
	case q <- task:
		return nil
	default:
		return fmt.Errorf("queue full")
	}
}

func (q queueExecutor) Cancel(context.Context, contracts.TaskRecord) error { return nil }

// A worker outside the in-process executor drives a task through an Emitter
// over the shared stores; the registry status follows its events.
func ExampleEmitter() {
	ctx := context.Background()
	stores := memstore.New(memstore.Options{})
	queue := make(queueExecutor, 1)
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: queue,
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close(ctx)
	alice := contracts.AuthContext{Subject: "alice"}
	created, err := svc.Creation.Create(ctx, contracts.CreateTaskCommand{Auth: alice, ClientRequestID: "r1", TaskType: "ocr"})
	if err != nil {
		panic(err)
	}

	// The worker (in another process, sharing the stores).
	task := <-queue
	em, err := orchestration.NewEmitter(orchestration.EmitterOptions{Stores: stores})
	if err != nil {
		panic(err)
	}
	em.Progress(ctx, task.TaskID, 40, "reading", "")
	em.Complete(ctx, task.TaskID, map[string]string{"text": "hello"})
	_, err = em.Message(ctx, task.TaskID, "too late", contracts.LevelInfo)
	fmt.Println("after the end:", err != nil)

	rec, _ := stores.Tasks.Get(ctx, created.TaskID)
	fmt.Println("status:", rec.Status)
	follow(ctx, svc, alice, created.TaskID, func(ev contracts.TaskEvent) { fmt.Println(ev.Type) })
	// Output:
	// after the end: true
	// status: COMPLETED
	// TASK_PROGRESS
	// TASK_COMPLETED
}
