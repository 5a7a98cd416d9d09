package streaming_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	contribws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// TestMain checks that no goroutine outlives the tests. fasthttp's own
// worker-pool cleaner and date updater end on their timers after the server
// stops; everything the hub and its sessions start is checked.
func TestMain(m *testing.M) {
	if spec := os.Getenv(idleClientEnv); spec != "" {
		os.Exit(idleClients(spec)) // the client process of BenchmarkIdleConnections
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// countingStore wraps an EventStore: it counts reads and can fail them.
type countingStore struct {
	contracts.EventStore
	reads    atomic.Int64
	failRead atomic.Bool
}

var errInjected = errors.New("injected store failure")

func (s *countingStore) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	s.reads.Add(1)
	if s.failRead.Load() {
		return contracts.EventPage{}, errInjected
	}
	return s.EventStore.Read(ctx, taskID, after, limit)
}

// failingFeed is an EventStore whose Listen fails once triggered.
type failingFeed struct {
	contracts.EventStore
	fail chan struct{}
}

func (s *failingFeed) Listen(ctx context.Context, fn func(contracts.Change)) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.EventStore.Listen(lctx, fn) }()
	select {
	case <-s.fail:
		cancel()
		<-done
		return errInjected
	case err := <-done:
		return err
	}
}

// counterSink counts metric calls by name (and transport/reason tag).
type counterSink struct {
	mu sync.Mutex
	n  map[string]float64
}

func newCounterSink() *counterSink { return &counterSink{n: map[string]float64{}} }

func key(name string, tags []observe.Tag) string {
	k := name
	for _, t := range tags {
		k += "|" + t.Value
	}
	return k
}

func (c *counterSink) IncCounter(name string, d float64, tags ...observe.Tag) {
	c.mu.Lock()
	c.n[key(name, tags)] += d
	c.mu.Unlock()
}

func (c *counterSink) AddGauge(name string, d float64, tags ...observe.Tag) {
	c.IncCounter(name, d, tags...)
}

func (c *counterSink) ObserveHistogram(name string, _ float64, tags ...observe.Tag) {
	c.IncCounter(name, 1, tags...)
}

func (c *counterSink) get(name string, tagValues ...string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := name
	for _, v := range tagValues {
		k += "|" + v
	}
	return c.n[k]
}

// env is a hub on a memstore, mounted on a real Fiber listener.
type env struct {
	t    testing.TB
	held bool
	// wsClosed counts OnClose calls of AttachWebSocket streams; blockingDone
	// counts ServeWebSocket handlers that returned.
	wsClosed     atomic.Int64
	sseClosed    atomic.Int64
	blockingDone atomic.Int64
	mem          *memstore.EventStore
	store        *countingStore
	events       contracts.EventStore // the hub's store (store, possibly wrapped)
	hub          *streaming.Hub
	app          *fiber.App
	addr         string
	runDone      chan error
	cancel       context.CancelFunc
}

type envOption func(*envConfig)

type envConfig struct {
	wrap    func(contracts.EventStore) contracts.EventStore
	mw      fiber.Handler
	mem     memstore.Options
	noProbe bool
	held    bool
	wrapped bool
}

// withHeldConns makes every stream keep its connection goroutine, with
// Options.DisableDetach (the mode used where connections cannot be
// detached: TLS, other platforms).
func withHeldConns() envOption { return func(c *envConfig) { c.held = true } }

// withWrappedConns makes fasthttp wrap its connections (a per-IP
// connection limit does), so the hub cannot detach them and holds them,
// as it does TLS connections, although detaching is on.
func withWrappedConns() envOption { return func(c *envConfig) { c.held, c.wrapped = true, true } }

// connModes runs a test body in both connection modes.
var connModes = []struct {
	name string
	opt  envOption
}{
	{name: "detached", opt: func(*envConfig) {}},
	{name: "held", opt: withHeldConns()},
}

// withSilentFeed skips the listening probe (for feeds that never notify).
func withSilentFeed() envOption { return func(c *envConfig) { c.noProbe = true } }

func withStore(wrap func(contracts.EventStore) contracts.EventStore) envOption {
	return func(c *envConfig) { c.wrap = wrap }
}

func withMiddleware(h fiber.Handler) envOption { return func(c *envConfig) { c.mw = h } }

