package streaming

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// StreamRequest describes one SSE stream the Fiber layer has already
// authenticated and authorized.
type StreamRequest struct {
	// TaskID is the task to stream. Required.
	TaskID string
	// Cursor is the client's Last-Event-ID (or lastEventId query): replay
	// strictly after it. The zero cursor replays from the start of what is
	// retained.
	Cursor contracts.EventID
	// Initial is the first page after Cursor when the caller has read it
	// already (for example with SubscriptionService.Replay, which also
	// authorizes). Nil: the hub reads it.
	Initial *contracts.EventPage
	// InitialLimit is the limit Initial was read with: a page with fewer
	// events means the stream is caught up. 0 means unknown; the hub then
	// reads once more before it goes live.
	InitialLimit int
	// Subject is the authenticated caller, for logs.
	Subject string
	// OnClose, when set, is called once after the stream has ended (for
	// example to release a per-subject stream slot), including a HEAD
	// request's headers-only answer, and also when fasthttp never hands
	// the connection over (it failed before the stream could start; then
	// after 10 s at most). It is not called when ServeSSE returns an error
	// or answers 204.
	OnClose func()
}

// ServeSSE answers an authorized SSE request. A cursor at or after the
// task's terminal event is answered 204 with no body (EventSource stops
// reconnecting). Otherwise the hub takes the connection over from fasthttp
// (Hijack, writing the response head itself, so the server's per-request
// buffers are released), replays the events after the cursor, goes live,
// sends comment pings when idle, and ends the response after the terminal
// event (chunked: with the final chunk). Headers already set on c's response
// by host middleware (CORS, cookies) are kept.
//
// ServeSSE returns before the stream ends; the caller must not touch c
// afterwards. It returns a *bridgeerr.Error when the hub is shut down
// (SERVICE_UNAVAILABLE) or the first read fails, before anything is written.
func (h *Hub) ServeSSE(c *fiber.Ctx, req StreamRequest) error {
	if req.TaskID == "" {
		return bridgeerr.New(bridgeerr.CodeInvalidRequest, "taskId is required")
	}
	if h.isClosed() {
		return bridgeerr.New(bridgeerr.CodeServiceShuttingDown, "server is shutting down")
	}
	taskID := strings.Clone(req.TaskID)
	page, limit := req.Initial, req.InitialLimit
	if page == nil {
		h.cfg.metrics.IncCounter(observe.MetricStoreReads, 1, readTagsReplay...)
		p, err := h.events.Read(c.UserContext(), taskID, req.Cursor, h.cfg.replayBatch)
		if err != nil {
			return bridgeerr.From(err)
		}
		page, limit = &p, h.cfg.replayBatch
	}
	if page.Ended && !anyAfter(page.Events, req.Cursor) {
		c.Status(fiber.StatusNoContent)
		return nil
	}

	fctx := c.Context()
	http11 := fctx.Request.Header.IsHTTP11()
	headOnly := fctx.IsHead()
	cn := h.newConn(formatSSE)
	cn.state = connReady
	cn.subject = strings.Clone(req.Subject)
	cn.onClose = req.OnClose
	s := newSubscriber(cn, taskID, req.Cursor, h.cfg.queueSize)
	// Read before the subscriber is registered: the hub re-reads once when
	// the stream joins a task no live stream follows (see taskState.join).
	s.initial, s.initialLimit, s.initialUnseen = page, limit, true
	cn.addSub(s)
	cn.chunked = http11 && !headOnly
	cn.lead = sseHead(fctx, cn.chunked)
	if n := h.cfg.preamble; n > 0 && !headOnly {
		cn.prefix = append(append(append(make([]byte, 0, n+3), ':'), bytes.Repeat([]byte{' '}, n)...), '\n', '\n')
	}
	// fasthttp hands the connection over after this handler returns, but
	// not when it fails to prepare it (the client is gone): then OnClose
	// would never come. The guard calls it in that case.
	g := newHandover(h.handover, cn.onClose)
	fctx.HijackSetNoResponse(true)
	fctx.Hijack(func(nc net.Conn) {
		if g.take() {
			cn.serveSSE(nc, headOnly)
		}
	})
	return nil
}

func anyAfter(events []contracts.TaskEvent, cursor contracts.EventID) bool {
	return len(events) > 0 && cursor.Less(events[len(events)-1].EventID)
}

// sseSkip lists response headers ServeSSE writes itself (lower case).
var sseSkip = map[string]bool{
	"content-type": true, "content-length": true, "transfer-encoding": true,
	"connection": true, "keep-alive": true, "cache-control": true,
	"x-accel-buffering": true, "date": true,
}

// sseHead renders the response head: the SSE headers plus the headers host
// middleware already set on the response.
func sseHead(fctx *fasthttp.RequestCtx, chunked bool) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "HTTP/1.1 200 OK\r\n"+
		"Content-Type: text/event-stream\r\n"+
		"Cache-Control: no-cache, no-transform\r\n"+
		"X-Accel-Buffering: no\r\n"...)
	// The hub closes the connection when the stream ends, so it must not
	// go back into a client's keep-alive pool: a pooled one would fail the
	// client's next request (a POST is not retried) once the close lands.
	b = append(b, "Connection: close\r\n"...)
	if chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, '\r', '\n')
	for k, v := range fctx.Response.Header.All() {
		if sseSkip[strings.ToLower(string(k))] || bytes.ContainsAny(k, "\r\n:") || bytes.ContainsAny(v, "\r\n") {
			continue
		}
		b = append(b, k...)
		b = append(b, ':', ' ')
		b = append(b, v...)
		b = append(b, '\r', '\n')
	}
	return append(b, '\r', '\n')
}

// serveSSE runs on fasthttp's hijack goroutine. Where it can, it detaches
// the connection (the hub's poller then watches it and this goroutine, with
// fasthttp's per-request state, is released at once); otherwise it holds
// the goroutine for the life of the stream, reading (and discarding) until
// the client leaves or the connection releases it.
func (c *conn) serveSSE(nc net.Conn, headOnly bool) {
	c.attach(nc)
	h := c.hub
	if headOnly {
		_ = c.raw.SetWriteDeadline(time.Now().Add(finalWriteTimeout))
		_, _ = c.raw.Write(c.lead)
		if c.onClose != nil {
			c.onClose()
		}
		return
	}
	c.tryDetach()
	added := h.addConn(c)
	if !added || (c.detached && c.watch() != nil) {
		if added {
			h.removeConn(c)
		}
		_ = c.raw.SetWriteDeadline(time.Now().Add(finalWriteTimeout))
		_, _ = c.raw.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		if c.detached {
			_ = c.raw.Close()
		}
		if c.onClose != nil {
			c.onClose()
		}
		return
	}
	s := c.subs[0]
	if !s.cursor.IsZero() {
		h.cfg.metrics.IncCounter(observe.MetricReplays, 1, c.tags()...)
	}
	h.cfg.diag.OnReplayStart(observe.TransportSSE, s.taskID, s.cursor)
	h.cfg.log.Info("stream opened", observe.Entry{TaskID: s.taskID, UserID: c.subject, Transport: observe.TransportSSE})
	c.start(false)
	if c.detached {
		return
	}
	c.teardown(readReason(discardReads(nc)))
}

// discardReads reads until an error; an SSE client sends nothing after its
// request, so this only notices that it left (or that the session released
// the goroutine with a read deadline).
func discardReads(r io.Reader) error {
	var buf [64]byte
	for {
		if _, err := r.Read(buf[:]); err != nil {
			return err
		}
	}
}

func readReason(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "client closed"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "released"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	}
	return "read error"
}
