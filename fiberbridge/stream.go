package fiberbridge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/wsframe"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// Cursor sources of an SSE request.
const (
	headerLastEventID = contracts.HeaderLastEventID
	paramLastEventID  = contracts.QueryLastEventID
)

// paramMulti opens a WebSocket that follows several tasks (?multi=true).
const paramMulti = contracts.QueryMulti

// newHub builds the streaming hub.
func (b *Bridge) newHub() (*streaming.Hub, error) {
	opts := b.cfg.Stream
	if opts.Logger == nil {
		opts.Logger = b.cfg.Logger
	}
	if opts.Metrics == nil {
		opts.Metrics = b.cfg.Metrics
	}
	if opts.Diagnostics == nil {
		opts.Diagnostics = b.cfg.Diagnostics
	}
	if opts.TaskExists == nil && b.cfg.Stores.Tasks != nil {
		tasks := b.cfg.Stores.Tasks
		opts.TaskExists = func(ctx context.Context, taskID string) (bool, error) {
			_, err := tasks.Get(ctx, taskID)
			if errors.Is(err, contracts.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		}
	}
	b.replayLimit = opts.ReplayBatchSize
	if b.replayLimit <= 0 {
		b.replayLimit = streaming.DefaultReplayBatchSize
	}
	b.replayLimit = min(b.replayLimit, orchestration.MaxPageLimit)
	opts.ReplayBatchSize = b.replayLimit
	hub, err := streaming.NewHub(b.cfg.Stores.Events, opts)
	if err != nil {
		return nil, err
	}
	b.wsConfig = wsframe.UpgraderConfig(websocket.Config{
		Origins:        b.cfg.WebSocketOrigins,
		RecoverHandler: b.recoverWebSocket,
	})
	return hub, nil
}

// runHub runs the hub until Shutdown.
func (b *Bridge) runHub(hub *streaming.Hub) {
	b.hub = hub
	b.hubDone = make(chan struct{})
	go func() { // owned by the bridge: Shutdown stops the hub and waits for hubDone
		defer close(b.hubDone)
		err := b.hub.Run(context.Background())
		if err != nil && !errors.Is(err, context.Canceled) {
			b.log.Error("streaming hub stopped", observe.Entry{Transport: observe.TransportInternal, Outcome: "failed", Err: err})
		}
	}()
}

// recoverWebSocket is the upgraded connection's panic handler: it logs the
// panic and lets the connection close (contrib's default would write the
// panic value to the client).
func (b *Bridge) recoverWebSocket(*websocket.Conn) {
	if r := recover(); r != nil {
		b.log.Error("websocket handler panicked", observe.Entry{Transport: observe.TransportWS, Outcome: "panic", Err: panicError(r)})
	}
}

// StreamEventsHandler returns the handler of GET
// /api/v1/tasks/:taskId/events/stream, the SSE stream. The cursor comes
// from the Last-Event-ID header, else the lastEventId query parameter; a
// malformed cursor answers 400 before any stream starts, a missing or
// foreign task 404, a cursor at or after the task's terminal event 204 (so
// EventSource stops). Otherwise the streaming hub takes the connection
// over: replay strictly after the cursor, live events, heartbeats when
// idle, and the end of the response after the terminal event. With stream
// tickets on (Config.StreamTickets), a "ticket" query parameter stands in
// for the caller's credentials, for the ticket's task only.
func (b *Bridge) StreamEventsHandler() fiber.Handler {
	return b.ticketed(b.handler(b.streamEvents))
}

func (b *Bridge) streamEvents(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	taskID, err := parseTaskID(c.Params(TaskIDParam))
	if err != nil {
		return err
	}
	if err := checkTicketTask(c, taskID); err != nil {
		return err
	}
	name, raw := headerLastEventID, c.Get(headerLastEventID)
	if raw == "" {
		name, raw = paramLastEventID, c.Query(paramLastEventID)
	}
	cursor, err := parseCursor(name, raw)
	if err != nil {
		return err
	}
	if b.closing() {
		return bridgeerr.New(bridgeerr.CodeServiceShuttingDown, "server is shutting down")
	}
	// Replay authorizes and reads the first page in one call.
	_, page, err := s.Subscription.Replay(c.UserContext(), auth, taskID, cursor, b.replayLimit)
	if err != nil {
		return err
	}
	if page.Ended && !eventsAfter(page.Events, cursor) {
		// At or after the terminal event: 204 tells EventSource to stop.
		c.Status(fiber.StatusNoContent)
		b.log.Debug("http.task.stream", observe.Entry{TaskID: taskID, UserID: auth.Subject, Outcome: "already_terminal"})
		return nil
	}
	release, err := b.acquireStream(auth.Subject)
	if err != nil {
		return err
	}
	err = b.hub.ServeSSE(c, streaming.StreamRequest{
		TaskID: taskID, Cursor: cursor, Initial: &page, InitialLimit: b.replayLimit, Subject: auth.Subject,
		OnClose: release,
	})
	if err != nil {
		release()
	}
	return err
}

// eventsAfter reports whether a page holds an event after cursor.
func eventsAfter(events []contracts.TaskEvent, cursor contracts.EventID) bool {
	return len(events) > 0 && cursor.Less(events[len(events)-1].EventID)
}

// acquireStream takes one of subject's stream slots (Config.MaxStreamsPerSubject)
// and returns its idempotent release, or TOO_MANY_STREAMS.
func (b *Bridge) acquireStream(subject string) (func(), error) {
	limit := b.cfg.MaxStreamsPerSubject
	if limit <= 0 {
		return func() {}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.streams[subject] >= limit {
		return nil, bridgeerr.New(bridgeerr.CodeTooManyStreams, "too many open streams").
			WithDetails(map[string]any{"maxStreams": limit})
	}
	if b.streams == nil {
		b.streams = make(map[string]int)
	}
	b.streams[subject]++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.streams[subject]--; b.streams[subject] <= 0 {
				delete(b.streams, subject)
			}
		})
	}, nil
}

