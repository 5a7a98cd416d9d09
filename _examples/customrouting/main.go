// Command customrouting shows TaskBridge for Fiber inside an app whose URL
// space, authentication and tenancy are its own:
//
//   - the task routes live under /api/projects/:projectId/tasks (Routes
//     with an extra host parameter, registered on a fiber.Router group);
//   - an API key (X-Api-Key header, or access_token for EventSource and
//     WebSocket) names a user and the projects the key may use; the
//     AuthResolver makes the subject "<project>/<user>", so the default
//     ownership policy (subject must equal owner) keeps every project's
//     tasks apart: a task is 404 from any other project's path;
//   - a second group, /internal/v1, is assembled by hand from the
//     standalone handlers (create, poll and SSE only) behind a host
//     middleware;
//   - the host keeps its own middleware, error handler and routes; the
//     task handlers answer their failures with the protocol's envelope
//     themselves.
//
// Run it and try it (keys: key-alice for project apollo, key-bob for
// apollo and gemini, key-ops for the internal group):
//
//	go run ./_examples/customrouting -addr 127.0.0.1:8082
//	curl -s -X POST localhost:8082/api/projects/apollo/tasks -H 'X-Api-Key: key-alice' \
//	  -H 'Content-Type: application/json' \
//	  -d '{"clientRequestId":"r1","taskType":"demo.progress","input":{"steps":3}}'
//	curl -N localhost:8082/api/projects/apollo/tasks/<taskId>/events/stream -H 'X-Api-Key: key-alice'
//	curl -s -X POST localhost:8082/api/projects/gemini/tasks -H 'X-Api-Key: key-alice' \
//	  -H 'Content-Type: application/json' -d '{"clientRequestId":"r2","taskType":"demo.progress"}'  # 403
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/gofiber/fiber/v2/utils"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/connlimit"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	flag.Parse()
	log, err := zap.NewDevelopment()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal("listen", zap.Error(err))
	}
	log.Info("serving", zap.String("addr", ln.Addr().String()))
	if err := serve(ctx, ln, log); err != nil {
		log.Fatal("serve", zap.Error(err))
	}
}

// apiKey is what a key grants: a user and the projects it may use.
type apiKey struct {
	user     string
	projects []string
}

// keys is the host's key table (a real app reads its own store).
var keys = map[string]apiKey{
	"key-alice": {user: "alice", projects: []string{"apollo"}},
	"key-bob":   {user: "bob", projects: []string{"apollo", "gemini"}},
	"key-ops":   {user: "ops", projects: []string{"internal"}},
}

// resolveAuth is the AuthResolver. The project comes from the route
// (":projectId"; the hand-assembled internal group has none and counts as
// project "internal"). The subject is "<project>/<user>", so tasks are
// owned per project and the default ownership policy isolates projects.
func resolveAuth(c *fiber.Ctx) (contracts.AuthContext, error) {
	key := c.Get("X-Api-Key")
	if key == "" {
		key = c.Query("access_token") // EventSource and browser WebSockets cannot set headers
	}
	grant, ok := keys[key]
	if !ok {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication, "missing or unknown API key")
	}
	project := c.Params("projectId", "internal")
	if !slices.Contains(grant.projects, project) {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeTaskOwnership, "this API key has no access to the project").
			WithDetails(map[string]any{"projectId": project})
	}
	return contracts.AuthContext{
		Subject:    project + "/" + grant.user,
		Attributes: map[string]any{"projectId": project, "user": grant.user},
	}, nil
}

// hostErrorHandler renders the host's own errors (unknown routes, its own
// handlers). The task handlers answer with the protocol's envelope
// themselves, so this never sees their failures.
func hostErrorHandler(c *fiber.Ctx, err error) error {
	code := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code = fe.Code
	}
	return c.Status(code).JSON(fiber.Map{"error": strings.ToLower(utils.StatusMessage(code)), "requestId": c.GetRespHeader(fiber.HeaderXRequestID)})
}

// app is the host application with the bridge mounted.
type app struct {
	fiber  *fiber.App
	bridge *fiberbridge.Bridge
	exec   *orchestration.Executor
}

// newApp builds the host app: its middleware, its own routes, the project
// group with the bridge's handler group, and the hand-assembled internal
// group.
func newApp(log *zap.Logger) (*app, error) {
	stores := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, Logger: log})
	if err != nil {
		return nil, err
	}
	demo.Register(exec)
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:             stores,
		Executor:           exec,
		AuthResolver:       resolveAuth,
		CreatePreprocessor: demo.ValidateInput,
		BasePath:           "/", // the protocol's routes right below /api/projects/:projectId
		Logger:             log,
	})
	if err != nil {
		_ = exec.Close(context.Background())
		return nil, err
	}

	// SECURITY.md's settings around the host's own error handler.
	f := fiber.New(fiberbridge.AppConfig(fiber.Config{ErrorHandler: hostErrorHandler, DisableStartupMessage: true}))
	f.Use(recover.New(), requestid.New())

	// The host's own routes sit next to the bridge's.
	bridge.RegisterProbes(f) // /health and /ready, once, at the root
	projects := f.Group("/api/projects/:projectId")
	projects.Get("/", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"projectId": c.Params("projectId")})
	})
	bridge.RegisterTasks(projects)

	// Hand-assembled: only create, poll and SSE, behind a host middleware.
	internal := f.Group("/internal/v1", func(c *fiber.Ctx) error {
		c.Set("X-Internal", "1")
		return c.Next()
	})
	internal.Post("/tasks", bridge.CreateTaskHandler())
	internal.Get("/tasks/:taskId/events", bridge.PollEventsHandler())
	internal.Get("/tasks/:taskId/events/stream", bridge.StreamEventsHandler())
	return &app{fiber: f, bridge: bridge, exec: exec}, nil
}

// shutdown ends the streams and long-polls, then the app, then the
// executor, within ctx.
func (a *app) shutdown(ctx context.Context) error {
	return errors.Join(a.bridge.Shutdown(ctx), a.fiber.ShutdownWithContext(ctx), a.exec.Close(ctx))
}

// serve serves on ln until ctx ends, then shuts down within 10 s.
func serve(ctx context.Context, ln net.Listener, log *zap.Logger) error {
	a, err := newApp(log)
	if err != nil {
		return err
	}
	limited, err := connlimit.New(ln, connlimit.Config{Logger: log}) // connections capped below the file limit
	if err != nil {
		_ = ln.Close()
		return errors.Join(err, a.shutdown(ctx))
	}
	served := make(chan error, 1)
	go func() { served <- a.fiber.Listener(limited) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, a.shutdown(sctx))
	if ctx.Err() != nil {
		err = errors.Join(err, <-served)
	}
	return err
}
