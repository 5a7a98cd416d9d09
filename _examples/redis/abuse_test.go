package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// monitorReads counts the event reads (the read script, sent as EVALSHA)
// Redis executes on keys with prefix, from a MONITOR connection, until the
// test ends. Other tests share the server, so only this prefix counts.
func monitorReads(t *testing.T, addr, prefix string) *atomic.Int64 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	require.NoError(t, err)
	_, err = conn.Write([]byte("MONITOR\r\n"))
	require.NoError(t, err)
	rd := bufio.NewReaderSize(conn, 64<<10)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(wait)))
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+OK\r\n", line)
	require.NoError(t, conn.SetReadDeadline(time.Time{})) // the monitor reads until cleanup closes conn
	var n atomic.Int64
	done := make(chan struct{})
	go func() { // owner: this test; ends when the connection closes at cleanup
		defer close(done)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			if strings.Contains(line, `"evalsha"`) && strings.Contains(line, prefix) && strings.Contains(line, ":events") {
				n.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
	})
	return &n
}

// startQuietInstance is startInstance without logs (a thousand polls
// would log two lines each).
func startQuietInstance(t *testing.T, redisAddr, prefix string) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	opts := options{addr: ln.Addr().String(), redis: redisAddr, prefix: prefix, heartbeat: 15 * time.Second}
	srv, err := newServer(context.Background(), opts, zap.NewNop())
	require.NoError(t, err)
	in := &instance{t: t, srv: srv, base: "http://" + ln.Addr().String(), client: &http.Client{Timeout: 30 * time.Second},
		served: make(chan error, 1)}
	go func() { in.served <- srv.serve(ln) }()
	t.Cleanup(in.stop)
	return in
}

// TestFutureCursorPollsShareReads: 1,000 long-polls whose cursor lies
// 1.5 s in the future wait on a task that appends about a hundred events
// per second. Every append wakes them; without shared reads each poll
// re-read the task from Redis on every wake-up (a thousand reads per
// append, about 30k Redis commands per second). With pollGroups the polls
// share one read per wake-up, so the whole run costs a few hundred reads.
func TestFutureCursorPollsShareReads(t *testing.T) {
	addr := redisAddr(t)
	prefix := uniquePrefix(t, addr)
	in := startQuietInstance(t, addr, prefix)
	reads := monitorReads(t, addr, prefix)

	_, created := in.create("alice", contracts.NewID(), "demo.progress", `{"steps":400,"delayMs":10}`)
	future := fmt.Sprintf("%d-0", time.Now().Add(1500*time.Millisecond).UnixMilli())
	raw := "GET /api/v1/tasks/" + created.TaskID + "/events?waitTimeoutMs=30000&maxEvents=1&afterEventId=" + future +
		" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n\r\n"
	addrHTTP := strings.TrimPrefix(in.base, "http://")

	const polls = 1000
	var wg sync.WaitGroup
	errs := make([]error, polls)
	counts := make([]int, polls)
	for i := range polls {
		conn, err := net.DialTimeout("tcp", addrHTTP, wait)
		require.NoError(t, err)
		wg.Add(1)
		go func() { // owner: this test; ends with the answer or the deadline
			defer wg.Done()
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(wait))
			if _, err := conn.Write([]byte(raw)); err != nil {
				errs[i] = err
				return
			}
			resp, err := e2etest.ReadResponse(conn)
			if err == nil && resp.Status != 200 {
				err = fmt.Errorf("status %d: %s", resp.Status, resp.Body)
			}
			errs[i] = err
			counts[i] = strings.Count(string(resp.Body), `"eventId"`)
		}()
	}
	wg.Wait()
	for i := range polls {
		require.NoError(t, errs[i], "poll %d", i)
		require.Equal(t, 1, counts[i], "poll %d answered with the first event after its cursor", i)
	}
	n := reads.Load()
	t.Logf("%d long-polls with a future cursor cost %d event reads on Redis", polls, n)
	assert.Less(t, n, int64(polls), "reads are shared: one per wake-up, not one per poll")
}
