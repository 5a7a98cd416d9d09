package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Transport is one way of receiving a task's events.
type Transport string

// The transports, in the default order of Watch's fallback chain.
const (
	// TransportWebSocket subscribes on the WebSocket route.
	TransportWebSocket Transport = "ws"
	// TransportSSE reads the Server-Sent Events route.
	TransportSSE Transport = "sse"
	// TransportPoll long-polls the events route.
	TransportPoll Transport = "poll"
)

// TokenSource returns the bearer token for one request (or connection). It
// is called before every request and every stream (re)connect, so it can
// refresh an expiring token; it must be safe for concurrent use.
type TokenSource func(ctx context.Context) (string, error)

// Routes are the server's paths, relative to the client's base URL. Each
// task route contains ":taskId", which the client replaces with the
// escaped task id; any other parameter of the host's routes must already
// be filled in. Empty fields take the defaults (DefaultRoutes).
type Routes struct {
	CreateTask   string
	PollEvents   string
	StreamEvents string
	CancelTask   string
	SubmitAction string
	WebSocket    string
}

// DefaultRoutes are the TaskBridge v1 paths.
var DefaultRoutes = Routes{
	CreateTask:   contracts.PathCreateTask,
	PollEvents:   contracts.PathPollEvents,
	StreamEvents: contracts.PathStreamEvents,
	CancelTask:   contracts.PathCancelTask,
	SubmitAction: contracts.PathSubmitAction,
	WebSocket:    contracts.PathWebSocket,
}

// Defaults of the options.
const (
	DefaultHeartbeatTimeout = 45 * time.Second
	DefaultPollWait         = 25 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultBackoffMin       = 200 * time.Millisecond
	DefaultBackoffMax       = 10 * time.Second
	DefaultRetries          = 3
	// DefaultMaxFrameBytes bounds one WebSocket frame or SSE message.
	DefaultMaxFrameBytes = 16 << 20
)

// taskIDSegment is the placeholder of the task id in Routes.
const taskIDSegment = ":" + "taskId"

// Client talks to one TaskBridge server. It is safe for concurrent use by
// many goroutines; build one per server and share it.
type Client struct {
	base       *url.URL
	http       *http.Client
	headers    http.Header
	tokens     TokenSource
	log        *zap.Logger
	routes     Routes
	transports []Transport
	hbTimeout  time.Duration
	pollWait   time.Duration
	reqTimeout time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	retries    int
	maxFrame   int
	ws         *websocket.Dialer
	onConnect  func(taskID string, t Transport)
}

// Option configures a Client in New.
type Option func(*Client) error

// WithHTTPClient sends every request and SSE stream through hc (its
// Transport's dialer, proxy and TLS settings also serve the WebSocket
// dial). hc.Timeout, when set, also ends SSE streams; Watch then simply
// resumes, but leave it 0 and rely on WithRequestTimeout instead.
// Default: a client of its own with http.DefaultTransport's settings.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("taskbridge: nil http client")
		}
		c.http = hc
		return nil
	}
}

// WithBearerToken authenticates every request with "Authorization: Bearer
// token".
func WithBearerToken(token string) Option {
	return WithTokenSource(func(context.Context) (string, error) { return token, nil })
}

// WithTokenSource authenticates every request and stream connect with
// "Authorization: Bearer <token>" from ts.
func WithTokenSource(ts TokenSource) Option {
	return func(c *Client) error {
		if ts == nil {
			return errors.New("taskbridge: nil token source")
		}
		c.tokens = ts
		return nil
	}
}

// WithHeader adds a header to every request and WebSocket handshake, for
// example an API key ("X-API-Key", key). It may be given several times.
func WithHeader(name, value string) Option {
	return func(c *Client) error {
		if name == "" {
			return errors.New("taskbridge: empty header name")
		}
		c.headers.Add(name, value)
		return nil
	}
}

