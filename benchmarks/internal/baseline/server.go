package baseline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
)

// Defaults of Options: taskbridge-fastapi's stream settings.
const (
	DefaultSSEWait    = 5 * time.Second
	DefaultWSWait     = 25 * time.Second
	DefaultEmptySleep = 100 * time.Millisecond
	DefaultBatch      = 100
	maxPollWait       = 60 * time.Second
	maxPollEvents     = 500
)

// Options configures the baseline server.
type Options struct {
	// Stores are the stores it serves from. Required.
	Stores *benchstore.Bundle
	// TaskType is the task type creates must name. Required.
	TaskType string
	// SSEWait and WSWait are the blocking-read timeouts of the stream
	// loops. Optional. Default: 5 s and 25 s.
	SSEWait, WSWait time.Duration
	// EmptySleep is the pause after an empty wait. Optional. Default: 100 ms.
	EmptySleep time.Duration
	// Batch is the most events one read returns. Optional. Default: 100.
	Batch int
}

// Server is the baseline. It is safe for concurrent use.
type Server struct {
	opts   Options
	app    *fiber.App
	reader blockingReader
	// ctx ends at Shutdown; every stream loop waits under it, so that no
	// connection needs a goroutine of its own to notice the shutdown.
	ctx         context.Context
	stop        context.CancelFunc
	closeReader func() error
	wg          sync.WaitGroup
}

// New builds the baseline server and starts the memory store's change
// listener when it runs on memory. Shutdown stops it.
func New(opts Options) *Server {
	if opts.SSEWait <= 0 {
		opts.SSEWait = DefaultSSEWait
	}
	if opts.WSWait <= 0 {
		opts.WSWait = DefaultWSWait
	}
	if opts.EmptySleep <= 0 {
		opts.EmptySleep = DefaultEmptySleep
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	s := &Server{opts: opts}
	s.ctx, s.stop = context.WithCancel(context.Background())
	ctx := s.ctx
	if opts.Stores.Redis != nil {
		// The blocking reads get their own client, which Shutdown closes:
		// that is what ends an XREAD BLOCK in flight.
		ro := *opts.Stores.Redis.Options()
		rr := &redisReader{client: redis.NewClient(&ro), prefix: opts.Stores.KeyPrefix}
		s.reader, s.closeReader = rr, rr.client.Close
	} else {
		mr := newMemReader(opts.Stores.Events)
		s.reader = mr
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = mr.run(ctx)
		}()
	}
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			var fe *fiber.Error
			if errors.As(err, &fe) {
				return writeError(c, bridgeerr.New(bridgeerr.CodeInvalidRequest, fe.Message).WithStatus(fe.Code))
			}
			return writeError(c, bridgeerr.From(err))
		},
	})
	s.app.Get("/health", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	s.app.Get("/bench/bare", bareHandler)
	api := s.app.Group("/api/v1/tasks", s.auth)
	api.Post("/", s.create)
	api.Get("/ws", websocket.New(s.ws))
	api.Get("/:taskId/events/stream", s.sse)
	api.Get("/:taskId/events", s.poll)
	return s
}

// App returns the Fiber app (for tests).
func (s *Server) App() *fiber.App { return s.app }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown ends every stream loop, stops the app and the change listener.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	if s.closeReader != nil {
		_ = s.closeReader()
	}
	err := s.app.ShutdownWithContext(ctx)
	s.wg.Wait()
	return err
}

// bareHandler is the framework's own ceiling for the http scenario: a small
// JSON object, no store.
func bareHandler(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"taskId": "0123456789abcdef0123456789abcdef", "status": "RUNNING", "deduplicated": false})
}

// CreateTasks implements control.Backend.
func (s *Server) CreateTasks(ctx context.Context, n int) ([]string, error) {
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		rec, _, err := s.opts.Stores.Tasks.Create(ctx, benchstore.NewTaskRecord(BenchSubject, s.opts.TaskType))
		if err != nil {
			return nil, err
		}
		ids = append(ids, rec.TaskID)
	}
	return ids, nil
}

// Append implements control.Backend: the host's executor appends to the
// store.
func (s *Server) Append(ctx context.Context, taskID string, draft contracts.EventDraft) error {
	_, err := s.opts.Stores.Events.Append(ctx, taskID, draft)
	return err
}

// ExtraStats implements control.ExtraStats.
func (s *Server) ExtraStats() map[string]float64 { return s.opts.Stores.ExtraStats() }

// BenchSubject is the owner of the tasks CreateTasks makes.
const BenchSubject = "bench"

