package fiberbridge_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// cycles is the number of connect/disconnect cycles of
// TestConnectDisconnectCycles; make test runs the default, the full run
// is -hardening.cycles=10000.
var cycles = flag.Int("hardening.cycles", 500, "connect/disconnect cycles of TestConnectDisconnectCycles")

// diagCounts counts the streaming runtime's slow-subscriber switches and
// disconnects by reason.
type diagCounts struct {
	observe.NopDiagnostics
	slow atomic.Int64
	mu   sync.Mutex
	gone map[string]int
}

func (d *diagCounts) OnSlowSubscriber(observe.Transport, string) { d.slow.Add(1) }

func (d *diagCounts) OnDisconnect(_ observe.Transport, _ string, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone == nil {
		d.gone = map[string]int{}
	}
	d.gone[reason]++
}

func (d *diagCounts) disconnects(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gone[reason]
}

func (d *diagCounts) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range d.gone {
		n += v
	}
	return n
}

// eventReader is what the fault tests read events from: an SSE stream or
// a WebSocket.
type eventReader interface {
	NextEvent(timeout time.Duration) (contracts.TaskEvent, error)
}

// readN reads n events from r and checks their ids strictly increase.
func readN(r eventReader, n int, onEvent func(contracts.TaskEvent)) error {
	var last contracts.EventID
	for i := range n {
		ev, err := r.NextEvent(hwait)
		if err != nil {
			return fmt.Errorf("event %d of %d: %w", i, n, err)
		}
		if !last.Less(ev.EventID) {
			return fmt.Errorf("event %d: id %s after %s", i, ev.EventID, last)
		}
		last = ev.EventID
		if onEvent != nil {
			onEvent(ev)
		}
	}
	return nil
}

// TestSlowReaderDoesNotSlowOthers: while an SSE and a WebSocket client of a
// busy task have stopped reading (their receive windows full), the task's
// other subscribers get every event in order, as fast as the task emits
// them (delivery latency is logged); the stalled clients are switched to
// catch-up reads, and when they read again they get every event once, in
// order, and the end.
func TestSlowReaderDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	diag := &diagCounts{}
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.Diagnostics = diag
		cfg.Stream.QueueSize = 2
		cfg.Stream.WriteTimeout = time.Minute
	}})
	id := h.create("alice", "test.gated", nil)
	gate := h.gates.get(id)
	stalledSSE, r := h.sse(e2etest.StalledDialer(), "alice", id, "", nil)
	require.NotNil(t, stalledSSE, "%d %s", r.Status, r.Body)
	stalledWS, _ := h.dial(e2etest.StalledDialer(), "alice")
	require.NotNil(t, stalledWS)
	require.NoError(t, stalledWS.Subscribe(id, nil))

	stalledSSE.Bulk, stalledWS.Bulk = true, true
	const healthy = 4
	readers := make([]eventReader, healthy)
	for i := range readers {
		if i%2 == 0 {
			s, r := h.sse(nil, "alice", id, "", nil)
			require.NotNil(t, s, "%d %s", r.Status, r.Body)
			s.Bulk = true
			readers[i] = s
		} else {
			c := h.subscribe(nil, "alice", id, nil)
			c.Bulk = true
			readers[i] = c
		}
		ev, err := readers[i].NextEvent(hwait)
		require.NoError(t, err)
		require.Equal(t, contracts.EventStarted, ev.Type)
	}

	// Fill the stalled clients' windows: 16 KiB messages until both were
	// switched to catch-up reads.
	big := strings.Repeat("x", 16<<10)
	sent := 0
	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	latencies := make([][]time.Duration, healthy)
	send := func(text string) {
		mu.Lock()
		sentAt[text] = time.Now()
		mu.Unlock()
		gate <- text
		sent++
	}
	errs := make(chan error, healthy)
	var wg sync.WaitGroup
	readAll := func(total int) {
		for i, rd := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- readN(rd, total, func(ev contracts.TaskEvent) {
					p, err := contracts.DecodePayload(&ev)
					if err != nil {
						return
					}
					text := p.(contracts.MessagePayload).Message
					mu.Lock()
					if at, ok := sentAt[text]; ok && len(text) < 64 {
						latencies[i] = append(latencies[i], time.Since(at))
					}
					mu.Unlock()
				})
			}()
		}
	}
	// Healthy readers read the filler too, concurrently. Send rounds until
	// both stalled clients have fallen behind: switched to catch-up reads,
	// or (when a socket filled while its subscriber was still catching up)
	// blocked in a catch-up write, which the hub does not count as a
	// switch. 8 MiB per client is twice the largest socket send buffer of
	// the machine (tcp_wmem), so past that both are stalled either way.
	const round, enough = 20, 512
	filler := 0
	for ; filler < enough && diag.slow.Load() < 2; filler += round {
		readAll(round)
		for i := range round {
			send(fmt.Sprintf("%05d %s", filler+i, big))
		}
		wg.Wait()
		for range healthy {
			require.NoError(t, <-errs)
		}
	}
	require.GreaterOrEqual(t, diag.slow.Load(), int64(1), "a stalled client was switched to catch-up reads")
	t.Logf("%d filler events; slow-subscriber switches: %d", filler, diag.slow.Load())

	// Now measure delivery to the healthy readers while the stalled
	// windows stay full.
	const measured = 200
	readAll(measured)
	for i := 0; i < measured; i++ {
		send(fmt.Sprintf("m%05d", i))
	}
	wg.Wait()
	for range healthy {
		require.NoError(t, <-errs)
	}
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	require.Len(t, all, healthy*measured)
	slices.Sort(all)
	t.Logf("delivery to %d healthy subscribers of %d events while 2 subscribers are stalled: p50 %v, p99 %v, max %v",
		healthy, measured, all[len(all)/2], all[len(all)*99/100], all[len(all)-1])

	// The stalled clients read again: everything, once, in order, then the end.
	close(gate)
	want := sent + 2 // STARTED, the messages, COMPLETED
	sse, err := stalledSSE.ReadToEnd(hwait)
	require.NoError(t, err, "a stalled SSE client ends cleanly")
	require.Len(t, sse, want)
	_, err = stalledWS.Confirm(hwait)
	require.NoError(t, err)
	ws, code, _, err := stalledWS.ReadToClose(hwait)
	require.NoError(t, err)
	assert.Equal(t, websocket.CloseNormalClosure, code)
	require.Len(t, ws, want)
	for i := range sse {
		require.Equal(t, sse[i].EventID, ws[i].EventID)
		if i > 0 {
			require.True(t, sse[i-1].EventID.Less(sse[i].EventID))
		}
	}
	assert.True(t, isTerminal(sse))
}

