package streaming_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// idleClientEnv makes the test binary an idle-client process (see
// BenchmarkIdleConnections): "transport,addr,n".
const idleClientEnv = "TASKBRIDGE_IDLE_CLIENT"

// memSample is the server process's memory at one moment, after a GC.
type memSample struct {
	rss        int64 // resident set size, bytes
	heapStack  int64 // HeapInuse + StackInuse
	stack      int64 // StackInuse
	goroutines int
}

func sampleMemory() memSample {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := memSample{heapStack: int64(m.HeapInuse + m.StackInuse), stack: int64(m.StackInuse), goroutines: runtime.NumGoroutine()}
	if raw, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			s.rss = pages * int64(os.Getpagesize())
		}
	}
	return s
}

// BenchmarkIdleConnections measures what an idle stream costs the server:
// a child process (this test binary in client mode) opens N streams and
// holds them idle, while this process, the server, samples its own RSS,
// heap and stack in use and goroutine count before and after. Run with
//
//	go test -run '^$' -bench IdleConnections -benchtime 1x ./streaming
//
// (TASKBRIDGE_IDLE_CONNS sets N; default 2000). The metrics are per
// connection: rss-B/conn, heap+stack-B/conn, goroutines/conn. Cases: sse
// and ws (detached, the default on Linux), ws-blocking (ServeWebSocket,
// which keeps the upgrade goroutine), sse-held and ws-held (the fallback
// where connections cannot be detached: TLS, other platforms), and
// sse-streamwriter, a plain fasthttp SetBodyStreamWriter stream, for
// comparison.
func BenchmarkIdleConnections(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("TASKBRIDGE_IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	cases := []struct {
		name, transport string
		opts            []envOption
	}{
		{name: "sse", transport: "sse"},
		{name: "ws", transport: "ws"},
		{name: "ws-blocking", transport: "ws-blocking"},
		{name: "sse-streamwriter", transport: "sse-streamwriter"},
		{name: "sse-held", transport: "sse", opts: []envOption{withHeldConns()}},
		{name: "ws-held", transport: "ws", opts: []envOption{withHeldConns()}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				measureIdle(b, c.transport, n, c.opts...)
			}
		})
	}
}

func measureIdle(b *testing.B, transport string, n int, opts ...envOption) {
	e := newEnv(b, streaming.Options{}, opts...)
	e.append("idle", contracts.Started(""))
	// Warm the server's pools with a few connections first.
	warm := exec.Command(os.Args[0], "-test.run=^$")
	warm.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", idleClientEnv, transport, e.addr, 50))
	hubStreams := transport != "sse-streamwriter"
	runIdleClients(b, e, warm, 50, hubStreams)

	before := sampleMemory()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", idleClientEnv, transport, e.addr, n))
	after := runIdleClients(b, e, child, n, hubStreams)
	per := func(v int64) float64 { return float64(v) / float64(n) }
	b.ReportMetric(per(after.rss-before.rss), "rss-B/conn")
	b.ReportMetric(per(after.heapStack-before.heapStack), "heap+stack-B/conn")
	b.ReportMetric(per(after.stack-before.stack), "stack-B/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(n), "goroutines/conn")
}

// runIdleClients starts the client process, waits until its n streams are
// live, samples memory, and then lets the clients go.
func runIdleClients(b *testing.B, e *env, cmd *exec.Cmd, n int, hubStreams bool) memSample {
	b.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("idle clients: %q %v", line, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for hubStreams && e.hub.LiveSubscribers("idle") < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // waiting on another process
	}
	if got := e.hub.LiveSubscribers("idle"); hubStreams && got != n {
		b.Fatalf("live streams: %d, want %d", got, n)
	}
	s := sampleMemory()
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	for e.hub.OpenStreams() > 0 && time.Now().Before(deadline.Add(30*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// idleClients is the client process: it opens n streams, reads each up to
// its first event, reports "ready" and holds them until stdin closes.
func idleClients(spec string) int {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "bad spec", spec)
		return 2
	}
	transport, addr := parts[0], parts[1]
	n, _ := strconv.Atoi(parts[2])
	keep := make([]io.Closer, 0, n)
	for i := range n {
		c, err := openIdle(transport, addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "stream %d: %v\n", i, err)
			return 1
		}
		keep = append(keep, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range keep {
		_ = c.Close()
	}
	return 0
}

func openIdle(transport, addr string) (io.Closer, error) {
	if strings.HasPrefix(transport, "ws") {
		path := "/ws"
		if transport == "ws-blocking" {
			path = "/ws-blocking"
		}
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
		c, resp, err := d.Dial("ws://"+addr+path, nil)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		if err := c.WriteJSON(contracts.SubscribeRequest{Action: "subscribe", TaskID: "idle"}); err != nil {
			return nil, err
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for range 2 { // confirmation, first event
			if _, _, err := c.ReadMessage(); err != nil {
				return nil, err
			}
		}
		_ = c.SetReadDeadline(time.Time{})
		return c, nil
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	path := "/sse/idle"
	if transport == "sse-streamwriter" {
		path = "/sse-streamwriter/idle"
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte("\ndata: ")) || !bytes.HasSuffix(bytes.TrimSuffix(got, []byte("\r\n")), []byte("\n\n")) {
		k, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		got = append(got, buf[:k]...)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}
