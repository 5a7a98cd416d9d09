package fiberbridge

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// Routes are the paths the bridge mounts. The task routes are relative to
// Config.BasePath on the router given to Register or RegisterTasks (so the
// defaults below become "/api/v1/tasks", ...); Health and Ready are
// relative to the router given to Register or RegisterProbes, outside the
// base path. A task route must contain the ":taskId" parameter and may
// contain others of the host (for example
// "/projects/:projectId/tasks/:taskId/events"). An empty path takes the
// default; the path "-" (Disabled) leaves the route out.
type Routes struct {
	// CreateTask: POST. Optional. Default: "/tasks".
	CreateTask string
	// PollEvents: GET long-poll. Optional. Default: "/tasks/:taskId/events".
	PollEvents string
	// StreamEvents: GET SSE. Optional. Default: "/tasks/:taskId/events/stream".
	StreamEvents string
	// CancelTask: POST. Optional. Default: "/tasks/:taskId/cancel".
	CancelTask string
	// SubmitAction: POST. Optional. Default: "/tasks/:taskId/actions".
	SubmitAction string
	// WebSocket: GET upgrade. Optional. Default: "/tasks/ws".
	WebSocket string
	// Health: GET, unauthenticated. Optional. Default: "/health".
	Health string
	// Ready: GET, unauthenticated. Optional. Default: "/ready".
	Ready string
	// ListTasks: GET, the caller's tasks (a TaskBridge-for-Fiber addition;
	// needs a registry that implements contracts.TaskLister, and is left
	// out without one unless set explicitly). Optional. Default: the
	// CreateTask path ("/tasks").
	ListTasks string
	// GetTask: GET, one task's snapshot (a TaskBridge-for-Fiber addition).
	// Mounted after the other task routes, so a fixed path such as the
	// WebSocket's "/tasks/ws" wins over its :taskId. Optional. Default: the
	// CreateTask path + "/:taskId" ("/tasks/:taskId").
	GetTask string
	// OpenAPI: GET, a task route that is not authenticated: the OpenAPI 3.1
	// document of the routes mounted with it, at their full paths (a
	// TaskBridge-for-Fiber addition). Opt-in: for example "/openapi.json"
	// (below the default base path "/api/v1/openapi.json"). Optional.
	// Default: Disabled.
	OpenAPI string
	// StreamTicket: POST, mounted only when Config.StreamTickets.Store is
	// set (a TaskBridge-for-Fiber addition). Optional. Default:
	// "/tasks/:taskId/stream-ticket".
	StreamTicket string
}

// Disabled as a route path leaves that route out of Register.
const Disabled = "-"

// TaskIDParam is the path parameter every task route must contain.
const TaskIDParam = "taskId"

// DefaultRoutes are the protocol's paths below DefaultBasePath.
var DefaultRoutes = Routes{
	CreateTask:   "/tasks",
	PollEvents:   "/tasks/:taskId/events",
	StreamEvents: "/tasks/:taskId/events/stream",
	CancelTask:   "/tasks/:taskId/cancel",
	SubmitAction: "/tasks/:taskId/actions",
	WebSocket:    "/tasks/ws",
	Health:       "/health",
	Ready:        "/ready",
	ListTasks:    "/tasks",
	GetTask:      "/tasks/:taskId",
	OpenAPI:      Disabled,
	StreamTicket: "/tasks/:taskId/stream-ticket",
}

// DefaultBasePath is the protocol's prefix of the task routes.
const DefaultBasePath = "/api/v1"

// Default limits.
const (
	// DefaultMaxBodyBytes bounds a JSON request body (1 MiB).
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxUploadBytes bounds one uploaded file (10 MiB).
	DefaultMaxUploadBytes = 10 << 20
	// DefaultMaxUploads bounds the files of one create request.
	DefaultMaxUploads = 10
	// DefaultMaxPollWait caps a long-poll's wait; it is also the protocol's
	// largest waitTimeoutMs (60 s).
	DefaultMaxPollWait = 60 * time.Second
	// DefaultMaxStreamsPerSubject bounds the SSE and WebSocket streams one
	// subject may hold open on one instance: enough for many tabs and
	// tasks, far below the file descriptors of a process.
	DefaultMaxStreamsPerSubject = 100
	// MaxFieldBytes bounds the identifiers a client sends in bodies
	// (clientRequestId, taskType, suspendId, clientActionId, actionType).
	MaxFieldBytes = 256
)

