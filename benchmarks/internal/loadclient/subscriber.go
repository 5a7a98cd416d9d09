package loadclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchwire"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// Transports a subscriber can use.
const (
	TransportSSE  = "sse"
	TransportWS   = "ws"
	TransportPoll = "poll"
)

// Route paths of the protocol's defaults.
const (
	tasksPath = "/api/v1/tasks/"
	wsPath    = "/api/v1/tasks/ws"
)

const (
	readBufSize    = 4096
	maxPollEvents  = 500
	retryBackoff   = 100 * time.Millisecond
	maxFrameLength = 1 << 20
)

// errStreamEnded is returned by a session the server ended on purpose (a
// 204, or a WebSocket close 1000 after a terminal event).
var errStreamEnded = errors.New("stream ended by the server")

// env is what every subscriber of one process shares. It is read-only after
// construction (apart from the counters and the dial semaphore).
type env struct {
	addr     string
	token    string
	strict   bool
	pollWait time.Duration
	dialer   *Dialer
	ws       *websocket.Dialer
	http     *http.Client
	sem      chan struct{} // bounds concurrent connection attempts
	c        *counters
}

func newEnv(a *Assignment) (*env, error) {
	dialer, err := NewDialer(a.SourceIPs, 30*time.Second)
	if err != nil {
		return nil, err
	}
	conc := a.DialConcurrency
	if conc <= 0 {
		conc = 64
	}
	pollers := 0
	for _, g := range a.Groups {
		if g.Transport == TransportPoll {
			pollers += g.Count
		}
	}
	e := &env{
		addr:     a.Addr,
		token:    a.Token,
		strict:   a.Strict,
		pollWait: a.PollWait,
		dialer:   dialer,
		ws: &websocket.Dialer{
			NetDialContext:   dialer.DialContext,
			HandshakeTimeout: 30 * time.Second,
			ReadBufferSize:   readBufSize,
			WriteBufferSize:  512,
		},
		http: &http.Client{Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: pollers + 1,
			DisableCompression:  true,
			IdleConnTimeout:     2 * time.Minute,
		}},
		sem: make(chan struct{}, conc),
		c:   newCounters(),
	}
	if e.pollWait <= 0 {
		e.pollWait = 25 * time.Second
	}
	return e, nil
}

func (e *env) close() { e.http.CloseIdleConnections() }

// subscriber follows one task over one transport, reconnecting with its
// cursor after a planned drop or an error. Its tracker and cursor belong to
// its goroutine; last mirrors tracker.Last for the finishing check.
type subscriber struct {
	env       *env
	task      string
	transport string

	tracker measure.Tracker
	latency *measure.Histogram // this subscriber's shard
	cursor  []byte
	buf     []byte
	last    atomic.Uint64
	ended   atomic.Bool

	ready     chan struct{} // closed at the first successful connect
	readyOnce sync.Once

	mu      sync.Mutex
	closer  func()
	dropped bool
}

func newSubscriber(e *env, task, transport string, index int) *subscriber {
	return &subscriber{env: e, task: task, transport: transport, ready: make(chan struct{}),
		latency: &e.c.latencyUs[index%latencyShards]}
}

func (s *subscriber) markConnected() { s.readyOnce.Do(func() { close(s.ready) }) }

func (s *subscriber) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// setCloser installs the function that ends the current session (nil: none).
func (s *subscriber) setCloser(f func()) {
	s.mu.Lock()
	s.closer = f
	s.mu.Unlock()
}

// drop ends the current session on purpose; the subscriber reconnects with
// its cursor. It reports whether there was a session to drop.
func (s *subscriber) drop() bool {
	s.mu.Lock()
	f := s.closer
	if f != nil {
		s.dropped = true
	}
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return f != nil
}

func (s *subscriber) takeDropped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dropped
	s.dropped = false
	return d
}

