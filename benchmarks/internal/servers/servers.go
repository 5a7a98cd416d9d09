package servers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/baseline"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/bridgeserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/rawserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/serve"
	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Kinds of server.
const (
	Raw      = "raw"
	Baseline = "baseline"
	Bridge   = "bridge"
	// Emitter appends events to the Redis stores from its own process (a
	// worker elsewhere); it has no data path.
	Emitter = "emitter"
)

// Flags are the options every bench server understands.
type Flags struct {
	Kind        string
	Store       string
	Listen      string
	Control     string
	RedisAddr   string
	RedisPool   int
	RedisPrefix string
	Heartbeat   time.Duration
	WSPing      time.Duration
}

func (f Flags) stores(ctx context.Context) (*benchstore.Bundle, error) {
	return benchstore.Open(ctx, benchstore.Options{Kind: f.Store, RedisAddr: f.RedisAddr,
		RedisPoolSize: f.RedisPool, KeyPrefix: f.RedisPrefix})
}

// builder makes a server and returns a function that releases what it
// holds after Shutdown.
type builder func(ctx context.Context, f Flags) (serve.Server, func(), error)

var builders = map[string]builder{
	Raw: func(context.Context, Flags) (serve.Server, func(), error) {
		return rawserver.New(), func() {}, nil
	},
	Baseline: func(ctx context.Context, f Flags) (serve.Server, func(), error) {
		st, err := f.stores(ctx)
		if err != nil {
			return nil, nil, err
		}
		return baseline.New(baseline.Options{Stores: st, TaskType: loadclient.BenchTaskType}), func() { st.Close() }, nil
	},
	Bridge: func(ctx context.Context, f Flags) (serve.Server, func(), error) {
		st, err := f.stores(ctx)
		if err != nil {
			return nil, nil, err
		}
		srv, err := bridgeserver.New(bridgeserver.Options{Stores: st, TaskType: loadclient.BenchTaskType,
			Heartbeat: f.Heartbeat, WSPing: f.WSPing, BarePath: loadclient.BarePath})
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		return srv, func() { st.Close() }, nil
	},
	Emitter: func(ctx context.Context, f Flags) (serve.Server, func(), error) {
		if f.Store != benchstore.Redis || f.RedisPrefix == "" {
			return nil, nil, errors.New("servers: the emitter needs -store redis and the server's -redis-prefix")
		}
		st, err := f.stores(ctx)
		if err != nil {
			return nil, nil, err
		}
		return &emitter{events: st.Events, done: make(chan struct{})}, func() { st.Close() }, nil
	},
}

// emitter is a control backend that only appends, to stores another
// process serves.
type emitter struct {
	events contracts.EventStore
	done   chan struct{}
	once   sync.Once
}

// CreateTasks implements control.Backend; tasks are created on the server.
func (e *emitter) CreateTasks(context.Context, int) ([]string, error) {
	return nil, errors.New("servers: the emitter does not create tasks")
}

// Append implements control.Backend.
func (e *emitter) Append(ctx context.Context, taskID string, d contracts.EventDraft) error {
	_, err := e.events.Append(ctx, taskID, d)
	return err
}

// Serve holds the (unused) data listener until Shutdown.
func (e *emitter) Serve(ln net.Listener) error {
	<-e.done
	return ln.Close()
}

// Shutdown implements serve.Server.
func (e *emitter) Shutdown(context.Context) error {
	e.once.Do(func() { close(e.done) })
	return nil
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
	fs.StringVar(&f.RedisPrefix, "redis-prefix", "", "Redis key prefix (default: a fresh one); a separate emitter shares the server's")
	fs.IntVar(&f.RedisPool, "redis-pool", 4096, "Redis client pool size (the baseline holds one connection per waiting subscriber; 0: go-redis's default, 10 per core)")
	fs.DurationVar(&f.Heartbeat, "heartbeat", 15*time.Second, "bridge: idle heartbeat interval")
	fs.DurationVar(&f.WSPing, "ws-ping", 0, "bridge: WebSocket ping interval (0: the streaming default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, ok := builders[f.Kind]
	if !ok {
		return fmt.Errorf("servers: unknown kind %q (raw, baseline or bridge)", f.Kind)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if dir := os.Getenv(CPUProfileDirEnv); dir != "" {
		end, err := startCPUProfile(filepath.Join(dir, f.Kind+"-"+strconv.Itoa(os.Getpid())+".prof"))
		if err != nil {
			return err
		}
		defer end()
	}
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

// CPUProfileDirEnv names a directory: when set, every bench server writes
// a CPU profile of its whole life (start to SIGTERM) to
// DIR/<kind>-<pid>.prof, for go tool pprof. tbload passes its environment
// on to the servers it starts, so
//
//	TBLOAD_CPUPROFILE_DIR=/tmp/prof tbload -scenario http -targets bridge
//
// profiles the bridge under the http scenario's load.
const CPUProfileDirEnv = "TBLOAD_CPUPROFILE_DIR"

func startCPUProfile(path string) (end func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
