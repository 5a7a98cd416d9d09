// Command redis serves the TaskBridge v1 routes with the Redis stores, so
// that several instances share tasks: a task created on one instance can be
// streamed from another, acted on (approve, reject, cancel) through either,
// and a client whose instance goes away resumes on another with its cursor.
// It runs the quickstart's demo task types (demo.progress, demo.fail,
// demo.approval, demo.sleep, and demo.repeatable: demo.progress marked
// safe to run again) and its demo page at /.
//
//	go run ./_examples/redis -addr 127.0.0.1:8081 -redis 127.0.0.1:6379
//	go run ./_examples/redis -addr 127.0.0.1:8082 -redis 127.0.0.1:6379
//
// Flags (environment variables give their defaults):
//
//	-addr       listen address (TASKBRIDGE_ADDR, default 127.0.0.1:8081)
//	-redis      Redis address host:port or URL redis://[user:pass@]host:port/db
//	            (TASKBRIDGE_REDIS, default 127.0.0.1:6379)
//	-prefix     key prefix; the same on every instance that shares tasks
//	            (TASKBRIDGE_REDIS_PREFIX, default "taskbridge:")
//	-heartbeat  idle interval of stream heartbeats (TASKBRIDGE_HEARTBEAT, 15s)
//	-drain      how long a shutdown lets running tasks finish (TASKBRIDGE_DRAIN,
//	            10s; 0: cancel them at once)
//	-lease-ttl  how long a task's lease lasts without renewal
//	            (TASKBRIDGE_LEASE_TTL, 20s)
//	-lease-sweep how often expired leases are swept (TASKBRIDGE_LEASE_SWEEP, 5s)
//	-workers    tasks run at once by this instance (64)
//
// Each instance runs the tasks created through it, in process; events, task
// records, suspensions and action receipts live in Redis. A handler
// suspended on one instance resumes when an action is accepted on any
// instance (it wakes on the shared change feed), and a cancel request made
// on any instance reaches the instance running the task
// (redisstore.CancelRelay). GET /ready answers 503 while Redis does not
// answer PING within a second.
// SIGINT or SIGTERM shuts down gracefully, as a rolling deploy needs:
// streams end (WebSocket close 1001) so clients reconnect to another
// instance with their cursor, the server stops taking requests, and the
// tasks running here go on for up to -drain (clients follow them through
// the other instances); tasks still running then end TASK_FAILED with the
// retryable code EXECUTOR_SHUTDOWN. Tasks still queued are handed back to
// Redis: another instance runs them.
//
// An instance that dies (kill -9, a lost machine) stops renewing the leases
// of its tasks; within about -lease-ttl plus -lease-sweep another instance
// ends its started tasks (running or suspended) TASK_FAILED with the
// retryable code EXECUTOR_LOST (demo.repeatable tasks run again there),
// and runs the ones that never started.
package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
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
		log.Error("redis example failed", zap.Error(err))
		os.Exit(1)
	}
}

// shutdownTimeout bounds a shutdown: the drain plus 5 s for the streams,
// the server and the last terminal events.
func shutdownTimeout(opts options) time.Duration { return opts.drain + 5*time.Second }

// run serves until SIGINT or SIGTERM, then shuts down within
// shutdownTimeout.
func run(opts options, log *zap.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := newServer(ctx, opts, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout(opts))
		defer cancel()
		return errors.Join(err, srv.shutdown(shutdownCtx))
	}
	served := make(chan error, 1)
	go func() { served <- srv.serve(ln) }()

	select {
	case err = <-served:
		// The listener failed on its own; still stop everything else.
	case <-ctx.Done():
		log.Info("shutting down")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout(opts))
	defer cancel()
	if serr := srv.shutdown(shutdownCtx); serr != nil {
		err = errors.Join(err, serr)
	}
	if err == nil {
		err = <-served
	}
	return err
}
