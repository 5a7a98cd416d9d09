package fiberbridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/spec"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// Bridge is the TaskBridge handler group of one process: its configuration,
// services and streaming hub. Build it once with New, mount it with Register
// (or its standalone handlers), and stop it with Shutdown. A Bridge is safe
// for concurrent use.
type Bridge struct {
	cfg          Config
	acquireSlot  func(subject string) (func(), error) // acquireStream
	services     *orchestration.Services
	ownsServices bool
	hub          *streaming.Hub
	hubDone      chan struct{}
	wsConfig     websocket.Config
	replayLimit  int
	maintStop    context.CancelFunc
	maintDone    chan struct{}
	log          *observe.Logger
	metrics      observe.MetricsSink
	clock        func() time.Time
	allowed      []mediaRange
	mounts       mountSet // where RegisterTasks mounted the task routes
	probes       probeSet // where RegisterProbes mounted health and readiness

	// ctx is cancelled by Shutdown; long-polls derive from it.
	ctx    context.Context
	cancel context.CancelFunc

	readyState atomic.Int32 // last /ready answer: readyUnknown, readyYes or readyNo

	noMetrics bool // Metrics is observe.NopMetrics: requests are not timed
	// reqTags caches the tags of the request histogram by route and
	// status (copy on write under reqTagsMu), so recording a request
	// builds no tag slice.
	reqTags   atomic.Pointer[map[reqTagKey][]observe.Tag]
	reqTagsMu sync.Mutex

	mu      sync.Mutex
	closed  bool
	polls   sync.WaitGroup
	streams map[string]int // open SSE and WebSocket streams by subject
}

// New validates cfg, fills its defaults, builds the services (unless
// cfg.Services is set) and the streaming hub, and returns the Bridge. The
// hub (and the maintenance loop of built services) run from here on: call
// Shutdown when the bridge is no longer used. New does no I/O.
//
// The hub is the process's one waiter for long-polls and suspended
// handlers: New hands it to the executor and to cfg.Services when they
// can take one (UseWaiter, as orchestration.Executor and Services do), so
// they listen to no change feed of their own.
//
// New returns an error for a configuration that cannot work: no
// AuthResolver, no Stores.Events, neither Services nor the other stores and
// an Executor, both Services and an Executor, a task route without
// :taskId, an invalid AllowedUploadTypes entry, or Routes.ListTasks set on
// a task registry that cannot list (contracts.TaskLister).
func New(cfg Config) (*Bridge, error) {
	listExplicit := cfg.Routes.ListTasks != ""
	cfg = configDefault(cfg)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dropList, err := cfg.checkListing(listExplicit)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		cfg:     cfg,
		log:     observe.NewLogger(cfg.Logger).With(observe.Entry{Transport: observe.TransportHTTP}),
		metrics: cfg.Metrics,
		clock:   cfg.Clock,
	}
	b.acquireSlot = b.acquireStream // one func value for every WebSocket
	_, b.noMetrics = cfg.Metrics.(observe.NopMetrics)
	for _, t := range cfg.AllowedUploadTypes {
		m, _ := parseMediaRange(t) // validated
		b.allowed = append(b.allowed, m)
	}
	if dropList {
		b.log.Info("http.routes.list_tasks_off", observe.Entry{Outcome: "skipped", Details: map[string]any{
			"reason": "the task registry does not implement contracts.TaskLister; set Routes.ListTasks to mount it anyway"}})
	}
	hub, err := b.newHub()
	if err != nil {
		return nil, err
	}

	b.services = cfg.Services
	if b.services == nil {
		s, err := orchestration.NewServices(orchestration.Options{
			Stores:    cfg.Stores,
			Executor:  cfg.Executor,
			Ownership: cfg.Ownership,
			Actions:   cfg.Actions,
			Waiter:    hub,
			Logger:    cfg.Logger,
			Metrics:   cfg.Metrics,
			Clock:     cfg.Clock,

			LeaseSweepInterval: cfg.LeaseSweepInterval,
			SubjectLimits:      cfg.SubjectLimits,
		})
		if err != nil {
			return nil, fmt.Errorf("taskbridge: fiberbridge.New: %w", err)
		}
		b.services = s
		b.ownsServices = true
	}
	if cfg.Services != nil {
		cfg.Services.UseWaiter(hub)
	}
	shareWaiter(cfg.Executor, hub)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.runHub(hub)
	if b.ownsServices && cfg.MaintenanceInterval >= 0 {
		b.startMaintenance(cfg.MaintenanceInterval)
	}
	return b, nil
}