func withMemOptions(o memstore.Options) envOption { return func(c *envConfig) { c.mem = o } }

func foreign(taskID string) bool { return strings.HasPrefix(taskID, "foreign") }

func newEnv(t testing.TB, opts streaming.Options, options ...envOption) *env {
	t.Helper()
	var cfg envConfig
	for _, o := range options {
		o(&cfg)
	}
	mem := memstore.NewEventStore(cfg.mem)
	counting := &countingStore{EventStore: mem}
	var store contracts.EventStore = counting
	if cfg.wrap != nil {
		store = cfg.wrap(counting)
	}
	e := &env{t: t, mem: mem, store: counting, events: store, runDone: make(chan error, 1)}
	if cfg.held && !cfg.wrapped {
		opts.DisableDetach = true
	}
	hub, err := streaming.NewHub(store, opts)
	require.NoError(t, err)
	e.hub = hub
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.runDone <- e.hub.Run(ctx) }()
	if !cfg.noProbe {
		e.waitListening()
	}

	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			be := bridgeerr.From(err)
			return c.Status(be.HTTPStatus()).JSON(be.Envelope(time.Now()))
		},
	})
	if cfg.mw != nil {
		app.Use(cfg.mw)
	}
	app.Get("/sse/:taskId", func(c *fiber.Ctx) error {
		raw := c.Get("Last-Event-ID")
		if raw == "" {
			raw = c.Query("lastEventId")
		}
		cursor, err := contracts.ParseCursor(raw)
		if err != nil {
			return bridgeerr.From(err)
		}
		taskID := c.Params("taskId")
		if foreign(taskID) {
			return bridgeerr.New(bridgeerr.CodeTaskNotFound, "task not found")
		}
		return e.hub.ServeSSE(c, streaming.StreamRequest{
			TaskID: taskID, Cursor: cursor, Subject: "tester", OnClose: func() { e.sseClosed.Add(1) },
		})
	})
	// The way fiberbridge calls ServeSSE: the handler reads the first page
	// itself (limit: the query's, default 100) and hands it over.
	app.Get("/sse-initial/:taskId", func(c *fiber.Ctx) error {
		cursor, err := contracts.ParseCursor(c.Get("Last-Event-ID"))
		if err != nil {
			return bridgeerr.From(err)
		}
		taskID := c.Params("taskId")
		limit := c.QueryInt("limit", 100)
		page, err := e.events.Read(c.UserContext(), taskID, cursor, limit)
		if err != nil {
			return bridgeerr.From(err)
		}
		return e.hub.ServeSSE(c, streaming.StreamRequest{
			TaskID: taskID, Cursor: cursor, Initial: &page, InitialLimit: limit,
			Subject: "tester", OnClose: func() { e.sseClosed.Add(1) },
		})
	})
	// For comparison in BenchmarkIdleConnections only: an SSE stream on
	// fasthttp's SetBodyStreamWriter (an extra goroutine and a bufio writer
	// per connection), idle after its first event until the env ends.
	stopWriters := make(chan struct{})
	app.Get("/sse-streamwriter/:taskId", func(c *fiber.Ctx) error {
		page, err := e.mem.Read(c.UserContext(), c.Params("taskId"), contracts.EventID{}, 1)
		if err != nil || len(page.Events) == 0 {
			return fiber.ErrNotFound
		}
		frame := streaming.AppendSSEEvent(nil, &page.Events[0])
		c.Set("Content-Type", "text/event-stream")
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			_, _ = w.Write(frame)
			_ = w.Flush()
			<-stopWriters
		})
		return nil
	})
	app.Use(func(c *fiber.Ctx) error {
		if !strings.HasPrefix(c.Path(), "/ws") {
			return c.Next()
		}
		if contribws.IsWebSocketUpgrade(c) {
			return c.Next()
		}
		return fiber.ErrUpgradeRequired
	})
	authorize := func(_ context.Context, taskID string) error {
		if foreign(taskID) {
			return bridgeerr.New(bridgeerr.CodeTaskNotFound, "task not found")
		}
		return nil
	}
	app.Get("/ws", contribws.New(func(c *contribws.Conn) {
		e.hub.AttachWebSocket(c, streaming.WebSocketRequest{
			Authorize: authorize, Subject: "tester", OnClose: func() { e.wsClosed.Add(1) },
		})
	}, streaming.WebSocketConfig(contribws.Config{})))
	// A connection that follows several tasks from its first subscribe.
	app.Get("/ws-multi", contribws.New(func(c *contribws.Conn) {
		e.hub.AttachWebSocket(c, streaming.WebSocketRequest{
			Authorize: authorize, Subject: "tester", Multi: true, OnClose: func() { e.wsClosed.Add(1) },
		})
	}, streaming.WebSocketConfig(contribws.Config{})))
	// The blocking variant, for hosts whose handler must last as long as
	// the stream.
	app.Get("/ws-blocking", contribws.New(func(c *contribws.Conn) {
		e.hub.ServeWebSocket(c, authorize)
		e.blockingDone.Add(1)
	}, streaming.WebSocketConfig(contribws.Config{})))
	if cfg.wrapped {
		app.Server().MaxConnsPerIP = 1 << 20
	}
	e.held = cfg.held
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.addr = ln.Addr().String()
	e.app = app
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = app.Listener(ln)
	}()
	t.Cleanup(func() {
		close(stopWriters)
		e.shutdown()
		_ = app.ShutdownWithTimeout(5 * time.Second)
		// Shutdown only closes listeners Serve has registered; a test that
		// ends before Serve started would leave it accepting.
		_ = ln.Close()
		<-served
	})
	return e
}

