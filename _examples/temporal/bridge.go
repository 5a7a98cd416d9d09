package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/_examples/quickstart/web"
	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// conns are the Redis and Temporal clients and the Redis stores a bridge
// or a worker runs on.
type conns struct {
	redis    *redis.Client
	temporal client.Client
	stores   contracts.Stores
}

// connect opens the Redis and Temporal clients, failing when either does
// not answer within bootTimeout. close closes both.
func connect(ctx context.Context, opts options, log *zap.Logger) (*conns, error) {
	ropts, err := redisOptions(opts.redis)
	if err != nil {
		return nil, err
	}
	rc := redis.NewClient(ropts)
	bctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	if err := rc.Ping(bctx).Err(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("redis at %s does not answer: %w", ropts.Addr, err)
	}
	tc, err := client.DialContext(bctx, client.Options{
		HostPort: opts.temporal, Namespace: opts.namespace, Logger: tbtemporal.Logger(log.Named("temporal")),
	})
	if err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("temporal at %s does not answer: %w", opts.temporal, err)
	}
	stores, err := redisstore.New(rc, redisstore.Options{KeyPrefix: opts.prefix, Logger: log})
	if err != nil {
		tc.Close()
		_ = rc.Close()
		return nil, err
	}
	return &conns{redis: rc, temporal: tc, stores: stores}, nil
}

func (c *conns) close() {
	c.temporal.Close()
	_ = c.redis.Close()
}

// runBridge serves the TaskBridge routes until ctx ends, then shuts down
// within 10 s: streams end first (clients reconnect elsewhere with their
// cursor), then the server. Tasks are not touched: they run on the
// workers.
func runBridge(ctx context.Context, opts options, log *zap.Logger) error {
	cs, err := connect(ctx, opts, log)
	if err != nil {
		return err
	}
	defer cs.close()
	exec, err := tbtemporal.NewExecutor(cs.temporal, tbtemporal.ExecutorOptions{
		TaskTypes: taskTypes, TaskQueue: opts.queue, Logger: log,
	})
	if err != nil {
		return err
	}
	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:             cs.stores,
		Executor:           exec, // also the resume hook: accepted actions become signals
		AuthResolver:       demo.Auth,
		CreatePreprocessor: validateInput,
		Stream:             streaming.Options{HeartbeatInterval: opts.heartbeat},
		Readiness: observe.NewComposite(probeTimeout,
			observe.NamedProbe{Name: "redis", Probe: redisstore.NewProbe(cs.redis, probeTimeout)},
			observe.NamedProbe{Name: "temporal", Probe: exec.Probe()}),
		Logger: log,
	})
	if err != nil {
		return err
	}
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
	bridge.Register(app)
	web.Register(app)

	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(err, bridge.Shutdown(sctx))
	}
	log.Info("temporal example bridge listening", zap.String("addr", ln.Addr().String()),
		zap.String("redis", opts.redis), zap.String("temporal", opts.temporal), zap.String("queue", opts.queue))
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }() // ends with app.Shutdown below
	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := errors.Join(bridge.Shutdown(sctx), app.ShutdownWithContext(sctx)); serr != nil {
		err = errors.Join(err, serr)
	}
	if err == nil {
		err = <-served
	}
	return err
}
