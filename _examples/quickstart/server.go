package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/_examples/quickstart/web"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// options are the quickstart's settings: flags, with environment
// variables as their defaults.
type options struct {
	addr      string
	heartbeat time.Duration
}

// parseOptions reads -addr (TASKBRIDGE_ADDR, default 127.0.0.1:8080) and
// -heartbeat (TASKBRIDGE_HEARTBEAT, default 15s) from args and getenv.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	opts := options{addr: "127.0.0.1:8080", heartbeat: 15 * time.Second}
	if v := getenv("TASKBRIDGE_ADDR"); v != "" {
		opts.addr = v
	}
	if v := getenv("TASKBRIDGE_HEARTBEAT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return options{}, fmt.Errorf("TASKBRIDGE_HEARTBEAT: %w", err)
		}
		opts.heartbeat = d
	}
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.addr, "addr", opts.addr, "listen address (env TASKBRIDGE_ADDR)")
	fs.DurationVar(&opts.heartbeat, "heartbeat", opts.heartbeat, "idle interval of stream heartbeats (env TASKBRIDGE_HEARTBEAT)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if opts.heartbeat <= 0 {
		return options{}, errors.New("-heartbeat must be positive")
	}
	return opts, nil
}

// server is the quickstart: in-memory stores, the in-process executor with
// the demo task types, and the bridge on a Fiber app.
type server struct {
	app    *fiber.App
	bridge *fiberbridge.Bridge
	exec   *orchestration.Executor
	log    *zap.Logger
}

// newServer wires everything; nothing runs until serve.
func newServer(opts options, log *zap.Logger) *server {
	stores := memstore.New(memstore.Options{})
	olog := observe.NewLogger(log)
	exec := orchestration.NewExecutor(orchestration.ExecutorOptions{
		Registry: stores.Tasks, Events: stores.Events, Suspensions: stores.Suspensions, Receipts: stores.Receipts,
		Logger: olog,
	})
	demo.Register(exec)
	bridge := fiberbridge.New(fiberbridge.Config{
		Stores: fiberbridge.Stores{
			Tasks: stores.Tasks, Events: stores.Events, Suspensions: stores.Suspensions, Receipts: stores.Receipts,
		},
		Executor:           exec,
		AuthResolver:       demo.Auth,
		CreatePreprocessor: demo.ValidateInput,
		Stream:             streaming.Options{HeartbeatInterval: opts.heartbeat},
		Logger:             log,
	})
	app := fiber.New(fiber.Config{
		ErrorHandler:          fiberbridge.ErrorHandler, // envelopes also for 404, 405, 413 ...
		DisableStartupMessage: true,
	})
	bridge.Register(app)
	web.Register(app) // the live demo page at /
	return &server{app: app, bridge: bridge, exec: exec, log: log}
}

// serve serves on ln until shutdown.
func (s *server) serve(ln net.Listener) error {
	s.log.Info("quickstart listening", zap.String("addr", ln.Addr().String()))
	return s.app.Listener(ln)
}

// shutdown ends streams and long-polls (bridge), then the server, then the
// executor's running tasks.
func (s *server) shutdown(ctx context.Context) error {
	return errors.Join(
		s.bridge.Shutdown(ctx),
		s.app.ShutdownWithContext(ctx),
		s.exec.Close(ctx),
	)
}
