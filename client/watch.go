package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// ErrDeadStream is the cause Watch logs when a stream stayed silent for
// the heartbeat timeout: no event, heartbeat or ping arrived, so the
// connection is presumed dead (or a proxy is buffering it) and Watch
// reconnects.
var ErrDeadStream = errors.New("taskbridge: no data within the heartbeat timeout")

// fallbackAfter is how many connects in a row may fail on one transport
// before Watch moves on to the next.
const fallbackAfter = 3

// WithOnConnect calls fn each time a Watch has a working connection: a
// confirmed WebSocket subscription, an open SSE stream that sent
// something, or a long-poll answer. fn runs on the Watch's goroutine and
// must return quickly. It suits status displays and tests.
func WithOnConnect(fn func(taskID string, t Transport)) Option {
	return func(c *Client) error {
		c.onConnect = fn
		return nil
	}
}

// Watch streams the task's events after from (zero: from the first event
// the server retains) as an iterator:
//
//	for ev, err := range c.Watch(ctx, taskID, contracts.EventID{}) {
//		if err != nil {
//			return err // fatal: 401, 403, 404, 429, ... or ctx's error
//		}
//		fmt.Println(ev.Type)
//	}
//
// It connects over the first transport of the chain (WithTransports;
// default WebSocket, then SSE, then long-poll) and moves to the next one
// when a transport cannot work here (a refused WebSocket upgrade, an SSE
// stream a proxy buffers, a route that is not mounted) or fails three
// connects in a row; after the last it starts over. Each reconnect waits
// a jittered backoff and resumes strictly after the last event yielded,
// and events the server repeats across transports are dropped by
// comparing event ids in the protocol's order, so the sequence has no
// duplicate and no gap. A stream silent for the heartbeat timeout is
// presumed dead and replaced.
//
// The sequence ends after the terminal event (COMPLETED, FAILED or
// CANCELLED), or without one when the server says the task ended at or
// before the cursor (SSE 204, WebSocket close 1000). It ends with a
// non-nil error, as its last element, when ctx ends or the server refuses
// for good: a *ResponseError matching ErrUnauthorized, ErrForbidden,
// ErrNotFound or ErrRateLimited (and other 4xx answers), or a failing
// TokenSource. Events that retention dropped before they could be
// delivered are reported as a Warn log. Breaking out of the loop closes
// the connection.
func (c *Client) Watch(ctx context.Context, taskID string, from contracts.EventID) iter.Seq2[contracts.TaskEvent, error] {
	return func(yield func(contracts.TaskEvent, error) bool) {
		if taskID == "" {
			yield(contracts.TaskEvent{}, errors.New("taskbridge: watch: empty task id"))
			return
		}
		w := &watch{c: c, taskID: taskID, last: from, yield: yield, log: c.log.With(zap.String("taskId", taskID))}
		if err := w.run(ctx); err != nil && !w.stopped {
			yield(contracts.TaskEvent{}, err)
		}
	}
}

// watch is the state of one Watch; it lives on the iterating goroutine.
type watch struct {
	c       *Client
	taskID  string
	last    contracts.EventID // the cursor: the last event yielded (or from)
	yield   func(contracts.TaskEvent, error) bool
	log     *zap.Logger
	stopped bool // the consumer broke out of the loop
	ended   bool // the task is over: terminal yielded, or the server said so
}

// attempt is the outcome of one connection.
type attempt struct {
	delivered   bool  // the transport worked (confirmed, sent data, answered)
	unavailable bool  // the transport cannot work here; move on at once
	err         error // why it ended (nil after the end of the task)
}

func (w *watch) run(ctx context.Context) error {
	chain := w.c.transports
	i, here, fails := 0, 0, 0
	proven := map[Transport]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := chain[i]
		var a attempt
		switch t {
		case TransportWebSocket:
			a = w.webSocket(ctx)
		case TransportSSE:
			a = w.sse(ctx, proven[t])
		default:
			a = w.poll(ctx)
		}
		if w.stopped || w.ended {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if a.err != nil && fatal(a.err) {
			return a.err
		}
		if a.delivered {
			proven[t], here, fails = true, 0, 0
		} else {
			here++
			fails++
		}
		if len(chain) > 1 && (a.unavailable || here >= fallbackAfter) {
			next := chain[(i+1)%len(chain)]
			w.log.Info("taskbridge client: falling back", zap.String("from", string(t)), zap.String("to", string(next)),
				zap.Bool("unavailable", a.unavailable), zap.Error(a.err))
			i, here = (i+1)%len(chain), 0
			if a.unavailable && i != 0 {
				continue // the next transport may work: no wait
			}
		} else {
			w.log.Debug("taskbridge client: reconnecting", zap.String("transport", string(t)), zap.Error(a.err))
		}
		if err := sleep(ctx, w.c.backoff(max(fails-1, 0))); err != nil {
			return err
		}
	}
}