// Config configures a Bridge. Zero fields take their defaults (see
// ConfigDefault); New validates the result and returns an error for a
// configuration that cannot work.
type Config struct {
	// Next skips the bridge's middleware and handlers for a request when it
	// returns true; the request continues with c.Next().
	//
	// Optional. Default: nil.
	Next func(c *fiber.Ctx) bool

	// Services are the orchestration services the routes call. When nil,
	// the bridge builds them from Stores and Executor (and Ownership,
	// Actions, Logger, Metrics), uses its streaming hub as their waiter, and
	// closes them in Shutdown. Services given here are owned by the host,
	// who closes them; they wait on the bridge's hub too (UseWaiter);
	// Executor, Ownership and Actions must then be nil.
	//
	// Optional. Default: built from Stores and Executor.
	Services *orchestration.Services

	// Stores are the stores (memstore.New or redisstore.New returns them).
	// Stores.Events is required (the streaming hub reads it); the others
	// are required when Services is nil.
	Stores contracts.Stores

	// Executor runs tasks; required when Services is nil, must be nil
	// otherwise. The bridge does not close it: the host owns it.
	Executor contracts.Executor

	// AuthResolver turns a request into the caller's AuthContext, or returns
	// an error: a *bridgeerr.Error is answered as is (typically
	// AUTHENTICATION_ERROR, 401); any other error answers 401
	// AUTHENTICATION_ERROR without its text. It runs once per request of a
	// task route (before the WebSocket upgrade for WebSocket requests)
	// unless a host middleware set the AuthContext with SetAuth, and must
	// not keep c or strings taken from it.
	//
	// Optional when the host authenticates in its own middleware and calls
	// SetAuth; a request that reaches a task route with neither answers 401
	// AUTHENTICATION_ERROR. Default: nil.
	AuthResolver func(c *fiber.Ctx) (contracts.AuthContext, error)

	// Ownership decides who may create and see tasks; used only when the
	// bridge builds the services.
	//
	// Optional. Default: orchestration.SubjectOwnership (the subject must
	// equal the task's owner).
	Ownership contracts.OwnershipPolicy

	// Actions decides who may act on a task's suspensions, apart from who
	// may read and cancel the task (Ownership): with it an approver who is
	// not the owner can read the task and submit actions to its
	// suspensions, but not cancel it (403 TASK_OWNERSHIP_ERROR); anyone
	// else still gets 404. Used only when the bridge builds the services.
	//
	// Optional. Default: nil (whoever may access the task may act).
	Actions contracts.ActionPolicy

	// Upload decides whether a create request's attachments are allowed. It
	// is called for every create, with no attachments for JSON requests. A
	// *bridgeerr.Error is answered as is; any other error answers 400
	// UPLOAD_VALIDATION_ERROR without its text.
	//
	// Optional. Default: nil (allow, after the size, count and type limits).
	Upload contracts.UploadPolicy

	// CreatePreprocessor sees every parsed, authenticated create command
	// before the creation service does; it may change cmd (shape its input
	// or metadata) or reject the request by returning an error (a
	// *bridgeerr.Error is answered as is; any other error is a 500).
	//
	// Optional. Default: nil.
	CreatePreprocessor func(c *fiber.Ctx, cmd *contracts.CreateTaskCommand) error

	// BasePath prefixes the task routes: with "/jobs", Register mounts
	// "/jobs/tasks", "/jobs/tasks/:taskId/events", and so on, below the
	// router it is given. "/" mounts them directly on that router (for a
	// group whose prefix is the base already). Health and readiness are not
	// under it.
	//
	// Optional. Default: DefaultBasePath ("/api/v1").
	BasePath string

	// Routes are the mounted paths.
	//
	// Optional. Default: DefaultRoutes.
	Routes Routes

	// MaxBodyBytes bounds a JSON request body; larger bodies answer 413
	// INVALID_REQUEST. It cannot raise the app's fiber.Config.BodyLimit,
	// which fasthttp applies first (install ErrorHandler so that answer is
	// an envelope too). A negative value leaves only the app's limit.
	//
	// Optional. Default: DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int

	// MaxUploadBytes bounds each uploaded file; a larger file answers 413
	// UPLOAD_VALIDATION_ERROR. Raise the app's BodyLimit (4 MiB by default)
	// to accept large multipart bodies at all. A negative value leaves only
	// the app's limit.
	//
	// Optional. Default: DefaultMaxUploadBytes (10 MiB).
	MaxUploadBytes int64

	// MaxUploads bounds the files of one create request; more answer 400
	// UPLOAD_VALIDATION_ERROR. A negative value accepts no files at all.
	//
	// Optional. Default: DefaultMaxUploads (10).
	MaxUploads int

	// AllowedUploadTypes lists the media types an uploaded file may declare
	// ("image/png", or "image/*" for a whole type); others answer 400
	// UPLOAD_VALIDATION_ERROR. Parameters and case are ignored; a file
	// without a Content-Type is "application/octet-stream".
	//
	// Optional. Default: nil (any type).
	AllowedUploadTypes []string

	// MaxPollWait caps a long-poll's waitTimeoutMs: longer waits (still
	// within the protocol's 0..60000) are shortened to it. A negative value
	// disables waiting: polls answer at once.
	//
	// Optional. Default: DefaultMaxPollWait (60 s).
	MaxPollWait time.Duration

	// MaxStreamsPerSubject bounds the SSE and WebSocket streams one subject
	// may hold open on this instance. One more SSE request answers 429
	// TOO_MANY_STREAMS; one more WebSocket is upgraded and closed at once
	// with 1008 and the reason "TOO_MANY_STREAMS" (browsers see close codes,
	// not the status of a refused upgrade). A slot is released when its
	// stream ends, however it ends (terminal event, client gone, reset,
	// write timeout, shutdown). A negative value means no limit.
	//
	// Optional. Default: DefaultMaxStreamsPerSubject (100).
	MaxStreamsPerSubject int

	// SubjectLimits are the per-subject quotas on creates (tasks not yet
	// terminal, creates per second) of the services the bridge builds; a
	// create past one answers 429 QUOTA_EXCEEDED with Retry-After and
	// stores nothing. Unused when Services is set (set them on its
	// orchestration.Options instead).
	//
	// Optional. Default: orchestration.SubjectLimits{} (32 tasks, 100
	// creates per second with bursts of 200).
	SubjectLimits orchestration.SubjectLimits

	// Stream configures the streaming hub (heartbeats, queues, WebSocket
	// limits; see streaming.Options). Its Logger, Metrics and Diagnostics
	// default to the bridge's.
	//
	// Optional. Default: streaming.Options{} (the streaming defaults).
	Stream streaming.Options

	// StreamTickets turns on stream tickets when its Store is set: short-lived,
	// single-use, task-scoped credentials that the SSE and WebSocket routes
	// accept in place of the AuthResolver's (see StreamTickets).
	//
	// Optional. Default: off.
	StreamTickets StreamTickets

	// WebSocketOrigins lists the Origin header values a WebSocket upgrade
	// may carry; others are refused before the upgrade.
	//
	// Optional. Default: nil (any origin).
	WebSocketOrigins []string

	// MaintenanceInterval is how often the services the bridge built run
	// retention and reconciliation (Services.RunMaintenance) until
	// Shutdown. Unused when Config.Services is set (the host runs it). A
	// negative value turns it off.
	//
	// Optional. Default: orchestration.DefaultMaintenanceInterval (1 min).
	MaintenanceInterval time.Duration

	// LeaseSweepInterval is how often the maintenance of the services the
	// bridge built takes over expired task leases (Stores.Leases, set by
	// redisstore.New), ending the tasks of instances that died
	// (orchestration.LeaseService). Unused when Config.Services is set,
	// without Stores.Leases, or with MaintenanceInterval off.
	//
	// Optional. Default: orchestration.DefaultLeaseSweepInterval (5s).
	// Negative: no sweep.
	LeaseSweepInterval time.Duration

	// Logger receives the bridge's structured logs (transport "http") and
	// is passed to the services and hub the bridge builds.
	//
	// Optional. Default: zap.NewNop().
	Logger *zap.Logger

	// Metrics receives the request duration histogram
	// (observe.MetricHTTPRequestSeconds, by route pattern and status) and is
	// passed to the services and hub the bridge builds.
	//
	// Optional. Default: observe.NopMetrics{}.
	Metrics observe.MetricsSink

	// Diagnostics receives the streaming runtime's lifecycle hooks.
	//
	// Optional. Default: observe.NopDiagnostics{}.
	Diagnostics observe.TransportDiagnosticsSink

	// Readiness answers GET /ready; observe.NewComposite builds one from
	// named probes (observe.ExecutorProbe, observe.StoreProbe,
	// observe.ProbeFunc). After Shutdown, /ready answers 503 whatever the
	// probe says.
	//
	// Optional. Default: observe.AlwaysReady{}.
	Readiness observe.ReadinessProbe

	// ReadinessTimeout bounds one call of Readiness: /ready answers 503
	// with details.readiness {"status":"timeout"} when it has no answer by
	// then, even from a probe that ignores its context. Keep it above a
	// Composite's per-probe timeout so the Composite reports which probe
	// hung. A negative value calls Readiness without a deadline of its own.
	//
	// Optional. Default: ReadinessTimeout (5 s).
	ReadinessTimeout time.Duration

	// Clock stamps error envelopes and is passed to the services the bridge
	// builds.
	//
	// Optional. Default: time.Now.
	Clock func() time.Time
}

