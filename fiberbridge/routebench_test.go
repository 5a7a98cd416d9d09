package fiberbridge_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// The request-path benchmarks: one request of each task route through the
// whole Fiber stack (router, the bridge's locals and auth, the route, the
// services, the memory stores) on a reused fasthttp.RequestCtx, next to a
// bare Fiber JSON handler in the same app (BenchmarkRouteBare), the
// framework's own ceiling. The executor runs nothing (holdExecutor), so
// what is measured is the request path alone; as in the load generator's
// bench bridge, the per-subject quotas and the memory store's limits are
// off (one subject creates without end). allocs/op is the route's
// allocation count; TestRouteAllocations (alloc_test.go) locks it in.

// holdExecutor accepts tasks of one type and runs nothing.
type holdExecutor struct{}

func (holdExecutor) Submit(context.Context, contracts.TaskRecord) error { return nil }
func (holdExecutor) Cancel(context.Context, contracts.TaskRecord) error { return nil }
func (holdExecutor) TaskTypes() []string                                { return []string{"bench.hold"} }

// HasTaskType answers as orchestration.Executor does, without listing.
func (holdExecutor) HasTaskType(t string) bool { return t == "bench.hold" }

// routeBench is an app with the bridge mounted on memory stores and a bare
// JSON route, and a task of benchOwner holding ten events.
type routeBench struct {
	handler fasthttp.RequestHandler
	stores  contracts.Stores
	taskID  string
}

const benchOwner = "bench"

func newRouteBench(tb testing.TB) *routeBench {
	tb.Helper()
	st := memstore.New(memstore.Options{MaxBytes: -1, MaxBytesPerOwner: -1, MaxTasks: -1, MaxTasksPerOwner: -1})
	bridge := check(fiberbridge.New(fiberbridge.Config{
		Stores:              st,
		Executor:            holdExecutor{},
		AuthResolver:        bearerAuth,
		MaintenanceInterval: -1,
		SubjectLimits:       orchestration.SubjectLimits{MaxActiveTasks: -1, CreatesPerSecond: -1},
	}))(tb)
	tb.Cleanup(func() { require.NoError(tb, bridge.Shutdown(context.Background())) })
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	bridge.Register(app)
	app.Get("/bench/bare", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"taskId": "0123456789abcdef0123456789abcdef", "status": "RUNNING", "deduplicated": false})
	})
	ctx := context.Background()
	task, _, err := st.Tasks.Create(ctx, contracts.TaskRecord{
		TaskID: "bench-task", OwnerID: benchOwner, ClientRequestID: "c", TaskType: "bench.hold",
		Input: []byte("{}"), Status: contracts.StatusRunning, CreatedAt: time.Now(),
	})
	require.NoError(tb, err)
	for i := range 10 {
		d, err := contracts.Progress(float64(i*10), "stage", "a progress message")
		require.NoError(tb, err)
		_, err = st.Events.Append(ctx, task.TaskID, d)
		require.NoError(tb, err)
	}
	return &routeBench{handler: app.Handler(), stores: st, taskID: task.TaskID}
}

// request prepares ctx as an authenticated request.
func request(ctx *fasthttp.RequestCtx, method, uri string, body []byte) {
	ctx.Request.Reset()
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.Set(fiber.HeaderAuthorization, "Bearer "+benchOwner)
	if body != nil {
		ctx.Request.Header.SetContentType(fiber.MIMEApplicationJSON)
		ctx.Request.SetBody(body)
	}
}

// createBody appends a create request body with clientRequestId "r<n>".
func createBody(dst []byte, n int) []byte {
	dst = append(dst[:0], `{"clientRequestId":"r`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, `","taskType":"bench.hold","input":{"n":1}}`...)
}

// suspend stores an OPEN approval suspension of the bench task.
func (rb *routeBench) suspend(tb testing.TB, suspendID string) {
	tb.Helper()
	require.NoError(tb, rb.stores.Suspensions.Create(context.Background(), contracts.SuspensionRecord{
		TaskID: rb.taskID, SuspendID: suspendID, OwnerID: benchOwner, Status: contracts.SuspensionOpen,
		Kind: "approval", ReasonCode: "review", AllowedActions: []string{"approve"},
		SchemaVersion: 1, CreatedAt: time.Now(),
	}))
}

