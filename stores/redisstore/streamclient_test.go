package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// This file holds the stream client of the end-to-end tests: a subscriber
// that follows one task over SSE or WebSocket like a real client. It keeps
// its cursor (the last event id it received); when a connection ends
// before the terminal event it reconnects with that cursor, either to the
// same instance after a backoff (auto mode) or to the instance the test
// names next (resumeOn). It parses the wire format itself and records
// every frame, which the test goroutine checks against the protocol
// (checkFrames), since the client runs on its own goroutine.

// Transports of a subscriber.
const (
	overSSE = "sse"
	overWS  = "ws"
)

// connection is what one connection of a subscriber saw.
type connection struct {
	target  string
	opened  time.Duration // since the subscriber started
	ended   time.Duration
	events  []string // event ids, in arrival order
	confirm *contracts.SubscriptionConfirmed
	end     string // how it ended: "eof", "close 1001 going away", "status 500 INTERNAL_ERROR", "dial: ...", ...
}

// subscriber follows one task until its terminal event or until stopped.
type subscriber struct {
	tb        testing.TB
	name      string
	transport string
	taskID    string
	auto      bool // reconnect to the same target by itself
	next      chan string

	mu       sync.Mutex
	conns    []*connection
	events   []contracts.TaskEvent
	frames   [][]byte // every frame and error body received, for checkFrames
	cursor   string
	terminal bool
	signal   chan struct{}

	cancel  context.CancelFunc
	done    chan struct{}
	started time.Time
}

// subscribe starts a subscriber of taskID on target (host:port). With
// auto, it reconnects to target by itself after a connection ends (backoff
// 20 ms doubling to 320 ms); without, it waits for resumeOn. Cleanup stops
// it.
func subscribe(tb testing.TB, name, transport, taskID, target string, auto bool) *subscriber {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{
		tb: tb, name: name, transport: transport, taskID: taskID, auto: auto,
		next: make(chan string, 1), signal: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
		started: time.Now(),
	}
	go s.run(ctx, target)
	tb.Cleanup(s.stop)
	return s
}

// stop ends the subscriber and waits for its goroutine.
func (s *subscriber) stop() {
	s.cancel()
	<-s.done
}

// resumeOn tells a subscriber without auto where to reconnect.
func (s *subscriber) resumeOn(target string) { s.next <- target }