// deliver yields ev unless it is at or before the cursor (a repeat); it
// returns false when the Watch must stop (consumer gone, terminal event).
func (w *watch) deliver(ev contracts.TaskEvent) bool {
	if ev.TaskID != w.taskID {
		w.log.Warn("taskbridge client: event of another task dropped", zap.String("eventTaskId", ev.TaskID))
		return true
	}
	if !w.last.Less(ev.EventID) {
		return true
	}
	w.last = ev.EventID
	if !w.yield(ev, nil) {
		w.stopped = true
		return false
	}
	if ev.Type.IsTerminal() {
		w.ended = true
		return false
	}
	return true
}

// connected reports a working connection once per attempt.
func (w *watch) connected(a *attempt, t Transport) {
	if a.delivered {
		return
	}
	a.delivered = true
	if w.c.onConnect != nil {
		w.c.onConnect(w.taskID, t)
	}
}

func (w *watch) retentionGap(t Transport) {
	w.log.Warn("taskbridge client: events after the cursor were dropped by the server's retention",
		zap.String("transport", string(t)), zap.String("afterEventId", w.last.String()))
}

// ---------------------------------------------------------------- WebSocket

// wsDialer builds the WebSocket dialer from the http.Client's transport.
func (c *Client) wsDialer() *websocket.Dialer {
	d := &websocket.Dialer{HandshakeTimeout: c.reqTimeout, Proxy: http.ProxyFromEnvironment}
	if t, ok := c.http.Transport.(*http.Transport); ok {
		d.Proxy = t.Proxy
		d.NetDialContext = t.DialContext
		if t.TLSClientConfig != nil {
			d.TLSClientConfig = t.TLSClientConfig.Clone()
		}
	}
	return d
}

func (c *Client) wsURL() string {
	u := c.url(c.routes.WebSocket, "", nil)
	return "ws" + strings.TrimPrefix(u, "http")
}

func (w *watch) webSocket(ctx context.Context) attempt {
	c := w.c
	hdr := http.Header{}
	if err := c.authorize(ctx, hdr); err != nil {
		return attempt{err: err}
	}
	conn, resp, err := c.ws.DialContext(ctx, c.wsURL(), hdr)
	if err != nil {
		if resp == nil {
			return attempt{err: fmt.Errorf("taskbridge: websocket: %w", err)}
		}
		defer resp.Body.Close()
		re := readResponseError(resp)
		switch re.StatusCode {
		case http.StatusUnauthorized, http.StatusTooManyRequests:
			return attempt{err: re}
		}
		// Any other refusal of the upgrade (a proxy that does not pass
		// WebSockets, a route that is not mounted): try the next transport.
		return attempt{unavailable: true, err: re}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	conn.SetReadLimit(int64(c.maxFrame))

	sub := contracts.SubscribeRequest{Action: "subscribe", TaskID: w.taskID}
	if !w.last.IsZero() {
		cursor := w.last.String()
		sub.LastEventID = &cursor
	}
	_ = conn.SetWriteDeadline(time.Now().Add(c.reqTimeout))
	if err := conn.WriteJSON(sub); err != nil {
		return attempt{err: fmt.Errorf("taskbridge: websocket: subscribe: %w", err)}
	}
	var a attempt
	for {
		_ = conn.SetReadDeadline(time.Now().Add(c.hbTimeout))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return w.wsEnd(ctx, a, err)
		}
		f, err := frames.Decode(data)
		if err != nil {
			a.err = fmt.Errorf("taskbridge: websocket: %w", err)
			return a
		}
		switch {
		case f.Confirmation != nil:
			w.connected(&a, TransportWebSocket)
			if f.Confirmation.RetentionGap {
				w.retentionGap(TransportWebSocket)
			}
		case f.Event != nil:
			if !w.deliver(*f.Event) {
				_ = conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				return a
			}
		}
	}
}

// wsEnd classifies the end of a WebSocket read loop.
func (w *watch) wsEnd(ctx context.Context, a attempt, err error) attempt {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure:
		// The server closes 1000 only when the task is over: after the
		// terminal event, or at once for a cursor at or after it. Something
		// else in the path may close 1000 too, so the SSE route's 204
		// confirms it before the watch ends.
		if w.endedAtCursor(ctx) {
			w.ended = true
		} else {
			a.err = errors.New("taskbridge: websocket closed 1000 before the end of the task")
		}
	case errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation:
		a.err = closeError(ce.Code, ce.Text)
	case errors.As(err, &ce):
		a.err = fmt.Errorf("taskbridge: websocket closed %d %s", ce.Code, ce.Text)
	case errors.As(err, &ne) && ne.Timeout():
		a.err = fmt.Errorf("taskbridge: websocket: %w", ErrDeadStream)
		w.log.Warn("taskbridge client: dead stream", zap.String("transport", string(TransportWebSocket)),
			zap.Duration("heartbeatTimeout", w.c.hbTimeout))
	default:
		a.err = fmt.Errorf("taskbridge: websocket: %w", err)
	}
	return a
}