// ConfigDefault is the configuration New starts from: every optional field's
// default. Services, Stores, Executor and AuthResolver have no default.
var ConfigDefault = Config{
	BasePath:             DefaultBasePath,
	Routes:               DefaultRoutes,
	MaxBodyBytes:         DefaultMaxBodyBytes,
	MaxUploadBytes:       DefaultMaxUploadBytes,
	MaxUploads:           DefaultMaxUploads,
	MaxPollWait:          DefaultMaxPollWait,
	MaxStreamsPerSubject: DefaultMaxStreamsPerSubject,
	MaintenanceInterval:  orchestration.DefaultMaintenanceInterval,
	Metrics:              observe.NopMetrics{},
	Diagnostics:          observe.NopDiagnostics{},
	Readiness:            observe.AlwaysReady{},
	ReadinessTimeout:     ReadinessTimeout,
	Clock:                time.Now,
}

// configDefault returns cfg with every zero optional field set from
// ConfigDefault.
func configDefault(cfg Config) Config {
	r := &cfg.Routes
	d := ConfigDefault.Routes
	for _, p := range []struct {
		field *string
		def   string
	}{
		{&r.CreateTask, d.CreateTask}, {&r.PollEvents, d.PollEvents}, {&r.StreamEvents, d.StreamEvents},
		{&r.CancelTask, d.CancelTask}, {&r.SubmitAction, d.SubmitAction}, {&r.WebSocket, d.WebSocket},
		{&r.Health, d.Health}, {&r.Ready, d.Ready}, {&r.OpenAPI, d.OpenAPI},
		{&r.StreamTicket, d.StreamTicket},
	} {
		if *p.field == "" {
			*p.field = p.def
		}
	}
	if cfg.BasePath == "" {
		cfg.BasePath = ConfigDefault.BasePath
	}
	// The read API lives where the host put task creation.
	collection := r.CreateTask
	if collection == Disabled {
		collection = d.ListTasks
	}
	if r.ListTasks == "" {
		r.ListTasks = collection
	}
	if r.GetTask == "" {
		r.GetTask = strings.TrimSuffix(collection, "/") + "/:" + TaskIDParam
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = ConfigDefault.MaxBodyBytes
	}
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = ConfigDefault.MaxUploadBytes
	}
	if cfg.MaxUploads == 0 {
		cfg.MaxUploads = ConfigDefault.MaxUploads
	}
	if cfg.MaxPollWait == 0 {
		cfg.MaxPollWait = ConfigDefault.MaxPollWait
	}
	if cfg.MaxStreamsPerSubject == 0 {
		cfg.MaxStreamsPerSubject = ConfigDefault.MaxStreamsPerSubject
	}
	if cfg.MaintenanceInterval == 0 {
		cfg.MaintenanceInterval = ConfigDefault.MaintenanceInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = ConfigDefault.Metrics
	}
	if cfg.Diagnostics == nil {
		cfg.Diagnostics = ConfigDefault.Diagnostics
	}
	if cfg.Readiness == nil {
		cfg.Readiness = ConfigDefault.Readiness
	}
	if cfg.ReadinessTimeout == 0 {
		cfg.ReadinessTimeout = ConfigDefault.ReadinessTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = ConfigDefault.Clock
	}
	return cfg
}