// WithLogger receives the client's logs: reconnects and fallbacks (Info),
// dead streams and retention gaps (Warn), per-connection detail (Debug).
// Tokens are never logged. Default: no logs.
func WithLogger(l *zap.Logger) Option {
	return func(c *Client) error {
		if l == nil {
			return errors.New("taskbridge: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithRoutes sets the server's paths (empty fields keep the defaults).
func WithRoutes(r Routes) Option {
	return func(c *Client) error {
		c.routes = r
		return nil
	}
}

// WithTransports sets Watch's fallback chain, in order; one transport pins
// it. Default: WebSocket, SSE, long-poll.
func WithTransports(ts ...Transport) Option {
	return func(c *Client) error {
		if len(ts) == 0 {
			return errors.New("taskbridge: no transports")
		}
		seen := map[Transport]bool{}
		for _, t := range ts {
			switch t {
			case TransportWebSocket, TransportSSE, TransportPoll:
			default:
				return fmt.Errorf("taskbridge: unknown transport %q", t)
			}
			if seen[t] {
				return fmt.Errorf("taskbridge: transport %q given twice", t)
			}
			seen[t] = true
		}
		c.transports = append([]Transport(nil), ts...)
		return nil
	}
}

// WithHeartbeatTimeout is how long a stream may stay silent (no event, no
// heartbeat, no comment ping) before Watch declares it dead and
// reconnects. Keep it a few times the server's heartbeat interval (15 s
// by default). Default: DefaultHeartbeatTimeout (45 s).
func WithHeartbeatTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return errors.New("taskbridge: heartbeat timeout must be positive")
		}
		c.hbTimeout = d
		return nil
	}
}

// WithPollWait is the waitTimeoutMs of Watch's long-polls (at most 60 s).
// Default: DefaultPollWait (25 s).
func WithPollWait(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 || d > contracts.MaxWaitTimeoutMs*time.Millisecond {
			return errors.New("taskbridge: poll wait must be in (0, 60s]")
		}
		c.pollWait = d
		return nil
	}
}

// WithRequestTimeout bounds each Create, Poll (beyond its wait), Cancel
// and Act attempt and each stream's handshake. Default:
// DefaultRequestTimeout (30 s).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return errors.New("taskbridge: request timeout must be positive")
		}
		c.reqTimeout = d
		return nil
	}
}

// WithBackoff sets the reconnect and retry backoff: attempt n waits a
// random duration between half and all of min(max, min*2^n). Default:
// DefaultBackoffMin (200 ms) to DefaultBackoffMax (10 s).
func WithBackoff(min, max time.Duration) Option {
	return func(c *Client) error {
		if min <= 0 || max < min {
			return errors.New("taskbridge: backoff needs 0 < min <= max")
		}
		c.backoffMin, c.backoffMax = min, max
		return nil
	}
}

// WithRetries is how many times Create, Poll, Cancel and Act are tried
// when the server cannot be reached or answers 5xx. Retrying is safe: a
// create carries its clientRequestId and an action its clientActionId, so
// the server answers a repeat with the first result. Default:
// DefaultRetries (3); 1 turns retries off.
func WithRetries(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return errors.New("taskbridge: retries must be at least 1")
		}
		c.retries = n
		return nil
	}
}

// New returns a client of the server at baseURL ("https://host" or
// "https://host/prefix"; the routes are appended to it).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("taskbridge: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("taskbridge: base URL %q: want http(s)://host[/prefix]", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	c := &Client{
		base:       u,
		headers:    http.Header{},
		log:        zap.NewNop(),
		routes:     DefaultRoutes,
		transports: []Transport{TransportWebSocket, TransportSSE, TransportPoll},
		hbTimeout:  DefaultHeartbeatTimeout,
		pollWait:   DefaultPollWait,
		reqTimeout: DefaultRequestTimeout,
		backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax,
		retries:    DefaultRetries,
		maxFrame:   DefaultMaxFrameBytes,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	c.routes = c.routes.withDefaults()
	if err := c.routes.check(); err != nil {
		return nil, err
	}
	c.ws = c.wsDialer()
	return c, nil
}

// CloseIdleConnections closes the idle keep-alive connections of the
// client's http.Client (its Transport's pool).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

func (r Routes) withDefaults() Routes {
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	return Routes{
		CreateTask:   or(r.CreateTask, DefaultRoutes.CreateTask),
		PollEvents:   or(r.PollEvents, DefaultRoutes.PollEvents),
		StreamEvents: or(r.StreamEvents, DefaultRoutes.StreamEvents),
		CancelTask:   or(r.CancelTask, DefaultRoutes.CancelTask),
		SubmitAction: or(r.SubmitAction, DefaultRoutes.SubmitAction),
		WebSocket:    or(r.WebSocket, DefaultRoutes.WebSocket),
	}
}