// TestStalledSubscribersBoundedHeap: 100 subscribers (SSE and WebSocket,
// through the real routes) that never read a busy task do not make the
// heap grow with what they miss: the store holds the events, the
// stalled subscribers hold nothing more.
func TestStalledSubscribersBoundedHeap(t *testing.T) {
	// Not parallel: it compares the heap before and after.
	diag := &diagCounts{}
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.Diagnostics = diag
		cfg.Stream.QueueSize = 4
		cfg.Stream.WriteTimeout = time.Minute
	}})
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })
	const stalled = 100
	for i := range stalled {
		if i%2 == 0 {
			s, r := h.sse(e2etest.StalledDialer(), "alice", id, "", nil)
			require.NotNil(t, s, "%d %s", r.Status, r.Body)
		} else {
			c, _ := h.dial(e2etest.StalledDialer(), "alice")
			require.NotNil(t, c)
			require.NoError(t, c.Subscribe(id, nil))
		}
	}
	ctx := context.Background()
	const n, size = 2000, 2000
	draft := func(i int) contracts.EventDraft {
		d, err := contracts.Message(fmt.Sprintf("%06d %s", i, strings.Repeat("y", size)), contracts.LevelInfo)
		require.NoError(t, err)
		return d
	}
	// Append until (nearly) every stalled subscriber has filled its socket
	// buffers and its queue and was switched to catch-up reads. (One whose
	// socket filled while it was still catching up blocks in that write,
	// holding nothing in the hub, and is never counted as switched.)
	warm := 0
	deadline := time.Now().Add(hwait)
	for diag.slow.Load() < stalled*9/10 {
		require.True(t, time.Now().Before(deadline), "only %d of %d stalled subscribers fell behind", diag.slow.Load(), stalled)
		_, err := h.events.Append(ctx, id, draft(warm))
		require.NoError(t, err)
		warm++
	}
	before := e2etest.LiveHeap()
	for i := range n {
		_, err := h.events.Append(ctx, id, draft(warm+i))
		require.NoError(t, err)
	}
	growth := int64(e2etest.LiveHeap()) - int64(before)
	stored := int64(n) * size
	t.Logf("heap growth %d KiB for %d KiB of stored events with %d stalled subscribers (%d switched to catch-up after %d events)",
		growth>>10, stored>>10, stalled, diag.slow.Load(), warm)
	// Per-subscriber copies would be 100 times the stored bytes.
	assert.Less(t, growth, 3*stored+32<<20)
}