// run keeps a session open until ctx ends or the server ends the stream.
func (s *subscriber) run(ctx context.Context) {
	for ctx.Err() == nil {
		var err error
		switch s.transport {
		case TransportWS:
			err = s.wsSession(ctx)
		case TransportPoll:
			err = s.pollSession(ctx)
		default:
			err = s.sseSession(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if s.takeDropped() {
			s.env.c.reconnects.Add(1)
			continue
		}
		if errors.Is(err, errStreamEnded) {
			s.ended.Store(true)
			return
		}
		s.env.c.errors.Add(1)
		s.env.c.sample(fmt.Sprintf("%s %s: %v", s.transport, s.task, err))
		select {
		case <-ctx.Done():
		case <-time.After(retryBackoff):
		}
	}
}

func (e *env) acquire(ctx context.Context) error {
	select {
	case e.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slot is a held dial-semaphore slot, released once.
type slot struct {
	e    *env
	held bool
}

func (sl *slot) release() {
	if sl.held {
		<-sl.e.sem
		sl.held = false
	}
}

func (s *subscriber) sseSession(ctx context.Context) error {
	e := s.env
	if err := e.acquire(ctx); err != nil {
		return err
	}
	sl := &slot{e: e, held: true}
	defer sl.release()

	conn, err := e.dialer.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.setCloser(func() { conn.Close() })
	defer s.setCloser(nil)

	req := make([]byte, 0, 256)
	req = append(req, "GET "+tasksPath...)
	req = append(req, url.PathEscape(s.task)...)
	req = append(req, "/events/stream HTTP/1.1\r\nHost: "...)
	req = append(req, e.addr...)
	req = append(req, "\r\nAccept: text/event-stream\r\nAuthorization: Bearer "...)
	req = append(req, e.token...)
	if len(s.cursor) > 0 {
		req = append(req, "\r\nLast-Event-ID: "...)
		req = append(req, s.cursor...)
	}
	req = append(req, "\r\n\r\n"...)
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	br := bufio.NewReaderSize(conn, readBufSize)
	head, err := benchwire.ReadResponseHead(br)
	if err != nil {
		return fmt.Errorf("response head: %w", err)
	}
	switch head.Status {
	case http.StatusOK:
	case http.StatusNoContent:
		return errStreamEnded
	default:
		return fmt.Errorf("status %d", head.Status)
	}
	sl.release()
	s.markConnected()

	r := benchwire.NewSSEReader(head.Body(br), readBufSize)
	for {
		f, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return errors.New("server closed the stream")
			}
			return err
		}
		if f.Comment {
			e.c.comments.Add(1)
			continue
		}
		s.onFrame(f.Data, f.ID)
	}
}

func (s *subscriber) wsSession(ctx context.Context) error {
	e := s.env
	if err := e.acquire(ctx); err != nil {
		return err
	}
	sl := &slot{e: e, held: true}
	defer sl.release()

	u := "ws://" + e.addr + wsPath + "?access_token=" + url.QueryEscape(e.token)
	hdr := http.Header{"Authorization": {"Bearer " + e.token}}
	c, resp, err := e.ws.DialContext(ctx, u, hdr)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("handshake: status %d", resp.StatusCode)
		}
		return fmt.Errorf("handshake: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	s.setCloser(func() { c.Close() })
	defer s.setCloser(nil)

	sub := make([]byte, 0, 128)
	sub = append(sub, `{"action":"subscribe","taskId":`...)
	sub = contracts.AppendJSONString(sub, s.task)
	if len(s.cursor) > 0 {
		sub = append(sub, `,"lastEventId":`...)
		sub = contracts.AppendJSONString(sub, string(s.cursor))
	}
	sub = append(sub, '}')
	if err := c.WriteMessage(websocket.TextMessage, sub); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	confirmed := false
	for {
		_, r, err := c.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure {
				return errStreamEnded
			}
			return err
		}
		if s.buf, err = readAll(r, s.buf[:0]); err != nil {
			return err
		}
		if !confirmed {
			if !s.isConfirmation(s.buf) {
				return fmt.Errorf("first frame is not a confirmation: %.80s", s.buf)
			}
			confirmed = true
			sl.release()
			s.markConnected()
			continue
		}
		s.onFrame(s.buf, nil)
	}
}

// readAll reads r to its end into buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > maxFrameLength {
			return buf, errors.New("frame too large")
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// pollBody is the part of a poll response the poller reads.
type pollBody struct {
	Events []json.RawMessage `json:"events"`
}

func (s *subscriber) pollSession(ctx context.Context) error {
	e := s.env
	sessCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.setCloser(cancel)
	defer s.setCloser(nil)

	var sl *slot
	if !s.isReady() {
		if err := e.acquire(ctx); err != nil {
			return err
		}
		sl = &slot{e: e, held: true}
		defer sl.release()
	}
	base := "http://" + e.addr + tasksPath + url.PathEscape(s.task) + "/events?maxEvents=" + strconv.Itoa(maxPollEvents)
	for {
		u := base
		if s.isReady() {
			u += "&waitTimeoutMs=" + strconv.Itoa(int(e.pollWait/time.Millisecond))
		}
		if len(s.cursor) > 0 {
			u += "&afterEventId=" + url.QueryEscape(string(s.cursor))
		}
		req, err := http.NewRequestWithContext(sessCtx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := e.http.Do(req)
		if err != nil {
			return err
		}
		var body pollBody
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("poll body: %w", err)
		}
		if sl != nil {
			sl.release()
		}
		s.markConnected()
		for _, ev := range body.Events {
			s.onFrame(ev, nil)
		}
	}
}

// onFrame handles one data frame: a benchmark event, or a control frame.
func (s *subscriber) onFrame(data, id []byte) {
	e := s.env
	seq, at, ok := benchwire.ParseMark(data)
	if !ok {
		s.onControl(data)
		return
	}
	now := time.Now().UnixNano()
	if e.strict {
		var ev contracts.TaskEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			e.c.protocolErrors.Add(1)
			e.c.sample(fmt.Sprintf("%s %s: %v", s.transport, s.task, err))
		}
	}
	lat := now - at
	if lat < 0 {
		lat = 0
	}
	s.latency.Record(uint64(lat / 1000))
	if id == nil {
		id = benchwire.EventID(data)
	}
	s.cursor = append(s.cursor[:0], id...)
	s.tracker.Observe(seq)
	s.last.Store(s.tracker.Last)
}

var (
	typeHeartbeat = []byte(`"type":"HEARTBEAT"`)
	typeConfirm   = []byte(`"type":"SUBSCRIPTION_CONFIRMED"`)
)

func (s *subscriber) checkStrict(data []byte) {
	if !s.env.strict {
		return
	}
	if _, err := frames.Decode(data); err != nil {
		s.env.c.protocolErrors.Add(1)
		s.env.c.sample(fmt.Sprintf("%s %s: %v", s.transport, s.task, err))
	}
}

func (s *subscriber) isConfirmation(data []byte) bool {
	if !containsBytes(data, typeConfirm) {
		return false
	}
	s.checkStrict(data)
	s.env.c.confirmations.Add(1)
	return true
}

// onControl classifies a frame without a benchmark mark.
func (s *subscriber) onControl(data []byte) {
	s.checkStrict(data)
	switch {
	case containsBytes(data, typeHeartbeat):
		s.env.c.heartbeats.Add(1)
	case containsBytes(data, typeConfirm):
		s.env.c.confirmations.Add(1)
	default:
		s.env.c.protocolErrors.Add(1)
		s.env.c.sample(fmt.Sprintf("%s %s: unexpected frame %.120s", s.transport, s.task, data))
	}
}