const subjectKey = "subject"

func writeError(c *fiber.Ctx, e *bridgeerr.Error) error {
	return c.Status(e.HTTPStatus()).JSON(e.Envelope(time.Now()))
}

// auth takes the subject from a Bearer token or the access_token query.
func (s *Server) auth(c *fiber.Ctx) error {
	token := strings.TrimPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if token == "" {
		token = c.Query("access_token")
	}
	if token == "" {
		return writeError(c, bridgeerr.New(bridgeerr.CodeAuthentication, "authentication required"))
	}
	c.Locals(subjectKey, strings.Clone(token))
	return c.Next()
}

func subject(c *fiber.Ctx) string { s, _ := c.Locals(subjectKey).(string); return s }

// task loads a task the caller owns.
func (s *Server) task(ctx context.Context, subject, taskID string) (contracts.TaskRecord, *bridgeerr.Error) {
	rec, err := s.opts.Stores.Tasks.Get(ctx, taskID)
	if err != nil {
		return rec, bridgeerr.From(err)
	}
	if rec.OwnerID != subject {
		return rec, bridgeerr.New(bridgeerr.CodeTaskNotFound, "task not found")
	}
	return rec, nil
}

type createBody struct {
	ClientRequestID string          `json:"clientRequestId"`
	TaskType        string          `json:"taskType"`
	Input           json.RawMessage `json:"input"`
	Metadata        json.RawMessage `json:"metadata"`
}

func (s *Server) create(c *fiber.Ctx) error {
	var body createBody
	if err := json.Unmarshal(c.Body(), &body); err != nil || body.ClientRequestID == "" {
		return writeError(c, bridgeerr.New(bridgeerr.CodeInvalidRequest, "invalid create request"))
	}
	if body.TaskType != s.opts.TaskType {
		return writeError(c, bridgeerr.New(bridgeerr.CodeInvalidRequest, "unknown task type"))
	}
	input, err := contracts.CanonicalObject(body.Input)
	if err != nil {
		return writeError(c, bridgeerr.New(bridgeerr.CodeInvalidRequest, "input must be a JSON object"))
	}
	now := time.Now().Round(0)
	rec := contracts.TaskRecord{
		TaskID: contracts.NewID(), OwnerID: subject(c), ClientRequestID: body.ClientRequestID,
		TaskType: body.TaskType, Input: input, Metadata: body.Metadata,
		Fingerprint: contracts.Fingerprint(body.TaskType, input, nil),
		Status:      contracts.StatusAccepted, CreatedAt: now, UpdatedAt: now,
	}
	stored, created, err := s.opts.Stores.Tasks.Create(c.UserContext(), rec)
	if err != nil {
		return writeError(c, bridgeerr.From(err))
	}
	if !created && stored.Fingerprint != rec.Fingerprint {
		return writeError(c, bridgeerr.New(bridgeerr.CodeIdempotencyConflict, "idempotency key reused with a different payload"))
	}
	status := fiber.StatusCreated
	if !created {
		status = fiber.StatusOK
	}
	return c.Status(status).JSON(contracts.TaskCreated{TaskID: stored.TaskID, Status: stored.Status,
		ClientRequestID: stored.ClientRequestID, Deduplicated: !created})
}

func (s *Server) poll(c *fiber.Ctx) error {
	taskID := strings.Clone(c.Params("taskId"))
	if _, e := s.task(c.UserContext(), subject(c), taskID); e != nil {
		return writeError(c, e)
	}
	after, err := contracts.ParseCursor(c.Query("afterEventId"))
	if err != nil {
		return writeError(c, bridgeerr.From(err))
	}
	limit := c.QueryInt("maxEvents", 100)
	waitMs := c.QueryInt("waitTimeoutMs", 0)
	if limit < 1 || limit > maxPollEvents || waitMs < 0 || time.Duration(waitMs)*time.Millisecond > maxPollWait {
		return writeError(c, bridgeerr.New(bridgeerr.CodeRequestValidation, "query out of range"))
	}
	// s.ctx ends at Shutdown, so a waiting poll does not hold the server.
	ctx, cancel := context.WithTimeout(s.ctx, time.Duration(waitMs)*time.Millisecond+5*time.Second)
	defer cancel()
	events, err := s.reader.WaitRead(ctx, taskID, after, limit+1, time.Duration(waitMs)*time.Millisecond)
	if err != nil {
		return writeError(c, bridgeerr.From(err))
	}
	res := contracts.PollResult{TaskID: taskID, Events: events}
	if len(events) > limit {
		res.Events, res.HasMore = events[:limit], true
	}
	if n := len(res.Events); n > 0 {
		next := res.Events[n-1].EventID
		res.NextAfterEventID = &next
	} else if !after.IsZero() {
		res.NextAfterEventID = &after
	}
	if res.Events == nil {
		res.Events = []contracts.TaskEvent{}
	}
	return c.JSON(res)
}