// ---------------------------------------------------------------- SSE

// sse reads one SSE stream. proven says SSE has worked before in this
// Watch: silence is then a dead connection, not a buffering proxy.
func (w *watch) sse(ctx context.Context, proven bool) attempt {
	c := w.c
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	dead := time.AfterFunc(c.hbTimeout, func() { cancel(ErrDeadStream) })
	defer dead.Stop()
	resp, err := c.openSSE(sctx, w.taskID, w.last)
	if err != nil {
		if errors.Is(context.Cause(sctx), ErrDeadStream) {
			// Not even the response head within the heartbeat timeout.
			return attempt{unavailable: !proven, err: fmt.Errorf("taskbridge: sse: %w", ErrDeadStream)}
		}
		return attempt{err: err}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		// The cursor is at or after the terminal event.
		w.ended = true
		return attempt{delivered: true}
	case resp.StatusCode != http.StatusOK:
		re := readResponseError(resp)
		if re.StatusCode == http.StatusNotFound && re.Code != bridgeerr.CodeTaskNotFound {
			return attempt{unavailable: true, err: re} // no SSE route here
		}
		return attempt{err: re}
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		return attempt{unavailable: true, err: fmt.Errorf("taskbridge: sse: answer of type %q", resp.Header.Get("Content-Type"))}
	}
	r := newSSEReader(resp.Body, c.maxFrame)
	var a attempt
	for {
		dead.Reset(c.hbTimeout)
		m, err := r.next()
		dead.Stop()
		if err != nil {
			switch {
			case errors.Is(context.Cause(sctx), ErrDeadStream):
				// Silence: a dead connection, or (before anything came on a
				// transport never seen working) a proxy buffering the stream.
				a.unavailable = !proven && !a.delivered
				a.err = fmt.Errorf("taskbridge: sse: %w", ErrDeadStream)
				w.log.Warn("taskbridge client: dead stream", zap.String("transport", string(TransportSSE)),
					zap.Duration("heartbeatTimeout", c.hbTimeout), zap.Bool("buffered", a.unavailable))
			case ctx.Err() != nil:
				a.err = ctx.Err()
			default:
				a.err = fmt.Errorf("taskbridge: sse: the stream ended before the task: %w", err)
			}
			return a
		}
		w.connected(&a, TransportSSE)
		if m.comment || len(m.data) == 0 {
			continue
		}
		f, err := frames.Decode(m.data)
		if err != nil {
			a.err = fmt.Errorf("taskbridge: sse: %w", err)
			return a
		}
		if f.Event != nil && !w.deliver(*f.Event) {
			return a
		}
	}
}

// openSSE sends the SSE request with the cursor in Last-Event-ID.
func (c *Client) openSSE(ctx context.Context, taskID string, cursor contracts.EventID) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(c.routes.StreamEvents, taskID, nil), nil)
	if err != nil {
		return nil, fmt.Errorf("taskbridge: sse: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if !cursor.IsZero() {
		req.Header.Set(contracts.HeaderLastEventID, cursor.String())
	}
	if err := c.authorize(ctx, req.Header); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("taskbridge: sse: %w", err)
	}
	return resp, nil
}

// ---------------------------------------------------------------- long-poll

func (w *watch) poll(ctx context.Context) attempt {
	c := w.c
	var a attempt
	early := 0
	for {
		start := time.Now()
		res, err := c.pollOnce(ctx, w.taskID, PollRequest{After: w.last, Wait: c.pollWait, MaxEvents: 100})
		if err != nil {
			a.err = err
			var re *ResponseError
			if errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.Code != bridgeerr.CodeTaskNotFound {
				a.unavailable = true // no poll route here
			}
			return a
		}
		w.connected(&a, TransportPoll)
		if res.RetentionGap {
			w.retentionGap(TransportPoll)
		}
		for i := range res.Events {
			if !w.deliver(res.Events[i]) {
				return a
			}
		}
		if len(res.Events) > 0 || time.Since(start) >= c.pollWait/2 {
			early = 0
			continue
		}
		// Empty long before the wait was over: the task may have ended at
		// or before the cursor (a poll cannot say so; the SSE route's 204
		// can), or the server does not wait (shutting down, waits off).
		if w.endedAtCursor(ctx) {
			w.ended = true
			return a
		}
		early++
		if err := sleep(ctx, c.backoff(min(early, 5))); err != nil {
			a.err = err
			return a
		}
	}
}

// pollOnce is Poll without retries (Watch has its own).
func (c *Client) pollOnce(ctx context.Context, taskID string, r PollRequest) (contracts.PollResult, error) {
	return c.poll(ctx, taskID, r, 1)
}

// endedAtCursor asks the SSE route whether the task ended at or before
// the cursor (204); any other answer, or none, means no.
func (w *watch) endedAtCursor(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, min(w.c.reqTimeout, 10*time.Second))
	defer cancel()
	resp, err := w.c.openSSE(ctx, w.taskID, w.last)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}
