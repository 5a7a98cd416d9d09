package fiberbridge

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// Query parameters of the long-poll and their bounds (the protocol's).
const (
	paramAfterEventID  = contracts.QueryAfterEventID
	paramWaitTimeoutMs = contracts.QueryWaitTimeoutMs
	paramMaxEvents     = contracts.QueryMaxEvents
	maxWaitTimeoutMs   = contracts.MaxWaitTimeoutMs
)

// PollEventsHandler returns the handler of GET
// /api/v1/tasks/:taskId/events, the long-poll: events strictly after
// afterEventId (empty: from the start of what is retained), at most
// maxEvents (1..500, default 100), waiting up to waitTimeoutMs (0..60000,
// default 0, capped by Config.MaxPollWait) for the first one. Out-of-range
// or non-numeric numbers answer 422, a malformed cursor 400, a missing or
// foreign task 404. A wait ends early, with what is there, when the bridge
// or the server shuts down.
func (b *Bridge) PollEventsHandler() fiber.Handler {
	return b.handler(b.pollEvents)
}

func (b *Bridge) pollEvents(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	taskID, err := parseTaskID(c.Params(TaskIDParam))
	if err != nil {
		return err
	}
	after, err := parseCursor(paramAfterEventID, c.Query(paramAfterEventID))
	if err != nil {
		return err
	}
	waitMs, err := parseIntParam(paramWaitTimeoutMs, c.Query(paramWaitTimeoutMs), 0, 0, maxWaitTimeoutMs)
	if err != nil {
		return err
	}
	limit, err := parseIntParam(paramMaxEvents, c.Query(paramMaxEvents), orchestration.DefaultPageLimit, 1, orchestration.MaxPageLimit)
	if err != nil {
		return err
	}
	q := contracts.PollQuery{Auth: auth, TaskID: taskID, After: after, Limit: limit,
		Wait: min(time.Duration(waitMs)*time.Millisecond, max(b.cfg.MaxPollWait, 0))}

	ctx := c.UserContext()
	if q.Wait > 0 {
		if !b.beginPoll() {
			q.Wait = 0 // shutting down: answer with what is there
		} else {
			defer b.polls.Done()
			var stop func()
			ctx, stop = b.pollContext(ctx, c.Context().Done(), c.Context().Conn())
			defer stop()
		}
	}
	res, err := s.Polling.Poll(ctx, q)
	if err != nil {
		return err
	}
	if b.log.Enabled(zapcore.DebugLevel) {
		b.log.Debug("http.task.poll", observe.Entry{TaskID: taskID, UserID: auth.Subject, Outcome: "ok",
			Details: map[string]any{"events": len(res.Events), "waitMs": q.Wait.Milliseconds()}})
	}
	bp := pollBuffers.Get().(*[]byte)
	buf := appendPollResult((*bp)[:0], &res)
	c.Status(http.StatusOK)
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSONCharsetUTF8)
	c.Response().SetBody(buf) // copies into fasthttp's pooled body buffer
	if cap(buf) <= maxPooledPollBuffer {
		*bp = buf[:0]
		pollBuffers.Put(bp)
	}
	return nil
}

// pollBuffers holds encode buffers of poll answers; buffers that grew past
// maxPooledPollBuffer (a page of large events) are left to the GC.
var pollBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

const maxPooledPollBuffer = 256 << 10

// pollContext derives a long-poll's context from parent that also ends when
// the bridge shuts down, when the server does (serverDone, fasthttp's
// shutdown signal) or when the client closes conn (watchClient: fasthttp
// never reports a departed client), so an abandoned poll gives its
// connection back at once. stop releases it and waits for its watchers.
func (b *Bridge) pollContext(parent context.Context, serverDone <-chan struct{}, conn net.Conn) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	stopBridge := context.AfterFunc(b.ctx, cancel)
	stopWatch := func() {}
	if conn != nil {
		stopWatch = watchClient(conn, cancel)
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-serverDone:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		stopBridge()
		cancel()
		stopWatch()
		<-exited
	}
}

