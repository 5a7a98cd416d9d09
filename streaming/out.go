package streaming

import (
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// out builds one coalesced write of a connection in a pooled buffer.
type out struct {
	c      *conn
	bp     *[]byte
	buf    []byte
	lead   []byte // written before the first chunk (SSE response head)
	start  int    // first byte of payload: room for lead and chunk-size line
	events int
	first  time.Time
	data   bool // the write carries data (resets the idle clock)
	final  bool // the stream ends with this write (its terminal event)
	// multi: the connection follows several tasks, so a task's end ends
	// its subscriber only (subEnded), and subsDone says one did.
	multi    bool
	subsDone bool
	err      error
}

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 16<<10)
	return &b
}}

func (w *out) init(c *conn, lead []byte) {
	w.c = c
	w.bp = bufPool.Get().(*[]byte)
	w.lead = lead
	w.start = len(lead)
	if c.chunked {
		w.start += chunkRoom
	}
	w.buf = append((*w.bp)[:0], make([]byte, w.start)...)
	w.data = len(lead) > 0
}

func (w *out) release() {
	if w.bp == nil {
		return
	}
	if cap(w.buf) <= 4*maxWrite {
		*w.bp = w.buf[:0]
		bufPool.Put(w.bp)
	}
	w.bp, w.buf = nil, nil
}

func (w *out) add(b []byte, data bool) {
	if len(b) == 0 {
		return
	}
	w.buf = append(w.buf, b...)
	w.data = w.data || data
}

// control adds a heartbeat for every subscriber (when ctl asks for one)
// and the pings and pongs ctl asks for.
func (w *out) control(ctl uint8, pong []byte) {
	if ctl == 0 {
		return
	}
	c := w.c
	if ctl&ctlBeat != 0 {
		h := c.hub
		tr := transportOf[c.format]
		for _, s := range c.subs {
			w.buf = c.wire().appendHeartbeat(w.buf, s.taskID)
			w.data = true
			h.cfg.metrics.IncCounter(observe.MetricHeartbeats, 1, c.tags()...)
			h.cfg.diag.OnHeartbeat(tr, s.taskID)
			h.cfg.log.Debug("heartbeat", observe.Entry{TaskID: s.taskID, Transport: tr})
		}
	}
	w.buf = c.wire().appendControl(w.buf, ctl, pong)
}

// batch appends the frames of b that are after s's cursor.
func (w *out) batch(s *subscriber, b *batch) {
	for i := range b.frames {
		f := &b.frames[i]
		if !s.cursor.Less(f.id) {
			continue
		}
		w.frame(s, f.enc[s.format()], f.id, f.created, f.terminal)
		if w.final || s.done || w.err != nil {
			return
		}
	}
}

// event encodes ev (a catch-up or replay event of s) straight into the
// buffer.
func (w *out) event(s *subscriber, ev *contracts.TaskEvent) {
	if len(w.buf) > maxWrite {
		w.flush(false)
		if w.err != nil {
			return
		}
	}
	w.buf = w.c.wire().appendEvent(w.buf, ev)
	w.account(s, ev.EventID, ev.CreatedAt, ev.Type.IsTerminal())
}

func (w *out) frame(s *subscriber, b []byte, id contracts.EventID, created time.Time, terminal bool) {
	if len(w.buf)+len(b) > maxWrite && len(w.buf) > w.start {
		w.flush(false)
		if w.err != nil {
			return
		}
	}
	w.buf = append(w.buf, b...)
	w.account(s, id, created, terminal)
}

func (w *out) account(s *subscriber, id contracts.EventID, created time.Time, terminal bool) {
	if w.events == 0 {
		w.first = created
	}
	w.events++
	s.delivered++
	s.cursor = id
	w.data = true
	if terminal {
		if w.multi {
			w.subEnded(s, "")
		} else {
			w.final = true
		}
	}
}

// end appends the end of the stream (for WebSocket a close frame; SSE
// ends with the final chunk in flush).
func (w *out) end(code int, reason string) {
	w.buf = w.c.wire().appendEnd(w.buf, code, reason)
}

// flush writes the buffer in one write with a deadline and reports the
// delivery. final marks the stream's last write.
func (w *out) flush(final bool) {
	c := w.c
	if w.err != nil {
		return
	}
	payload := len(w.buf) - w.start
	if payload == 0 && len(w.lead) == 0 && !(final && c.chunked) {
		return
	}
	var hdr [chunkRoom]byte
	h := hdr[:0]
	b := w.buf
	if c.chunked && payload > 0 {
		h = strconv.AppendInt(h, int64(payload), 16)
		h = append(h, '\r', '\n')
		b = append(b, '\r', '\n')
	}
	if c.chunked && final {
		b = append(b, "0\r\n\r\n"...)
	}
	from := w.start - len(h) - len(w.lead)
	copy(b[from:], w.lead)
	copy(b[from+len(w.lead):], h)
	w.buf = b
	b = b[from:]
	timeout := c.hub.cfg.writeTimeout
	c.mu.Lock()
	if c.state >= connClosing {
		c.mu.Unlock()
		w.err = errConnDead
		return
	}
	if c.state == connEnding && (timeout == 0 || timeout > finalWriteTimeout) {
		timeout = finalWriteTimeout
	}
	if timeout > 0 {
		_ = c.raw.SetWriteDeadline(time.Now().Add(timeout))
	}
	c.mu.Unlock()
	_, err := c.raw.Write(b)
	if err != nil {
		w.err = err
		return
	}
	now := time.Now()
	if w.data {
		c.lastWrite.Store(now.UnixNano())
	}
	if w.events > 0 {
		w.report(now)
	}
	w.events, w.data, w.lead = 0, false, nil
	w.buf = w.buf[:w.start]
}

// report tells the metrics, diagnostics and debug log what a successful
// write delivered, per subscriber.
func (w *out) report(now time.Time) {
	c := w.c
	h := c.hub
	tr := transportOf[c.format]
	h.cfg.metrics.IncCounter(observe.MetricEventsDelivered, float64(w.events), c.tags()...)
	h.cfg.metrics.ObserveHistogram(observe.MetricDeliveryLatency, now.Sub(w.first).Seconds(), c.tags()...)
	debug := h.cfg.log.Enabled(zapcore.DebugLevel)
	for _, s := range c.subs {
		if s.delivered == 0 {
			continue
		}
		h.cfg.diag.OnDelivery(tr, s.taskID, s.cursor, int(s.delivered))
		if debug {
			h.cfg.log.Debug("events delivered", observe.Entry{
				TaskID: s.taskID, EventID: s.cursor.String(), Transport: tr,
				Details: map[string]any{"events": s.delivered},
			})
		}
		s.delivered = 0
	}
}