// appendSSE encodes one event as an SSE frame.
func appendSSE(dst []byte, ev *contracts.TaskEvent) []byte {
	dst = append(dst, "id: "...)
	dst = ev.EventID.AppendText(dst)
	dst = append(dst, "\ndata: "...)
	dst = ev.AppendJSON(dst)
	return append(dst, "\n\n"...)
}

func (s *Server) sse(c *fiber.Ctx) error {
	taskID := c.Params("taskId")
	if _, e := s.task(c.UserContext(), subject(c), taskID); e != nil {
		return writeError(c, e)
	}
	cursorText := c.Get("Last-Event-ID")
	if cursorText == "" {
		cursorText = c.Query("lastEventId")
	}
	after, err := contracts.ParseCursor(cursorText)
	if err != nil {
		return writeError(c, bridgeerr.From(err))
	}
	taskID = strings.Clone(taskID)
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-transform")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		ctx := s.ctx
		// Headers go out with the first flush.
		if _, err := w.WriteString(": connected\n\n"); err != nil || w.Flush() != nil {
			return
		}
		var buf []byte
		for ctx.Err() == nil {
			events, err := s.reader.WaitRead(ctx, taskID, after, s.opts.Batch, s.opts.SSEWait)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				sleep(ctx, s.opts.EmptySleep)
				continue
			}
			if len(events) == 0 {
				if _, err := w.WriteString(": ping\n\n"); err != nil || w.Flush() != nil {
					return
				}
				sleep(ctx, s.opts.EmptySleep)
				continue
			}
			terminal := false
			for i := range events {
				buf = appendSSE(buf[:0], &events[i])
				if _, err := w.Write(buf); err != nil {
					return
				}
				after = events[i].EventID
				terminal = terminal || events[i].Type.IsTerminal()
			}
			if w.Flush() != nil || terminal {
				return
			}
		}
	})
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

var heartbeatType = []byte(`{"type":"HEARTBEAT","taskId":`)

func (s *Server) ws(conn *websocket.Conn) {
	ctx := s.ctx
	subj, _ := conn.Locals(subjectKey).(string)
	closeWith := func(code int, text string) {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
	}
	conn.SetReadLimit(4096)
	_, msg, err := conn.ReadMessage()
	if err != nil {
		return
	}
	var sub contracts.SubscribeRequest
	if err := strictjson.Unmarshal(msg, &sub); err != nil || sub.Validate() != nil {
		closeWith(websocket.ClosePolicyViolation, "invalid frame")
		return
	}
	if _, e := s.task(ctx, subj, sub.TaskID); e != nil {
		closeWith(websocket.ClosePolicyViolation, "task not found")
		return
	}
	after, _ := sub.Cursor()
	var replayFrom *string
	if !after.IsZero() {
		t := after.String()
		replayFrom = &t
	}
	confirm, _ := json.Marshal(contracts.SubscriptionConfirmed{Type: contracts.FrameSubscriptionConfirmed,
		TaskID: sub.TaskID, ReplayStartedAfterEventID: replayFrom, Live: true})
	if conn.WriteMessage(websocket.TextMessage, confirm) != nil {
		return
	}
	heartbeat := append(contracts.AppendJSONString(append([]byte(nil), heartbeatType...), sub.TaskID), `,"live":true}`...)
	var buf []byte
	for ctx.Err() == nil {
		events, err := s.reader.WaitRead(ctx, sub.TaskID, after, s.opts.Batch, s.opts.WSWait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			sleep(ctx, s.opts.EmptySleep)
			continue
		}
		if len(events) == 0 {
			if conn.WriteMessage(websocket.TextMessage, heartbeat) != nil {
				return
			}
			sleep(ctx, s.opts.EmptySleep)
			continue
		}
		for i := range events {
			buf = events[i].AppendJSON(buf[:0])
			if conn.WriteMessage(websocket.TextMessage, buf) != nil {
				return
			}
			after = events[i].EventID
			if events[i].Type.IsTerminal() {
				closeWith(websocket.CloseNormalClosure, "task ended")
				return
			}
		}
	}
}