// TestClientResetMidWrite: clients that vanish with a reset while the
// server is writing to them (their windows full) are cleaned up: their
// stream slots come back and no goroutine is left.
func TestClientResetMidWrite(t *testing.T) {
	t.Parallel()
	diag := &diagCounts{}
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.Diagnostics = diag
		cfg.MaxStreamsPerSubject = 4
		cfg.Stream.WriteTimeout = time.Minute
	}})
	id := h.create("alice", "test.gated", nil)
	gate := h.gates.get(id)
	t.Cleanup(func() { close(gate) })
	s1, _ := h.sse(e2etest.StalledDialer(), "alice", id, "", nil)
	s2, _ := h.sse(e2etest.StalledDialer(), "alice", id, "", nil)
	require.NotNil(t, s1)
	require.NotNil(t, s2)
	c1, _ := h.dial(e2etest.StalledDialer(), "alice")
	c2, _ := h.dial(e2etest.StalledDialer(), "alice")
	require.NoError(t, c1.Subscribe(id, nil))
	require.NoError(t, c2.Subscribe(id, nil))
	big := strings.Repeat("z", 32<<10)
	for range 40 { // 1.3 MB: far more than the windows
		gate <- big
	}
	before := diag.total()
	require.NoError(t, e2etest.Abort(s1.Conn))
	require.NoError(t, e2etest.Abort(s2.Conn))
	require.NoError(t, e2etest.Abort(c1.Conn.NetConn()))
	require.NoError(t, e2etest.Abort(c2.Conn.NetConn()))
	require.Eventually(t, func() bool { return diag.total() >= before+4 }, hwait, 10*time.Millisecond,
		"the server noticed the resets")
	// All four slots are free again.
	for i := range 4 {
		c, ok := openSlot(t, h, i, "alice", id)
		require.True(t, ok, "slot %d", i)
		c()
	}
	h.healthy()
}

// TestHalfOpenWebSocketDropped: a WebSocket peer that stops answering
// (nothing arrives from it, as from a half-open connection whose client
// vanished without a FIN) is dropped after WSPingInterval+WSPongTimeout and
// its slot is released; a peer that answers pings stays.
func TestHalfOpenWebSocketDropped(t *testing.T) {
	t.Parallel()
	diag := &diagCounts{}
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.Diagnostics = diag
		cfg.MaxStreamsPerSubject = 1
		// Roomy enough for a live peer on a loaded machine to answer.
		cfg.Stream.WSPingInterval = 200 * time.Millisecond
		cfg.Stream.WSPongTimeout = time.Second
		cfg.Stream.HeartbeatInterval = 100 * time.Millisecond
	}})
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })

	// A live peer: it reads (the client library answers pings while
	// reading) across many ping intervals and stays connected.
	bobs := h.create("bob", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(bobs)) })
	live := h.subscribe(nil, "bob", bobs, nil)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		r, err := live.Read(hwait)
		require.NoError(t, err)
		require.False(t, r.Closed)
	}

	// A silent peer: subscribed, then never reads nor writes again.
	silent := h.subscribe(nil, "alice", id, nil)
	require.Eventually(t, func() bool { return diag.disconnects("ping timeout") >= 1 }, hwait, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		c, ok := openSlot(t, h, 1, "alice", id)
		if ok {
			c()
		}
		return ok
	}, hwait, 10*time.Millisecond, "the dropped peer's slot is free")
	// What the silent peer finds when it reads again: the end of the
	// connection, not a clean close.
	for {
		r, err := silent.Read(hwait)
		if err != nil {
			break
		}
		if r.Closed {
			assert.Equal(t, websocket.CloseAbnormalClosure, r.CloseCode, "a dead peer gets no close handshake")
			break
		}
	}
}

