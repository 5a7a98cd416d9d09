package micro_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/baseline"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchwire"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/bridgeserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/rawserver"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/serve"
	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

func BenchmarkEventIDCompare(b *testing.B) {
	ids := []contracts.EventID{{Ms: 1_700_000_000_123, Seq: 9}, {Ms: 1_700_000_000_123, Seq: 10}, {Ms: 1_700_000_000_124}}
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		n += ids[i%3].Compare(ids[(i+1)%3])
	}
	_ = n
}

func BenchmarkEventIDParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := contracts.ParseEventID("1700000000123-10"); err != nil {
			b.Fatal(err)
		}
	}
}

// fanout servers, built in process on the memory store.
var servers = []struct {
	name  string
	build func(b *testing.B) serve.Server
}{
	{"bridge", func(b *testing.B) serve.Server {
		srv, err := bridgeserver.New(bridgeserver.Options{Stores: openMem(b), TaskType: loadclient.BenchTaskType, BarePath: loadclient.BarePath})
		if err != nil {
			b.Fatal(err)
		}
		return srv
	}},
	{"baseline", func(b *testing.B) serve.Server {
		return baseline.New(baseline.Options{Stores: openMem(b), TaskType: loadclient.BenchTaskType})
	}},
	{"raw", func(*testing.B) serve.Server { return rawserver.New() }},
}

func openMem(b *testing.B) *benchstore.Bundle {
	st, err := benchstore.Open(context.Background(), benchstore.Options{Kind: benchstore.Memory})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func BenchmarkFanoutSSE(b *testing.B) { benchFanout(b, loadclient.TransportSSE) }

func BenchmarkFanoutWS(b *testing.B) { benchFanout(b, loadclient.TransportWS) }

func benchFanout(b *testing.B, transport string) {
	for _, srv := range servers {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/subs=%d", srv.name, n), func(b *testing.B) {
				runFanout(b, srv.build(b), transport, n)
			})
		}
	}
}

// runFanout appends one event per iteration and waits until all n
// subscribers have read it.
func runFanout(b *testing.B, srv serve.Server, transport string, n int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ctx := context.Background()
	ids, err := srv.CreateTasks(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}

	var delivered sync.WaitGroup
	var readers sync.WaitGroup
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		br := bufio.NewReaderSize(conn, 4096)
		var read func()
		if transport == loadclient.TransportWS {
			read, err = subscribeWS(conn, br, ids[0], &delivered)
		} else {
			read, err = subscribeSSE(conn, br, ids[0], &delivered)
		}
		if err != nil {
			b.Fatal(err)
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			read()
		}()
	}

	// One warm-up event reaches everyone before measuring.
	emit := func(seq int) {
		delivered.Add(n)
		d, err := benchwire.Draft(uint64(seq), time.Now())
		if err == nil {
			err = srv.Append(ctx, ids[0], d)
		}
		if err != nil {
			b.Fatal(err)
		}
		delivered.Wait()
	}
	emit(1)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	seq := 1
	for b.Loop() {
		seq++
		emit(seq)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	deliveries := float64(n) * float64(seq-1)
	b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")

	for _, c := range conns {
		c.Close()
	}
	shutCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		b.Fatal(err)
	}
	readers.Wait()
	if err := <-served; err != nil {
		b.Fatal(err)
	}
}

func subscribeSSE(conn net.Conn, br *bufio.Reader, task string, delivered *sync.WaitGroup) (func(), error) {
	req := "GET /api/v1/tasks/" + task + "/events/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer bench\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, err
	}
	head, err := benchwire.ReadResponseHead(br)
	if err != nil {
		return nil, err
	}
	if head.Status != 200 {
		return nil, fmt.Errorf("sse status %d", head.Status)
	}
	r := benchwire.NewSSEReader(head.Body(br), 4096)
	return func() {
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			if f.ID != nil {
				delivered.Done()
			}
		}
	}, nil
}

func subscribeWS(conn net.Conn, br *bufio.Reader, task string, delivered *sync.WaitGroup) (func(), error) {
	req := "GET /api/v1/tasks/ws?access_token=bench HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer bench\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, err
	}
	head, err := benchwire.ReadResponseHead(br)
	if err != nil {
		return nil, err
	}
	if head.Status != 101 {
		return nil, fmt.Errorf("ws status %d", head.Status)
	}
	sub := []byte(`{"action":"subscribe","taskId":"` + task + `"}`)
	if _, err := conn.Write(benchwire.AppendClientFrame(nil, benchwire.OpText, sub, [4]byte{1, 2, 3, 4})); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 4096)
	if _, _, _, err := benchwire.ReadServerFrame(br, buf, 1<<20); err != nil {
		return nil, fmt.Errorf("confirmation: %w", err)
	}
	return func() {
		for {
			op, _, payload, err := benchwire.ReadServerFrame(br, buf, 1<<20)
			if err != nil || op == benchwire.OpClose {
				return
			}
			if op == benchwire.OpText && benchwire.EventID(payload) != nil {
				delivered.Done()
			}
		}
	}, nil
}
