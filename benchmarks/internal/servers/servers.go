package servers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/baseline"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/bridgeserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/rawserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/serve"
)

// Kinds of server.
const (
	Raw      = "raw"
	Baseline = "baseline"
	Bridge   = "bridge"
)

// Flags are the options every bench server understands.
type Flags struct {
	Kind      string
	Store     string
	Listen    string
	Control   string
	RedisAddr string
	RedisPool int
	Heartbeat time.Duration
}

// builder makes a server and returns a function that releases what it
// holds after Shutdown.
type builder func(ctx context.Context, f Flags) (serve.Server, func(), error)

var builders = map[string]builder{
	Raw: func(context.Context, Flags) (serve.Server, func(), error) {
		return rawserver.New(), func() {}, nil
	},
	Baseline: func(ctx context.Context, f Flags) (serve.Server, func(), error) {
		st, err := benchstore.Open(ctx, benchstore.Options{Kind: f.Store, RedisAddr: f.RedisAddr, RedisPoolSize: f.RedisPool})
		if err != nil {
			return nil, nil, err
		}
		return baseline.New(baseline.Options{Stores: st, TaskType: loadclient.BenchTaskType}), func() { st.Close() }, nil
	},
	Bridge: func(ctx context.Context, f Flags) (serve.Server, func(), error) {
		st, err := benchstore.Open(ctx, benchstore.Options{Kind: f.Store, RedisAddr: f.RedisAddr, RedisPoolSize: f.RedisPool})
		if err != nil {
			return nil, nil, err
		}
		srv := bridgeserver.New(bridgeserver.Options{Stores: st, TaskType: loadclient.BenchTaskType,
			Heartbeat: f.Heartbeat, BarePath: loadclient.BarePath})
		return srv, func() { st.Close() }, nil
	},
}

// Main parses args (kind may be preset by the command) and runs the server
// until SIGINT or SIGTERM, printing its Ready line to stdout.
func Main(kind string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	f := Flags{Kind: kind}
	if kind == "" {
		fs.StringVar(&f.Kind, "kind", "", "server kind: raw, baseline or bridge")
	}
	fs.StringVar(&f.Store, "store", benchstore.Memory, "store: mem or redis (baseline and bridge)")
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:0", "data address (port 0: any free port)")
	fs.StringVar(&f.Control, "control", "127.0.0.1:0", "control endpoint address")
	fs.StringVar(&f.RedisAddr, "redis-addr", "", "redis-server host:port (default $"+benchstore.RedisAddrEnv+")")
	fs.IntVar(&f.RedisPool, "redis-pool", 4096, "Redis client pool size (the baseline holds one connection per waiting subscriber)")
	fs.DurationVar(&f.Heartbeat, "heartbeat", 15*time.Second, "bridge: idle heartbeat interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, ok := builders[f.Kind]
	if !ok {
		return fmt.Errorf("servers: unknown kind %q (raw, baseline or bridge)", f.Kind)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, release, err := b(ctx, f)
	if err != nil {
		return err
	}
	defer release()
	err = serve.Run(ctx, f.Kind, srv, f.Listen, f.Control, stdout)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