// TestConnectDisconnectCycles opens and ends streams -hardening.cycles
// times (SSE and WebSocket; closed cleanly, reset, or read to the end of a
// finished task) and checks that goroutines and heap return to their
// baseline.
func TestConnectDisconnectCycles(t *testing.T) {
	// Not parallel: it compares goroutine counts and the heap.
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) { cfg.MaxStreamsPerSubject = -1 }})
	live := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(live)) })
	done := h.create("alice", "test.steps", map[string]any{"steps": 2})
	require.Len(t, h.allEvents("alice", done), 4)
	// The clients are opened without test cleanups, which would keep
	// every one of them reachable until the end.
	subscribe := func(taskID string) *e2etest.WS {
		c, r := h.openWS(nil, "alice")
		require.NotNil(t, c, "%d %s", r.Status, r.Body)
		require.NoError(t, c.Subscribe(taskID, nil))
		_, err := c.Confirm(hwait)
		require.NoError(t, err)
		return c
	}
	cycle := func(i int) {
		switch i % 6 {
		case 0, 1: // SSE, closed or reset after the first event
			s, r := h.openSSE(nil, "alice", live, "", nil)
			require.NotNil(t, s, "%d %s", r.Status, r.Body)
			_, err := s.NextEvent(hwait)
			require.NoError(t, err)
			if i%6 == 0 {
				require.NoError(t, s.Close())
			} else {
				require.NoError(t, e2etest.Abort(s.Conn))
			}
		case 2: // SSE of a finished task, to its end
			s, _ := h.openSSE(nil, "alice", done, "", nil)
			require.NotNil(t, s)
			evs, err := s.ReadToEnd(hwait)
			require.NoError(t, err)
			require.Len(t, evs, 4)
			require.NoError(t, s.Close())
		case 3, 4: // WebSocket, closed or reset after the confirmation
			c := subscribe(live)
			if i%6 == 3 {
				require.NoError(t, c.Conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(hwait)))
				require.NoError(t, c.Close())
			} else {
				require.NoError(t, e2etest.Abort(c.Conn.NetConn()))
			}
		default: // WebSocket of a finished task, to its close
			c := subscribe(done)
			evs, code, _, err := c.ReadToClose(hwait)
			require.NoError(t, err)
			require.Equal(t, websocket.CloseNormalClosure, code)
			require.Len(t, evs, 4)
			require.NoError(t, c.Close())
		}
	}
	for i := range 60 { // warm pools and buffers
		cycle(i)
	}
	baseG := e2etest.WaitGoroutines(0, 200*time.Millisecond)
	baseG = e2etest.WaitGoroutines(baseG, time.Second)
	baseHeap := e2etest.LiveHeap()
	start := time.Now()
	for i := range *cycles {
		cycle(i)
	}
	elapsed := time.Since(start)
	g := e2etest.WaitGoroutines(baseG+2, hwait)
	heap := e2etest.LiveHeap()
	t.Logf("%d cycles in %v: goroutines %d -> %d, live heap %d KiB -> %d KiB",
		*cycles, elapsed.Round(time.Millisecond), baseG, g, baseHeap>>10, heap>>10)
	assert.LessOrEqual(t, g, baseG+2, "goroutines return to the baseline")
	assert.Less(t, int64(heap)-int64(baseHeap), int64(4<<20), "the heap returns to the baseline")
	h.client.CloseIdleConnections()
}