func (r Routes) check() error {
	for _, p := range []struct {
		name, path string
		task       bool
	}{
		{"CreateTask", r.CreateTask, false}, {"PollEvents", r.PollEvents, true},
		{"StreamEvents", r.StreamEvents, true}, {"CancelTask", r.CancelTask, true},
		{"SubmitAction", r.SubmitAction, true}, {"WebSocket", r.WebSocket, false},
	} {
		if !strings.HasPrefix(p.path, "/") {
			return fmt.Errorf("taskbridge: route %s %q must start with /", p.name, p.path)
		}
		if p.task != strings.Contains(p.path, taskIDSegment) {
			return fmt.Errorf("taskbridge: route %s %q: %s where the task id goes, nowhere else", p.name, p.path, taskIDSegment)
		}
		if rest := strings.ReplaceAll(p.path, taskIDSegment, ""); strings.Contains(rest, "/:") {
			return fmt.Errorf("taskbridge: route %s %q has an unfilled parameter", p.name, p.path)
		}
	}
	return nil
}

// url returns the absolute URL of route for taskID.
func (c *Client) url(route, taskID string, query url.Values) string {
	u := *c.base
	u.Path += strings.ReplaceAll(route, taskIDSegment, taskID)
	u.RawPath = c.base.EscapedPath() + strings.ReplaceAll(route, taskIDSegment, url.PathEscape(taskID))
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return u.String()
}

// authorize adds the configured headers and the bearer token to h.
func (c *Client) authorize(ctx context.Context, h http.Header) error {
	for k, v := range c.headers {
		h[k] = append([]string(nil), v...)
	}
	if c.tokens == nil {
		return nil
	}
	tok, err := c.tokens(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errTokenSource, err)
	}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// backoff returns the jittered wait before attempt n (0-based).
func (c *Client) backoff(n int) time.Duration {
	d := c.backoffMax
	if n < 30 {
		d = min(c.backoffMax, c.backoffMin<<n)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request is one unary call.
type request struct {
	method      string
	url         string
	body        func() (io.Reader, string, error) // body and content type, built per attempt
	extraWait   time.Duration                     // added to the request timeout (long-poll waits)
	okStatus    []int
	out         any
	idempotency string // for logs: the key that makes retries safe
	tries       int    // attempts; 0: the client's retries
}

// do runs r with retries on transport errors and 5xx answers and decodes
// a success into r.out. It returns the HTTP status of the answer.
func (c *Client) do(ctx context.Context, r request) (int, error) {
	var last error
	tries := r.tries
	if tries <= 0 {
		tries = c.retries
	}
	for attempt := 0; attempt < tries; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, c.backoff(attempt-1)); err != nil {
				return 0, errors.Join(err, last)
			}
		}
		status, err, retry := c.once(ctx, r)
		if err == nil || !retry || ctx.Err() != nil {
			return status, err
		}
		last = err
		c.log.Debug("taskbridge client: retrying", zap.String("request", describe(r.method, r.url)),
			zap.Int("attempt", attempt+1), zap.String("idempotencyKey", r.idempotency), zap.Error(err))
	}
	return 0, last
}

// once makes one attempt; retry says whether another may succeed.
func (c *Client) once(ctx context.Context, r request) (status int, err error, retry bool) {
	ctx, cancel := context.WithTimeout(ctx, c.reqTimeout+r.extraWait)
	defer cancel()
	var body io.Reader
	var contentType string
	if r.body != nil {
		if body, contentType, err = r.body(); err != nil {
			return 0, err, false
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return 0, fmt.Errorf("taskbridge: %w", err), false
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if err := c.authorize(ctx, req.Header); err != nil {
		return 0, err, false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("taskbridge: %s: %w", describe(r.method, r.url), err), true
	}
	defer resp.Body.Close()
	for _, ok := range r.okStatus {
		if resp.StatusCode == ok {
			if r.out == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				return resp.StatusCode, nil, false
			}
			data, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxFrame)))
			if err != nil {
				return resp.StatusCode, fmt.Errorf("taskbridge: %s: reading the answer: %w", describe(r.method, r.url), err), true
			}
			if err := json.Unmarshal(data, r.out); err != nil {
				return resp.StatusCode, fmt.Errorf("taskbridge: %s: decoding the answer: %w", describe(r.method, r.url), err), false
			}
			return resp.StatusCode, nil, false
		}
	}
	rerr := readResponseError(resp)
	return resp.StatusCode, rerr, resp.StatusCode >= 500
}

// jsonBody returns a body builder for v.
func jsonBody(v any) func() (io.Reader, string, error) {
	return func() (io.Reader, string, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, "", fmt.Errorf("taskbridge: encoding the request: %w", err)
		}
		return bytes.NewReader(b), "application/json", nil
	}
}
