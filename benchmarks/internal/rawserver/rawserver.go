package rawserver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchwire"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
)

// Route prefixes the raw server understands (the protocol's defaults).
const (
	tasksPrefix  = "/api/v1/tasks/"
	wsPath       = "/api/v1/tasks/ws"
	streamSuffix = "/events/stream"
	pollSuffix   = "/events"
)

const (
	headBufSize   = 1024
	maxClientMsg  = 4096
	maxPollWait   = 60 * time.Second
	maxPollEvents = 500
)

// ErrUnknownTask is returned by Append for a task the server never created.
var ErrUnknownTask = errors.New("rawserver: unknown task")

// Server is the raw ceiling server. It is safe for concurrent use; the zero
// value is not usable, call New.
type Server struct {
	mu    sync.RWMutex
	tasks map[string]*task

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
	ln     net.Listener
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// task holds one task's events in their three encodings. The slices only
// grow; a reader may keep a sub-slice taken under mu after unlocking.
type task struct {
	id   string
	mu   sync.Mutex
	last contracts.EventID
	ids  []contracts.EventID
	sse  [][]byte
	ws   [][]byte
	js   [][]byte
	wake chan struct{}
}

// New returns a server with no tasks.
func New() *Server {
	return &Server{tasks: make(map[string]*task), conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
}

// CreateTasks implements control.Backend.
func (s *Server) CreateTasks(_ context.Context, n int) ([]string, error) {
	ids := make([]string, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range ids {
		ids[i] = contracts.NewID()
		s.tasks[ids[i]] = &task{id: ids[i], wake: make(chan struct{})}
	}
	return ids, nil
}

func (s *Server) task(id string) *task {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tasks[id]
}

// Append implements control.Backend: it encodes the event once in each wire
// form and wakes the task's connections.
func (s *Server) Append(_ context.Context, taskID string, draft contracts.EventDraft) error {
	t := s.task(taskID)
	if t == nil {
		return ErrUnknownTask
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	id := contracts.EventID{Ms: uint64(now.UnixMilli())}
	if id.Compare(t.last) <= 0 {
		id = t.last.Next()
	}
	t.last = id
	ev := contracts.TaskEvent{Type: draft.Type(), TaskID: taskID, EventID: id, CreatedAt: now, Payload: draft.Payload()}
	js := ev.AppendJSON(make([]byte, 0, 192))
	sse := make([]byte, 0, len(js)+64)
	sse = append(sse, "id: "...)
	sse = id.AppendText(sse)
	sse = append(sse, "\ndata: "...)
	sse = append(sse, js...)
	sse = append(sse, "\n\n"...)
	t.ids = append(t.ids, id)
	t.js = append(t.js, js)
	t.sse = append(t.sse, sse)
	t.ws = append(t.ws, benchwire.AppendServerFrame(make([]byte, 0, len(js)+4), benchwire.OpText, js))
	close(t.wake)
	t.wake = make(chan struct{})
	return nil
}

// after returns the index of the first event after cursor.
func (t *task) after(cursor contracts.EventID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return sort.Search(len(t.ids), func(i int) bool { return cursor.Less(t.ids[i]) })
}

// pending returns the frames of one encoding from idx on, and the channel
// closed by the next append.
func (t *task) pending(which int, idx int) ([][]byte, chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var all [][]byte
	switch which {
	case kindSSE:
		all = t.sse
	case kindWS:
		all = t.ws
	default:
		all = t.js
	}
	if idx > len(all) {
		idx = len(all)
	}
	return all[idx:], t.wake
}

const (
	kindSSE = iota
	kindWS
	kindJSON
)

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.connMu.Lock()
	s.ln = ln
	s.connMu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !s.track(conn) {
			conn.Close()
			return nil
		}
		s.wg.Add(1)
		go s.handle(conn)
	}
}

func (s *Server) track(conn net.Conn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn net.Conn) {
	s.connMu.Lock()
	delete(s.conns, conn)
	s.connMu.Unlock()
	conn.Close()
}

// Shutdown closes the listener and every connection and waits for their
// goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.connMu.Lock()
		close(s.done)
		if s.ln != nil {
			s.ln.Close()
		}
		for c := range s.conns {
			c.Close()
		}
		s.connMu.Unlock()
	})
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request is the part of a request head the raw server uses.
type request struct {
	method, path string
	query        url.Values
	lastEventID  string
	wsKey        string
	upgrade      bool
	closeConn    bool
}

