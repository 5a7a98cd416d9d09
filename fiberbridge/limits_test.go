package fiberbridge_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// This file tests each abuse limit with its default (or a small value
// where the default would make the test slow) and what the host's Fiber
// configuration must add: BodyLimit and ReadTimeout bound what fasthttp
// reads before any handler runs.

// sendBody writes head and then body to a new connection (from a
// goroutine, pausing pause between chunks of chunk bytes), reads the one
// response and reports it with the writer's error. The connection is
// closed when the response is read or the server closed it.
func sendBody(t testing.TB, addr, head string, body io.Reader, chunk int, pause time.Duration) (e2etest.Response, error, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	wrote := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		_, err := conn.Write([]byte(head))
		buf := make([]byte, chunk)
		for err == nil {
			n, rerr := body.Read(buf)
			if n > 0 {
				_, err = conn.Write(buf[:n])
			}
			if rerr != nil {
				break
			}
			if pause > 0 {
				select {
				case <-stop:
					err = errors.New("stopped")
				case <-time.After(pause):
				}
			}
		}
		wrote <- err
	}()
	_ = conn.SetReadDeadline(time.Now().Add(hwait))
	resp, rerr := e2etest.ReadResponse(conn)
	close(stop)
	_ = conn.Close()
	return resp, rerr, <-wrote
}