// waitListening returns once the hub receives the feed's notices: it
// appends to a probe task until a watch on it is woken.
func (e *env) waitListening() {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		ch, release := e.hub.Watch("__probe")
		_, err := e.mem.Append(context.Background(), "__probe", contracts.Started(""))
		require.NoError(e.t, err)
		select {
		case <-ch:
			release()
			return
		case <-time.After(20 * time.Millisecond):
			release()
		}
	}
	e.t.Fatal("hub is not listening to the feed")
}

// requireMode checks that n open streams run in the env's mode.
func (e *env) requireMode(n int) {
	e.t.Helper()
	want := n
	if e.held {
		want = 0
	}
	require.Eventually(e.t, func() bool { return e.hub.DetachedStreams() == want }, wait, time.Millisecond,
		"detached streams: %d, want %d", e.hub.DetachedStreams(), want)
}

// shutdown shuts the hub down (idempotent) and waits for Run.
func (e *env) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = e.hub.Shutdown(ctx)
	e.cancel()
	select {
	case <-e.runDone:
		e.runDone <- nil
	case <-time.After(5 * time.Second):
		e.t.Errorf("hub.Run did not return")
	}
}

func (e *env) append(taskID string, drafts ...contracts.EventDraft) []contracts.TaskEvent {
	e.t.Helper()
	out := make([]contracts.TaskEvent, 0, len(drafts))
	for _, d := range drafts {
		ev, err := e.mem.Append(context.Background(), taskID, d)
		require.NoError(e.t, err)
		out = append(out, ev)
	}
	return out
}

func progress(t testing.TB, p float64) contracts.EventDraft {
	t.Helper()
	d, err := contracts.Progress(p, "", "")
	require.NoError(t, err)
	return d
}

func message(t testing.TB, text string) contracts.EventDraft {
	t.Helper()
	d, err := contracts.Message(text, contracts.LevelInfo)
	require.NoError(t, err)
	return d
}

func completed(t testing.TB) contracts.EventDraft {
	t.Helper()
	d, err := contracts.Completed(map[string]any{"ok": true})
	require.NoError(t, err)
	return d
}

// sseFrame is one block of an SSE stream.
type sseFrame struct {
	id       string
	data     string
	comments []string
}

// sseStream is a raw SSE client: one TCP connection, no background
// goroutine, the chunked body decoded by net/http's response reader.
type sseStream struct {
	t testing.TB
	// bulk: check frames with the strict decoder only, not the JSON
	// Schemas too (for tests that move thousands of frames).
	bulk bool
	conn net.Conn
	resp *http.Response
	br   *bufio.Reader
}

func dialSSE(t testing.TB, addr, path string, header http.Header) *sseStream {
	t.Helper()
	return dialSSEWith(t, &net.Dialer{}, addr, path, header)
}

