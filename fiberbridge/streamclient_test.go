package fiberbridge_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// The stream clients of the end-to-end tests, over internal/e2etest's SSE
// reader (raw connection, the wire format parsed by hand) and WebSocket
// client, with the harness's addresses and test failures on errors.

// sseItem is one thing read from an SSE stream: a comment line or a
// dispatched message (its data lines joined by \n).
type sseItem struct {
	comment string
	isPing  bool
	id      string
	hasID   bool
	data    []byte
}

// sseStream is an open SSE response, read by the test goroutine.
type sseStream struct {
	t testing.TB
	s *e2etest.SSE
}

// openSSE opens an SSE request. header may set Last-Event-ID. A non-200
// answer is returned with the body read, and no stream.
func (h *harness) openSSE(token, taskID, query string, header http.Header) (*sseStream, response) {
	h.t.Helper()
	hdr := http.Header{}
	for k, v := range header {
		hdr[k] = v
	}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	s, resp, err := e2etest.OpenSSE(nil, h.addr, "/api/v1/tasks/"+taskID+"/events/stream"+query, hdr, wait)
	require.NoError(h.t, err)
	answer := response{status: resp.Status, header: resp.Header, body: resp.Body}
	if s == nil {
		return nil, answer
	}
	st := &sseStream{t: h.t, s: s}
	h.t.Cleanup(st.close)
	return st, answer
}

// nextItem returns the next item including comments, or ok false when the
// response ended cleanly. Any other end, or nothing within timeout, fails
// the test.
func (s *sseStream) nextItem(timeout time.Duration) (sseItem, bool) {
	s.t.Helper()
	m, err := s.s.Next(timeout)
	if errors.Is(err, io.EOF) {
		return sseItem{}, false
	}
	require.NoError(s.t, err, "reading the SSE stream")
	if m.Comment {
		return sseItem{comment: string(m.Data), isPing: true}, true
	}
	return sseItem{id: m.ID, hasID: m.HasID, data: m.Data}, true
}

// next returns the next message (skipping comments), or ok false when the
// stream ended cleanly.
func (s *sseStream) next(timeout time.Duration) (sseItem, bool) {
	s.t.Helper()
	for {
		it, ok := s.nextItem(timeout)
		if !ok || !it.isPing {
			return it, ok
		}
	}
}

// nextEvent reads frames, skipping heartbeats, until a conformant event
// whose id: line equals its eventId, and returns it.
func (s *sseStream) nextEvent(timeout time.Duration) contracts.TaskEvent {
	s.t.Helper()
	ev, err := s.s.NextEvent(timeout)
	require.NoError(s.t, err, "the next SSE event")
	return ev
}

// readUntilEnd reads the remaining events until the server ends the
// response cleanly, checking each, and returns them.
func (s *sseStream) readUntilEnd(timeout time.Duration) []contracts.TaskEvent {
	s.t.Helper()
	evs, err := s.s.ReadToEnd(timeout)
	require.NoError(s.t, err, "stream must end cleanly")
	return evs
}

// close ends the stream from the client side.
func (s *sseStream) close() { _ = s.s.Close() }

// wsClient is a WebSocket connection to the bridge.
type wsClient struct {
	t    testing.TB
	ws   *e2etest.WS
	conn *websocket.Conn
}

// dialWS opens a WebSocket with the token in the Authorization header (or,
// with query, as access_token). A refused handshake returns the HTTP answer.
func (h *harness) dialWS(token string, viaQuery bool) (*wsClient, response) {
	h.t.Helper()
	u := "ws://" + h.addr + "/api/v1/tasks/ws"
	header := http.Header{}
	switch {
	case token == "":
	case viaQuery:
		u += "?access_token=" + token
	default:
		header.Set("Authorization", "Bearer "+token)
	}
	return h.dialWSURL(u, header)
}

// dialWSURL opens a WebSocket to u with header; a refused handshake returns
// the HTTP answer.
func (h *harness) dialWSURL(u string, header http.Header) (*wsClient, response) {
	h.t.Helper()
	ws, resp, err := e2etest.DialWS(nil, u, header, wait)
	require.NoError(h.t, err)
	answer := response{status: resp.Status, header: resp.Header, body: resp.Body}
	if ws == nil {
		return nil, answer
	}
	h.t.Cleanup(func() { _ = ws.Close() })
	return &wsClient{t: h.t, ws: ws, conn: ws.Conn}, answer
}

// subscribe sends the subscribe frame; lastEventID nil omits it.
func (c *wsClient) subscribe(taskID string, lastEventID *string) {
	c.t.Helper()
	require.NoError(c.t, c.ws.Subscribe(taskID, lastEventID))
}

// wsRead is one read: a checked server frame, or the close.
type wsRead struct {
	frame     frames.Frame
	closed    bool
	closeCode int
	closeText string
}

// read reads the next frame within timeout; every text frame goes through
// the conformance checker.
func (c *wsClient) read(timeout time.Duration) wsRead {
	c.t.Helper()
	r, err := c.ws.Read(timeout)
	require.NoError(c.t, err)
	return wsRead{frame: r.Frame, closed: r.Closed, closeCode: r.CloseCode, closeText: r.CloseText}
}

// expectClose reads until the close frame (events before it are returned,
// other frames skipped) and checks its code.
func (c *wsClient) expectClose(code int, timeout time.Duration) []contracts.TaskEvent {
	c.t.Helper()
	var evs []contracts.TaskEvent
	for {
		r := c.read(timeout)
		if r.closed {
			require.Equal(c.t, code, r.closeCode, "close reason %q", r.closeText)
			return evs
		}
		if r.frame.Event != nil {
			evs = append(evs, *r.frame.Event)
		}
	}
}

// nextEvent reads frames, skipping heartbeats, until an event.
func (c *wsClient) nextEvent(timeout time.Duration) contracts.TaskEvent {
	c.t.Helper()
	ev, err := c.ws.NextEvent(timeout)
	require.NoError(c.t, err)
	return ev
}

func strPtr(s string) *string { return &s }

func isTerminal(evs []contracts.TaskEvent) bool {
	return len(evs) > 0 && evs[len(evs)-1].Type.IsTerminal()
}