// TestStoreFaultsEndToEnd injects event-store failures on read, append and
// the change feed: clients get envelopes (500 "internal error" without the
// cause, or the documented close), open streams end cleanly with complete
// frames only, and after the store recovers a client resuming from its
// cursor gets exactly the events it missed.
func TestStoreFaultsEndToEnd(t *testing.T) {
	t.Parallel()
	noLeak := func(t testing.TB, r e2etest.Response) {
		t.Helper()
		assert.NotContains(t, string(r.Body), "secret-cause")
		assert.NotContains(t, string(r.Body), "injected")
	}

	t.Run("read", func(t *testing.T) {
		t.Parallel()
		h := startHardened(t, hopts{})
		id := h.create("alice", "test.gated", nil)
		gate := h.gates.get(id)
		s, _ := h.sse(nil, "alice", id, "", nil)
		require.NotNil(t, s)
		c := h.subscribe(nil, "alice", id, nil)
		var sseSeen, wsSeen []contracts.TaskEvent
		for _, rd := range []struct {
			r    eventReader
			seen *[]contracts.TaskEvent
		}{{s, &sseSeen}, {c, &wsSeen}} {
			ev, err := rd.r.NextEvent(hwait)
			require.NoError(t, err)
			*rd.seen = append(*rd.seen, ev)
		}

		h.events.failRead.Store(true)
		// Every route that reads answers the internal-error envelope.
		_, r := h.poll("alice", id, "")
		noLeak(t, r)
		e2etest.CheckEnvelope(t, r, http.StatusInternalServerError, bridgeerr.CodeInternal)
		_, r = h.sse(nil, "alice", id, "", nil)
		noLeak(t, r)
		e2etest.CheckEnvelope(t, r, http.StatusInternalServerError, bridgeerr.CodeInternal)
		refused, _ := h.dial(nil, "alice")
		require.NoError(t, refused.Subscribe(id, nil))
		_, code, reason, err := refused.ReadToClose(hwait)
		require.NoError(t, err)
		assert.Equal(t, websocket.CloseInternalServerErr, code)
		assert.NotContains(t, reason, "secret-cause")

		// Events appended while reads fail: open streams either end
		// cleanly (complete frames, then EOF / close 1011) or carry on
		// once reads work again; nothing partial either way.
		reads := h.events.reads.Load()
		gate <- "during the outage"
		gate <- "also during the outage"
		// The hub has tried (and failed) to read them.
		require.Eventually(t, func() bool { return h.events.reads.Load() > reads }, hwait, time.Millisecond)
		h.events.failRead.Store(false)
		gate <- "after the outage"
		close(gate)
		sseRest, sseErr := s.ReadToEnd(hwait)
		require.NoError(t, sseErr, "an SSE stream ends cleanly")
		sseSeen = append(sseSeen, sseRest...)
		wsRest, wsCode, _, err := c.ReadToClose(hwait)
		require.NoError(t, err)
		wsSeen = append(wsSeen, wsRest...)
		assert.Contains(t, []int{websocket.CloseNormalClosure, websocket.CloseInternalServerErr}, wsCode)

		// Resuming from the last event seen yields exactly the rest.
		all := h.allEvents("alice", id)
		require.Len(t, all, 5) // STARTED, 3 messages, COMPLETED
		for _, seen := range [][]contracts.TaskEvent{sseSeen, wsSeen} {
			got := append([]contracts.TaskEvent(nil), seen...)
			if !isTerminal(got) {
				last := got[len(got)-1].EventID.String()
				s2, r := h.sse(nil, "alice", id, "", http.Header{"Last-Event-Id": {last}})
				require.NotNil(t, s2, "%d %s", r.Status, r.Body)
				rest, err := s2.ReadToEnd(hwait)
				require.NoError(t, err)
				got = append(got, rest...)
			}
			assert.Equal(t, ids(all), ids(got), "no gap, no duplicate")
		}
		h.healthy()
	})

	t.Run("append", func(t *testing.T) {
		t.Parallel()
		var skew atomic.Int64 // added to the services' clock
		h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
			cfg.MaintenanceInterval = 20 * time.Millisecond
			cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		}})
		id := h.create("alice", "test.approval", nil)
		s, _ := h.sse(nil, "alice", id, "", nil)
		require.NotNil(t, s)
		var suspendID string
		for suspendID == "" {
			ev, err := s.NextEvent(hwait)
			require.NoError(t, err)
			if ev.Type == contracts.EventSuspended {
				p, err := contracts.DecodePayload(&ev)
				require.NoError(t, err)
				suspendID = p.(contracts.SuspendedPayload).SuspendID
			}
		}
		h.events.failAppend.Store(true)
		action := []byte(`{"clientActionId":"act-1","suspendId":"` + suspendID + `","actionType":"approve"}`)
		r := h.do(http.MethodPost, "/api/v1/tasks/"+id+"/actions", "alice", "application/json", action)
		noLeak(t, r)
		e2etest.CheckEnvelope(t, r, http.StatusInternalServerError, bridgeerr.CodeInternal)

		// A task created while appends fail gets no partial events: its
		// record exists, its stream is empty.
		other := h.create("alice", "test.steps", map[string]any{"steps": 2})
		res, pr := h.poll("alice", other, "")
		require.Equal(t, http.StatusOK, pr.Status)
		assert.Empty(t, res.Events)
		h.events.failAppend.Store(false)
		h.healthy()

		// The client's retry is a repeat of the accepted action; the
		// TASK_ACTION_ACCEPTED its first attempt could not write is
		// restored by reconciliation once no accept can still be writing
		// it (orchestration.HandoffGrace), before the handler resumes.
		r = h.do(http.MethodPost, "/api/v1/tasks/"+id+"/actions", "alice", "application/json", action)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		assert.Contains(t, string(r.Body), `"DEDUPLICATED"`)
		skew.Store(int64(orchestration.HandoffGrace + time.Second))
		rest, err := s.ReadToEnd(hwait)
		require.NoError(t, err)
		require.Len(t, rest, 2, "the accepted action, then the result")
		assert.Equal(t, contracts.EventActionAccepted, rest[0].Type)
		assert.Equal(t, contracts.EventCompleted, rest[1].Type)
		assert.JSONEq(t, `{"result":{"decision":"approve"}}`, string(rest[1].Payload))
	})

	t.Run("feed", func(t *testing.T) {
		t.Parallel()
		h := startHardened(t, hopts{})
		id := h.create("alice", "test.gated", nil)
		gate := h.gates.get(id)
		t.Cleanup(func() { close(gate) })
		s, _ := h.sse(nil, "alice", id, "", nil)
		require.NotNil(t, s)
		c := h.subscribe(nil, "alice", id, nil)
		_, err := s.NextEvent(hwait)
		require.NoError(t, err)
		_, err = c.NextEvent(hwait)
		require.NoError(t, err)

		h.events.failFeed()
		// Open streams end: SSE cleanly, WebSocket with 1011.
		_, err = s.ReadToEnd(hwait)
		require.NoError(t, err, "an SSE stream ends cleanly")
		_, code, _, err := c.ReadToClose(hwait)
		require.NoError(t, err)
		assert.Equal(t, websocket.CloseInternalServerErr, code)
		// New streams are refused with envelopes; polls still answer
		// (without waiting); /ready reports the instance unfit.
		_, r := h.sse(nil, "alice", id, "", nil)
		noLeak(t, r)
		e2etest.CheckEnvelope(t, r, http.StatusServiceUnavailable, bridgeerr.CodeServiceShuttingDown)
		_, pr := h.poll("alice", id, "?waitTimeoutMs=60000")
		require.Equal(t, http.StatusOK, pr.Status)
		// (The hub stops once its streams have ended, within 2 s.)
		require.Eventually(t, func() bool {
			ready := h.do(http.MethodGet, "/ready", "", "", nil)
			noLeak(t, ready)
			return ready.Status == http.StatusServiceUnavailable &&
				strings.Contains(string(ready.Body), `"streaming":{"status":"failing"`)
		}, hwait, 10*time.Millisecond)
	})
}

