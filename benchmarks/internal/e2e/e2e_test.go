package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/baseline"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/bridgeserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/control"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/rawserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/serve"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's shared clock goroutine lives for the process; its worker
		// pool and client connection cleaners end after their next sleep.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
	)
}

// target builds a bench server; it returns nil when the environment lacks
// what it needs (Redis).
type target struct {
	name  string
	build func(t *testing.T) serve.Server
}

func redisAddr(t *testing.T) string {
	return e2etest.RedisAddr(t)
}

func baselineOn(store string) func(t *testing.T) serve.Server {
	return func(t *testing.T) serve.Server {
		opts := benchstore.Options{Kind: store}
		if store == benchstore.Redis {
			opts.RedisAddr = redisAddr(t)
		}
		st, err := benchstore.Open(context.Background(), opts)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		return baseline.New(baseline.Options{Stores: st, TaskType: loadclient.BenchTaskType})
	}
}

func bridgeOn(store string) func(t *testing.T) serve.Server {
	return func(t *testing.T) serve.Server {
		opts := benchstore.Options{Kind: store}
		if store == benchstore.Redis {
			opts.RedisAddr = redisAddr(t)
		}
		st, err := benchstore.Open(context.Background(), opts)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		srv, err := bridgeserver.New(bridgeserver.Options{Stores: st, TaskType: loadclient.BenchTaskType, BarePath: loadclient.BarePath})
		require.NoError(t, err)
		return srv
	}
}

var targets = []target{
	{"raw", func(*testing.T) serve.Server { return rawserver.New() }},
	{"baseline-mem", baselineOn(benchstore.Memory)},
	{"baseline-redis", baselineOn(benchstore.Redis)},
	{"bridge-mem", bridgeOn(benchstore.Memory)},
	{"bridge-redis", bridgeOn(benchstore.Redis)},
}

// start serves srv on a loopback port until the test ends.
func start(t *testing.T, srv serve.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
		assert.NoError(t, <-done)
	})
	return ln.Addr().String()
}

// childPipe runs loadclient.RunChild over pipes, as a child process would.
type childPipe struct {
	t    *testing.T
	in   *io.PipeWriter
	out  *bufio.Scanner
	done chan error
}

func startChildPipe(t *testing.T) *childPipe {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &childPipe{t: t, in: inW, out: bufio.NewScanner(outR), done: make(chan error, 1)}
	p.out.Buffer(make([]byte, 1<<16), 64<<20)
	go func() {
		err := loadclient.RunChild(context.Background(), inR, outW)
		outW.Close()
		p.done <- err
	}()
	t.Cleanup(func() {
		inW.Close()
		outR.Close()
	})
	return p
}

func (p *childPipe) send(c loadclient.Command) {
	p.t.Helper()
	data, err := json.Marshal(c)
	require.NoError(p.t, err)
	_, err = p.in.Write(append(data, '\n'))
	require.NoError(p.t, err)
}

func (p *childPipe) read(ev string) loadclient.Report {
	p.t.Helper()
	require.True(p.t, p.out.Scan(), "child report")
	var r loadclient.Report
	require.NoError(p.t, json.Unmarshal(p.out.Bytes(), &r))
	require.Equal(p.t, ev, r.Ev, "report %+v", r)
	return r
}