// actionBody appends an approve action on suspension s<n> with
// clientActionId "a<n>".
func actionBody(dst []byte, n int) []byte {
	dst = append(dst[:0], `{"suspendId":"s`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, `","clientActionId":"a`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, `","actionType":"approve","payload":{"ok":true}}`...)
}

// cpuMeter reports the process's CPU time per operation (user + system,
// every thread: the GC's work included) as "cpu-ns/op". On a machine
// shared with other work, wall time per op mostly measures the neighbours;
// CPU time is what the route costs.
type cpuMeter struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter{start: processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
	}
}

func wantStatus(b *testing.B, ctx *fasthttp.RequestCtx, status int) {
	b.Helper()
	require.Equal(b, status, ctx.Response.StatusCode(), string(ctx.Response.Body()))
}

// BenchmarkRouteBare: the bare Fiber JSON handler (c.JSON of a small map).
func BenchmarkRouteBare(b *testing.B) {
	rb := newRouteBench(b)
	var ctx fasthttp.RequestCtx
	request(&ctx, fasthttp.MethodGet, "/bench/bare", nil)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		rb.handler(&ctx)
	}
	cpu.report(b)
	wantStatus(b, &ctx, fasthttp.StatusOK)
}

// BenchmarkRouteCreate: POST /api/v1/tasks with a fresh clientRequestId,
// 201.
func BenchmarkRouteCreate(b *testing.B) {
	rb := newRouteBench(b)
	var ctx fasthttp.RequestCtx
	request(&ctx, fasthttp.MethodPost, "/api/v1/tasks", []byte("{}"))
	var body []byte
	b.ReportAllocs()
	cpu := startCPU()
	n := 0
	for b.Loop() {
		n++
		body = createBody(body, n)
		ctx.Request.SetBodyRaw(body)
		rb.handler(&ctx)
	}
	cpu.report(b)
	wantStatus(b, &ctx, fasthttp.StatusCreated)
}

// BenchmarkRouteCreateRepeat: the same create again, 200 deduplicated.
func BenchmarkRouteCreateRepeat(b *testing.B) {
	rb := newRouteBench(b)
	var ctx fasthttp.RequestCtx
	request(&ctx, fasthttp.MethodPost, "/api/v1/tasks", createBody(nil, 0))
	rb.handler(&ctx)
	wantStatus(b, &ctx, fasthttp.StatusCreated)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		rb.handler(&ctx)
	}
	cpu.report(b)
	wantStatus(b, &ctx, fasthttp.StatusOK)
}

// BenchmarkRoutePoll: GET /api/v1/tasks/:taskId/events of a task with ten
// events, no wait.
func BenchmarkRoutePoll(b *testing.B) {
	rb := newRouteBench(b)
	var ctx fasthttp.RequestCtx
	request(&ctx, fasthttp.MethodGet, "/api/v1/tasks/"+rb.taskID+"/events?maxEvents=100", nil)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		rb.handler(&ctx)
	}
	cpu.report(b)
	wantStatus(b, &ctx, fasthttp.StatusOK)
}

// BenchmarkRouteCancel: POST /api/v1/tasks/:taskId/cancel with a reason on
// a running task (repeated requests keep the first reason), 202.
func BenchmarkRouteCancel(b *testing.B) {
	rb := newRouteBench(b)
	var ctx fasthttp.RequestCtx
	request(&ctx, fasthttp.MethodPost, "/api/v1/tasks/"+rb.taskID+"/cancel", []byte(`{"reason":"no longer needed"}`))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		rb.handler(&ctx)
	}
	cpu.report(b)
	wantStatus(b, &ctx, fasthttp.StatusAccepted)
}

// BenchmarkRouteAction: POST /api/v1/tasks/:taskId/actions accepted on an
// open suspension (one per request, stored before the timer starts), 202.
func BenchmarkRouteAction(b *testing.B) {
	rb := newRouteBench(b)
	for i := range b.N {
		rb.suspend(b, "s"+strconv.Itoa(i))
	}
	var ctx fasthttp.RequestCtx
	request(&ctx, fasthttp.MethodPost, "/api/v1/tasks/"+rb.taskID+"/actions", []byte("{}"))
	var body []byte
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := range b.N {
		body = actionBody(body, i)
		ctx.Request.SetBodyRaw(body)
		rb.handler(&ctx)
	}
	cpu.report(b)
	b.StopTimer()
	wantStatus(b, &ctx, fasthttp.StatusAccepted)
}