// TestExecutorFaultsEndToEnd: a handler that panics, one that hangs past
// its cancellation and one whose goroutine emits after the terminal event
// are seen by clients as one clean terminal event each, with no internal
// detail; the server keeps serving meanwhile.
func TestExecutorFaultsEndToEnd(t *testing.T) {
	t.Parallel()
	hang := &gates{m: map[string]chan string{}}
	late := make(chan error, 1)
	proceed := make(chan struct{})
	handlers := map[string]orchestration.Handler{
		"fault.panic": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			if err := task.Progress(ctx, 50, "half", ""); err != nil {
				return nil, err
			}
			panic("secret panic text: db password hunter2")
		},
		"fault.hang": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			<-hang.get(task.Task().TaskID) // ignores ctx
			return map[string]bool{"finished": true}, nil
		},
		"fault.late": func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			go func() {
				<-proceed
				late <- task.Message(context.Background(), "too late", contracts.LevelInfo)
			}()
			return map[string]int{"answer": 42}, nil
		},
		"fault.unencodable": func(context.Context, *orchestration.TaskContext) (any, error) {
			return map[string]any{"ch": make(chan int)}, nil
		},
	}
	h := startHardened(t, hopts{handlers: handlers, bridge: func(cfg *fiberbridge.Config) {
		cfg.Stream.HeartbeatInterval = 50 * time.Millisecond
	}})
	terminalOf := func(t *testing.T, taskID string) (contracts.TaskEvent, contracts.Payload) {
		t.Helper()
		s, r := h.with(t).sse(nil, "alice", taskID, "", nil)
		require.NotNil(t, s, "%d %s", r.Status, r.Body)
		evs, err := s.ReadToEnd(hwait)
		require.NoError(t, err)
		require.True(t, isTerminal(evs))
		for _, ev := range evs[:len(evs)-1] {
			require.False(t, ev.Type.IsTerminal(), "one terminal event, last")
		}
		for _, ev := range evs {
			assert.NotContains(t, string(ev.Payload), "secret")
			assert.NotContains(t, string(ev.Payload), "hunter2")
		}
		last := evs[len(evs)-1]
		p, err := contracts.DecodePayload(&last)
		require.NoError(t, err)
		return last, p
	}

	t.Run("panic", func(t *testing.T) {
		id := h.with(t).create("alice", "fault.panic", nil)
		ev, p := terminalOf(t, id)
		require.Equal(t, contracts.EventFailed, ev.Type)
		assert.Equal(t, orchestration.CodeTaskPanic, p.(contracts.FailedPayload).Code)
		h.with(t).healthy()
	})
	t.Run("unencodable result", func(t *testing.T) {
		id := h.with(t).create("alice", "fault.unencodable", nil)
		ev, p := terminalOf(t, id)
		require.Equal(t, contracts.EventFailed, ev.Type)
		assert.Equal(t, orchestration.CodeInvalidResult, p.(contracts.FailedPayload).Code)
	})
	t.Run("hangs past cancellation", func(t *testing.T) {
		hh := h.with(t)
		id := hh.create("alice", "fault.hang", nil)
		s, _ := hh.sse(nil, "alice", id, "", nil)
		require.NotNil(t, s)
		c := hh.subscribe(nil, "alice", id, nil)
		ev, err := s.NextEvent(hwait)
		require.NoError(t, err)
		require.Equal(t, contracts.EventStarted, ev.Type)
		r := hh.do(http.MethodPost, "/api/v1/tasks/"+id+"/cancel", "alice", "", nil)
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		// The handler ignores its context: no terminal event yet, the
		// streams stay open with heartbeats, other tasks run.
		for range 3 {
			m, err := s.Next(hwait)
			require.NoError(t, err)
			if !m.Comment {
				f, err := frames.Decode(m.Data)
				require.NoError(t, err)
				require.NotNil(t, f.Heartbeat, "only heartbeats while the handler hangs: %s", m.Data)
			}
		}
		for {
			r, err := c.Read(hwait)
			require.NoError(t, err)
			require.False(t, r.Closed)
			if r.Frame.Heartbeat != nil {
				break
			}
			require.Equal(t, contracts.EventStarted, r.Frame.Event.Type)
		}
		hh.healthy()
		// When it finally returns, cancellation wins: one TASK_CANCELLED.
		close(hang.get(id))
		rest, err := s.ReadToEnd(hwait)
		require.NoError(t, err)
		require.Len(t, rest, 1)
		assert.Equal(t, contracts.EventCancelled, rest[0].Type)
		wsRest, code, _, err := c.ReadToClose(hwait)
		require.NoError(t, err)
		assert.Equal(t, websocket.CloseNormalClosure, code)
		require.Equal(t, contracts.EventCancelled, wsRest[len(wsRest)-1].Type)
	})
	t.Run("emits after terminal", func(t *testing.T) {
		hh := h.with(t)
		id := hh.create("alice", "fault.late", nil)
		ev, _ := terminalOf(t, id)
		require.Equal(t, contracts.EventCompleted, ev.Type)
		close(proceed)
		err := recv(t, late, "the late emit's error")
		require.ErrorIs(t, err, contracts.ErrTerminal)
		var be *bridgeerr.Error
		require.ErrorAs(t, err, &be)
		assert.Equal(t, bridgeerr.CodeTaskAlreadyTerminal, be.Code)
		all := hh.allEvents("alice", id)
		assert.Equal(t, ev.EventID, all[len(all)-1].EventID, "nothing after the terminal event")
		// A client resuming at the terminal event is told to stop.
		s, r := hh.sse(nil, "alice", id, "", http.Header{"Last-Event-Id": {ev.EventID.String()}})
		assert.Nil(t, s)
		assert.Equal(t, http.StatusNoContent, r.Status)
	})
}

