package streaming_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// bulkWait bounds one read in tests that move many frames on 2 cores under
// the race detector.
const bulkWait = 60 * time.Second

// TestFanoutThousandsExactlyOnce: 1,000 SSE and 1,000 WebSocket subscribers
// of one task receive every event exactly once and in order, the store is
// read once per batch, not once per subscriber, and Shutdown ends all of
// them cleanly (SSE final chunk, WebSocket 1001) and returns nil: the task
// never ends, so the streams end only because Shutdown ends them (its 30 s
// deadline is a hang guard, not a speed requirement).
func TestFanoutThousandsExactlyOnce(t *testing.T) {
	const (
		perTransport = 1000
		liveEvents   = 20
	)
	metrics := newCounterSink()
	e := newEnv(t, streaming.Options{QueueSize: 64, Metrics: metrics})
	first := e.append("fan", contracts.Started(""))

	sse := make([]*sseStream, perTransport)
	ws := make([]*wsClient, perTransport)
	require.NoError(t, parallel(perTransport, 64, func(i int) error {
		sse[i] = dialSSE(t, e.addr, "/sse/fan", nil)
		sse[i].bulk = true
		ev, err := sse[i].nextEvent(wait)
		if err != nil || ev.EventID != first[0].EventID {
			return fmt.Errorf("sse %d replay: %v", i, err)
		}
		ws[i] = dialWS(t, e.addr)
		ws[i].bulk = true
		ws[i].subscribe("fan", nil)
		if f, err := ws[i].read(wait); err != nil || f.Confirmation == nil {
			return fmt.Errorf("ws %d confirm: %v", i, err)
		}
		if ev, err := ws[i].nextEvent(bulkWait); err != nil || ev.EventID != first[0].EventID {
			return fmt.Errorf("ws %d replay: %v", i, err)
		}
		return nil
	}))
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("fan") == 2*perTransport }, wait, time.Millisecond)

	readsBefore := e.store.reads.Load()
	fanoutBefore := metrics.get(observe.MetricStoreReads, "fanout")
	var want []contracts.TaskEvent
	for i := range liveEvents {
		want = append(want, e.append("fan", progress(t, float64(i)))...)
	}

	// Every client reads every event, reports it, then waits for the end
	// of its stream, which Shutdown brings.
	var gotAll sync.WaitGroup
	gotAll.Add(2 * perTransport)
	ended := make(chan error, 1)
	go func() {
		ended <- parallel(2*perTransport, 0, func(k int) error {
			i := k / 2
			if k%2 == 0 {
				for j, w := range want {
					ev, err := sse[i].nextEvent(bulkWait)
					if err != nil {
						gotAll.Done()
						return fmt.Errorf("sse %d event %d: %w", i, j, err)
					}
					if ev.EventID != w.EventID {
						gotAll.Done()
						return fmt.Errorf("sse %d event %d: got %s want %s", i, j, ev.EventID, w.EventID)
					}
				}
				gotAll.Done()
				if err := sse[i].endErr(bulkWait); err != nil {
					return fmt.Errorf("sse %d: want a clean end: %w", i, err)
				}
				return nil
			}
			for j, w := range want {
				ev, err := ws[i].nextEvent(bulkWait)
				if err != nil {
					gotAll.Done()
					return fmt.Errorf("ws %d event %d: %w", i, j, err)
				}
				if ev.EventID != w.EventID {
					gotAll.Done()
					return fmt.Errorf("ws %d event %d: got %s want %s", i, j, ev.EventID, w.EventID)
				}
			}
			gotAll.Done()
			if err := ws[i].closeErr(bulkWait, websocket.CloseGoingAway); err != nil {
				return fmt.Errorf("ws %d: %w", i, err)
			}
			return nil
		})
	}()
	gotAll.Wait()

	reads := e.store.reads.Load() - readsBefore
	fanout := metrics.get(observe.MetricStoreReads, "fanout") - fanoutBefore
	t.Logf("%d events to %d subscribers: %d store reads (%v fan-out)", liveEvents, 2*perTransport, reads, fanout)
	assert.LessOrEqual(t, reads, int64(liveEvents), "at most one read per appended event, however many subscribers")
	assert.Equal(t, float64(reads), fanout, "no catch-up or replay reads with a roomy queue")
	assert.Equal(t, float64(0), metrics.get(observe.MetricSlowSubscribers, "sse")+metrics.get(observe.MetricSlowSubscribers, "ws"))

	// Shutdown with 2,000 open streams ends them all, cleanly: had one
	// been left, it would still be open at the deadline (ctx.Err()).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.hub.Shutdown(ctx), "Shutdown must end all 2,000 streams")
	require.NoError(t, <-ended)
	// A stream counts its events after their write returned, which may be
	// after its client read them; each stream's last write (the end) has
	// happened now, and with it the count of every event before it.
	assert.Equal(t, float64(perTransport*(liveEvents+1)), metrics.get(observe.MetricEventsDelivered, "sse"))
	assert.Equal(t, float64(perTransport*(liveEvents+1)), metrics.get(observe.MetricEventsDelivered, "ws"))
}

