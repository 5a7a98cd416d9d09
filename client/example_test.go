package client_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/client"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// exampleServer serves a bridge with a "report.build" task type (three
// progress steps, then a suspension for approval) on a loopback port and
// returns its base URL and its stop function.
func exampleServer() (string, func()) {
	st := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: st})
	if err != nil {
		panic(err)
	}
	exec.Handle("report.build", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		for _, p := range []float64{25, 50, 75} {
			if err := task.Progress(ctx, p, "render", ""); err != nil {
				return nil, err
			}
		}
		act, err := task.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "approval_required",
			AllowedActions: []string{"approve", "reject"}})
		if err != nil {
			return nil, err
		}
		return map[string]string{"decision": act.ActionType}, nil
	})
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:   st,
		Executor: exec,
		AuthResolver: func(c *fiber.Ctx) (contracts.AuthContext, error) {
			return contracts.AuthContext{Subject: strings.Clone(strings.TrimPrefix(c.Get("Authorization"), "Bearer "))}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: fiberbridge.ErrorHandler})
	bridge.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() { _ = app.Listener(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = bridge.Shutdown(ctx)
		_ = app.ShutdownWithContext(ctx)
		_ = exec.Close(ctx)
	}
}

// Create a task, watch it to its end, and approve it when it asks.
func ExampleClient_Watch() {
	base, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := client.New(base, client.WithBearerToken("alice"))
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	task, err := c.Create(ctx, client.CreateRequest{ClientRequestID: "report-1", TaskType: "report.build"})
	if err != nil {
		panic(err)
	}
	for ev, err := range c.Watch(ctx, task.TaskID, contracts.EventID{}) {
		if err != nil {
			panic(err) // 401, 404, 429, ... or ctx's error
		}
		p, _ := contracts.DecodePayload(&ev)
		switch p := p.(type) {
		case contracts.ProgressPayload:
			fmt.Printf("%s %.0f%%\n", ev.Type, p.Progress)
		case contracts.SuspendedPayload:
			fmt.Println(ev.Type, p.AllowedActions)
			if _, err := c.Act(ctx, task.TaskID, client.Action{SuspendID: p.SuspendID, ActionType: "approve"}); err != nil {
				panic(err)
			}
		case contracts.CompletedPayload:
			fmt.Println(ev.Type, string(p.Result))
		default:
			fmt.Println(ev.Type)
		}
	}
	// Output:
	// TASK_STARTED
	// TASK_PROGRESS 25%
	// TASK_PROGRESS 50%
	// TASK_PROGRESS 75%
	// TASK_SUSPENDED [approve reject]
	// TASK_ACTION_ACCEPTED
	// TASK_COMPLETED {"decision":"approve"}
}

// Create is idempotent by clientRequestId: repeating a request returns
// the task the first one made.
func ExampleClient_Create() {
	base, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(base, client.WithBearerToken("alice"))
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	req := client.CreateRequest{ClientRequestID: "order-7", TaskType: "report.build", Input: map[string]any{"month": "2026-01"}}
	first, err := c.Create(ctx, req)
	if err != nil {
		panic(err)
	}
	again, err := c.Create(ctx, req)
	if err != nil {
		panic(err)
	}
	fmt.Println(first.Deduplicated, again.Deduplicated, first.TaskID == again.TaskID)
	// Output: false true true
}

// Pin a transport, authenticate with a refreshing token, tune the
// dead-stream detection.
func ExampleNew() {
	c, err := client.New("https://tasks.example.com",
		client.WithTokenSource(func(ctx context.Context) (string, error) { return "token-from-your-idp", nil }),
		client.WithTransports(client.TransportSSE, client.TransportPoll),
		client.WithHeartbeatTimeout(40*time.Second),
	)
	fmt.Println(c != nil, err)
	// Output: true <nil>
}