// waiterUser is an executor that can wait on the bridge's hub instead of a
// change-feed listener of its own (orchestration.Executor).
type waiterUser interface {
	UseWaiter(orchestration.Waiter)
}

// executorWrapper is an executor that wraps another, such as
// redisstore.CancelRelay.
type executorWrapper interface {
	Unwrap() contracts.Executor
}

// shareWaiter gives w to ex, or to the executor ex wraps, when it takes
// one.
func shareWaiter(ex contracts.Executor, w orchestration.Waiter) {
	for depth := 0; ex != nil && depth < 8; depth++ {
		if u, ok := ex.(waiterUser); ok {
			u.UseWaiter(w)
			return
		}
		wr, ok := ex.(executorWrapper)
		if !ok {
			return
		}
		ex = wr.Unwrap()
	}
}

// startMaintenance runs the services' retention and reconciliation until
// Shutdown.
func (b *Bridge) startMaintenance(every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	b.maintStop, b.maintDone = cancel, make(chan struct{})
	go func() {
		defer close(b.maintDone)
		_ = b.services.RunMaintenance(ctx, every)
	}()
}

// Services returns the services the bridge uses by default (built by New or
// given in Config.Services).
func (b *Bridge) Services() *orchestration.Services { return b.services }

// Waiter returns the bridge's streaming hub as an orchestration.Waiter, for
// services a host builds itself (per-tenant services given with
// SetServices): orchestration.Services.UseWaiter(bridge.Waiter()) keeps the
// process at one change-feed listener. After Shutdown the hub wakes no one
// any more; services and executors that took it turn to a listener of
// their own.
func (b *Bridge) Waiter() orchestration.Waiter { return b.hub }

// Register mounts everything on router (an app or a group): the task routes
// under Config.BasePath (RegisterTasks) and /health and /ready
// (RegisterProbes). Register may be called on several routers.
func (b *Bridge) Register(router fiber.Router) {
	b.RegisterTasks(router)
	b.RegisterProbes(router)
}

// RegisterTasks mounts the task routes (create, list, snapshot, poll, SSE,
// cancel, actions, WebSocket, and the OpenAPI document when turned on)
// under Config.BasePath on router. Each route is one handler that runs the
// locals steps (services and the AuthContext in c.Locals: SetAuth's, else
// Config.AuthResolver's) and then the route; the OpenAPI document is not
// authenticated. Mount them on a group behind the host's authentication
// middleware when the host authenticates itself (see SetAuth).
func (b *Bridge) RegisterTasks(router fiber.Router) {
	var paths []string
	for _, rt := range b.taskRoutes() {
		router.Add(rt.method, b.cfg.BasePath+rt.path, rt.handler())
		paths = append(paths, rt.path)
	}
	b.mounts.add(router, b.cfg.BasePath, paths)
}

// RegisterProbes mounts GET /health and GET /ready (Routes.Health and
// Routes.Ready) on router; they are not authenticated. Mount them on the
// app, outside (and before) a group whose middleware authenticates.
func (b *Bridge) RegisterProbes(router fiber.Router) {
	for _, rt := range b.probeRoutes() {
		router.Add(rt.method, rt.path, rt.handler())
	}
	b.probes.add(router)
}

// mountedRoute is a route the bridge mounts: the operation of spec's
// document it serves, where (relative to the base path for task routes),
// and how to build its handler.
type mountedRoute struct {
	op, method, path string
	handler          func() fiber.Handler
}