// validate returns an error for a configuration that cannot work.
func (cfg *Config) validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("taskbridge: fiberbridge.New: "+format, args...)
	}
	if cfg.Stores.Events == nil {
		return fail("Stores.Events is required (the streaming hub reads it)")
	}
	if cfg.Services != nil {
		if cfg.Executor != nil {
			return fail("set either Services or Stores and Executor, not both")
		}
		if cfg.Ownership != nil {
			return fail("Ownership is used only when the bridge builds the services; set it on the Services instead")
		}
		if cfg.Actions != nil {
			return fail("Actions is used only when the bridge builds the services; set it on the Services instead")
		}
	} else {
		missing := cfg.Stores.Missing()
		if cfg.Executor == nil {
			missing = append(missing, "Executor")
		}
		if len(missing) > 0 {
			return fail("without Services, %s must be set", strings.Join(missing, ", "))
		}
	}
	if !strings.HasPrefix(cfg.BasePath, "/") {
		return fail("BasePath %q must start with /", cfg.BasePath)
	}
	cfg.BasePath = strings.TrimRight(cfg.BasePath, "/")
	r := cfg.Routes
	for _, p := range []struct{ name, path string }{
		{"CreateTask", r.CreateTask}, {"WebSocket", r.WebSocket}, {"Health", r.Health}, {"Ready", r.Ready},
		{"PollEvents", r.PollEvents}, {"StreamEvents", r.StreamEvents}, {"CancelTask", r.CancelTask},
		{"SubmitAction", r.SubmitAction}, {"ListTasks", r.ListTasks}, {"GetTask", r.GetTask}, {"OpenAPI", r.OpenAPI},
		{"StreamTicket", r.StreamTicket},
	} {
		if p.path != Disabled && !strings.HasPrefix(p.path, "/") {
			return fail("Routes.%s %q must start with /", p.name, p.path)
		}
	}
	for _, p := range []struct{ name, path string }{
		{"PollEvents", r.PollEvents}, {"StreamEvents", r.StreamEvents},
		{"CancelTask", r.CancelTask}, {"SubmitAction", r.SubmitAction}, {"GetTask", r.GetTask}, {"StreamTicket", r.StreamTicket},
	} {
		if p.path != Disabled && !hasParam(p.path, TaskIDParam) {
			return fail("Routes.%s %q must contain the :%s parameter", p.name, p.path, TaskIDParam)
		}
	}
	for _, t := range cfg.AllowedUploadTypes {
		if _, err := parseMediaRange(t); err != nil {
			return fail("AllowedUploadTypes: %v", err)
		}
	}
	return nil
}

