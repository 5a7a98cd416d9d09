package bridgeserver

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// Options configures the bench bridge.
type Options struct {
	// Stores are the stores it serves from. Required.
	Stores *benchstore.Bundle
	// TaskType is the one task type it accepts. Required.
	TaskType string
	// Heartbeat is the streams' idle heartbeat interval.
	// Optional. Default: the streaming default (15 s).
	Heartbeat time.Duration
	// WSPing is the WebSocket ping interval.
	// Optional. Default: the streaming default (30 s).
	WSPing time.Duration
	// BarePath serves a bare Fiber JSON handler. Required.
	BarePath string
}

// Server is the bench bridge. It is safe for concurrent use.
type Server struct {
	opts    Options
	app     *fiber.App
	bridge  *fiberbridge.Bridge
	emitter *orchestration.Emitter
}

// holdExecutor accepts tasks of one type and runs nothing: events come from
// the control endpoint's emitter.
type holdExecutor struct{ taskType string }

// Submit implements contracts.Executor: the task waits for the emitter.
func (holdExecutor) Submit(context.Context, contracts.TaskRecord) error { return nil }

// Cancel implements contracts.Executor; cancellation is not benchmarked.
func (holdExecutor) Cancel(context.Context, contracts.TaskRecord) error { return nil }

// TaskTypes implements orchestration.TaskTypeRegistry.
func (h holdExecutor) TaskTypes() []string { return []string{h.taskType} }

var _ orchestration.TaskTypeRegistry = holdExecutor{}

// bearerAuth takes the subject from "Authorization: Bearer <token>" or, for
// browser transports, the access_token query parameter.
func bearerAuth(c *fiber.Ctx) (contracts.AuthContext, error) {
	token := strings.TrimPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if token == "" {
		token = c.Query("access_token")
	}
	if token == "" {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication, "authentication required")
	}
	return contracts.AuthContext{Subject: strings.Clone(token)}, nil
}

// New builds the bench bridge.
func New(opts Options) (*Server, error) {
	st := opts.Stores
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: fiberbridge.ErrorHandler})
	b, err := fiberbridge.New(fiberbridge.Config{
		Stores:              st.Stores,
		Executor:            holdExecutor{taskType: opts.TaskType},
		AuthResolver:        bearerAuth,
		Stream:              streaming.Options{HeartbeatInterval: opts.Heartbeat, WSPingInterval: opts.WSPing},
		MaintenanceInterval: -1,
		// Every load client is the one subject Subject.
		MaxStreamsPerSubject: -1,
		SubjectLimits:        orchestration.SubjectLimits{MaxActiveTasks: -1, CreatesPerSecond: -1},
	})
	if err != nil {
		return nil, err
	}
	emitter, err := orchestration.NewEmitter(orchestration.EmitterOptions{Stores: st.Stores})
	if err != nil {
		_ = b.Shutdown(context.Background())
		return nil, err
	}
	b.Register(app)
	app.Get(opts.BarePath, func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"taskId": "0123456789abcdef0123456789abcdef", "status": "RUNNING", "deduplicated": false})
	})
	return &Server{opts: opts, app: app, bridge: b, emitter: emitter}, nil
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown ends the streams (bridge first, as fiberbridge recommends), then
// the app.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.bridge.Shutdown(ctx)
	if aerr := s.app.ShutdownWithContext(ctx); err == nil {
		err = aerr
	}
	return err
}

// Subject owns the tasks CreateTasks makes; the generator's token.
const Subject = "bench"

// CreateTasks implements control.Backend through the creation service.
func (s *Server) CreateTasks(ctx context.Context, n int) ([]string, error) {
	ids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		created, err := s.bridge.Services().Creation.Create(ctx, contracts.CreateTaskCommand{
			Auth: contracts.AuthContext{Subject: Subject}, ClientRequestID: contracts.NewID(),
			TaskType: s.opts.TaskType, Input: []byte("{}"),
		})
		if err != nil {
			return nil, err
		}
		ids = append(ids, created.TaskID)
	}
	return ids, nil
}

// Append implements control.Backend: the emitter a worker would use.
func (s *Server) Append(ctx context.Context, taskID string, draft contracts.EventDraft) error {
	_, err := s.emitter.Emit(ctx, taskID, draft)
	return err
}

// ExtraStats implements control.ExtraStats.
func (s *Server) ExtraStats() map[string]float64 { return s.opts.Stores.ExtraStats() }