// TestShutdownWithThousandsOfStreams: Shutdown with 1,000 SSE and 1,000
// WebSocket streams open and 200 long-polls waiting ends them all and
// returns nil: the task never ends and the long-polls would wait 60 s, so
// Shutdown returning before its 30 s deadline (a hang guard, not a speed
// requirement) shows that it ended them rather than waiting for them.
// Every SSE client sees a clean end after complete frames, every
// WebSocket a 1001 close, every long-poll its answer.
func TestShutdownWithThousandsOfStreams(t *testing.T) {
	t.Parallel()
	const perTransport, polls = 1000, 200
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) { cfg.MaxStreamsPerSubject = -1 }})
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })
	first, _ := h.poll("alice", id, "?waitTimeoutMs=10000")
	require.NotEmpty(t, first.Events)
	cursor := first.Events[len(first.Events)-1].EventID.String()

	sses := make([]*e2etest.SSE, perTransport)
	wss := make([]*e2etest.WS, perTransport)
	var wg sync.WaitGroup
	errs := make(chan error, 2*perTransport+polls)
	sem := make(chan struct{}, 32)
	for i := range perTransport {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			header := http.Header{"Authorization": {"Bearer alice"}}
			s, r, err := e2etest.OpenSSE(nil, h.srv.Addr, "/api/v1/tasks/"+id+"/events/stream", header, hwait)
			if err == nil && s == nil {
				err = fmt.Errorf("SSE %d: %d %s", i, r.Status, r.Body)
			}
			if err == nil {
				_, err = s.NextEvent(hwait)
			}
			if err != nil {
				errs <- err
				return
			}
			s.Bulk = true
			sses[i] = s
			c, _, err := e2etest.DialWS(nil, h.ws, header, hwait)
			if err == nil {
				c.Bulk = true
			}
			if err == nil {
				err = c.Subscribe(id, nil)
			}
			if err == nil {
				_, err = c.Confirm(hwait)
			}
			if err == nil {
				_, err = c.NextEvent(hwait)
			}
			if err != nil {
				errs <- fmt.Errorf("WS %d: %w", i, err)
				return
			}
			wss[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for i := range perTransport {
			_ = sses[i].Close()
			_ = wss[i].Close()
		}
	})

	pollClient := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: polls}}
	defer pollClient.CloseIdleConnections()
	readsBefore := h.events.reads.Load()
	answers := make(chan error, polls)
	for i := range polls {
		go func() {
			// Distinct page sizes: polls with the same cursor and size share
			// their reads, and each should read once here.
			r, err := e2etest.Do(pollClient, e2etest.Request{Method: http.MethodGet, Token: "alice",
				URL: h.srv.Base + "/api/v1/tasks/" + id + fmt.Sprintf("/events?waitTimeoutMs=60000&maxEvents=%d&afterEventId=%s", i+1, cursor)})
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("long-poll answered %d %s", r.Status, r.Body)
			}
			answers <- err
		}()
	}
	// Every long-poll has read the store once and waits.
	require.Eventually(t, func() bool { return h.events.reads.Load()-readsBefore >= polls }, hwait, 5*time.Millisecond)

	// Shorter than the long-polls' 60 s wait: a Shutdown that waited for
	// them instead of answering them fails with the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, h.bridge.Shutdown(ctx), "Shutdown ends every stream and long-poll")
	t.Logf("Shutdown with %d streams and %d long-polls took %v", 2*perTransport, polls, time.Since(start))

	ends := make(chan error, 2*perTransport)
	for i := range perTransport {
		go func() {
			evs, err := sses[i].ReadToEnd(hwait)
			if err == nil && len(evs) != 0 {
				err = fmt.Errorf("SSE %d: %d unexpected events", i, len(evs))
			}
			ends <- err
		}()
		go func() {
			_, code, _, err := wss[i].ReadToClose(hwait)
			if err == nil && code != websocket.CloseGoingAway {
				err = fmt.Errorf("WS %d: close %d, want 1001", i, code)
			}
			ends <- err
		}()
	}
	for range 2 * perTransport {
		require.NoError(t, <-ends)
	}
	for range polls {
		require.NoError(t, <-answers)
	}
}
