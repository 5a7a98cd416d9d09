package fiberbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// apiKeyAuth is a host's AuthResolver: the X-Api-Key header names the
// caller.
func apiKeyAuth(c *fiber.Ctx) (contracts.AuthContext, error) {
	key := c.Get("X-Api-Key")
	if key == "" {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication, "X-Api-Key required")
	}
	return contracts.AuthContext{Subject: "key:" + key}, nil
}

// Register the handler group on a host app with a custom AuthResolver,
// create a task and long-poll its events.
func Example() {
	stores := memstore.New(memstore.Options{})
	executor, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
	if err != nil {
		panic(err)
	}
	executor.Handle("greet", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		var in struct {
			Name string `json:"name"`
		}
		if err := task.DecodeInput(&in); err != nil {
			return nil, err
		}
		return map[string]string{"greeting": "hello " + in.Name}, nil
	})

	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:       stores,
		Executor:     executor,
		AuthResolver: apiKeyAuth,
	})
	if err != nil {
		panic(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	bridge.Register(app)

	call := func(method, path, body string) (int, []byte) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("X-Api-Key", "k1")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}

	status, body := call("POST", "/api/v1/tasks", `{"clientRequestId":"req-1","taskType":"greet","input":{"name":"Ada"}}`)
	var created contracts.TaskCreated
	_ = json.Unmarshal(body, &created)
	fmt.Println("create:", status, created.Status)

	cursor := ""
	for done := false; !done; {
		_, body = call("GET", "/api/v1/tasks/"+created.TaskID+"/events?waitTimeoutMs=5000&afterEventId="+cursor, "")
		var page contracts.PollResult
		_ = json.Unmarshal(body, &page)
		for _, ev := range page.Events {
			fmt.Println(ev.Type, string(ev.Payload))
			done = ev.Type.IsTerminal()
		}
		if page.NextAfterEventID != nil {
			cursor = page.NextAfterEventID.String()
		}
	}

	// On a served app: bridge.Shutdown, then app.ShutdownWithContext.
	ctx := context.Background()
	_ = bridge.Shutdown(ctx)
	_ = executor.Close(ctx)
	// Output:
	// create: 201 ACCEPTED
	// TASK_STARTED {}
	// TASK_COMPLETED {"result":{"greeting":"hello Ada"}}
}

// Assemble routes by hand: the locals middleware on a host group with its
// own path parameter, then the standalone handlers on paths of the host's
// choosing. Handlers (and host code, through AuthFrom) read the caller from
// c.Locals.
func Example_manualAssembly() {
	stores := memstore.New(memstore.Options{})
	executor, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
	if err != nil {
		panic(err)
	}
	executor.Handle("noop", func(context.Context, *orchestration.TaskContext) (any, error) { return nil, nil })
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:       stores,
		Executor:     executor,
		AuthResolver: apiKeyAuth,
	})
	if err != nil {
		panic(err)
	}

	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	api := app.Group("/tenants/:tenant", bridge.Middleware())
	api.Post("/jobs", bridge.CreateTaskHandler())
	api.Get("/jobs/:taskId/events", bridge.PollEventsHandler())
	api.Get("/jobs/:taskId/stream", bridge.StreamEventsHandler())
	api.Get("/me", func(c *fiber.Ctx) error {
		auth, _ := fiberbridge.AuthFrom(c)
		return c.SendString(auth.Subject + " in " + c.Params("tenant"))
	})
	app.Get("/healthz", bridge.HealthHandler())

	do := func(method, path, key, body string) string {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := app.Test(req, -1)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 400 {
			var env bridgeerr.Envelope
			_ = json.Unmarshal(data, &env)
			return fmt.Sprint(resp.StatusCode, " ", env.Code)
		}
		return fmt.Sprint(resp.StatusCode, " ", strings.TrimSpace(string(data)))
	}
	fmt.Println(do("GET", "/tenants/acme/me", "k7", ""))
	fmt.Println(do("GET", "/tenants/acme/me", "", ""))
	fmt.Println(do("POST", "/tenants/acme/jobs", "k7", `{"clientRequestId":"1","taskType":"noop"}`)[:3])
	fmt.Println(do("GET", "/tenants/acme/jobs/unknown/events", "k7", ""))
	fmt.Println(do("GET", "/healthz", "", ""))

	ctx := context.Background()
	_ = bridge.Shutdown(ctx)
	_ = executor.Close(ctx)
	// Output:
	// 200 key:k7 in acme
	// 401 AUTHENTICATION_ERROR
	// 201
	// 404 TASK_NOT_FOUND
	// 200 {"status":"ok"}
}