// TestLimitRequestBody: bodies over the limits are answered 413 with the
// envelope without being buffered whole, and a body sent slowly is cut off
// by the app's ReadTimeout instead of holding a connection forever.
func TestLimitRequestBody(t *testing.T) {
	// Not parallel: it compares the heap before and after.
	h := startHardened(t, hopts{fresh: true, app: func(cfg *fiber.Config) {
		// What SECURITY.md asks of hosts; fasthttp's own default is no
		// read timeout at all.
		cfg.ReadTimeout = time.Second
	}})
	head := func(extra string) string {
		return "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}
	const twenty = 20 << 20

	t.Run("20 MB with Content-Length: the app's BodyLimit answers before reading it", func(t *testing.T) {
		before := e2etest.LiveHeap()
		resp, err, werr := sendBody(t, h.srv.Addr, head(fmt.Sprintf("Content-Length: %d\r\n", twenty)),
			io.LimitReader(zeros{}, twenty), 64<<10, 0)
		require.NoError(t, err)
		e2etest.CheckEnvelope(t, resp, http.StatusRequestEntityTooLarge, bridgeerr.CodeInvalidRequest)
		assert.Error(t, werr, "the server closed before reading the body")
		assert.Less(t, int64(e2etest.LiveHeap())-int64(before), int64(12<<20), "the body was not buffered")
	})
	t.Run("20 MB chunked: read up to the BodyLimit, then 413", func(t *testing.T) {
		resp, err, _ := sendBody(t, h.srv.Addr, head("Transfer-Encoding: chunked\r\n"),
			&chunked{left: twenty}, 64<<10, 0)
		require.NoError(t, err)
		e2etest.CheckEnvelope(t, resp, http.StatusRequestEntityTooLarge, bridgeerr.CodeInvalidRequest)
	})
	t.Run("2 MB, over MaxBodyBytes but under the BodyLimit: the bridge's 413", func(t *testing.T) {
		body := `{"clientRequestId":"` + strings.Repeat("x", 2<<20) + `","taskType":"test.steps"}`
		r := h.with(t).do(http.MethodPost, "/api/v1/tasks", "alice", "application/json", []byte(body))
		env := e2etest.CheckEnvelope(t, r, http.StatusRequestEntityTooLarge, bridgeerr.CodeInvalidRequest)
		assert.EqualValues(t, fiberbridge.DefaultMaxBodyBytes, env.Details["maxBytes"])
	})
	// A client trickling one byte every 20 ms would take hours to send
	// these; ReadTimeout answers 408 (an envelope) after a second instead.
	for _, tc := range []struct {
		name  string
		head  string
		body  io.Reader
		chunk int
	}{
		{"a body trickled in", head("Content-Length: 2097152\r\n"), io.LimitReader(zeros{}, 2<<20), 1},
		{"a chunked body over the limit trickled in", head("Transfer-Encoding: chunked\r\n"), &chunked{left: twenty}, 16},
		{"headers trickled in", "", strings.NewReader(head("X-Slow: " + strings.Repeat("s", 2000) + "\r\n")), 1},
	} {
		t.Run(tc.name+": ReadTimeout ends it", func(t *testing.T) {
			resp, err, _ := sendBody(t, h.srv.Addr, tc.head, tc.body, tc.chunk, 20*time.Millisecond)
			require.NoError(t, err, "the server answers instead of holding the connection")
			e2etest.CheckEnvelope(t, resp, http.StatusRequestTimeout, bridgeerr.CodeInvalidRequest)
		})
	}
	h.healthy()
}

// zeros is an endless reader of '0' bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

// chunked produces a chunked transfer-encoded body of left payload bytes.
type chunked struct {
	left int
	buf  bytes.Buffer
	done bool
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.buf.Len() == 0 {
		switch {
		case c.done:
			return 0, io.EOF
		case c.left == 0:
			c.buf.WriteString("0\r\n\r\n")
			c.done = true
		default:
			n := min(c.left, 4096)
			c.left -= n
			fmt.Fprintf(&c.buf, "%x\r\n%s\r\n", n, strings.Repeat("0", n))
		}
	}
	return c.buf.Read(p)
}

// TestLimitUploads: with the defaults, a file of MaxUploadBytes (10 MiB)
// is accepted and one byte more is 413; ten files are accepted and eleven
// are 400. The host raised BodyLimit to let such bodies in at all.
func TestLimitUploads(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{app: func(cfg *fiber.Config) { cfg.BodyLimit = 32 << 20 }})
	fields := func() map[string]string {
		return map[string]string{"clientRequestId": contracts.NewID(), "taskType": "test.steps", "input": `{"steps":1}`}
	}
	big := func(n int) formFile {
		return formFile{field: "attachment", filename: "big.bin", contentType: "application/octet-stream", content: bytes.Repeat([]byte{7}, n)}
	}
	ct, body := multipartBody(t, fields(), big(fiberbridge.DefaultMaxUploadBytes))
	r := h.do(http.MethodPost, "/api/v1/tasks", "alice", ct, body)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))

	ct, body = multipartBody(t, fields(), big(fiberbridge.DefaultMaxUploadBytes+1))
	env := e2etest.CheckEnvelope(t, h.do(http.MethodPost, "/api/v1/tasks", "alice", ct, body),
		http.StatusRequestEntityTooLarge, bridgeerr.CodeUploadValidation)
	assert.EqualValues(t, fiberbridge.DefaultMaxUploadBytes, env.Details["maxBytes"])

	files := func(n int) []formFile {
		out := make([]formFile, n)
		for i := range out {
			out[i] = formFile{field: "attachments", filename: fmt.Sprintf("f%d.txt", i), contentType: "text/plain", content: []byte{'a' + byte(i)}}
		}
		return out
	}
	ct, body = multipartBody(t, fields(), files(fiberbridge.DefaultMaxUploads)...)
	r = h.do(http.MethodPost, "/api/v1/tasks", "alice", ct, body)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	ct, body = multipartBody(t, fields(), files(fiberbridge.DefaultMaxUploads+1)...)
	env = e2etest.CheckEnvelope(t, h.do(http.MethodPost, "/api/v1/tasks", "alice", ct, body),
		http.StatusBadRequest, bridgeerr.CodeUploadValidation)
	assert.EqualValues(t, fiberbridge.DefaultMaxUploads, env.Details["maxUploads"])

	// Over the app's BodyLimit: fasthttp's 413, as an envelope, answered
	// from the Content-Length (the client is still writing when it comes).
	ct, body = multipartBody(t, fields(), big(33<<20))
	resp, err, _ := sendBody(t, h.srv.Addr, fmt.Sprintf("POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\n"+
		"Authorization: Bearer alice\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, len(body)),
		bytes.NewReader(body), 64<<10, 0)
	require.NoError(t, err)
	e2etest.CheckEnvelope(t, resp, http.StatusRequestEntityTooLarge, bridgeerr.CodeInvalidRequest)
	h.healthy()
}