// appendPollResult appends the PollEventsResponse JSON of res to dst with
// the events' single encoder (contracts.TaskEvent.AppendJSON).
func appendPollResult(dst []byte, res *contracts.PollResult) []byte {
	dst = append(dst, `{"taskId":`...)
	dst = contracts.AppendJSONString(dst, res.TaskID)
	dst = append(dst, `,"events":[`...)
	for i := range res.Events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = res.Events[i].AppendJSON(dst)
	}
	dst = append(dst, `],"nextAfterEventId":`...)
	if res.NextAfterEventID == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = res.NextAfterEventID.AppendText(dst)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"hasMore":`...)
	if res.HasMore {
		dst = append(dst, "true"...)
	} else {
		dst = append(dst, "false"...)
	}
	if res.RetentionGap {
		dst = append(dst, `,"retentionGap":true`...)
	}
	return append(dst, '}')
}

// CancelTaskHandler returns the handler of POST
// /api/v1/tasks/:taskId/cancel. The body is optional: empty, or a JSON
// object {reason?}. It answers 202 with CANCELLATION_REQUESTED or
// ALREADY_TERMINAL.
func (b *Bridge) CancelTaskHandler() fiber.Handler {
	return b.handler(b.cancelTask)
}

func (b *Bridge) cancelTask(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	taskID, err := parseTaskID(c.Params(TaskIDParam))
	if err != nil {
		return err
	}
	body, err := b.jsonBody(c, false)
	if err != nil {
		return err
	}
	reason, err := parseCancel(body)
	if err != nil {
		return err
	}
	res, err := s.Cancellation.Cancel(c.UserContext(), contracts.CancelTaskCommand{Auth: auth, TaskID: taskID, Reason: reason})
	if err != nil {
		return err
	}
	b.log.Info("http.task.cancel", observe.Entry{TaskID: taskID, UserID: auth.Subject, Outcome: string(res.Status)})
	return writeCancelResult(c, http.StatusAccepted, &res)
}

// SubmitActionHandler returns the handler of POST
// /api/v1/tasks/:taskId/actions. The body is the protocol's
// TaskClientAction {clientActionId, suspendId, actionType, payload?,
// metadata?}. It answers 202 with ACCEPTED or a REJECTED_* status, and 200
// with DEDUPLICATED.
func (b *Bridge) SubmitActionHandler() fiber.Handler {
	return b.handler(b.submitAction)
}

func (b *Bridge) submitAction(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	taskID, err := parseTaskID(c.Params(TaskIDParam))
	if err != nil {
		return err
	}
	body, err := b.jsonBody(c, true)
	if err != nil {
		return err
	}
	cmd, err := parseAction(body)
	if err != nil {
		return err
	}
	cmd.Auth, cmd.TaskID = auth, taskID
	res, err := s.Actions.Submit(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if res.Status == contracts.ActionStatusDeduplicated {
		status = http.StatusOK
	}
	b.log.Info("http.task.action", observe.Entry{TaskID: taskID, ClientActionID: res.ClientActionID,
		UserID: auth.Subject, Outcome: string(res.Status)})
	return writeActionResult(c, status, &res)
}

// jsonBody returns the raw body of a JSON route after the encoding, type
// and size checks. A non-empty body must be declared application/json.
func (b *Bridge) jsonBody(c *fiber.Ctx, required bool) ([]byte, error) {
	if err := checkEncoding(c); err != nil {
		return nil, err
	}
	body, err := ReadBody(c, b.cfg.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 && !required {
		return nil, nil
	}
	if mt := mediaType(c.Get(fiber.HeaderContentType)); !isJSONType(mt) {
		return nil, unsupportedMediaType(mt, fiber.MIMEApplicationJSON)
	}
	return body, nil
}

// HealthHandler returns the handler of GET /health: 200 {"status":"ok"}
// while the process serves. It is not authenticated.
func (b *Bridge) HealthHandler() fiber.Handler {
	body := []byte(`{"status":"ok"}`)
	return b.publicHandler(func(c *fiber.Ctx) error {
		return writeBody(c, http.StatusOK, body)
	})
}

// readyResponse is the body of GET /ready.
type readyResponse struct {
	Status  string         `json:"status"`
	Details map[string]any `json:"details"`
}

// ReadinessTimeout is the default of Config.ReadinessTimeout: how long
// /ready waits for Config.Readiness.
const ReadinessTimeout = 5 * time.Second

// readinessKey is the details key /ready reports a probe under when the
// probe itself did not answer in time (or panicked).
const readinessKey = "readiness"

// streamingKey is the details key /ready reports a stopped streaming hub
// under.
const streamingKey = "streaming"

// ReadyHandler returns the handler of GET /ready: Config.Readiness decides,
// called with a Config.ReadinessTimeout deadline;
// 200 {"status":"ready","details":{...}} or 503 {"status":"not_ready",...}.
// A probe that does not answer by the deadline (even one that ignores its
// context) answers 503 with details.readiness {"status":"timeout",...}, and
// a probe that panics answers 503 too, so /ready always answers. After
// Shutdown it answers 503 with details.bridge "shutting_down", so load
// balancers drain the instance; so it does, with details.streaming
// failing, when the store's change feed failed and the streaming hub
// stopped (its streams ended, new ones are refused). It is not authenticated. Changes between
// ready and not ready are logged (Warn when the instance turns not ready,
// with the details; Info when it recovers).
func (b *Bridge) ReadyHandler() fiber.Handler {
	return b.publicHandler(func(c *fiber.Ctx) error {
		ready, details := b.checkReadiness(c.UserContext())
		out := make(map[string]any, len(details)+1)
		for k, v := range details {
			out[k] = v
		}
		if b.closing() {
			ready = false
			out["bridge"] = "shutting_down"
		} else if b.hubStopped() {
			// The store's change feed failed and the hub ended every
			// stream: this instance cannot stream any more.
			ready = false
			out[streamingKey] = observe.ProbeResult{Status: observe.ProbeFailing, Message: "change feed stopped"}
		}
		b.noteReadiness(ready, out)
		resp := readyResponse{Status: "ready", Details: out}
		status := http.StatusOK
		if !ready {
			resp.Status, status = "not_ready", http.StatusServiceUnavailable
		}
		body, err := json.Marshal(resp)
		if err != nil {
			body, _ = json.Marshal(readyResponse{Status: resp.Status, Details: map[string]any{}})
		}
		return writeBody(c, status, body)
	})
}

// checkReadiness asks Config.Readiness under Config.ReadinessTimeout. The
// probe runs on a goroutine of its own, so a probe that ignores its context
// cannot hang /ready and a panicking one cannot crash the process: at the
// deadline the check is reported as a timeout and abandoned (the goroutine
// ends when the probe returns; its late answer is dropped).
func (b *Bridge) checkReadiness(parent context.Context) (bool, map[string]any) {
	timeout := b.cfg.ReadinessTimeout
	if timeout < 0 {
		return b.cfg.Readiness.CheckReadiness(parent)
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	type answer struct {
		ready   bool
		details map[string]any
	}
	done := make(chan answer, 1) // buffered: an abandoned probe still sends and exits
	go func() {
		defer func() {
			if r := recover(); r != nil {
				b.log.Error("http.ready.probe_panicked", observe.Entry{Outcome: "panic", Err: panicError(r)})
				done <- answer{details: map[string]any{readinessKey: observe.ProbeResult{
					Status: observe.ProbeFailing, Message: "probe panicked"}}}
			}
		}()
		ready, details := b.cfg.Readiness.CheckReadiness(ctx)
		done <- answer{ready: ready, details: details}
	}()
	select {
	case a := <-done:
		return a.ready, a.details
	case <-ctx.Done():
		return false, map[string]any{readinessKey: observe.ProbeResult{
			Status: observe.ProbeTimeout, Message: "no answer within " + timeout.String()}}
	}
}

// Readiness states remembered between /ready calls, for logging changes.
const (
	readyUnknown int32 = iota
	readyYes
	readyNo
)

// noteReadiness logs a change of readiness: Warn when the instance turns
// not ready (also on the first check), Info when it turns ready again.
func (b *Bridge) noteReadiness(ready bool, details map[string]any) {
	now := readyYes
	if !ready {
		now = readyNo
	}
	prev := b.readyState.Swap(now)
	switch {
	case prev == now:
	case now == readyNo:
		b.log.Warn("http.ready.changed", observe.Entry{Outcome: "not_ready", Details: details})
	case prev == readyNo:
		b.log.Info("http.ready.changed", observe.Entry{Outcome: "ready"})
	}
}
