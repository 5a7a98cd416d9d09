package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/_examples/quickstart/web"
	"github.com/taskbridge/taskbridge-fiber/connlimit"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// options are the example's settings: flags, with environment variables
// as their defaults.
type options struct {
	addr      string
	redis     string
	prefix    string
	heartbeat time.Duration
	// drain is how long a shutdown lets running tasks finish.
	drain time.Duration
	// leaseTTL and leaseSweep: how long a task's lease lasts without
	// renewal, and how often expired leases are swept (the tasks of a dead
	// instance end within about their sum).
	leaseTTL   time.Duration
	leaseSweep time.Duration
	// workers is how many tasks run at once (more wait in the queue).
	workers int
}

// Defaults of the duration options.
const (
	defaultHeartbeat = 15 * time.Second
	defaultDrain     = orchestration.DefaultDrainTimeout
	defaultLeaseTTL  = orchestration.DefaultLeaseTTL
	defaultSweep     = orchestration.DefaultLeaseSweepInterval
	defaultWorkers   = orchestration.DefaultMaxConcurrent
)

// parseOptions reads the flags from args, with the TASKBRIDGE_*
// environment variables (from getenv) as their defaults (see the package
// doc).
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	opts := options{addr: "127.0.0.1:8081", redis: "127.0.0.1:6379", prefix: redisstore.DefaultKeyPrefix,
		heartbeat: defaultHeartbeat, drain: defaultDrain, leaseTTL: defaultLeaseTTL, leaseSweep: defaultSweep,
		workers: defaultWorkers}
	for _, e := range []struct {
		name string
		dst  *string
	}{{"TASKBRIDGE_ADDR", &opts.addr}, {"TASKBRIDGE_REDIS", &opts.redis}, {"TASKBRIDGE_REDIS_PREFIX", &opts.prefix}} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
		}
	}
	for _, e := range []struct {
		name string
		dst  *time.Duration
	}{{"TASKBRIDGE_HEARTBEAT", &opts.heartbeat}, {"TASKBRIDGE_DRAIN", &opts.drain},
		{"TASKBRIDGE_LEASE_TTL", &opts.leaseTTL}, {"TASKBRIDGE_LEASE_SWEEP", &opts.leaseSweep}} {
		if v := getenv(e.name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", e.name, err)
				return options{}, fmt.Errorf("%s: %w", e.name, err)
			}
			*e.dst = d
		}
	}
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.addr, "addr", opts.addr, "listen address (env TASKBRIDGE_ADDR)")
	fs.StringVar(&opts.redis, "redis", opts.redis, "Redis host:port or redis:// URL (env TASKBRIDGE_REDIS)")
	fs.StringVar(&opts.prefix, "prefix", opts.prefix, "Redis key prefix, the same on every instance (env TASKBRIDGE_REDIS_PREFIX)")
	fs.DurationVar(&opts.heartbeat, "heartbeat", opts.heartbeat, "idle interval of stream heartbeats (env TASKBRIDGE_HEARTBEAT)")
	fs.DurationVar(&opts.drain, "drain", opts.drain, "how long a shutdown lets running tasks finish (env TASKBRIDGE_DRAIN)")
	fs.DurationVar(&opts.leaseTTL, "lease-ttl", opts.leaseTTL, "how long a task's lease lasts without renewal (env TASKBRIDGE_LEASE_TTL)")
	fs.DurationVar(&opts.leaseSweep, "lease-sweep", opts.leaseSweep, "how often expired leases are swept (env TASKBRIDGE_LEASE_SWEEP)")
	fs.IntVar(&opts.workers, "workers", opts.workers, "tasks run at once by this instance")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case opts.heartbeat <= 0:
		err = errors.New("-heartbeat must be positive")
	case opts.drain < 0:
		err = errors.New("-drain must not be negative")
	case opts.leaseTTL <= 0 || opts.leaseSweep <= 0:
		err = errors.New("-lease-ttl and -lease-sweep must be positive")
	case opts.workers <= 0:
		err = errors.New("-workers must be positive")
	case opts.redis == "":
		err = errors.New("-redis must not be empty")
	case strings.ContainsAny(opts.prefix, "{}"):
		err = errors.New("-prefix must not contain '{' or '}'")
	}
	if err == nil {
		_, err = redisOptions(opts.redis)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return options{}, err
	}
	return opts, nil
}

// Timeouts of the Redis client. Calls also end with their context
// (ContextTimeoutEnabled); while Redis does not answer, each call of a
// request fails after about redisTimeout.
const (
	redisTimeout = 2 * time.Second
	// bootTimeout bounds the PING at start.
	bootTimeout = 5 * time.Second
	// probeTimeout bounds the readiness PING of GET /ready.
	probeTimeout = time.Second
)

