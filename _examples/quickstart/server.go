package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/_examples/quickstart/web"
	"github.com/taskbridge/taskbridge-fiber/connlimit"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// options are the quickstart's settings: flags, with environment
// variables as their defaults.
type options struct {
	addr       string
	heartbeat  time.Duration
	logLevel   zapcore.Level
	maxStreams int // fiberbridge.Config.MaxStreamsPerSubject; 0: the default
	// drain is orchestration.ExecutorOptions.DrainTimeout: how long a
	// shutdown lets running tasks finish; 0: the default (10s).
	drain time.Duration
}

// parseOptions reads -addr (TASKBRIDGE_ADDR, default 127.0.0.1:8080),
// -heartbeat (TASKBRIDGE_HEARTBEAT, default 15s) and -log-level
// (TASKBRIDGE_LOG_LEVEL: debug, info, warn or error; default info) and
// -max-streams (TASKBRIDGE_MAX_STREAMS, open streams per user; default
// fiberbridge's 100) and -drain (TASKBRIDGE_DRAIN, how long a shutdown lets
// running tasks finish; default the executor's 10s) from args and getenv.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	opts := options{addr: "127.0.0.1:8080", heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel}
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
	if v := getenv("TASKBRIDGE_LOG_LEVEL"); v != "" {
		lvl, err := parseLevel(v)
		if err != nil {
			return options{}, fmt.Errorf("TASKBRIDGE_LOG_LEVEL: %w", err)
		}
		opts.logLevel = lvl
	}
	if v := getenv("TASKBRIDGE_MAX_STREAMS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return options{}, fmt.Errorf("TASKBRIDGE_MAX_STREAMS: %w", err)
		}
		opts.maxStreams = n
	}
	if v := getenv("TASKBRIDGE_DRAIN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return options{}, fmt.Errorf("TASKBRIDGE_DRAIN: %w", err)
		}
		opts.drain = d
	}
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.addr, "addr", opts.addr, "listen address (env TASKBRIDGE_ADDR)")
	fs.DurationVar(&opts.heartbeat, "heartbeat", opts.heartbeat, "idle interval of stream heartbeats (env TASKBRIDGE_HEARTBEAT)")
	fs.IntVar(&opts.maxStreams, "max-streams", opts.maxStreams, "open SSE and WebSocket streams per user (env TASKBRIDGE_MAX_STREAMS; default 100)")
	fs.DurationVar(&opts.drain, "drain", opts.drain, "how long a shutdown lets running tasks finish before it cancels them (env TASKBRIDGE_DRAIN; default 10s)")
	fs.Func("log-level", "debug, info, warn or error (env TASKBRIDGE_LOG_LEVEL; default info)", func(v string) error {
		lvl, err := parseLevel(v)
		opts.logLevel = lvl
		return err
	})
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if opts.heartbeat <= 0 {
		return options{}, errors.New("-heartbeat must be positive")
	}
	if opts.maxStreams < 0 {
		return options{}, errors.New("-max-streams must not be negative")
	}
	if opts.drain < 0 {
		return options{}, errors.New("-drain must not be negative")
	}
	return opts, nil
}

// parseLevel accepts the levels a server is run at.
func parseLevel(v string) (zapcore.Level, error) {
	lvl, err := zapcore.ParseLevel(v)
	if err != nil || lvl < zapcore.DebugLevel || lvl > zapcore.ErrorLevel {
		return zapcore.InfoLevel, fmt.Errorf("log level %q: want debug, info, warn or error", v)
	}
	return lvl, nil
}

// newLogger returns the quickstart's zap logger at level, writing to w:
// zap's development console encoder (colored levels, readable lines) when w
// is a terminal, JSON lines otherwise (for log collectors).
func newLogger(w zapcore.WriteSyncer, terminal bool, level zapcore.Level) *zap.Logger {
	var enc zapcore.Encoder
	if terminal {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(cfg)
	} else {
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	}
	return zap.New(zapcore.NewCore(enc, w, level), zap.ErrorOutput(w))
}

// server is the quickstart: in-memory stores, the in-process executor with
// the demo task types, and the bridge on a Fiber app, with Prometheus
// metrics at /metrics and the executor behind /ready.
type server struct {
	app      *fiber.App
	bridge   *fiberbridge.Bridge
	exec     *orchestration.Executor
	registry *prometheus.Registry
	log      *zap.Logger
}

// probeTimeout bounds each readiness probe.
const probeTimeout = 2 * time.Second

// newServer wires everything; nothing serves until serve.
func newServer(opts options, log *zap.Logger) (*server, error) {
	// Prometheus: the Go runtime and process collectors next to TaskBridge's.
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := prom.MustNew(registry)

	stores := memstore.New(memstore.Options{})
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{
		Stores: stores, Logger: log, Metrics: metrics, DrainTimeout: opts.drain,
	})
	if err != nil {
		return nil, err
	}
	demo.Register(exec)
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:             stores,
		Executor:           exec,
		AuthResolver:       demo.Auth,
		CreatePreprocessor: demo.ValidateInput,
		Routes:             fiberbridge.Routes{OpenAPI: "/openapi.json"}, // GET /api/v1/openapi.json describes the routes
		Stream:             streaming.Options{HeartbeatInterval: opts.heartbeat},
		// Stream tickets: the demo page's WebSocket and EventSource carry a
		// one-minute, single-use ticket instead of the bearer token.
		StreamTickets:        fiberbridge.StreamTickets{Store: memstore.NewTicketStore(memstore.Options{})},
		MaxStreamsPerSubject: opts.maxStreams,
		Logger:               log,     // one line for zap
		Metrics:              metrics, // one line for Prometheus
		// The memory stores cannot fail, so the executor is the one
		// dependency to probe: not ready once closed or its queue is full.
		Readiness: observe.NewComposite(probeTimeout,
			observe.NamedProbe{Name: "executor", Probe: observe.ExecutorProbe(exec)}),
	})
	if err != nil {
		_ = exec.Close(context.Background())
		return nil, err
	}
	// SECURITY.md's settings: the bridge's error envelopes, read/write/idle
	// timeouts, request bodies streamed instead of reserved up front,
	// multipart parsed only by the create route.
	app := fiber.New(fiberbridge.AppConfig(fiber.Config{DisableStartupMessage: true}))
	bridge.Register(app)
	app.Get("/metrics", fiberbridge.MetricsHandler(prom.Handler(registry))) // Prometheus text format
	web.Register(app)                                                       // the live demo page at /
	return &server{app: app, bridge: bridge, exec: exec, registry: registry, log: log}, nil
}

// serve serves on ln until shutdown. The connections it holds are capped
// below the process's open-file limit (connlimit), so a flood of clients
// delays new ones instead of stopping the server.
func (s *server) serve(ln net.Listener) error {
	limited, err := connlimit.New(ln, connlimit.Config{Logger: s.log})
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.log.Info("quickstart listening", zap.String("addr", ln.Addr().String()), zap.Int("maxConnections", limited.Max()))
	return s.app.Listener(limited)
}

// shutdownTimeout bounds a shutdown: the executor's drain and 5 s more for
// the streams before it and the terminal events after it.
func (o options) shutdownTimeout() time.Duration {
	drain := o.drain
	if drain == 0 {
		drain = orchestration.DefaultDrainTimeout
	}
	return drain + 5*time.Second
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
