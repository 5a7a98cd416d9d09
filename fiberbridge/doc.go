// Package fiberbridge is the Fiber face of TaskBridge: it mounts the
// TaskBridge v1 routes (create, long-poll, SSE, cancel, actions, WebSocket,
// health and readiness) on any fiber.Router of a host application, together
// with the library's additions: the task read API (GET a task's snapshot,
// GET the caller's tasks) and an opt-in OpenAPI document of the mounted
// routes. Each route can be moved or left out through Config.Routes.
// TaskBridge v1 is the protocol of taskbridge-fastapi
// (https://github.com/nikkiw/task-bridge), so its clients work unchanged.
//
// A host builds one Bridge with New at boot, registers it on its app or a
// group with Register, and calls Shutdown before shutting the app down:
//
//	stores := memstore.New(memstore.Options{})
//	executor, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores})
//	...
//	bridge, err := fiberbridge.New(fiberbridge.Config{
//		Stores:       stores,
//		Executor:     executor,
//		AuthResolver: resolveBearer,
//	})
//	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
//	bridge.Register(app)
//	...
//	_ = bridge.Shutdown(ctx)        // ends streams, wakes long-polls
//	_ = app.ShutdownWithContext(ctx) // then the server
//
// # Mounting in an existing app
//
// The task routes live under Config.BasePath (default "/api/v1"; with
// "/jobs", Register mounts "/jobs/tasks", "/jobs/tasks/:taskId/events",
// ...). A host with its own authentication mounts them with RegisterTasks
// on a group behind its middleware, which hands the caller over with
// SetAuth (Config.AuthResolver is then not needed), and the unauthenticated
// /health and /ready with RegisterProbes on the app. bridge.ErrorHandler
// wraps the host's error handler: the bridge's errors get the envelope, the
// host's routes keep the host's format. Config.Actions lets an approver who
// is not the owner read a task and act on its suspensions (not cancel it):
//
//	app := fiber.New(fiber.Config{ErrorHandler: bridge.ErrorHandler(hostErrors)})
//	bridge.RegisterProbes(app)
//	api := app.Group("/app", func(c *fiber.Ctx) error {
//		user, err := hostSession(c)
//		if err != nil {
//			return err
//		}
//		fiberbridge.SetAuth(c, contracts.AuthContext{Subject: user})
//		return c.Next()
//	})
//	bridge.RegisterTasks(api) // /app/api/v1/tasks, ...
//
// Every route answers failures with the stable JSON envelope of package
// bridgeerr ({code, message, details, timestamp}); never an HTML page, never
// a bare 500, and a 500 envelope never carries an internal cause. Each route
// is also available as a standalone fiber.Handler (CreateTaskHandler,
// PollEventsHandler, ...) for hosts that assemble routes by hand, together
// with Middleware, which resolves the caller's AuthContext once per request
// and stores it, and the services, in c.Locals (AuthFrom, ServicesFrom,
// SetServices).
//
// # Request rules
//
// JSON bodies are decoded strictly: a body that is not one JSON object,
// contains invalid UTF-8, has a field of the wrong type or an unknown field is
// rejected with 400 INVALID_REQUEST whose details name the field. Query
// parameters out of range or not numeric answer 422 REQUEST_VALIDATION_ERROR
// whose details name the parameter; a malformed event cursor answers 400
// INVALID_REQUEST. A create request that is neither application/json nor
// multipart/form-data answers 415 with code INVALID_REQUEST. Bodies over
// Config.MaxBodyBytes answer 413 INVALID_REQUEST, files over
// Config.MaxUploadBytes 413 UPLOAD_VALIDATION_ERROR. A subject may hold
// Config.MaxStreamsPerSubject (100) SSE and WebSocket streams open on one
// instance; one more answers 429 TOO_MANY_STREAMS (a WebSocket: close 1008
// with that reason).
//
// # Security
//
// SECURITY.md at the repository root lists every limit with its default,
// what the bridge guarantees (ownership on every route and transport, no
// internal detail in any answer, bounded memory per connection) and what
// the host must add: authentication in AuthResolver, TLS, rate limiting,
// and a fiber.Config whose BodyLimit, ReadTimeout, WriteTimeout and
// IdleTimeout bound what fasthttp reads before any handler runs.
//
// # Observability
//
// Config.Logger takes the host's *zap.Logger and Config.Metrics an
// observe.MetricsSink (observe/prom for Prometheus); the routes, the
// services the bridge builds and the streaming hub all write through them,
// with the stable field names of package observe. Every route records
// observe.MetricHTTPRequestSeconds by route pattern and status. The host
// exposes metrics itself, in one line:
//
//	app.Get("/metrics", fiberbridge.MetricsHandler(prom.Handler(registry)))
//
// Config.Readiness answers /ready, bounded by Config.ReadinessTimeout even
// when a probe ignores its context.
//
// # Task read API
//
// GetTaskHandler answers a task's snapshot (contracts.TaskSnapshot) from
// two small reads: the task record and the log summary the event store
// updates atomically on every append (contracts.SummaryReader), never a
// replay of the log. ListTasksHandler pages through the caller's tasks
// newest first over the registry's owner index (contracts.TaskLister) with
// an opaque keyset cursor that stays stable while tasks are created. A
// single SSE stream for several tasks is deliberately not offered: the
// WebSocket carries many subscriptions on one connection (the streaming
// package's README says why).
//
// # Long-poll default
//
// waitTimeoutMs of the long-poll defaults to 0 (answer at once), as in
// taskbridge-fastapi; the protocol's 25000 is a hint for clients, which
// should send it explicitly to long-poll.
package fiberbridge