// TestStreamsExactlyOnce holds subscribers on every transport against every
// server, emits a burst and a rate, optionally drops and resumes each
// connection, and checks that each subscriber saw every event exactly once.
func TestStreamsExactlyOnce(t *testing.T) {
	modes := []struct {
		name  string
		drops int
	}{
		{"steady", 0},
		{"drop and resume", 2},
	}
	for _, tg := range targets {
		for _, mode := range modes {
			t.Run(tg.name+"/"+mode.name, func(t *testing.T) {
				srv := tg.build(t)
				addr := start(t, srv)
				ctl := control.NewServer(srv)
				ctx := context.Background()
				ids, err := srv.CreateTasks(ctx, 2)
				require.NoError(t, err)

				// Five events exist before anyone connects: they are replayed.
				pre := ctl.Emit(ctx, control.EmitRequest{TaskIDs: ids, EventsPerTask: 5})
				require.Zero(t, pre.Errors, pre.FirstError)

				p := startChildPipe(t)
				p.send(loadclient.Command{Cmd: "start", Assign: &loadclient.Assignment{
					Addr: addr, Token: baseline.BenchSubject, Strict: true, SourceIPs: []string{"127.0.0.2"},
					Groups: []loadclient.Group{
						{TaskID: ids[0], Transport: loadclient.TransportSSE, Count: 3},
						{TaskID: ids[0], Transport: loadclient.TransportWS, Count: 3},
						{TaskID: ids[1], Transport: loadclient.TransportPoll, Count: 2},
						{TaskID: ids[1], Transport: loadclient.TransportSSE, Count: 1},
					},
					PollWait: 2 * time.Second,
					Drops:    mode.drops, DropFrom: 10 * time.Millisecond, DropTo: 150 * time.Millisecond,
				}})
				r := p.read("connected")
				assert.Equal(t, 9, r.Connected)
				assert.Zero(t, r.Failed)

				p.send(loadclient.Command{Cmd: "go"})
				res := ctl.Emit(ctx, control.EmitRequest{TaskIDs: ids, EventsPerTask: 40, RatePerTask: 200})
				require.Zero(t, res.Errors, res.FirstError)
				require.Equal(t, uint64(45), res.LastSeq[ids[0]])

				p.send(loadclient.Command{Cmd: "drain", Expected: res.LastSeq, Drain: 5 * time.Second})
				assert.Zero(t, p.read("drained").Behind)
				p.send(loadclient.Command{Cmd: "finish"})
				got := p.read("result").Result
				require.NoError(t, <-p.done)
				require.NotNil(t, got)
				assert.Equal(t, 9, got.Subscribers)
				assert.Zero(t, got.Gaps, "gaps")
				assert.Zero(t, got.Dups, "dups")
				assert.Zero(t, got.Missing, "missing")
				assert.Zero(t, got.Errors, "errors: %v", got.ErrorSamples)
				assert.Zero(t, got.ProtocolErrors, "protocol errors: %v", got.ErrorSamples)
				assert.Equal(t, uint64(9*45), got.Events)
				assert.Equal(t, uint64(9*45), got.Latency.Count())
				if mode.drops == 0 {
					assert.Equal(t, uint64(3), got.Confirmations, "one per WS subscriber")
					assert.Zero(t, got.Reconnects)
				} else {
					assert.Positive(t, got.Reconnects)
					assert.Greater(t, got.Confirmations, uint64(3), "one per WS connection, reconnects included")
				}
			})
		}
	}
}

// TestHTTPLoad runs each HTTP load briefly against the bridge and the
// baseline: every request must succeed with the expected status.
func TestHTTPLoad(t *testing.T) {
	for _, tg := range []target{{"bridge", bridgeOn(benchstore.Memory)}, {"baseline", baselineOn(benchstore.Memory)}} {
		t.Run(tg.name, func(t *testing.T) { testHTTPLoad(t, tg.build(t)) })
	}
}

func testHTTPLoad(t *testing.T, srv serve.Server) {
	addr := start(t, srv)
	ctx := context.Background()
	ids, err := srv.CreateTasks(ctx, 3)
	require.NoError(t, err)
	for _, kind := range []string{loadclient.HTTPCreate, loadclient.HTTPPoll, loadclient.HTTPBare} {
		t.Run(kind, func(t *testing.T) {
			p := startChildPipe(t)
			p.send(loadclient.Command{Cmd: "start", Assign: &loadclient.Assignment{Addr: addr, Token: baseline.BenchSubject,
				HTTP: &loadclient.HTTPLoad{Kind: kind, Concurrency: 4, Duration: 200 * time.Millisecond, TaskIDs: ids}}})
			p.read("connected")
			p.send(loadclient.Command{Cmd: "go"})
			p.send(loadclient.Command{Cmd: "finish"})
			got := p.read("result").Result
			require.NoError(t, <-p.done)
			require.NotNil(t, got.HTTP)
			assert.Positive(t, got.HTTP.Requests)
			assert.Zero(t, got.HTTP.Errors, "%v", got.ErrorSamples)
			assert.Zero(t, got.HTTP.BadStatus, "%v", got.ErrorSamples)
			assert.Equal(t, got.HTTP.Requests, got.HTTP.LatencyUs.Count())
		})
	}
}
