package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/client"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own background goroutines (worker pool cleaner, date updater).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

const wait = 15 * time.Second

// bearerAuth: the bearer token (or access_token) is the subject.
func bearerAuth(c *fiber.Ctx) (contracts.AuthContext, error) {
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || token == "" {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication, "missing bearer token")
	}
	return contracts.AuthContext{Subject: strings.Clone(token)}, nil
}

// server is a real bridge on a loopback listener.
type server struct {
	*e2etest.Server
	stores contracts.Stores
	gates  sync.Map // task id -> chan string
}

// startServer starts a bridge with the test task types; mutate adjusts
// its config.
func startServer(t *testing.T, mutate func(*fiberbridge.Config)) *server {
	t.Helper()
	s := &server{stores: memstore.New(memstore.Options{})}
	exec, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: s.stores})
	require.NoError(t, err)
	// t.steps {steps, delayMs}: progress events, then COMPLETED.
	exec.Handle("t.steps", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		var in struct {
			Steps   int `json:"steps"`
			DelayMs int `json:"delayMs"`
		}
		if err := task.DecodeInput(&in); err != nil {
			return nil, err
		}
		for i := 1; i <= in.Steps; i++ {
			if err := task.Progress(ctx, float64(i*100/in.Steps), "step", ""); err != nil {
				return nil, err
			}
			if in.DelayMs > 0 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Duration(in.DelayMs) * time.Millisecond):
				}
			}
		}
		return map[string]int{"steps": in.Steps}, nil
	})
	// t.gated: each string on the task's gate is a TASK_MESSAGE; closing
	// the gate completes the task.
	exec.Handle("t.gated", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		gate := s.gate(task.Task().TaskID)
		for {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case msg, ok := <-gate:
				if !ok {
					return map[string]bool{"done": true}, nil
				}
				if err := task.Message(ctx, msg, contracts.LevelInfo); err != nil {
					return nil, err
				}
			}
		}
	})
	// t.approval: suspends for approve/reject.
	exec.Handle("t.approval", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		act, err := task.Suspend(ctx, orchestration.SuspendSpec{
			ReasonCode: "approval_required", AllowedActions: []string{"approve", "reject"},
		})
		if err != nil {
			return nil, err
		}
		return map[string]string{"decision": act.ActionType}, nil
	})
	cfg := fiberbridge.Config{
		Stores:       s.stores,
		Executor:     exec,
		AuthResolver: bearerAuth,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	bridge, err := fiberbridge.New(cfg)
	require.NoError(t, err)
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
	bridge.Register(app)
	// Cleanups run last-in first-out: bridge, app (e2etest.Serve), executor.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, exec.Close(ctx))
	})
	s.Server = e2etest.Serve(t, app)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, bridge.Shutdown(ctx))
	})
	return s
}

func (s *server) gate(taskID string) chan string {
	g, _ := s.gates.LoadOrStore(taskID, make(chan string))
	return g.(chan string)
}

// allEvents returns the task's whole log from the store.
func (s *server) allEvents(t *testing.T, taskID string) []contracts.TaskEvent {
	t.Helper()
	page, err := s.stores.Events.Read(context.Background(), taskID, contracts.EventID{}, 10_000)
	require.NoError(t, err)
	return page.Events
}

// newClient returns a client of base for user, with test-friendly
// backoff; its idle connections close at cleanup.
func newClient(t *testing.T, base, user string, opts ...client.Option) *client.Client {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}}
	all := []client.Option{client.WithHTTPClient(hc), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}
	if user != "" {
		all = append(all, client.WithBearerToken(user))
	}
	c, err := client.New(base, append(all, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// create creates a task and returns its id.
func create(t *testing.T, c *client.Client, taskType string, input any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := c.Create(ctx, client.CreateRequest{TaskType: taskType, Input: input})
	require.NoError(t, err)
	return res.TaskID
}

// collect runs a Watch to its end in the background.
type collected struct {
	events []contracts.TaskEvent
	err    error
}

func watchAsync(ctx context.Context, c *client.Client, taskID string, from contracts.EventID) <-chan collected {
	return watchCounting(ctx, c, taskID, from, nil)
}

// watchCounting is watchAsync that also counts the events yielded so far.
func watchCounting(ctx context.Context, c *client.Client, taskID string, from contracts.EventID, n *atomic.Int64) <-chan collected {
	out := make(chan collected, 1)
	go func() {
		var r collected
		for ev, err := range c.Watch(ctx, taskID, from) {
			if err != nil {
				r.err = err
				break
			}
			r.events = append(r.events, ev)
			if n != nil {
				n.Add(1)
			}
		}
		out <- r
	}()
	return out
}

func awaitWatch(t *testing.T, ch <-chan collected) collected {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(2 * wait):
		t.Fatal("watch did not end")
		return collected{}
	}
}

// ids returns the events' ids as strings.
func ids(evs []contracts.TaskEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID.String()
	}
	return out
}