// taskRoutes lists the enabled task routes in mounting order: GetTask's
// :taskId comes last so that fixed paths next to it (the WebSocket's) win.
func (b *Bridge) taskRoutes() []mountedRoute {
	r := b.cfg.Routes
	return enabled([]mountedRoute{
		{spec.OpCreateTask, fiber.MethodPost, r.CreateTask, b.CreateTaskHandler},
		{spec.OpListTasks, fiber.MethodGet, r.ListTasks, b.ListTasksHandler},
		{spec.OpPollEvents, fiber.MethodGet, r.PollEvents, b.PollEventsHandler},
		{spec.OpStreamEvents, fiber.MethodGet, r.StreamEvents, b.StreamEventsHandler},
		{spec.OpCancelTask, fiber.MethodPost, r.CancelTask, b.CancelTaskHandler},
		{spec.OpSubmitAction, fiber.MethodPost, r.SubmitAction, b.SubmitActionHandler},
		{spec.OpWebSocket, fiber.MethodGet, r.WebSocket, b.WebSocketHandler},
		{spec.OpStreamTicket, fiber.MethodPost, b.ticketRoute(), b.StreamTicketHandler},
		{spec.OpOpenAPI, fiber.MethodGet, r.OpenAPI, b.OpenAPIHandler},
		{spec.OpGetTask, fiber.MethodGet, r.GetTask, b.GetTaskHandler},
	})
}

// probeRoutes lists the enabled probe routes.
func (b *Bridge) probeRoutes() []mountedRoute {
	r := b.cfg.Routes
	return enabled([]mountedRoute{
		{spec.OpHealth, fiber.MethodGet, r.Health, b.HealthHandler},
		{spec.OpReady, fiber.MethodGet, r.Ready, b.ReadyHandler},
	})
}

func enabled(routes []mountedRoute) []mountedRoute {
	out := routes[:0]
	for _, rt := range routes {
		if rt.path != Disabled {
			out = append(out, rt)
		}
	}
	return out
}

// Shutdown stops the bridge: new streams are refused with 503, every open
// SSE stream ends and every WebSocket closes with 1001 (so clients
// reconnect elsewhere with their cursor), long-polls answer at once with
// what they have, and the goroutines the bridge owns (its hub, and the
// services it built) stop. It returns when all of that is done or ctx ends.
//
// Call it before app.ShutdownWithContext, so clients see their streams end
// before the listener goes away. The other order is safe too: fasthttp's
// shutdown wakes long-polls and does not wait for the streams (the hub has
// taken their connections over), which end when Shutdown runs. Shutdown is
// idempotent; the host's executor and stores are not touched.
func (b *Bridge) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()

	var errs []error
	if err := b.hub.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("streams: %w", err))
	}
	if err := waitChan(ctx, b.hubDone); err != nil {
		errs = append(errs, fmt.Errorf("streaming hub: %w", err))
	}
	if err := waitGroup(ctx, &b.polls); err != nil {
		errs = append(errs, fmt.Errorf("long-polls: %w", err))
	}
	if b.maintStop != nil {
		b.maintStop()
		if err := waitChan(ctx, b.maintDone); err != nil {
			errs = append(errs, fmt.Errorf("maintenance: %w", err))
		}
	}
	if b.ownsServices {
		if err := b.services.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("services: %w", err))
		}
	}
	return errors.Join(errs...)
}

// hubStopped reports whether the streaming hub's Run has returned.
func (b *Bridge) hubStopped() bool {
	select {
	case <-b.hubDone:
		return true
	default:
		return false
	}
}

// closing reports whether Shutdown has begun.
func (b *Bridge) closing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// beginPoll registers a waiting long-poll; false after Shutdown began.
func (b *Bridge) beginPoll() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.polls.Add(1)
	return true
}

// waitGroup waits for wg or ctx. The helper goroutine ends when wg does;
// callers only wait on groups whose members are already told to finish.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitChan waits for done to close or ctx to end.
func waitChan(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// skip reports whether Config.Next skips the request.
func (b *Bridge) skip(c *fiber.Ctx) bool {
	return b.cfg.Next != nil && b.cfg.Next(c)
}

// routeFunc is a route's logic: it writes the success response, or returns
// the error to answer with.
type routeFunc func(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error

// handler wraps a route: Next, locals, panic recovery, error envelope,
// request metric.
func (b *Bridge) handler(fn routeFunc) fiber.Handler {
	return func(c *fiber.Ctx) (ret error) {
		if b.skip(c) {
			return c.Next()
		}
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				b.fail(c, start, bridgeerr.Wrap(bridgeerr.CodeInternal, panicError(r), "internal error"))
				ret = nil
			}
		}()
		s, auth, err := b.locals(c)
		if err == nil {
			err = fn(c, s, auth)
		}
		if err != nil {
			b.fail(c, start, err)
			return nil
		}
		b.observe(c, start)
		return nil
	}
}

