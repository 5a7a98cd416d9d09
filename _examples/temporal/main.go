// Command temporal runs the TaskBridge demo task types on Temporal: as a
// bridge (the TaskBridge v1 routes on Redis stores, submitting every task
// to Temporal) or, with -worker, as a worker (runs the tasks' workflows and
// steps, writing their events to the same Redis). Any number of bridges and
// workers share one Redis and one Temporal: a task created through any
// bridge runs on any worker and streams through any bridge, and a bridge,
// a worker or a whole machine can go away without losing the task.
//
//	temporal server start-dev --headless            # Temporal on 127.0.0.1:7233
//	redis-server --port 6379 --save '' &
//	go run . -worker -redis 127.0.0.1:6379 -temporal 127.0.0.1:7233
//	go run . -addr 127.0.0.1:8081 -redis 127.0.0.1:6379 -temporal 127.0.0.1:7233
//	go run . -addr 127.0.0.1:8082 -redis 127.0.0.1:6379 -temporal 127.0.0.1:7233
//
// Flags (environment variables give their defaults):
//
//	-worker     run as a worker instead of a bridge
//	-addr       bridge listen address (TASKBRIDGE_ADDR, default 127.0.0.1:8081)
//	-redis      Redis host:port or redis:// URL (TASKBRIDGE_REDIS, 127.0.0.1:6379)
//	-prefix     Redis key prefix, the same everywhere (TASKBRIDGE_REDIS_PREFIX)
//	-temporal   Temporal frontend host:port (TASKBRIDGE_TEMPORAL, 127.0.0.1:7233)
//	-namespace  Temporal namespace (TASKBRIDGE_TEMPORAL_NAMESPACE, default)
//	-queue      Temporal task queue, the same everywhere (TASKBRIDGE_TEMPORAL_QUEUE)
//	-heartbeat  bridge stream heartbeat interval (TASKBRIDGE_HEARTBEAT, 15s)
//
// A bridge answers GET /ready with 503 while Redis or the Temporal frontend
// does not answer. SIGINT or SIGTERM stops either gracefully; tasks go on
// on the other workers (or on this one when it comes back).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

func main() {
	opts, err := parseOptions(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	log, err := zap.NewProduction() // JSON lines on stderr
	if err != nil {
		os.Exit(1)
	}
	defer func() { _ = log.Sync() }()
	if err := run(opts, log); err != nil {
		log.Error("temporal example failed", zap.Error(err))
		os.Exit(1)
	}
}

// options are the example's settings.
type options struct {
	worker    bool
	addr      string
	redis     string
	prefix    string
	temporal  string
	namespace string
	queue     string
	heartbeat time.Duration
}

// parseOptions reads the flags from args, with the environment (getenv)
// giving their defaults.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	opts := options{addr: "127.0.0.1:8081", redis: "127.0.0.1:6379", prefix: redisstore.DefaultKeyPrefix,
		temporal: "127.0.0.1:7233", namespace: "default", queue: tbtemporal.DefaultTaskQueue, heartbeat: 15 * time.Second}
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{"TASKBRIDGE_ADDR", &opts.addr}, {"TASKBRIDGE_REDIS", &opts.redis}, {"TASKBRIDGE_REDIS_PREFIX", &opts.prefix},
		{"TASKBRIDGE_TEMPORAL", &opts.temporal}, {"TASKBRIDGE_TEMPORAL_NAMESPACE", &opts.namespace},
		{"TASKBRIDGE_TEMPORAL_QUEUE", &opts.queue},
	} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
		}
	}
	if v := getenv("TASKBRIDGE_HEARTBEAT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintf(stderr, "TASKBRIDGE_HEARTBEAT: %v\n", err)
			return options{}, fmt.Errorf("TASKBRIDGE_HEARTBEAT: %w", err)
		}
		opts.heartbeat = d
	}
	fs := flag.NewFlagSet("temporal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&opts.worker, "worker", false, "run as a worker instead of a bridge")
	fs.StringVar(&opts.addr, "addr", opts.addr, "bridge listen address (env TASKBRIDGE_ADDR)")
	fs.StringVar(&opts.redis, "redis", opts.redis, "Redis host:port or redis:// URL (env TASKBRIDGE_REDIS)")
	fs.StringVar(&opts.prefix, "prefix", opts.prefix, "Redis key prefix, the same everywhere (env TASKBRIDGE_REDIS_PREFIX)")
	fs.StringVar(&opts.temporal, "temporal", opts.temporal, "Temporal frontend host:port (env TASKBRIDGE_TEMPORAL)")
	fs.StringVar(&opts.namespace, "namespace", opts.namespace, "Temporal namespace (env TASKBRIDGE_TEMPORAL_NAMESPACE)")
	fs.StringVar(&opts.queue, "queue", opts.queue, "Temporal task queue, the same everywhere (env TASKBRIDGE_TEMPORAL_QUEUE)")
	fs.DurationVar(&opts.heartbeat, "heartbeat", opts.heartbeat, "stream heartbeat interval (env TASKBRIDGE_HEARTBEAT)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	var err error
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case opts.heartbeat <= 0:
		err = errors.New("-heartbeat must be positive")
	case opts.redis == "", opts.temporal == "", opts.queue == "":
		err = errors.New("-redis, -temporal and -queue must not be empty")
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

// Timeouts of the Redis client and of the checks at start.
const (
	redisTimeout = 2 * time.Second
	bootTimeout  = 10 * time.Second
	probeTimeout = time.Second
)

// redisOptions turns -redis (host:port or a redis:// URL) into client
// options that end calls with their context and fail fast while Redis
// refuses connections.
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
	o.DialerRetries = 1
	return o, nil
}

// run runs a bridge or a worker until SIGINT or SIGTERM.
func run(opts options, log *zap.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.worker {
		return runWorker(ctx, opts, log)
	}
	return runBridge(ctx, opts, log)
}
