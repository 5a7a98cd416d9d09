package e2etest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// SSE is an open Server-Sent Events response read from a raw connection,
// so reads have deadlines and the connection can be stalled or reset. It
// is not safe for concurrent use; one goroutine reads it.
type SSE struct {
	// Conn is the client's connection.
	Conn net.Conn
	// Header is the response's header.
	Header http.Header
	// Bulk skips the protocol's JSON Schemas (the strict decoder still
	// checks every frame), for tests that move thousands of frames.
	Bulk bool

	resp *http.Response
	r    *bufio.Reader
}

// SSEMessage is one item of an event stream: a comment line, or a
// dispatched message (data lines joined with \n).
type SSEMessage struct {
	Comment   bool
	ID        string
	HasID     bool
	Data      []byte
	Retry     string
	HasFields bool
}

// ErrPartialFrame is returned when a stream ends in the middle of a
// message (fields not followed by the blank line that dispatches them).
var ErrPartialFrame = errors.New("e2etest: stream ended inside a message")

// OpenSSE sends "GET path" to addr with header (and Accept:
// text/event-stream) on a connection from dialer (a default one when nil)
// and reads the response head. A 200 answer returns the open stream;
// anything else returns the answer with its body read and no stream.
func OpenSSE(dialer *net.Dialer, addr, path string, header http.Header, timeout time.Duration) (*SSE, Response, error) {
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	conn, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, Response{}, err
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		conn.Close()
		return nil, Response{}, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	// A server may answer and close before it read the whole request (431
	// for an oversized header): the write then fails, but the answer is
	// there to read, as net/http's Transport reads it.
	werr := req.Write(conn)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		if werr != nil {
			err = werr
		}
		return nil, Response{}, err
	}
	head := Response{Status: resp.StatusCode, Header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		defer conn.Close()
		head.Body, err = io.ReadAll(resp.Body)
		return nil, head, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &SSE{Conn: conn, Header: resp.Header, resp: resp, r: bufio.NewReader(resp.Body)}, head, nil
}

// Next reads the next comment or message within timeout. At the end of
// the response it returns io.EOF when the server ended it cleanly (the
// final chunk after complete messages), ErrPartialFrame when it ended
// inside a message, and the transport's error (for example
// io.ErrUnexpectedEOF, a reset) when the connection broke.
func (s *SSE) Next(timeout time.Duration) (SSEMessage, error) {
	return s.next(time.Now().Add(timeout))
}

// next reads the next comment or message by deadline.
func (s *SSE) next(deadline time.Time) (SSEMessage, error) {
	_ = s.Conn.SetReadDeadline(deadline)
	var (
		m    SSEMessage
		data [][]byte
	)
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && (len(line) > 0 || m.HasFields) {
				return SSEMessage{}, ErrPartialFrame
			}
			return SSEMessage{}, err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		switch {
		case len(line) == 0:
			if m.HasFields {
				m.Data = bytes.Join(data, []byte("\n"))
				return m, nil
			}
		case line[0] == ':':
			if !m.HasFields {
				return SSEMessage{Comment: true, Data: append([]byte(nil), line[1:]...)}, nil
			}
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			m.HasFields = true
			switch string(field) {
			case "id":
				m.ID, m.HasID = string(value), true
			case "data":
				data = append(data, append([]byte(nil), value...))
			case "retry":
				m.Retry = string(value)
			}
		}
	}
}

// NextFrame reads the next message (skipping comments) and checks it is a
// conformant server frame; an event must carry an id line equal to its
// eventId.
func (s *SSE) NextFrame(timeout time.Duration) (frames.Frame, error) {
	return s.nextFrame(time.Now().Add(timeout))
}

// nextFrame reads the next message (skipping comments) by deadline.
func (s *SSE) nextFrame(deadline time.Time) (frames.Frame, error) {
	for {
		m, err := s.next(deadline)
		if err != nil {
			return frames.Frame{}, err
		}
		if m.Comment {
			continue
		}
		f, err := checkFrame(m.Data, s.Bulk)
		if err != nil {
			return f, err
		}
		if f.Event != nil && (!m.HasID || m.ID != f.Event.EventID.String()) {
			return f, fmt.Errorf("event %s with id line %q", f.Event.EventID, m.ID)
		}
		if f.Event == nil && m.HasID {
			return f, fmt.Errorf("a frame that is not an event has an id line %q", m.ID)
		}
		return f, nil
	}
}

// NextEvent reads frames, skipping heartbeats, until an event; timeout
// bounds the wait for the event, so heartbeats do not extend it.
func (s *SSE) NextEvent(timeout time.Duration) (contracts.TaskEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := s.nextFrame(deadline)
		if err != nil {
			return contracts.TaskEvent{}, err
		}
		if f.Event != nil {
			return *f.Event, nil
		}
	}
}

// ReadToEnd reads every remaining event until the response ends and
// returns them; the error is nil only for a clean end (io.EOF after
// complete messages). timeout bounds the wait for each event and for the
// end after the last one; heartbeats do not extend it, so a stream that
// only ever heartbeats fails within timeout.
func (s *SSE) ReadToEnd(timeout time.Duration) ([]contracts.TaskEvent, error) {
	var out []contracts.TaskEvent
	for {
		ev, err := s.NextEvent(timeout)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

// Close closes the connection.
func (s *SSE) Close() error { return s.Conn.Close() }

// CheckFrame decodes a server frame with the strict decoder and checks it
// against its schemas (the project's, and the reference's where present).
func CheckFrame(data []byte) (frames.Frame, error) {
	return checkFrame(data, false)
}

func checkFrame(data []byte, bulk bool) (frames.Frame, error) {
	f, err := frames.Decode(data)
	if err != nil {
		return f, fmt.Errorf("frame fails the strict decoder: %w: %s", err, truncate(data))
	}
	if bulk {
		return f, nil
	}
	if err := conformance.Validate(conformance.FrameSchema(f), data); err != nil {
		return f, err
	}
	return f, nil
}