// stalledSSE opens an SSE stream that the test does not read (for a while).
func stalledSSE(t testing.TB, addr, path string) *sseStream {
	t.Helper()
	s := dialSSEWith(t, slowReaderDialer(), addr, path, nil)
	s.bulk = true
	return s
}

func bigMessage(t testing.TB, i, size int) contracts.EventDraft {
	t.Helper()
	return message(t, fmt.Sprintf("%06d %s", i, strings.Repeat("x", size)))
}

// TestStalledSubscriberCatchesUp: a subscriber that stops reading does not
// hold back the others; when it reads again it is caught up from the store
// without a gap or a duplicate.
func TestStalledSubscriberCatchesUp(t *testing.T) {
	t.Parallel()
	metrics := newCounterSink()
	// One event per batch and a short queue: the stalled writers overflow
	// as soon as their sockets are full.
	e := newEnv(t, streaming.Options{QueueSize: 2, LiveBatchSize: 1, WriteTimeout: 30 * time.Second, Metrics: metrics})
	start := e.append("stall", contracts.Started(""))
	stalled := stalledSSE(t, e.addr, "/sse/stall")
	stalledWS := dialWSWith(t, slowReaderDialer(), e.addr)
	stalledWS.bulk = true
	stalledWS.subscribe("stall", nil)

	const healthy = 2
	readers := make([]*sseStream, healthy)
	for i := range readers {
		readers[i] = dialSSE(t, e.addr, "/sse/stall", nil)
		readers[i].bulk = true
		_, err := readers[i].nextEvent(wait)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("stall") == healthy+2 }, wait, time.Millisecond)

	// About 1 MB: far more than the socket buffers of the stalled clients.
	const n = 500
	want := append([]contracts.TaskEvent(nil), start...)
	done := make(chan error, 1)
	go func() {
		done <- parallel(healthy, 0, func(i int) error {
			for j := 1; j <= n; j++ {
				if _, err := readers[i].nextEvent(wait); err != nil {
					return fmt.Errorf("healthy reader %d, event %d: %w", i, j, err)
				}
			}
			return nil
		})
	}()
	for i := range n {
		want = append(want, e.append("stall", bigMessage(t, i, 2000))...)
	}
	require.NoError(t, <-done, "healthy subscribers get every event while two others are stalled")

	assert.GreaterOrEqual(t, metrics.get(observe.MetricSlowSubscribers, "sse")+metrics.get(observe.MetricSlowSubscribers, "ws"), float64(2))
	want = append(want, e.append("stall", completed(t))...)

	// The stalled clients resume: every event, once, in order, then the end.
	for j, w := range want {
		ev, err := stalled.nextEvent(wait)
		require.NoError(t, err, "stalled SSE event %d", j)
		require.Equal(t, w.EventID, ev.EventID, "stalled SSE event %d", j)
	}
	stalled.expectEnd(wait)
	stalledWS.confirmation(wait)
	for j, w := range want {
		ev, err := stalledWS.nextEvent(wait)
		require.NoError(t, err, "stalled WS event %d", j)
		require.Equal(t, w.EventID, ev.EventID, "stalled WS event %d", j)
	}
	code, _ := stalledWS.expectClose(wait)
	assert.Equal(t, websocket.CloseNormalClosure, code)
	assert.Greater(t, metrics.get(observe.MetricStoreReads, "catchup"), float64(0))
}

// TestStalledSubscribersBoundedMemory: 100 stalled subscribers on a busy
// task do not make the heap grow with the events they miss.
func TestStalledSubscribersBoundedMemory(t *testing.T) {
	metrics := newCounterSink()
	e := newEnv(t, streaming.Options{QueueSize: 4, WriteTimeout: 30 * time.Second, Metrics: metrics})
	e.append("mem", contracts.Started(""))
	const stalledN = 100
	all := make([]*sseStream, stalledN)
	require.NoError(t, parallel(stalledN, 16, func(i int) error {
		all[i] = stalledSSE(t, e.addr, "/sse/mem")
		return nil
	}))
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("mem") == stalledN }, wait, time.Millisecond)

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// 6 MB per subscriber: far more than its socket buffers absorb.
	const n, size = 3000, 2000
	warm := n / 10
	for i := range warm {
		e.append("mem", bigMessage(t, i, size))
	}
	before := heap()
	for i := warm; i < n; i++ {
		e.append("mem", bigMessage(t, i, size))
	}
	after := heap()
	growth := int64(after) - int64(before)
	stored := int64(n-warm) * size
	t.Logf("heap growth %d KiB for %d KiB of stored events and %d stalled subscribers", growth>>10, stored>>10, stalledN)
	// The store keeps the events (stored); per-subscriber copies would be
	// stalledN times that. Allow the store plus generous slack.
	assert.Less(t, growth, 3*stored+32<<20)
	assert.Equal(t, float64(stalledN), metrics.get(observe.MetricSlowSubscribers, "sse"), "every stalled subscriber fell back to catch-up")
	for _, s := range all {
		_ = s.conn.Close()
	}
}

// parallel runs fn(0..n-1) on at most limit goroutines (0: n) and returns
// the first error.
func parallel(n, limit int, fn func(i int) error) error {
	if limit <= 0 || limit > n {
		limit = n
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	wg.Add(limit)
	for range limit {
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}
