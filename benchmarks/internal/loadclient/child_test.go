package loadclient_test

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
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/control"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/rawserver"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rawTarget starts the raw server on a loopback port.
func rawTarget(t *testing.T) (*rawserver.Server, string) {
	t.Helper()
	srv := rawserver.New()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.NoError(t, <-done)
	})
	return srv, ln.Addr().String()
}

// childPipe runs RunChild over pipes and returns a command sender and a
// report reader.
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

func (p *childPipe) read() loadclient.Report {
	p.t.Helper()
	require.True(p.t, p.out.Scan(), "child report")
	var r loadclient.Report
	require.NoError(p.t, json.Unmarshal(p.out.Bytes(), &r))
	return r
}

func TestChildAgainstRawServer(t *testing.T) {
	tests := []struct {
		name  string
		drops int
	}{
		{"steady", 0},
		{"drop and resume", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := rawTarget(t)
			ctl := control.NewServer(srv)
			ctx := context.Background()
			ids, err := srv.CreateTasks(ctx, 2)
			require.NoError(t, err)

			// Five events exist before anyone connects: they are replayed.
			pre := ctl.Emit(ctx, control.EmitRequest{TaskIDs: ids, EventsPerTask: 5})
			require.Zero(t, pre.Errors)

			p := startChildPipe(t)
			p.send(loadclient.Command{Cmd: "start", Assign: &loadclient.Assignment{
				Addr: addr, Token: "bench", Strict: true, SourceIPs: []string{"127.0.0.1"},
				Groups: []loadclient.Group{
					{TaskID: ids[0], Transport: loadclient.TransportSSE, Count: 3},
					{TaskID: ids[0], Transport: loadclient.TransportWS, Count: 3},
					{TaskID: ids[1], Transport: loadclient.TransportPoll, Count: 2},
				},
				PollWait: 2 * time.Second,
				Drops:    tt.drops, DropFrom: 10 * time.Millisecond, DropTo: 150 * time.Millisecond,
			}})
			r := p.read()
			require.Equal(t, "connected", r.Ev)
			assert.Equal(t, 8, r.Connected)
			assert.Zero(t, r.Failed)

			p.send(loadclient.Command{Cmd: "go"})
			res := ctl.Emit(ctx, control.EmitRequest{TaskIDs: ids, EventsPerTask: 40, RatePerTask: 200})
			require.Zero(t, res.Errors)
			require.Equal(t, uint64(45), res.LastSeq[ids[0]])

			p.send(loadclient.Command{Cmd: "finish", Expected: res.LastSeq, Drain: 5 * time.Second})
			r = p.read()
			require.Equal(t, "result", r.Ev)
			require.NoError(t, <-p.done)
			got := r.Result
			require.NotNil(t, got)
			assert.Equal(t, 8, got.Subscribers)
			assert.Zero(t, got.Gaps, "gaps")
			assert.Zero(t, got.Dups, "dups")
			assert.Zero(t, got.Missing, "missing")
			assert.Zero(t, got.Errors, "errors: %v", got.ErrorSamples)
			assert.Zero(t, got.ProtocolErrors, "protocol errors: %v", got.ErrorSamples)
			assert.Equal(t, uint64(8*45), got.Events)
			assert.Equal(t, uint64(8*45), got.Latency.Count())
			if tt.drops == 0 {
				assert.Equal(t, uint64(3), got.Confirmations, "one per WS subscriber")
				assert.Zero(t, got.Reconnects)
			} else {
				assert.Positive(t, got.Reconnects)
				assert.Greater(t, got.Confirmations, uint64(3), "one per WS connection, reconnects included")
			}
		})
	}
}