func readRequest(br *bufio.Reader) (request, error) {
	var r request
	line, err := br.ReadSlice('\n')
	if err != nil {
		return r, err
	}
	parts := strings.Fields(string(line))
	if len(parts) != 3 {
		return r, fmt.Errorf("rawserver: bad request line %q", line)
	}
	r.method = parts[0]
	u, err := url.ParseRequestURI(parts[1])
	if err != nil {
		return r, err
	}
	r.path, r.query = u.Path, u.Query()
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return r, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return r, nil
		}
		k, v, _ := bytes.Cut(line, []byte{':'})
		v = bytes.TrimSpace(v)
		switch strings.ToLower(string(k)) {
		case "last-event-id":
			r.lastEventID = string(v)
		case "sec-websocket-key":
			r.wsKey = string(v)
		case "upgrade":
			r.upgrade = bytes.EqualFold(v, []byte("websocket"))
		case "connection":
			r.closeConn = bytes.EqualFold(v, []byte("close"))
		}
	}
}

func (s *Server) handle(conn net.Conn) {
	defer s.wg.Done()
	handedOff := false
	defer func() {
		if !handedOff {
			s.untrack(conn)
		}
	}()
	br := bufio.NewReaderSize(conn, headBufSize)
	for {
		req, err := readRequest(br)
		if err != nil {
			return
		}
		var st streamStart
		switch {
		case req.method == "GET" && req.path == wsPath && req.upgrade:
			st = s.serveWS(conn, br, req)
		case req.method == "GET" && strings.HasPrefix(req.path, tasksPrefix) && strings.HasSuffix(req.path, streamSuffix):
			st = s.serveSSE(conn, req)
		case req.method == "GET" && strings.HasPrefix(req.path, tasksPrefix) && strings.HasSuffix(req.path, pollSuffix):
			if !s.servePoll(conn, req) || req.closeConn {
				return
			}
			continue
		default:
			writeStatus(conn, 404, "Not Found")
			return
		}
		if st.t == nil {
			return
		}
		// The stream runs on a fresh goroutine: its stack starts small,
		// while this one grew parsing the request; nothing of the parsing
		// (the read buffer included) stays reachable.
		handedOff = true
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(conn)
			s.stream(conn, st.t, st.kind, st.idx)
		}()
		return
	}
}

// streamStart says where a stream starts; t is nil when the request ended
// without a stream.
type streamStart struct {
	t         *task
	kind, idx int
}

func writeStatus(conn net.Conn, code int, text string) {
	fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code, text)
}

func (s *Server) serveSSE(conn net.Conn, req request) streamStart {
	id := strings.TrimSuffix(strings.TrimPrefix(req.path, tasksPrefix), streamSuffix)
	t := s.task(id)
	cursorText := req.lastEventID
	if cursorText == "" {
		cursorText = req.query.Get("lastEventId")
	}
	cursor, err := contracts.ParseCursor(cursorText)
	if t == nil || err != nil {
		writeStatus(conn, 404, "Not Found")
		return streamStart{}
	}
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		return streamStart{}
	}
	return streamStart{t: t, kind: kindSSE, idx: t.after(cursor)}
}