func dialSSEWith(t testing.TB, d *net.Dialer, addr, path string, header http.Header) *sseStream {
	t.Helper()
	return requestSSE(t, d, addr, path, header)()
}

// requestSSE sends an SSE request and returns the function that reads the
// response head, for tests that act while the server handles the request.
func requestSSE(t testing.TB, d *net.Dialer, addr, path string, header http.Header) func() *sseStream {
	t.Helper()
	d.Timeout = wait
	conn, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, req.Write(conn))
	return func() *sseStream {
		t.Helper()
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Time{}))
		return &sseStream{t: t, conn: conn, resp: resp, br: bufio.NewReader(resp.Body)}
	}
}

// next reads one frame; io.EOF means the body ended cleanly (final chunk).
func (s *sseStream) next(timeout time.Duration) (sseFrame, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(timeout))
	var f sseFrame
	seen := false
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			if seen && err == io.EOF {
				return f, io.ErrUnexpectedEOF
			}
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if seen {
				return f, nil
			}
			continue
		}
		seen = true
		switch {
		case strings.HasPrefix(line, ":"):
			f.comments = append(f.comments, strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "id: "):
			f.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			f.data = line[len("data: "):]
		default:
			return f, fmt.Errorf("unexpected SSE line %q", line)
		}
	}
}

// nextEvent reads frames until an event (skipping pings and heartbeats),
// checks it against the protocol and returns it.
func (s *sseStream) nextEvent(timeout time.Duration) (contracts.TaskEvent, error) {
	for {
		f, err := s.next(timeout)
		if err != nil {
			return contracts.TaskEvent{}, err
		}
		if f.data == "" {
			continue
		}
		frame, err := checkFrame(s.t, s.bulk, []byte(f.data))
		if err != nil {
			return contracts.TaskEvent{}, err
		}
		if frame.Heartbeat != nil {
			if f.id != "" {
				return contracts.TaskEvent{}, fmt.Errorf("heartbeat with an id line %q", f.id)
			}
			continue
		}
		if frame.Event == nil {
			return contracts.TaskEvent{}, fmt.Errorf("unexpected frame %s", f.data)
		}
		if f.id != frame.Event.EventID.String() {
			return contracts.TaskEvent{}, fmt.Errorf("id line %q does not match eventId %s", f.id, frame.Event.EventID)
		}
		return *frame.Event, nil
	}
}

// expectEnd reads until the body ends and requires a clean end.
func (s *sseStream) expectEnd(timeout time.Duration) {
	s.t.Helper()
	for {
		f, err := s.next(timeout)
		if err != nil {
			require.ErrorIs(s.t, err, io.EOF, "SSE body must end with the final chunk")
			return
		}
		require.Empty(s.t, f.data, "no event expected before the end, got %s", f.data)
	}
}

// endErr reads until the body ends, skipping heartbeats (a quiet stream
// may get one before its end), and returns nil for a clean end (final
// chunk) or what else came. Unlike expectEnd it does not stop the test, so
// it can run on other goroutines.
func (s *sseStream) endErr(timeout time.Duration) error {
	for {
		f, err := s.next(timeout)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if f.data == "" {
			continue // a comment heartbeat
		}
		frame, err := checkFrame(s.t, s.bulk, []byte(f.data))
		if err != nil {
			return err
		}
		if frame.Heartbeat == nil {
			return fmt.Errorf("want the end, got %s", f.data)
		}
	}
}

// wsClient is a real WebSocket client (fasthttp/websocket's Dialer).
type wsClient struct {
	t    testing.TB
	bulk bool // see sseStream.bulk
	conn *websocket.Conn
}

func dialWS(t testing.TB, addr string) *wsClient {
	t.Helper()
	return dialWSWith(t, &net.Dialer{}, addr)
}

func dialWSWith(t testing.TB, nd *net.Dialer, addr string) *wsClient {
	t.Helper()
	return dialWSPath(t, nd, addr, "/ws")
}

func dialWSPath(t testing.TB, nd *net.Dialer, addr, path string) *wsClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: nd.Dial}
	conn, resp, err := d.Dial("ws://"+addr+path, nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = conn.Close() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) subscribe(taskID string, last *string) {
	c.t.Helper()
	req := contracts.SubscribeRequest{Action: "subscribe", TaskID: taskID, LastEventID: last}
	require.NoError(c.t, c.conn.WriteJSON(req))
}