// WebSocketHandler returns the handler of GET /api/v1/tasks/ws. The caller
// is authenticated before the upgrade (a failure answers the 401 envelope,
// a request that is not an upgrade 426); the AuthContext and services are
// captured for the connection. The client then sends
// {action:"subscribe", taskId, lastEventId}; a missing or foreign task
// closes the socket with 1008, as does an invalid frame. A subject over
// Config.MaxStreamsPerSubject is upgraded and closed at once with 1008
// "TOO_MANY_STREAMS".
//
// One connection may follow several tasks (up to
// Config.Stream.WSMaxSubscriptions, 100 by default): more subscribe frames,
// each answered with SUBSCRIPTION_CONFIRMED or SUBSCRIPTION_ERROR, and
// {action:"unsubscribe", taskId} frames, answered with UNSUBSCRIBED. Each
// task beyond the first takes one of the subject's stream slots. With the
// query parameter multi=true the connection follows several tasks from its
// first subscribe, so a task's terminal event never closes it (see the
// streaming package's README for the frames and the rules).
//
// With stream tickets on, a "ticket" query parameter stands in for the
// caller's credentials, for the ticket's task only: subscribing to another
// task is refused with AUTHENTICATION_ERROR (a close 1008 on a one-task
// connection).
func (b *Bridge) WebSocketHandler() fiber.Handler {
	return b.ticketed(b.handler(b.webSocket))
}

// refuseTimeout bounds the close handshake of a refused WebSocket.
const refuseTimeout = time.Second

func (b *Bridge) webSocket(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return bridgeerr.New(bridgeerr.CodeInvalidRequest, "WebSocket upgrade required").
			WithStatus(fiber.StatusUpgradeRequired)
	}
	multi, err := parseBoolParam(paramMulti, c.Query(paramMulti))
	if err != nil {
		return err
	}
	if b.closing() {
		return bridgeerr.New(bridgeerr.CodeServiceShuttingDown, "server is shutting down")
	}
	release, err := b.acquireStream(auth.Subject)
	if err != nil {
		if be := toBridgeError(err); be.Code == bridgeerr.CodeTooManyStreams {
			// Browsers cannot read the status of a refused upgrade; they
			// can read a close code and reason.
			b.log.Warn("http.request.rejected", observe.Entry{UserID: auth.Subject, Transport: observe.TransportWS,
				Outcome: string(be.Code), Details: be.Details})
			return websocket.New(func(conn *websocket.Conn) {
				refuseWebSocket(conn, websocket.ClosePolicyViolation, string(be.Code))
			}, b.wsConfig)(c)
		}
		return err
	}
	ticketTask, ticketed := c.Locals(ticketTaskKey).(string)
	authorize := func(ctx context.Context, taskID string) error {
		if ticketed && taskID != ticketTask {
			return errTicketTask
		}
		_, err := s.Subscription.Authorize(ctx, auth, taskID)
		return err
	}
	hub, subject := b.hub, auth.Subject
	// fasthttp runs the connection handler only after it has written the
	// 101 response; when that write fails (the client is already gone) the
	// handler never runs and OnClose never comes. So the handler and a guard
	// timer race for one token: the handler takes it and hands the slot to
	// the stream; a guard firing first (nothing started within the
	// WebSocket handshake timeout) releases the slot itself, and a handler
	// that starts after that returns at once (fasthttp closes the socket).
	token := make(chan struct{}, 1)
	token <- struct{}{}
	take := func() bool {
		select {
		case <-token:
			return true
		default:
			return false
		}
	}
	wait := b.cfg.Stream.WSHandshakeTimeout
	if wait <= 0 {
		wait = streaming.DefaultWSHandshakeTimeout
	}
	guard := time.AfterFunc(wait, func() {
		if take() {
			release()
		}
	})
	err = websocket.New(func(conn *websocket.Conn) {
		if !take() {
			return
		}
		guard.Stop()
		// The hub takes the connection over and returns once the stream is
		// live (or, where it cannot detach it, when the stream ends), so
		// fasthttp's upgrade goroutine and buffers are released; OnClose
		// gives the slot back when the stream ends, however it ends.
		hub.AttachWebSocket(conn, streaming.WebSocketRequest{
			Authorize: authorize, Subject: subject, OnClose: release, Multi: multi,
			AcquireSlot: b.acquireSlot,
		})
	}, b.wsConfig)(c)
	if err != nil {
		guard.Stop()
		release() // not upgraded: the connection handler never runs
	}
	return err
}

// refuseWebSocket closes an upgraded connection with code and reason and
// waits (up to refuseTimeout) for the client's close, discarding what the
// client sent meanwhile (its subscribe frame), so the close frame is not
// lost to a reset.
func refuseWebSocket(conn *websocket.Conn, code int, reason string) {
	deadline := time.Now().Add(refuseTimeout)
	if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline); err != nil {
		return
	}
	conn.SetReadLimit(streaming.DefaultWSReadLimit)
	_ = conn.SetReadDeadline(deadline)
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

// parseBoolParam parses a boolean query parameter: "" is false, "true" or
// "1" true, "false" or "0" false; anything else is 422
// REQUEST_VALIDATION_ERROR naming the parameter.
func parseBoolParam(name, raw string) (bool, error) {
	switch raw {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, bridgeerr.New(bridgeerr.CodeRequestValidation, name+" must be true or false").
		WithDetails(map[string]any{"parameter": name})
}
