package streaming

import "time"

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

// SetHandoverTimeout shortens how long ServeSSE waits for fasthttp to hand
// a connection over; call it before the first stream.
func (h *Hub) SetHandoverTimeout(d time.Duration) { h.handover = d }
