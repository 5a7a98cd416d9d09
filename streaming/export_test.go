package streaming

import (
	"context"
	"time"

	"github.com/gofiber/contrib/websocket"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/wsframe"
)

// LiveSubscribers returns how many subscribers of taskID receive live
// batches, for tests that must wait until streams have joined.
func (h *Hub) LiveSubscribers(taskID string) int {
	h.mu.RLock()
	t := h.tasks[taskID]
	h.mu.RUnlock()
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}

// TrackedTasks returns how many tasks the hub keeps state for.
func (h *Hub) TrackedTasks() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.tasks)
}

// DetachedStreams returns how many open streams run detached (watched by
// the poller, no goroutine of their own).
func (h *Hub) DetachedStreams() int {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	n := 0
	for c := range h.conns {
		if c.detached {
			n++
		}
	}
	return n
}

// WatchedConns returns how many connections the hub's poller watches (0
// when it runs none).
func (h *Hub) WatchedConns() int {
	h.mu.RLock()
	p := h.poller
	h.mu.RUnlock()
	if p == nil {
		return 0
	}
	return p.Watched()
}

// SetHandoverTimeout shortens how long ServeSSE waits for fasthttp to hand
// a connection over; call it before the first stream.
func (h *Hub) SetHandoverTimeout(d time.Duration) { h.handover = d }

// ServeWebSocket runs one WebSocket stream and returns when it has ended:
// AttachWebSocket with Authorize set to authorize, plus a wait, so the
// upgrade goroutine and fasthttp's per-connection state stay held for the
// life of the stream (the tests' handler of websocket.New).
func (h *Hub) ServeWebSocket(conn *websocket.Conn, authorize func(ctx context.Context, taskID string) error) {
	done := make(chan struct{})
	h.AttachWebSocket(conn, WebSocketRequest{Authorize: authorize, OnClose: func() { close(done) }})
	<-done
}

// OpenStreams returns the number of open SSE and WebSocket connections,
// including WebSockets still in their subscribe handshake.
func (h *Hub) OpenStreams() int {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	return len(h.conns)
}

// AppendSSEEvent is appendSSEEvent, the SSE frame of one event.
func AppendSSEEvent(dst []byte, ev *contracts.TaskEvent) []byte { return appendSSEEvent(dst, ev) }

// WebSocketConfig is the upgrader configuration fiberbridge uses.
func WebSocketConfig(cfg websocket.Config) websocket.Config { return wsframe.UpgraderConfig(cfg) }

// Close codes the runtime sends, for the tests' assertions.
const (
	CloseNormal          = closeNormal
	CloseGoingAway       = closeGoingAway
	ClosePolicyViolation = closePolicyViolation
	CloseInternalError   = closeInternalError
)