func (s *subscriber) run(ctx context.Context, target string) {
	defer close(s.done)
	backoff := 20 * time.Millisecond
	for {
		c := &connection{target: target, opened: time.Since(s.started)}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		cursor := s.cursor
		s.mu.Unlock()
		var end string
		if s.transport == overSSE {
			end = s.followSSE(ctx, c, cursor)
		} else {
			end = s.followWS(ctx, c, cursor)
		}
		s.mu.Lock()
		c.end, c.ended = end, time.Since(s.started)
		terminal := s.terminal
		s.mu.Unlock()
		s.notify()
		if terminal || ctx.Err() != nil || permanent(end) {
			return
		}
		if !s.auto {
			select {
			case target = <-s.next:
				continue
			case <-ctx.Done():
				return
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, 320*time.Millisecond)
	}
}

// permanent reports whether a connection's end tells a client to stop
// (task not found, refused credentials or frame, the end before a cursor
// at the terminal event) rather than to reconnect with its cursor.
func permanent(end string) bool {
	return strings.HasPrefix(end, "status 4") || end == "status 204" || strings.HasPrefix(end, "close 1008 ")
}

func (s *subscriber) notify() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// frame records one frame and, for an event, moves the cursor. It returns
// the decoded frame, or an error for a frame the strict decoder refuses.
func (s *subscriber) frame(c *connection, data []byte) (frames.Frame, error) {
	data = bytes.Clone(data)
	f, err := frames.Decode(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, data)
	if err != nil {
		return f, err
	}
	switch {
	case f.Event != nil:
		s.events = append(s.events, *f.Event)
		c.events = append(c.events, f.Event.EventID.String())
		s.cursor = f.Event.EventID.String()
		s.terminal = s.terminal || f.Event.Type.IsTerminal()
	case f.Confirmation != nil:
		c.confirm = f.Confirmation
	}
	if f.Event != nil {
		s.notify()
	}
	return f, nil
}

// followSSE runs one SSE connection (internal/e2etest's reader) and
// returns how it ended.
func (s *subscriber) followSSE(ctx context.Context, c *connection, cursor string) string {
	header := http.Header{"Authorization": {"Bearer " + owner}}
	if cursor != "" {
		header.Set("Last-Event-ID", cursor)
	}
	sse, resp, err := e2etest.OpenSSE(nil, c.target, "/api/v1/tasks/"+s.taskID+"/events/stream", header, 5*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	if sse == nil {
		return s.refused(resp)
	}
	defer sse.Close()
	stop := context.AfterFunc(ctx, func() { _ = sse.Close() })
	defer stop()
	for {
		m, err := sse.Next(streamReadTimeout)
		switch {
		case errors.Is(err, io.EOF):
			return "eof"
		case err != nil:
			return "read: " + err.Error()
		case m.Comment:
			continue
		}
		f, err := s.frame(c, m.Data)
		if err != nil {
			return "invalid frame: " + err.Error()
		}
		if f.Event != nil && f.Event.EventID.String() != m.ID {
			return fmt.Sprintf("id: line %q differs from eventId %s", m.ID, f.Event.EventID)
		}
	}
}

// streamReadTimeout bounds one read of a stream: far longer than any
// heartbeat interval of these tests, so only a hung server reaches it.
const streamReadTimeout = time.Minute

// refused records an answer other than a stream and describes it.
func (s *subscriber) refused(resp e2etest.Response) string {
	if resp.Status == http.StatusNoContent {
		return "status 204"
	}
	s.mu.Lock()
	s.frames = append(s.frames, resp.Body) // checked as an error envelope
	s.mu.Unlock()
	var env struct{ Code string }
	_ = json.Unmarshal(resp.Body, &env)
	return "status " + strconv.Itoa(resp.Status) + " " + env.Code
}

// followWS runs one WebSocket connection (internal/e2etest's client) and
// returns how it ended.
func (s *subscriber) followWS(ctx context.Context, c *connection, cursor string) string {
	ws, resp, err := e2etest.DialWS(nil, "ws://"+c.target+"/api/v1/tasks/ws",
		http.Header{"Authorization": {"Bearer " + owner}}, 5*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	if ws == nil {
		return s.refused(resp)
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	defer stop()
	var last *string
	if cursor != "" {
		last = &cursor
	}
	if err := ws.Subscribe(s.taskID, last); err != nil {
		return "write: " + err.Error()
	}
	for {
		_ = ws.Conn.SetReadDeadline(time.Now().Add(streamReadTimeout))
		_, msg, err := ws.Conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return "close " + strconv.Itoa(ce.Code) + " " + ce.Text
			}
			return "read: " + err.Error()
		}
		if _, err := s.frame(c, msg); err != nil {
			return "invalid frame: " + err.Error()
		}
	}
}

// waitFor waits until cond holds (checked after every event and every end
// of a connection) and fails the test when ctx ends first.
func (s *subscriber) waitFor(ctx context.Context, what string, cond func() bool) {
	s.tb.Helper()
	for !cond() {
		select {
		case <-s.signal:
		case <-ctx.Done():
			require.Failf(s.tb, "subscriber", "%s: %s not seen before the deadline; connections: %s", s.name, what, s.describe())
		}
	}
}

// waitEvents waits until the subscriber has received n events.
func (s *subscriber) waitEvents(ctx context.Context, n int) {
	s.tb.Helper()
	s.waitFor(ctx, strconv.Itoa(n)+" events", func() bool { return len(s.ids()) >= n })
}

// waitEnded waits until the current connection ended.
func (s *subscriber) waitEnded(ctx context.Context) *connection {
	s.tb.Helper()
	var last *connection
	s.waitFor(ctx, "the end of the connection", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		last = s.conns[len(s.conns)-1]
		return last.end != ""
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return &connection{target: last.target, events: append([]string(nil), last.events...), confirm: last.confirm, end: last.end}
}

// waitDone waits until the subscriber received the terminal event and its
// last connection ended.
func (s *subscriber) waitDone(ctx context.Context) {
	s.tb.Helper()
	s.waitFor(ctx, "the terminal event and the end of the stream", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.terminal && s.conns[len(s.conns)-1].end != ""
	})
}

// ids returns the received event ids in order.
func (s *subscriber) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.events))
	for i, ev := range s.events {
		out[i] = ev.EventID.String()
	}
	return out
}

// connections returns a copy of the connection records.
func (s *subscriber) connections() []connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]connection, len(s.conns))
	for i, c := range s.conns {
		out[i] = *c
		out[i].events = append([]string(nil), c.events...)
	}
	return out
}

func (s *subscriber) describe() string {
	var b bytes.Buffer
	for _, c := range s.connections() {
		fmt.Fprintf(&b, "[%s %v-%v: %d events, end %q] ", c.target, c.opened.Round(time.Millisecond),
			c.ended.Round(time.Millisecond), len(c.events), c.end)
	}
	return b.String()
}

// checkFrames checks every recorded frame against the protocol on the
// test goroutine: stream frames with conformance.CheckFrame, error bodies
// as envelopes.
func (s *subscriber) checkFrames(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	frames := append([][]byte(nil), s.frames...)
	s.mu.Unlock()
	for _, f := range frames {
		if bytes.Contains(f, []byte(`"timestamp"`)) && bytes.Contains(f, []byte(`"code"`)) {
			conformance.CheckBody(tb, conformance.ErrorResponse, f)
			continue
		}
		conformance.CheckFrame(tb, f)
	}
}

// assertExactly checks that the subscriber received exactly want, in
// order: no gap, no duplicate.
func (s *subscriber) assertExactly(tb testing.TB, want []string) {
	tb.Helper()
	assert.Equal(tb, want, s.ids(), "%s: events received over all connections (%s)", s.name, s.describe())
}
