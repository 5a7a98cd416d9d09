// Command quickstart serves the TaskBridge v1 routes on 127.0.0.1:8080 with
// the in-memory stores and the in-process executor, and four demo task
// types (demo.progress, demo.fail, demo.approval, demo.sleep).
//
//	go run ./_examples/quickstart [-addr 127.0.0.1:8080] [-heartbeat 15s] [-log-level info] [-max-streams 100] [-drain 10s]
//
// Logs go to stderr: readable lines when it is a terminal, JSON lines
// otherwise. Prometheus metrics (TaskBridge's, the Go runtime's and the
// process's) are served at /metrics, readiness (the executor accepts work)
// at /ready.
//
// Authenticate with "Authorization: Bearer <token>"; the token is the
// subject that owns the tasks. For EventSource and browser WebSockets, POST
// /api/v1/tasks/<taskId>/stream-ticket (with the header) returns a
// one-minute, single-use ticket to pass as ?ticket= (the demo page does;
// ?access_token= works too, but puts the token in URLs). A demo task's input is validated when it is created: bad input
// answers 400 INVALID_REQUEST and creates nothing. SIGINT or SIGTERM shuts
// down gracefully: open streams end (WS close 1001) and long-polls answer
// before the server stops.
//
//	curl -s -X POST localhost:8080/api/v1/tasks -H 'Authorization: Bearer alice' \
//	  -H 'Content-Type: application/json' \
//	  -d '{"clientRequestId":"r1","taskType":"demo.progress","input":{"steps":5,"delayMs":500}}'
//	curl -N 'localhost:8080/api/v1/tasks/<taskId>/events/stream?access_token=alice'
//	curl -s 'localhost:8080/api/v1/tasks/<taskId>/events?waitTimeoutMs=25000' -H 'Authorization: Bearer alice'
package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	opts, err := parseOptions(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	// Readable lines in a terminal, JSON lines when stderr goes to a file or
	// a log collector.
	terminal := isatty.IsTerminal(os.Stderr.Fd()) || isatty.IsCygwinTerminal(os.Stderr.Fd())
	log := newLogger(zapcore.Lock(os.Stderr), terminal, opts.logLevel)
	defer func() { _ = log.Sync() }()
	if err := run(opts, log); err != nil {
		log.Error("quickstart failed", zap.Error(err))
		os.Exit(1)
	}
}

// run serves until SIGINT or SIGTERM, then shuts down: running tasks get
// the drain (-drain) to finish.
func run(opts options, log *zap.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	srv, err := newServer(opts, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.serve(ln) }()

	select {
	case err = <-served:
		// The listener failed on its own; still stop the bridge and executor.
	case <-ctx.Done():
		log.Info("shutting down")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout())
	defer cancel()
	if serr := srv.shutdown(shutdownCtx); serr != nil {
		err = errors.Join(err, serr)
	}
	if err == nil {
		err = <-served
	}
	return err
}