// TestLimitWebSocketReadLimit: a subscribe frame of up to WSReadLimit
// bytes is read, one byte more closes 1008 "frame too large"; the default
// limit is 4096 bytes.
func TestLimitWebSocketReadLimit(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{512, 0} {
		effective := limit
		if effective == 0 {
			effective = streaming.DefaultWSReadLimit
		}
		t.Run(fmt.Sprintf("limit %d", effective), func(t *testing.T) {
			t.Parallel()
			h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) { cfg.Stream.WSReadLimit = limit }})
			id := h.create("alice", "test.steps", map[string]any{"steps": 1})
			frame := func(size int) []byte {
				head := `{"action":"subscribe","taskId":"` + id + `"`
				return []byte(head + strings.Repeat(" ", size-len(head)-1) + "}")
			}
			c, _ := h.dial(nil, "alice")
			require.NotNil(t, c)
			require.NoError(t, c.Conn.WriteMessage(websocket.TextMessage, frame(effective)))
			_, err := c.Confirm(hwait)
			require.NoError(t, err, "a frame of exactly the limit is read")

			c, _ = h.dial(nil, "alice")
			require.NotNil(t, c)
			require.NoError(t, c.Conn.WriteMessage(websocket.TextMessage, frame(effective+1)))
			_, code, reason, err := c.ReadToClose(hwait)
			require.NoError(t, err)
			assert.Equal(t, websocket.ClosePolicyViolation, code)
			assert.Equal(t, "frame too large", reason)
		})
	}
}

// TestLimitWebSocketHandshakeTimeout: a client that upgrades and sends no
// subscribe frame is closed 1008 "handshake timeout" and its stream slot
// is released.
func TestLimitWebSocketHandshakeTimeout(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.Stream.WSHandshakeTimeout = 200 * time.Millisecond
		cfg.MaxStreamsPerSubject = 1
	}})
	id := h.create("alice", "test.steps", map[string]any{"steps": 1})
	c, _ := h.dial(nil, "alice")
	require.NotNil(t, c)
	_, code, reason, err := c.ReadToClose(hwait)
	require.NoError(t, err)
	assert.Equal(t, websocket.ClosePolicyViolation, code)
	assert.Equal(t, "handshake timeout", reason)
	// The slot is free again: a new stream of the same subject runs.
	require.Eventually(t, func() bool {
		c, _ := h.dial(nil, "alice")
		require.NotNil(t, c)
		defer c.Close()
		require.NoError(t, c.Subscribe(id, nil))
		_, err := c.Confirm(hwait)
		return err == nil
	}, hwait, 20*time.Millisecond)
}

// openSlot opens one stream of subject on taskID over SSE (even i) or
// WebSocket (odd i) and reports whether it got a slot.
func openSlot(t testing.TB, h *hsrv, i int, subject, taskID string) (closer func(), ok bool) {
	t.Helper()
	if i%2 == 0 {
		s, r := h.sse(nil, subject, taskID, "", nil)
		if s == nil {
			e2etest.CheckEnvelope(t, r, http.StatusTooManyRequests, bridgeerr.CodeTooManyStreams)
			return nil, false
		}
		_, err := s.NextEvent(hwait)
		require.NoError(t, err)
		return func() { _ = e2etest.Abort(s.Conn) }, true
	}
	c, _ := h.dial(nil, subject)
	require.NotNil(t, c)
	require.NoError(t, c.Subscribe(taskID, nil))
	r, err := c.Read(hwait)
	require.NoError(t, err)
	if r.Closed {
		assert.Equal(t, websocket.ClosePolicyViolation, r.CloseCode)
		assert.Equal(t, string(bridgeerr.CodeTooManyStreams), r.CloseText)
		return nil, false
	}
	require.NotNil(t, r.Frame.Confirmation)
	return func() { _ = e2etest.Abort(c.Conn.NetConn()) }, true
}

