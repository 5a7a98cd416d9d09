package fiberbridge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
)

// TestWebSocketSlotReleasedWhenUpgradeNeverStarts: fasthttp runs the
// WebSocket connection handler only after it has written the 101 answer.
// When the client is gone by then, that write fails and the handler never
// runs, so the stream's OnClose never comes; the subject's stream slot must
// still come back (after the WebSocket handshake timeout). The test waits
// until the upgrade holds the slot, then probes it with SSE; the timeout is
// 5 s so that the first probe is answered before the guard gives the slot
// back, also on a loaded machine.
func TestWebSocketSlotReleasedWhenUpgradeNeverStarts(t *testing.T) {
	t.Parallel()
	type gated struct {
		conn    net.Conn
		proceed chan struct{}
		readErr chan error
	}
	arrived := make(chan *gated, 1)
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.MaxStreamsPerSubject = 1
		cfg.Stream.WSHandshakeTimeout = 5 * time.Second
		cfg.AuthResolver = func(c *fiber.Ctx) (contracts.AuthContext, error) {
			if c.Get("X-Test-Gate") != "" {
				// Hold the upgrade request until the client has reset the
				// connection, and prove the reset has arrived: a read on
				// the server's side fails with ECONNRESET, so fasthttp's
				// write of the 101 answer will fail.
				g := &gated{conn: c.Context().Conn(), proceed: make(chan struct{}), readErr: make(chan error, 1)}
				arrived <- g
				<-g.proceed
				_ = g.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				var b [1]byte
				_, err := g.conn.Read(b[:])
				_ = g.conn.SetReadDeadline(time.Time{})
				g.readErr <- err
			}
			return bearerAuth(c)
		}
	})
	taskID := h.create("gone", "test.block", map[string]any{})

	client, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	require.NoError(t, err)
	_, err = fmt.Fprintf(client, "GET /api/v1/tasks/ws HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer gone\r\nX-Test-Gate: 1\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", h.addr)
	require.NoError(t, err)
	var g *gated
	select {
	case g = <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the upgrade request did not reach the auth resolver")
	}
	require.NoError(t, client.(*net.TCPConn).SetLinger(0))
	require.NoError(t, client.Close()) // RST
	close(g.proceed)
	require.ErrorIs(t, <-g.readErr, syscall.ECONNRESET, "the server must see the reset before it answers the upgrade")
	// The upgrade takes the slot after the auth resolver returned; a probe
	// before that would take the slot itself (seen under load).
	require.Eventually(t, func() bool { return h.bridge.StreamsHeld("gone") == 1 }, hwait, time.Millisecond,
		"the upgrade takes the subject's slot")

	// The slot comes back: an SSE stream of the same subject is accepted
	// (429 TOO_MANY_STREAMS while the slot is held).
	var statuses []int
	released := assert.Eventually(t, func() bool {
		s, r := h.openSSE("gone", taskID, "", nil)
		statuses = append(statuses, r.status)
		if s != nil {
			s.close()
		}
		return r.status == http.StatusOK
	}, hwait, 50*time.Millisecond)
	require.True(t, released, "the slot of the upgrade that never started must be released; SSE answers: %v", statuses)
	assert.Equal(t, http.StatusTooManyRequests, statuses[0], "the slot is held until the guard gives it back")
}

// gatedEvents holds the first armed Read, after it has read the store,
// until released: it stretches the window between an SSE stream's first
// read (SubscriptionService.Replay in the handler) and its registration in
// the streaming hub.
type gatedEvents struct {
	contracts.EventStore
	mu       sync.Mutex
	armed    bool
	readDone chan struct{}
	release  chan struct{}
}

func (g *gatedEvents) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	page, err := g.EventStore.Read(ctx, taskID, after, limit)
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(g.readDone)
		<-g.release
	}
	return page, err
}

// TestSSEEventAppendedDuringReplayIsDelivered: an event appended after the
// SSE handler's first read and before the stream is registered in the hub
// (so its change notice finds no local subscriber of the task) still
// reaches the stream over the real route.
func TestSSEEventAppendedDuringReplayIsDelivered(t *testing.T) {
	t.Parallel()
	var gate *gatedEvents
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		gate = &gatedEvents{EventStore: cfg.Stores.Events, readDone: make(chan struct{}), release: make(chan struct{})}
		cfg.Stores.Events = gate
	})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gate.release) }) }
	t.Cleanup(release)

	ctx := context.Background()
	_, _, err := h.stores.Tasks.Create(ctx, contracts.TaskRecord{
		TaskID: "t1", OwnerID: "alice", ClientRequestID: "r", TaskType: "x", Status: contracts.StatusAccepted,
	})
	require.NoError(t, err)
	first, err := h.stores.Events.Append(ctx, "t1", contracts.Started(""))
	require.NoError(t, err)

	gate.mu.Lock()
	gate.armed = true
	gate.mu.Unlock()
	conn, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	req, err := http.NewRequest(http.MethodGet, h.base+"/api/v1/tasks/t1/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer alice")
	require.NoError(t, req.Write(conn))
	select {
	case <-gate.readDone: // the handler has read [STARTED]; the stream is not registered yet
	case <-time.After(5 * time.Second):
		t.Fatal("the SSE handler did not read the task's events")
	}
	second, err := h.stores.Events.Append(ctx, "t1", contracts.Started("again")) // its notice finds no task state in the hub
	require.NoError(t, err)
	release()

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("event %s, appended between the stream's first read and its registration, never arrived; got %v", second.EventID, got)
			}
			require.NoError(t, err)
		}
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			got = append(got, strings.TrimSpace(id))
		}
	}
	assert.Equal(t, []string{first.EventID.String(), second.EventID.String()}, got)
}