// read returns the next text frame, checked against the protocol.
func (c *wsClient) read(timeout time.Duration) (frames.Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	mt, data, err := c.conn.ReadMessage()
	if err != nil {
		return frames.Frame{}, err
	}
	if mt != websocket.TextMessage {
		return frames.Frame{}, fmt.Errorf("message type %d", mt)
	}
	return checkFrame(c.t, c.bulk, data)
}

// checkFrame applies the strict decoder (bulk) or the full conformance check.
func checkFrame(t testing.TB, bulk bool, data []byte) (frames.Frame, error) {
	if bulk {
		return frames.Decode(data)
	}
	return conformance.CheckFrame(t, data), nil
}

// nextEvent skips heartbeats and returns the next event.
func (c *wsClient) nextEvent(timeout time.Duration) (contracts.TaskEvent, error) {
	for {
		f, err := c.read(timeout)
		if err != nil {
			return contracts.TaskEvent{}, err
		}
		switch {
		case f.Heartbeat != nil:
			continue
		case f.Event != nil:
			return *f.Event, nil
		}
		return contracts.TaskEvent{}, fmt.Errorf("unexpected frame %+v", f)
	}
}

func (c *wsClient) confirmation(timeout time.Duration) *contracts.SubscriptionConfirmed {
	c.t.Helper()
	f, err := c.read(timeout)
	require.NoError(c.t, err)
	require.NotNil(c.t, f.Confirmation, "first frame must be SUBSCRIPTION_CONFIRMED, got %+v", f)
	return f.Confirmation
}

// expectClose reads until the close frame and returns its code and text.
func (c *wsClient) expectClose(timeout time.Duration) (int, string) {
	c.t.Helper()
	for {
		_, err := c.read(timeout)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.ErrorAs(c.t, err, &ce, "expected a close frame")
		return ce.Code, ce.Text
	}
}

// closeErr reads until the close frame, skipping heartbeats, and returns
// nil when its code is want, or what else came. Unlike expectClose it does
// not stop the test, so it can run on other goroutines.
func (c *wsClient) closeErr(timeout time.Duration, want int) error {
	for {
		f, err := c.read(timeout)
		if err == nil {
			if f.Heartbeat != nil {
				continue
			}
			return fmt.Errorf("want close %d, got %+v", want, f)
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != want {
			return fmt.Errorf("want close %d, got %w", want, err)
		}
		return nil
	}
}

func ptr(s string) *string { return &s }

func ids(events []contracts.TaskEvent) []string {
	out := make([]string, len(events))
	for i := range events {
		out[i] = events[i].EventID.String()
	}
	return out
}

func memStoreCap(n int) memstore.Options { return memstore.Options{MaxEventsPerTask: n} }

// rawWS is a WebSocket client that writes frames by hand, for frames a
// well-behaved library never sends.
type rawWS struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRawWS(t testing.TB, addr string) *rawWS {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	_, err = fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return &rawWS{t: t, c: c, br: br}
}

// frame writes one frame; op may carry RSV bits.
func (r *rawWS) frame(op byte, fin, masked bool, payload []byte) {
	r.t.Helper()
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	n := len(payload)
	var m byte
	if masked {
		m = 0x80
	}
	switch {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := bytes.Clone(payload)
	if masked {
		key := [4]byte{1, 2, 3, 4}
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	_, err := r.c.Write(append(b, p...))
	require.NoError(r.t, err)
}

func (r *rawWS) readFrame() (byte, []byte) {
	r.t.Helper()
	var h [2]byte
	_, err := io.ReadFull(r.br, h[:])
	require.NoError(r.t, err)
	require.Zero(r.t, h[1]&0x80, "server frames are unmasked")
	n := int(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(r.br, l[:])
		require.NoError(r.t, err)
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(r.br, l[:])
		require.NoError(r.t, err)
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	p := make([]byte, n)
	_, err = io.ReadFull(r.br, p)
	require.NoError(r.t, err)
	return h[0] & 0x0F, p
}

func (r *rawWS) readClose() (int, string) {
	r.t.Helper()
	for {
		op, p := r.readFrame()
		if op == 0x8 {
			require.GreaterOrEqual(r.t, len(p), 2)
			return int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
	}
}