// TestLimitStreamsPerSubject: with the default (100), a subject's 101st
// stream is refused (SSE 429 envelope, WebSocket close 1008
// TOO_MANY_STREAMS) while other subjects stream; slots come back when
// streams end, after the terminal event as after a reset.
func TestLimitStreamsPerSubject(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	id := h.create("alice", "test.gated", nil)
	var closers []func()
	for i := range fiberbridge.DefaultMaxStreamsPerSubject {
		c, ok := openSlot(t, h, i, "alice", id)
		require.True(t, ok, "stream %d refused", i)
		closers = append(closers, c)
	}
	for i := range 2 {
		_, ok := openSlot(t, h, i, "alice", id)
		assert.False(t, ok, "stream %d over the limit", fiberbridge.DefaultMaxStreamsPerSubject+i)
	}
	// Another subject has its own slots.
	other := h.create("bob", "test.steps", map[string]any{"steps": 1})
	_, ok := openSlot(t, h, 1, "bob", other)
	assert.True(t, ok)

	// Resets free slots (the server notices the peer is gone).
	closers[0]()
	closers[1]()
	for i := range 2 {
		require.Eventually(t, func() bool {
			c, ok := openSlot(t, h, i, "alice", id)
			if ok {
				closers = append(closers, c)
			}
			return ok
		}, hwait, 20*time.Millisecond, "slot %d after a reset", i)
	}
	// The terminal event ends every stream and frees every slot.
	close(h.gates.get(id))
	again := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(again)) })
	require.Eventually(t, func() bool {
		c, ok := openSlot(t, h, 0, "alice", again)
		if ok {
			c()
		}
		return ok
	}, hwait, 20*time.Millisecond)
	// (A WebSocket's slot comes back after its close handshake, which
	// waits up to a second for the client's close frame.)
	for i := range fiberbridge.DefaultMaxStreamsPerSubject {
		require.Eventually(t, func() bool {
			c, ok := openSlot(t, h, i, "alice", again)
			if ok {
				t.Cleanup(c)
			}
			return ok
		}, hwait, 20*time.Millisecond, "stream %d refused after the others ended", i)
	}
	_, ok = openSlot(t, h, 0, "alice", again)
	assert.False(t, ok, "the limit still holds")
}

// TestLimitLongPollWait: a long-poll asking for the protocol's longest
// wait (60 s) answers after MaxPollWait; with a negative MaxPollWait it
// answers at once.
func TestLimitLongPollWait(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		max  time.Duration
	}{{"capped at 300ms", 300 * time.Millisecond}, {"waiting off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) { cfg.MaxPollWait = tc.max }})
			id := h.create("alice", "test.gated", nil)
			t.Cleanup(func() { close(h.gates.get(id)) })
			// The task's one event until its gate moves, TASK_STARTED,
			// comes when a worker takes it; with waiting off a poll does
			// not wait for it.
			var first contracts.PollResult
			require.Eventually(t, func() bool {
				first, _ = h.poll("alice", id, "")
				return len(first.Events) > 0
			}, hwait, 10*time.Millisecond, "TASK_STARTED")
			start := time.Now()
			res, r := h.poll("alice", id, "?waitTimeoutMs=60000&afterEventId="+first.Events[len(first.Events)-1].EventID.String())
			elapsed := time.Since(start)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			assert.Empty(t, res.Events)
			// Far from the 60 s asked for: the cap applied.
			assert.Less(t, elapsed, 30*time.Second)
			if tc.max > 0 {
				assert.GreaterOrEqual(t, elapsed, tc.max, "it did wait")
			}
		})
	}
}