// checkListing decides the ListTasks route for stores that cannot list:
// an error when the route was set explicitly; otherwise it turns the route
// off and reports true (New logs it).
func (cfg *Config) checkListing(explicit bool) (bool, error) {
	if cfg.Routes.ListTasks == Disabled {
		return false, nil
	}
	var can bool
	if cfg.Services != nil {
		can = cfg.Services.Tasks != nil && cfg.Services.Tasks.CanList()
	} else {
		_, can = cfg.Stores.Tasks.(contracts.TaskLister)
	}
	switch {
	case can:
		return false, nil
	case explicit:
		return false, errors.New("taskbridge: fiberbridge.New: Routes.ListTasks needs a task registry that implements " +
			"contracts.TaskLister; set it to fiberbridge.Disabled")
	}
	cfg.Routes.ListTasks = Disabled
	return true, nil
}

// hasParam reports whether a Fiber route path has the parameter :name (a
// whole segment, optionally marked optional with "?").
func hasParam(path, name string) bool {
	for _, seg := range strings.Split(path, "/") {
		if seg == ":"+name || seg == ":"+name+"?" {
			return true
		}
	}
	return false
}

// mediaRange is one allowed upload type: "type/subtype" or "type/*".
type mediaRange struct{ typ, sub string }

func parseMediaRange(s string) (mediaRange, error) {
	mt, _, err := mime.ParseMediaType(s)
	if err != nil {
		return mediaRange{}, fmt.Errorf("%q is not a media type: %w", s, err)
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || typ == "*" {
		return mediaRange{}, fmt.Errorf("%q is not a type/subtype or type/*", s)
	}
	return mediaRange{typ: typ, sub: sub}, nil
}

func (m mediaRange) matches(mediaType string) bool {
	typ, sub, _ := strings.Cut(mediaType, "/")
	return typ == m.typ && (m.sub == "*" || sub == m.sub)
}
