// Command hostapp is a Fiber application that mounts TaskBridge the way an
// existing product would: its own error format, its own authentication
// middleware, its own routes, and the task routes under /app/jobs.
//
//   - The host authenticates (a bearer token that is the user name, for the
//     demo) and hands the caller to the bridge with fiberbridge.SetAuth, so
//     the bridge needs no AuthResolver.
//   - The task routes live under the base path /jobs of the /app group:
//     /app/jobs/tasks, /app/jobs/tasks/:taskId/events, ...
//   - /health and /ready are mounted outside the authenticated group.
//   - bridge.ErrorHandler(hostErrors) answers the bridge's errors with the
//     TaskBridge envelope and leaves every other error to the host's format.
//   - An approver policy: a task's metadata may name an "approver", who can
//     read the task and act on its suspension, but not cancel it.
//
// It is a module of its own (see go.mod) that imports the library as any
// user would. Run it with: go run . -addr 127.0.0.1:8080
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	log, _ := zap.NewProduction()
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal("listen", zap.Error(err))
	}
	if err := serve(ctx, ln, log); err != nil {
		log.Fatal("serve", zap.Error(err))
	}
}

// ExpenseType is the task type of the demo: an expense that needs approval.
const ExpenseType = "expense.approve"

// host is the application: the Fiber app, the bridge and the executor.
type host struct {
	app    *fiber.App
	bridge *fiberbridge.Bridge
	exec   *orchestration.Executor
}

// newHost wires the application.
func newHost(log *zap.Logger) (*host, error) {
	stores := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, Logger: log})
	if err != nil {
		return nil, err
	}
	exec.Handle(ExpenseType, approveExpense)
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:   stores,
		Executor: exec,
		BasePath: "/jobs",
		Actions:  approverPolicy{},
		Logger:   log,
	})
	if err != nil {
		_ = exec.Close(context.Background())
		return nil, err
	}

	app := fiber.New(fiber.Config{ErrorHandler: bridge.ErrorHandler(hostErrors), DisableStartupMessage: true})
	bridge.RegisterProbes(app) // /health and /ready: no authentication
	api := app.Group("/app", authenticate)
	api.Get("/me", func(c *fiber.Ctx) error {
		auth, _ := fiberbridge.AuthFrom(c)
		return c.JSON(fiber.Map{"user": auth.Subject})
	})
	api.Get("/reports/:id", func(c *fiber.Ctx) error {
		return fiber.NewError(fiber.StatusNotFound, "no such report")
	})
	bridge.RegisterTasks(api) // /app/jobs/tasks, ...
	return &host{app: app, bridge: bridge, exec: exec}, nil
}

// authenticate is the host's own authentication: the bearer token is the
// user name (a real app verifies a session or a JWT here). It hands the
// caller to the bridge with SetAuth.
func authenticate(c *fiber.Ctx) error {
	user, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || user == "" {
		return fiber.NewError(fiber.StatusUnauthorized, "sign in first")
	}
	fiberbridge.SetAuth(c, contracts.AuthContext{Subject: user})
	return c.Next()
}

// hostErrors is the host's error format: {"error": "...", "status": N}.
func hostErrors(c *fiber.Ctx, err error) error {
	code, msg := fiber.StatusInternalServerError, "something went wrong"
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code, msg = fe.Code, fe.Message
	}
	return c.Status(code).JSON(fiber.Map{"error": msg, "status": code})
}

// approverPolicy lets the user named by a task's metadata "approver" read
// the task and act on its suspensions; the owner acts too. Cancelling stays
// with the owner (the default ownership policy).
type approverPolicy struct{}

func approverOf(task contracts.TaskRecord) string {
	var meta struct {
		Approver string `json:"approver"`
	}
	_ = json.Unmarshal(task.Metadata, &meta)
	return meta.Approver
}

func (approverPolicy) CanRead(_ context.Context, auth contracts.AuthContext, task contracts.TaskRecord) error {
	if a := approverOf(task); a != "" && a == auth.Subject {
		return nil
	}
	return errors.New("not the task's approver")
}

func (approverPolicy) CanAct(_ context.Context, auth contracts.AuthContext, task contracts.TaskRecord, _ contracts.SuspensionRecord, _ string) error {
	if auth.Subject == task.OwnerID || auth.Subject == approverOf(task) {
		return nil
	}
	return errors.New("not the task's approver")
}

// approveExpense waits for the approver's decision.
func approveExpense(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	if err := task.Progress(ctx, 10, "submitted", "waiting for approval"); err != nil {
		return nil, err
	}
	act, err := task.Suspend(ctx, orchestration.SuspendSpec{
		Kind: contracts.KindUserActionRequired, ReasonCode: "approval_required",
		AllowedActions: []string{"approve", "reject"}, Timeout: time.Hour,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"decision": act.ActionType}, nil
}

// serve serves on ln until ctx ends, then shuts down within 10 s.
func serve(ctx context.Context, ln net.Listener, log *zap.Logger) error {
	h, err := newHost(log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- h.app.Listener(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, h.bridge.Shutdown(sctx), h.app.ShutdownWithContext(sctx), h.exec.Close(sctx))
	if ctx.Err() != nil {
		err = errors.Join(err, <-served)
	}
	return err
}