// redisOptions turns -redis (host:port or a redis:// URL) into client
// options.
func redisOptions(addr string) (*redis.Options, error) {
	o := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if o, err = redis.ParseURL(addr); err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
	} else if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	o.ContextTimeoutEnabled = true
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = redisTimeout, redisTimeout, redisTimeout
	// One dial per attempt: go-redis dials five times by default, which
	// holds every request about 1.7 s while Redis refuses connections.
	o.DialerRetries = 1
	return o, nil
}

// server is one instance: the Redis client and stores, the in-process
// executor with the demo task types behind the cancel relay (which owns
// it), and the bridge on a Fiber app.
type server struct {
	client *redis.Client
	stores contracts.Stores
	relay  *redisstore.CancelRelay
	bridge *fiberbridge.Bridge
	app    *fiber.App
	log    *zap.Logger
}

// newServer connects to Redis (failing when it does not answer PING within
// bootTimeout or ctx) and wires everything; nothing serves until serve.
func newServer(ctx context.Context, opts options, log *zap.Logger) (*server, error) {
	ropts, err := redisOptions(opts.redis)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(ropts)
	pingCtx, cancel := context.WithTimeout(ctx, bootTimeout)
	err = client.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis at %s does not answer: %w", ropts.Addr, err)
	}

	sopts := redisstore.Options{KeyPrefix: opts.prefix, Logger: log}
	stores, err := redisstore.New(client, sopts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	drain := opts.drain
	if drain == 0 {
		drain = -1 // -drain 0: cancel running tasks at once
	}
	// Stores.Leases is set: the executor leases the tasks it runs, so
	// that another instance ends them if this one dies.
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, Logger: log,
		DrainTimeout: drain, LeaseTTL: opts.leaseTTL, MaxConcurrent: opts.workers})
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	demo.Register(exec)
	// demo.repeatable is safe to run again: if this instance dies while it
	// runs, another instance runs it again (3 attempts in all).
	demo.RegisterRepeatable(exec, 3)
	// The executor cancels only the tasks it runs; the relay carries a
	// cancel request made on any instance to the one running the task.
	relay, err := redisstore.NewCancelRelay(client, sopts, stores.Tasks, exec)
	if err != nil {
		_ = exec.Close(ctx)
		_ = client.Close()
		return nil, err
	}
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:             stores,
		Executor:           relay,
		AuthResolver:       demo.Auth,
		CreatePreprocessor: demo.ValidateInput,
		Stream:             streaming.Options{HeartbeatInterval: opts.heartbeat},
		LeaseSweepInterval: opts.leaseSweep,
		Readiness: observe.NewComposite(probeTimeout,
			observe.NamedProbe{Name: "redis", Probe: redisstore.NewProbe(client, probeTimeout)}),
		Logger: log,
	})
	if err != nil {
		_ = relay.Close(ctx)
		_ = client.Close()
		return nil, err
	}
	// SECURITY.md's settings (error envelopes, timeouts, streamed bodies,
	// multipart only in the create route).
	app := fiber.New(fiberbridge.AppConfig(fiber.Config{DisableStartupMessage: true}))
	bridge.Register(app)
	web.Register(app) // the demo page at /: open it on two instances
	return &server{client: client, stores: stores, relay: relay, bridge: bridge, app: app, log: log}, nil
}

// serve serves on ln until shutdown.
// Its connections are capped below the process's open-file limit
// (connlimit).
func (s *server) serve(ln net.Listener) error {
	limited, err := connlimit.New(ln, connlimit.Config{Logger: s.log})
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.log.Info("redis example listening", zap.String("addr", ln.Addr().String()),
		zap.String("redis", s.client.Options().Addr), zap.Int("maxConnections", limited.Max()))
	return s.app.Listener(limited)
}

// shutdown ends streams and long-polls (bridge: clients reconnect to
// another instance with their cursor), then the server, then drains the
// executor through the relay (running tasks finish within -drain; their
// events reach clients through the other instances; tasks still queued
// end FAILED EXECUTOR_SHUTDOWN, retryable), and closes the Redis client
// last, once nothing uses it. ctx must outlast -drain (see shutdownTimeout).
func (s *server) shutdown(ctx context.Context) error {
	err := errors.Join(
		s.bridge.Shutdown(ctx),
		s.app.ShutdownWithContext(ctx),
		s.relay.Close(ctx),
	)
	return errors.Join(err, s.client.Close())
}
