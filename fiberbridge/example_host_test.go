package fiberbridge_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// Mount the bridge in an app that authenticates on its own and has its own
// error format: the task routes under /app/jobs behind the host's
// middleware (SetAuth, no AuthResolver), the probes outside it, and the
// bridge's error handler wrapping the host's.
func ExampleBridge_RegisterTasks() {
	stores := memstore.New(memstore.Options{})
	executor, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
	if err != nil {
		panic(err)
	}
	defer executor.Close(context.Background())
	executor.Handle("noop", func(context.Context, *orchestration.TaskContext) (any, error) { return nil, nil })
	bridge, err := fiberbridge.New(fiberbridge.Config{Stores: stores, Executor: executor, BasePath: "/jobs"})
	if err != nil {
		panic(err)
	}
	defer bridge.Shutdown(context.Background())

	hostErrors := func(c *fiber.Ctx, err error) error {
		return c.Status(fiber.StatusNotFound).SendString("host: " + err.Error())
	}
	app := fiber.New(fiber.Config{ErrorHandler: bridge.ErrorHandler(hostErrors)})
	bridge.RegisterProbes(app)
	api := app.Group("/app", func(c *fiber.Ctx) error {
		user := c.Get("X-User") // the host's own authentication
		if user == "" {
			return fiber.ErrUnauthorized
		}
		fiberbridge.SetAuth(c, contracts.AuthContext{Subject: user})
		return c.Next()
	})
	bridge.RegisterTasks(api)

	call := func(method, path, user, body string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if user != "" {
			req.Header.Set("X-User", user)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		text := string(data)
		if i := strings.Index(text, `,"timestamp"`); i > 0 {
			text = text[:i] + "}" // the envelope's timestamp varies
		}
		fmt.Println(resp.StatusCode, text)
	}
	call("GET", "/health", "", "")
	call("POST", "/app/jobs/tasks", "alice", `{"clientRequestId":"r1","taskType":"nope"}`)
	call("GET", "/app/settings", "alice", "")
	// Output:
	// 200 {"status":"ok"}
	// 400 {"code":"INVALID_REQUEST","message":"unknown task type","details":{"knownTaskTypes":["noop"],"taskType":"nope"}}
	// 404 host: Cannot GET /app/settings
}
