package e2etest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// WS is a WebSocket client connection (fasthttp/websocket). One goroutine
// reads it; writes come from the test goroutine.
type WS struct {
	Conn *websocket.Conn
	// Bulk skips the protocol's JSON Schemas (the strict decoder still
	// checks every frame), for tests that move thousands of frames.
	Bulk bool
}

// WSRead is one read: a checked server frame, or the server's close.
type WSRead struct {
	Frame     frames.Frame
	Closed    bool
	CloseCode int
	CloseText string
}

// DialWS opens a WebSocket to url ("ws://host/path") with header, on a
// connection from dialer (a default one when nil). A refused handshake
// returns the HTTP answer with its body and no connection.
func DialWS(dialer *net.Dialer, url string, header http.Header, timeout time.Duration) (*WS, Response, error) {
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	d := websocket.Dialer{
		HandshakeTimeout: timeout,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}
	conn, resp, err := d.Dial(url, header)
	if err != nil {
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			defer resp.Body.Close()
			body, rerr := io.ReadAll(resp.Body)
			return nil, Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, rerr
		}
		return nil, Response{}, err
	}
	return &WS{Conn: conn}, Response{Status: resp.StatusCode, Header: resp.Header}, nil
}

// Subscribe sends the subscribe frame; a nil lastEventID is omitted.
func (c *WS) Subscribe(taskID string, lastEventID *string) error {
	raw, err := json.Marshal(contracts.SubscribeRequest{Action: "subscribe", TaskID: taskID, LastEventID: lastEventID})
	if err != nil {
		return err
	}
	return c.Conn.WriteMessage(websocket.TextMessage, raw)
}

// Read reads the next frame within timeout. A close from the server is a
// WSRead with Closed set and no error; a text frame is checked like
// CheckFrame; anything else (a binary frame, a broken connection, a
// timeout) is an error.
func (c *WS) Read(timeout time.Duration) (WSRead, error) {
	return c.read(time.Now().Add(timeout))
}

// read reads the next frame by deadline.
func (c *WS) read(deadline time.Time) (WSRead, error) {
	_ = c.Conn.SetReadDeadline(deadline)
	typ, data, err := c.Conn.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return WSRead{Closed: true, CloseCode: ce.Code, CloseText: ce.Text}, nil
		}
		return WSRead{}, err
	}
	if typ != websocket.TextMessage {
		return WSRead{}, fmt.Errorf("message type %d from the server", typ)
	}
	f, err := checkFrame(data, c.Bulk)
	return WSRead{Frame: f}, err
}

// Confirm reads the SUBSCRIPTION_CONFIRMED frame.
func (c *WS) Confirm(timeout time.Duration) (*contracts.SubscriptionConfirmed, error) {
	r, err := c.Read(timeout)
	switch {
	case err != nil:
		return nil, err
	case r.Closed:
		return nil, fmt.Errorf("closed %d %q instead of confirming", r.CloseCode, r.CloseText)
	case r.Frame.Confirmation == nil:
		return nil, fmt.Errorf("first frame is not a confirmation: %+v", r.Frame)
	}
	return r.Frame.Confirmation, nil
}

// NextEvent reads frames, skipping heartbeats, until an event; a close is
// an error. timeout bounds the wait for the event, so heartbeats do not
// extend it.
func (c *WS) NextEvent(timeout time.Duration) (contracts.TaskEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := c.read(deadline)
		switch {
		case err != nil:
			return contracts.TaskEvent{}, err
		case r.Closed:
			return contracts.TaskEvent{}, fmt.Errorf("closed %d %q before the next event", r.CloseCode, r.CloseText)
		case r.Frame.Event != nil:
			return *r.Frame.Event, nil
		case r.Frame.Heartbeat == nil:
			return contracts.TaskEvent{}, fmt.Errorf("unexpected frame %+v", r.Frame)
		}
	}
}

// ReadToClose reads events (skipping heartbeats) until the server's close
// and returns them with the close code and reason. timeout bounds the wait
// for each event and for the close after the last one; heartbeats do not
// extend it.
func (c *WS) ReadToClose(timeout time.Duration) ([]contracts.TaskEvent, int, string, error) {
	var out []contracts.TaskEvent
	deadline := time.Now().Add(timeout)
	for {
		r, err := c.read(deadline)
		switch {
		case err != nil:
			return out, 0, "", err
		case r.Closed:
			return out, r.CloseCode, r.CloseText, nil
		case r.Frame.Event != nil:
			out = append(out, *r.Frame.Event)
			deadline = time.Now().Add(timeout)
		case r.Frame.Heartbeat == nil:
			return out, 0, "", fmt.Errorf("unexpected frame %+v", r.Frame)
		}
	}
}

// Close closes the connection without a close handshake.
func (c *WS) Close() error { return c.Conn.Close() }