// connects records the transports of a client's connects.
type connects struct {
	mu sync.Mutex
	ts []client.Transport
}

func (c *connects) option() client.Option {
	return client.WithOnConnect(func(_ string, t client.Transport) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.ts = append(c.ts, t)
	})
}

func (c *connects) list() []client.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]client.Transport(nil), c.ts...)
}

// tcpProxy forwards loopback connections to target. Cut closes every
// open connection; Freeze makes the open ones stop forwarding (without
// closing), as a dead network path does.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	wg     sync.WaitGroup
}

type proxyConn struct {
	client, upstream net.Conn
	frozen           chan struct{}
	once             sync.Once
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) Base() string { return "http://" + p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		uc, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = cc.Close()
			continue
		}
		pc := &proxyConn{client: cc, upstream: uc, frozen: make(chan struct{})}
		p.mu.Lock()
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, cc, uc)
		go p.pipe(pc, uc, cc)
	}
}

// pipe copies src to dst until either side fails or the pair is frozen.
func (p *tcpProxy) pipe(pc *proxyConn, dst, src net.Conn) {
	defer p.wg.Done()
	defer pc.close(p)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-pc.frozen:
				// A frozen path swallows everything until it is closed.
				continue
			default:
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (pc *proxyConn) close(p *tcpProxy) {
	pc.once.Do(func() {
		_ = pc.client.Close()
		_ = pc.upstream.Close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	})
}

// Cut closes every open connection.
func (p *tcpProxy) Cut() int {
	p.mu.Lock()
	all := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		all = append(all, pc)
	}
	p.mu.Unlock()
	for _, pc := range all {
		pc.close(p)
	}
	return len(all)
}

// Freeze stops forwarding on every open connection.
func (p *tcpProxy) Freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		close(pc.frozen)
	}
	return len(p.conns)
}

// Open returns the number of open connections.
func (p *tcpProxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// httpProxy is a reverse-proxy stand-in in front of a bridge: it refuses
// WebSocket upgrades (502, as a proxy that does not pass them) and, when
// bufferSSE is set, holds SSE bodies until the upstream response ends, as
// a buffering proxy does.
type httpProxy struct {
	srv       *http.Server
	ln        net.Listener
	target    string
	bufferSSE bool
	upstream  *http.Client
}

func startHTTPProxy(t *testing.T, target string, bufferSSE bool) *httpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &httpProxy{ln: ln, target: target, bufferSSE: bufferSSE, upstream: &http.Client{Transport: &http.Transport{}}}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = p.srv.Close()
		<-done
		p.upstream.CloseIdleConnections()
	})
	return p
}

func (p *httpProxy) Base() string { return "http://" + p.ln.Addr().String() }

func (p *httpProxy) serve(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "<html>502 Bad Gateway: upgrades not supported</html>", http.StatusBadGateway)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.upstream.Do(req)
	if err != nil {
		http.Error(w, "upstream failed", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	sse := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	w.WriteHeader(resp.StatusCode)
	if sse && p.bufferSSE {
		w.(http.Flusher).Flush() // the head goes through, the body waits
		body, err := io.ReadAll(resp.Body)
		if err != nil && !errors.Is(err, context.Canceled) {
			return
		}
		_, _ = w.Write(body)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if sse {
				w.(http.Flusher).Flush()
			}
		}
		if err != nil {
			return
		}
	}
}