// TestLimitWriteDeadline: a client that stops reading while its task is
// busy is dropped once a write has waited WriteTimeout: its connection is
// closed without a clean end and its stream slot comes back.
func TestLimitWriteDeadline(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.Stream.WriteTimeout = 300 * time.Millisecond
		cfg.MaxStreamsPerSubject = 2
	}})
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })
	s, r := h.sse(e2etest.StalledDialer(), "alice", id, "", nil)
	require.NotNil(t, s, "%d %s", r.Status, r.Body)
	c, _ := h.dial(e2etest.StalledDialer(), "alice")
	require.NotNil(t, c)
	require.NoError(t, c.Subscribe(id, nil))

	// Much more than the stalled sockets hold.
	big := strings.Repeat("x", 16<<10)
	gate := h.gates.get(id)
	// open opens one more stream of alice's: nil while her slots are taken.
	open := func() io.Closer {
		s2, r := h.sse(nil, "alice", id, "", nil)
		if s2 == nil {
			assert.Equal(t, http.StatusTooManyRequests, r.Status)
			return nil
		}
		return s2
	}
	freed := func() bool {
		if s2 := open(); s2 != nil {
			_ = s2.Close()
			return true
		}
		return false
	}
	// bothFreed holds two new streams at once: both stalled ones are gone.
	bothFreed := func() bool {
		s2 := open()
		if s2 == nil {
			return false
		}
		defer s2.Close()
		s3 := open()
		if s3 == nil {
			return false
		}
		_ = s3.Close()
		return true
	}
	require.Eventually(t, func() bool {
		gate <- big
		return freed()
	}, hwait, time.Millisecond, "a stalled stream was dropped and its slot freed")
	for range 50 {
		gate <- big
	}
	require.Eventually(t, bothFreed, hwait, 20*time.Millisecond, "both stalled streams were dropped")

	// Reading now shows complete frames and then a broken (not clean) end.
	for {
		_, err := s.NextEvent(hwait)
		if err != nil {
			assert.NotErrorIs(t, err, io.EOF, "a dropped stream does not end cleanly")
			break
		}
	}
	_, _, _, err := c.ReadToClose(hwait)
	if err == nil {
		t.Log("the WebSocket got a close frame before the drop")
	}
}

// TestStreamsOutliveHostTimeouts: the timeouts SECURITY.md asks hosts to
// set on the Fiber app (ReadTimeout, WriteTimeout, IdleTimeout) bound
// requests, not streams: SSE and WebSocket streams the hub has taken over
// live on, with heartbeats, far past them, and end cleanly.
func TestStreamsOutliveHostTimeouts(t *testing.T) {
	t.Parallel()
	const hostTimeout = 300 * time.Millisecond
	h := startHardened(t, hopts{
		fresh: true,
		app: func(cfg *fiber.Config) {
			cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout = hostTimeout, hostTimeout, hostTimeout
		},
		bridge: func(cfg *fiberbridge.Config) { cfg.Stream.HeartbeatInterval = 50 * time.Millisecond },
	})
	id := h.create("alice", "test.gated", nil)
	s, r := h.sse(nil, "alice", id, "", nil)
	require.NotNil(t, s, "%d %s", r.Status, r.Body)
	c := h.subscribe(nil, "alice", id, nil)
	// Four times the host's timeouts, many heartbeat intervals.
	start := time.Now()
	var pings, beats int
	for time.Since(start) < 4*hostTimeout {
		m, err := s.Next(hwait)
		require.NoError(t, err)
		if m.Comment {
			pings++
		}
		r, err := c.Read(hwait)
		require.NoError(t, err)
		require.False(t, r.Closed, "closed %d %q", r.CloseCode, r.CloseText)
		if r.Frame.Heartbeat != nil {
			beats++
		}
	}
	assert.Positive(t, pings)
	assert.Positive(t, beats)
	close(h.gates.get(id))
	sse, err := s.ReadToEnd(hwait)
	require.NoError(t, err)
	require.True(t, isTerminal(sse), "SSE ends after its terminal event")
	ws, code, _, err := c.ReadToClose(hwait)
	require.NoError(t, err)
	assert.Equal(t, websocket.CloseNormalClosure, code)
	assert.True(t, isTerminal(ws))
}