// publicHandler wraps an unauthenticated route (health, readiness).
func (b *Bridge) publicHandler(fn func(c *fiber.Ctx) error) fiber.Handler {
	return func(c *fiber.Ctx) (ret error) {
		if b.skip(c) {
			return c.Next()
		}
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				b.fail(c, start, bridgeerr.Wrap(bridgeerr.CodeInternal, panicError(r), "internal error"))
				ret = nil
			}
		}()
		if err := fn(c); err != nil {
			b.fail(c, start, err)
			return nil
		}
		b.observe(c, start)
		return nil
	}
}

// fail answers err with its envelope, logs it (Warn for 4xx, Error for
// 5xx, with the internal cause) and records the request metric.
func (b *Bridge) fail(c *fiber.Ctx, start time.Time, err error) {
	be := toBridgeError(err)
	writeError(c, be, b.clock())
	status := c.Response().StatusCode()
	lvl := zapcore.WarnLevel
	if status >= http.StatusInternalServerError {
		lvl = zapcore.ErrorLevel
	}
	if b.log.Enabled(lvl) {
		e := observe.Entry{
			Outcome: string(be.Code),
			Err:     err,
			Details: map[string]any{"route": routePath(c), "method": strings.Clone(c.Method()), "status": status},
		}
		if auth, ok := AuthFrom(c); ok {
			e.UserID = auth.Subject
		}
		if id := c.Params(TaskIDParam); id != "" && len(id) <= contracts.MaxTaskIDLen && printable(id) {
			e.TaskID = strings.Clone(id)
		} else if id, ok := be.Details["taskId"].(string); ok {
			e.TaskID = id // a create that failed after the task was made (TASK_SUBMISSION_ERROR)
		}
		if id, ok := be.Details["clientRequestId"].(string); ok {
			e.ClientRequestID = id
		}
		if lvl == zapcore.ErrorLevel {
			b.log.Error("http.request.failed", e)
		} else {
			b.log.Warn("http.request.rejected", e)
		}
	}
	b.observe(c, start)
}

// observe records the request duration by route pattern and status.
func (b *Bridge) observe(c *fiber.Ctx, start time.Time) {
	if b.noMetrics {
		return
	}
	b.metrics.ObserveHistogram(observe.MetricHTTPRequestSeconds, time.Since(start).Seconds(),
		b.requestTags(routePath(c), c.Response().StatusCode())...)
}

// reqTagKey is a request histogram series: route pattern and status.
type reqTagKey struct {
	route  string
	status int
}

// requestTags returns the (shared, read-only) tags of a request of route
// answered with status. Routes are patterns and statuses come from the
// bridge, so the cache stays small.
func (b *Bridge) requestTags(route string, status int) []observe.Tag {
	key := reqTagKey{route, status}
	if m := b.reqTags.Load(); m != nil {
		if tags, ok := (*m)[key]; ok {
			return tags
		}
	}
	tags := []observe.Tag{{Key: observe.TagRoute, Value: route}, {Key: observe.TagStatus, Value: statusText(status)}}
	b.reqTagsMu.Lock()
	defer b.reqTagsMu.Unlock()
	old := b.reqTags.Load()
	next := make(map[reqTagKey][]observe.Tag, 8)
	if old != nil {
		if len(*old) >= maxReqTagSeries {
			return tags // a pathological number of series: not cached
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	next[key] = tags
	b.reqTags.Store(&next)
	return tags
}

// maxReqTagSeries bounds the request tag cache.
const maxReqTagSeries = 512

// routePath is the matched route's pattern (never the raw path, so metric
// cardinality stays bounded).
func routePath(c *fiber.Ctx) string {
	if r := c.Route(); r != nil {
		return r.Path
	}
	return ""
}

var statusTexts = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusText(code int) string {
	if code >= 0 && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}

// panicError turns a recovered value into an error for logs.
func panicError(r any) error {
	if err, ok := r.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", r)
}