func (s *Server) serveWS(conn net.Conn, br *bufio.Reader, req request) streamStart {
	if req.wsKey == "" {
		writeStatus(conn, 400, "Bad Request")
		return streamStart{}
	}
	head := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		benchwire.AcceptKey(req.wsKey) + "\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		return streamStart{}
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	op, msg, err := benchwire.ReadClientFrame(br, maxClientMsg)
	conn.SetReadDeadline(time.Time{})
	if err != nil || op != benchwire.OpText {
		return streamStart{}
	}
	var sub contracts.SubscribeRequest
	if err := strictjson.Unmarshal(msg, &sub); err != nil || sub.Validate() != nil {
		closeWS(conn, 1008)
		return streamStart{}
	}
	t := s.task(sub.TaskID)
	cursor, _ := sub.Cursor()
	if t == nil {
		closeWS(conn, 1008)
		return streamStart{}
	}
	confirm := []byte(`{"type":"SUBSCRIPTION_CONFIRMED","taskId":`)
	confirm = contracts.AppendJSONString(confirm, sub.TaskID)
	confirm = append(confirm, `,"replayStartedAfterEventId":`...)
	if sub.LastEventID == nil || *sub.LastEventID == "" {
		confirm = append(confirm, "null"...)
	} else {
		confirm = contracts.AppendJSONString(confirm, *sub.LastEventID)
	}
	confirm = append(confirm, `,"live":true}`...)
	if _, err := conn.Write(benchwire.AppendServerFrame(nil, benchwire.OpText, confirm)); err != nil {
		return streamStart{}
	}
	return streamStart{t: t, kind: kindWS, idx: t.after(cursor)}
}

func closeWS(conn net.Conn, code uint16) {
	conn.Write(benchwire.AppendServerFrame(nil, benchwire.OpClose, []byte{byte(code >> 8), byte(code)}))
}

// stream writes the task's frames of one kind from idx on, everything
// pending in one writev, until a write fails or the server shuts down.
func (s *Server) stream(conn net.Conn, t *task, kind, idx int) {
	// bufs is allocated once: WriteTo takes its address, and it consumes
	// the slice, so it is refilled from scratch (which it never touches)
	// before every write. No allocation per delivery.
	var scratch [][]byte
	bufs := new(net.Buffers)
	for {
		frames, wake := t.pending(kind, idx)
		if len(frames) > 0 {
			scratch = append(scratch[:0], frames...)
			*bufs = scratch
			_, err := bufs.WriteTo(conn)
			clear(scratch) // keep no frame reachable from an idle stream
			if err != nil {
				return
			}
			idx += len(frames)
			continue
		}
		select {
		case <-wake:
		case <-s.done:
			return
		}
	}
}

// servePoll answers one long-poll; it reports whether the connection may be
// reused.
func (s *Server) servePoll(conn net.Conn, req request) bool {
	id := strings.TrimSuffix(strings.TrimPrefix(req.path, tasksPrefix), pollSuffix)
	t := s.task(id)
	cursor, err := contracts.ParseCursor(req.query.Get("afterEventId"))
	if t == nil || err != nil {
		writeStatus(conn, 404, "Not Found")
		return false
	}
	limit := maxPollEvents
	if v, err := strconv.Atoi(req.query.Get("maxEvents")); err == nil && v > 0 && v < limit {
		limit = v
	}
	var wait time.Duration
	if v, err := strconv.Atoi(req.query.Get("waitTimeoutMs")); err == nil && v > 0 {
		wait = min(time.Duration(v)*time.Millisecond, maxPollWait)
	}
	idx := t.after(cursor)
	frames, wake := t.pending(kindJSON, idx)
	if len(frames) == 0 && wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-wake:
		case <-timer.C:
		case <-s.done:
		}
		timer.Stop()
		frames, _ = t.pending(kindJSON, idx)
	}
	hasMore := len(frames) > limit
	if hasMore {
		frames = frames[:limit]
	}
	body := make([]byte, 0, 64+len(frames)*200)
	body = append(body, `{"taskId":`...)
	body = contracts.AppendJSONString(body, id)
	body = append(body, `,"events":[`...)
	for i, f := range frames {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, f...)
	}
	body = append(body, `],"nextAfterEventId":`...)
	switch {
	case len(frames) > 0:
		t.mu.Lock()
		next := t.ids[idx+len(frames)-1]
		t.mu.Unlock()
		body = append(body, '"')
		body = next.AppendText(body)
		body = append(body, '"')
	case !cursor.IsZero():
		body = append(body, '"')
		body = cursor.AppendText(body)
		body = append(body, '"')
	default:
		body = append(body, "null"...)
	}
	body = append(body, `,"hasMore":`...)
	body = strconv.AppendBool(body, hasMore)
	body = append(body, '}')
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	bufs := net.Buffers{[]byte(head), body}
	_, err = bufs.WriteTo(conn)
	return err == nil
}
