package fiberbridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
)

// This file holds the stream clients of the end-to-end tests: an SSE reader
// that parses the wire format itself (id:, data:, comments) over a real
// response body, and a WebSocket client on fasthttp/websocket's Dialer.

// sseItem is one thing read from an SSE stream: a comment line or a
// dispatched message (its data lines joined by \n).
type sseItem struct {
	comment string
	isPing  bool
	id      string
	hasID   bool
	data    []byte
}

// sseStream is an open SSE response. Items arrive on items in order; the
// reader goroutine sends the stream's end (nil for a clean EOF) on done and
// exits. close ends it early.
type sseStream struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	items  chan sseItem
	done   chan error
}

// openSSE opens an SSE request. header may set Last-Event-ID. A non-200
// answer is returned with the body read, and no stream.
func (h *harness) openSSE(token, taskID, query string, header http.Header) (*sseStream, response) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/api/v1/tasks/"+taskID+"/events/stream"+query, nil)
	require.NoError(h.t, err)
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{} // no timeout: streams are long; ctx ends them
	resp, err := client.Do(req)
	require.NoError(h.t, err)
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(h.t, err)
		return nil, response{status: resp.StatusCode, header: resp.Header, body: body}
	}
	s := &sseStream{t: h.t, resp: resp, cancel: cancel, items: make(chan sseItem, 1024), done: make(chan error, 1)}
	go s.read()
	h.t.Cleanup(s.close)
	return s, response{status: resp.StatusCode, header: resp.Header}
}

// read parses the body until it ends.
func (s *sseStream) read() {
	defer close(s.items)
	r := bufio.NewReader(s.resp.Body)
	var cur sseItem
	var data [][]byte
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) == 0 {
				err = nil
			}
			s.done <- err
			return
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		switch {
		case len(line) == 0:
			if cur.hasID || len(data) > 0 {
				cur.data = bytes.Join(data, []byte("\n"))
				s.items <- cur
			}
			cur, data = sseItem{}, nil
		case line[0] == ':':
			s.items <- sseItem{comment: string(line[1:]), isPing: true}
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "id":
				cur.id, cur.hasID = string(value), true
			case "data":
				data = append(data, append([]byte(nil), value...))
			}
		}
	}
}

// next returns the next message (skipping comments), or ok false when the
// stream ended. It fails the test after timeout.
func (s *sseStream) next(timeout time.Duration) (sseItem, bool) {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case it, open := <-s.items:
			if !open {
				return sseItem{}, false
			}
			if it.isPing {
				continue
			}
			return it, true
		case <-deadline:
			s.t.Fatalf("no SSE message within %v", timeout)
			return sseItem{}, false
		}
	}
}

// nextItem returns the next item including comments.
func (s *sseStream) nextItem(timeout time.Duration) (sseItem, bool) {
	s.t.Helper()
	select {
	case it, open := <-s.items:
		return it, open
	case <-time.After(timeout):
		s.t.Fatalf("nothing on the SSE stream within %v", timeout)
		return sseItem{}, false
	}
}

// nextEvent reads the next message, checks it is a conformant event whose
// id: line equals its eventId, and returns it.
func (s *sseStream) nextEvent(timeout time.Duration) contracts.TaskEvent {
	s.t.Helper()
	it, ok := s.next(timeout)
	require.True(s.t, ok, "stream ended before the next event")
	f := conformance.CheckFrame(s.t, it.data)
	require.NotNil(s.t, f.Event, "expected an event: %s", it.data)
	require.True(s.t, it.hasID, "event without id: line")
	require.Equal(s.t, f.Event.EventID.String(), it.id)
	return *f.Event
}

// readUntilEnd reads the remaining events until the server ends the
// response, checking each, and returns them.
func (s *sseStream) readUntilEnd(timeout time.Duration) []contracts.TaskEvent {
	s.t.Helper()
	var out []contracts.TaskEvent
	for {
		it, ok := s.next(timeout)
		if !ok {
			require.NoError(s.t, <-s.done, "stream must end cleanly")
			return out
		}
		f := conformance.CheckFrame(s.t, it.data)
		if f.Event != nil {
			require.Equal(s.t, f.Event.EventID.String(), it.id)
			out = append(out, *f.Event)
		}
	}
}

// close ends the stream from the client side and waits for the reader.
func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
	for range s.items {
	}
}

// wsClient is a WebSocket connection to the bridge.
type wsClient struct {
	t    testing.TB
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
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(u, header)
	if err != nil {
		require.ErrorIs(h.t, err, websocket.ErrBadHandshake)
		require.NotNil(h.t, resp)
		defer resp.Body.Close()
		body, rerr := io.ReadAll(resp.Body)
		require.NoError(h.t, rerr)
		return nil, response{status: resp.StatusCode, header: resp.Header, body: body}
	}
	c := &wsClient{t: h.t, conn: conn}
	h.t.Cleanup(func() { _ = conn.Close() })
	return c, response{status: resp.StatusCode, header: resp.Header}
}

// subscribe sends the subscribe frame; lastEventID nil omits it.
func (c *wsClient) subscribe(taskID string, lastEventID *string) {
	c.t.Helper()
	req := contracts.SubscribeRequest{Action: "subscribe", TaskID: taskID, LastEventID: lastEventID}
	raw, err := json.Marshal(req)
	require.NoError(c.t, err)
	require.NoError(c.t, c.conn.WriteMessage(websocket.TextMessage, raw))
}

// wsRead is one read: a checked server frame, or the close.
type wsRead struct {
	frame     contracts.ServerFrame
	closed    bool
	closeCode int
	closeText string
}

// read reads the next frame within timeout; every text frame goes through
// the conformance checker.
func (c *wsClient) read(timeout time.Duration) wsRead {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(timeout)))
	typ, data, err := c.conn.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		require.ErrorAs(c.t, err, &ce, "expected a close frame, got %v", err)
		return wsRead{closed: true, closeCode: ce.Code, closeText: ce.Text}
	}
	require.Equal(c.t, websocket.TextMessage, typ)
	return wsRead{frame: conformance.CheckFrame(c.t, data)}
}

// expectClose reads until the close frame (events before it are returned)
// and checks its code.
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
	for {
		r := c.read(timeout)
		require.False(c.t, r.closed, "closed (%d %q) before the next event", r.closeCode, r.closeText)
		if r.frame.Event != nil {
			return *r.frame.Event
		}
		require.NotNil(c.t, r.frame.Heartbeat, "unexpected frame")
	}
}

func strPtr(s string) *string { return &s }

func isTerminal(evs []contracts.TaskEvent) bool {
	return len(evs) > 0 && evs[len(evs)-1].Type.IsTerminal()
}
