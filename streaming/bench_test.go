package streaming

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// discardConn is a net.Conn that accepts every write and counts them.
type discardConn struct {
	writes atomic.Int64
	bytes  atomic.Int64
}

func (c *discardConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	c.bytes.Add(int64(len(b)))
	return len(b), nil
}
func (*discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (*discardConn) Close() error                     { return nil }
func (*discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (*discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (*discardConn) SetDeadline(time.Time) error      { return nil }
func (*discardConn) SetReadDeadline(time.Time) error  { return nil }
func (*discardConn) SetWriteDeadline(time.Time) error { return nil }
func (c *discardConn) waitWrites(n int64, tb testing.TB) {
	deadline := time.Now().Add(10 * time.Second)
	for c.writes.Load() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("writes: %d, want %d", c.writes.Load(), n)
		}
		runtime.Gosched()
	}
}

func sampleEvent(id contracts.EventID) contracts.TaskEvent {
	d, _ := contracts.Progress(42.5, "render", "rendering page 12 of 40")
	return contracts.TaskEvent{
		Type: d.Type(), TaskID: "3f2c9a64-8d0e-4a8f-9a51-0c6b7f0f1e21", EventID: id,
		CreatedAt: time.Now(), Payload: d.Payload(),
	}
}

func BenchmarkAppendSSEEvent(b *testing.B) {
	ev := sampleEvent(contracts.EventID{Ms: 1732000000000, Seq: 7})
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendSSEEvent(buf[:0], &ev)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendWSEvent(b *testing.B) {
	ev := sampleEvent(contracts.EventID{Ms: 1732000000000, Seq: 7})
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendWSEvent(buf[:0], &ev)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkBatchEncode is the once-per-batch cost of the hub: frames for
// both transports of a batch read from the store.
func BenchmarkBatchEncode(b *testing.B) {
	for _, n := range []int{1, 100} {
		events := make([]contracts.TaskEvent, n)
		for i := range events {
			events[i] = sampleEvent(contracts.EventID{Ms: 1732000000000, Seq: uint64(i + 1)})
		}
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				newBatch(events).encode(&allFormats, bothFormats)
			}
		})
	}
}

// allFormats and bothFormats encode a batch for every wire format.
var (
	allFormats  = [numFormats]wireFormat{formatSSE: sseWire{}, formatWS: wsWire{}}
	bothFormats = [numFormats]bool{true, true}
)

// newTestConn is a started-to-be connection on nc following taskID, set
// up as ServeSSE or AttachWebSocket would.
func newTestConn(h *Hub, tr observe.Transport, taskID string, nc net.Conn) (*conn, *subscriber) {
	c := h.newConn(formatSSE)
	if tr == observe.TransportWS {
		c = h.newWSConn()
	}
	c.state = connReady
	c.attach(nc)
	s := newSubscriber(c, taskID, contracts.EventID{}, h.cfg.queueSize)
	c.addSub(s)
	return c, s
}

// fanoutRig is a hub with n live subscribers writing to discard conns.
type fanoutRig struct {
	hub      *Hub
	task     *taskState
	discards []*discardConn
	conns    []*conn
	next     uint64 // next event id's Seq
	sent     int64  // batches delivered
}

func newFanoutRig(tb testing.TB, n int, transport observe.Transport) *fanoutRig {
	tb.Helper()
	h, err := NewHub(memstore.NewEventStore(memstore.Options{}), Options{HeartbeatInterval: -1, WSPingInterval: -1, QueueSize: 64})
	if err != nil {
		tb.Fatal(err)
	}
	r := &fanoutRig{hub: h, next: 1}
	for range n {
		d := &discardConn{}
		c, _ := newTestConn(h, transport, "bench", d)
		c.start(false)
		r.discards = append(r.discards, d)
		r.conns = append(r.conns, c)
	}
	h.mu.RLock()
	r.task = h.tasks["bench"]
	h.mu.RUnlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.task.mu.Lock()
		live := r.task.live
		r.task.mu.Unlock()
		if live == n {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("live subscribers: %d, want %d", live, n)
		}
		runtime.Gosched()
	}
	tb.Cleanup(func() {
		_ = h.Shutdown(context.Background())
		for _, c := range r.conns {
			c.waitIdle()
		}
		// The rig never runs the hub (Run closes the writer pool when it
		// returns): close it, or its idle writers outlive the test by up
		// to writerIdle and goleak counts them when this test runs last.
		h.writers.close()
	})
	return r
}

func (r *fanoutRig) batch() *batch {
	ev := sampleEvent(contracts.EventID{Ms: 1732000000000, Seq: r.next})
	r.next++
	return newBatch([]contracts.TaskEvent{ev})
}

// deliver fans b out as the hub's pass does and waits until every
// subscriber has written it.
func (r *fanoutRig) deliver(tb testing.TB, b *batch, starts []*conn) []*conn {
	r.task.mu.Lock()
	starts = r.task.offerLocked(&r.hub.formats, b, starts)
	r.task.mu.Unlock()
	starts = r.hub.startWriters(starts)
	r.sent++
	for _, d := range r.discards {
		d.waitWrites(r.sent, tb)
	}
	return starts
}

// BenchmarkFanout measures one event fanned out to n subscribers, through
// their writers, to discard connections. allocs/op divided by subs is the
// per-subscriber allocation count (0).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		for _, tr := range []observe.Transport{observe.TransportSSE, observe.TransportWS} {
			b.Run(fmt.Sprintf("%s/subs=%d", tr, n), func(b *testing.B) {
				r := newFanoutRig(b, n, tr)
				starts := make([]*conn, 0, n)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					starts = r.deliver(b, r.batch(), starts)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			})
		}
	}
}

// BenchmarkWrite compares one write per drain (the runtime) with one write
// per frame, on a loopback TCP connection with a reader draining it: the
// syscall per frame, not encoding, bounds fan-out.
func BenchmarkWrite(b *testing.B) {
	for _, tr := range []observe.Transport{observe.TransportSSE, observe.TransportWS} {
		for _, frames := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/frames=%d/coalesced", tr, frames), func(b *testing.B) {
				benchWrite(b, tr, frames, true)
			})
			b.Run(fmt.Sprintf("%s/frames=%d/per-frame", tr, frames), func(b *testing.B) {
				benchWrite(b, tr, frames, false)
			})
		}
	}
}

func benchWrite(b *testing.B, tr observe.Transport, frames int, coalesce bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHub(memstore.NewEventStore(memstore.Options{}), Options{})
	if err != nil {
		b.Fatal(err)
	}
	c, s := newTestConn(h, tr, "bench", conn)
	c.chunked = tr == observe.TransportSSE
	events := make([]contracts.TaskEvent, frames)
	for j := range events {
		events[j] = sampleEvent(contracts.EventID{})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range events {
			events[j].EventID = contracts.EventID{Ms: 1732000000000, Seq: uint64(i*frames + j + 1)}
		}
		bt := newBatch(events)
		bt.encode(&h.formats, bothFormats)
		var w out
		w.init(c, nil)
		if coalesce {
			w.batch(s, bt)
		} else {
			for k := range bt.frames {
				f := &bt.frames[k]
				w.frame(s, f.enc[s.format()], f.id, f.created, false)
				w.flush(false)
			}
		}
		w.flush(false)
		w.release()
		if w.err != nil {
			b.Fatal(w.err)
		}
	}
	b.StopTimer()
	_ = conn.Close()
	<-done
}
