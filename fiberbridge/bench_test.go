package fiberbridge_test

import (
	"context"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// benchApp builds the app once, with a finished task of 10 events owned by
// "bench".
func benchApp(b *testing.B) (fasthttp.RequestHandler, string) {
	b.Helper()
	return benchAppWith(b, nil)
}

// benchAppWith is benchApp with cfg adjusted by mutate (nil: the defaults).
func benchAppWith(b *testing.B, mutate func(*fiberbridge.Config)) (fasthttp.RequestHandler, string) {
	b.Helper()
	st := memstore.New(memstore.Options{})
	x := check(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: st}))(b)
	x.Handle("noop", func(context.Context, *orchestration.TaskContext) (any, error) { return nil, nil })
	cfg := fiberbridge.Config{
		Stores:       st,
		Executor:     x,
		AuthResolver: bearerAuth,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	bridge := check(fiberbridge.New(cfg))(b)
	b.Cleanup(func() {
		require.NoError(b, bridge.Shutdown(context.Background()))
		require.NoError(b, x.Close(context.Background()))
	})
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	bridge.Register(app)

	ctx := context.Background()
	task, _, err := st.Tasks.Create(ctx, contracts.TaskRecord{
		TaskID: "bench-task", OwnerID: "bench", ClientRequestID: "c", TaskType: "noop",
		Input: []byte("{}"), Status: contracts.StatusRunning,
	})
	require.NoError(b, err)
	for i := range 10 {
		d, err := contracts.Progress(float64(i*10), "stage", "a progress message")
		require.NoError(b, err)
		_, err = st.Events.Append(ctx, task.TaskID, d)
		require.NoError(b, err)
	}
	return app.Handler(), task.TaskID
}

// BenchmarkPollEvents: one long-poll request answered from the store (10
// events, no wait) through the whole Fiber stack.
func BenchmarkPollEvents(b *testing.B) {
	h, id := benchApp(b)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/v1/tasks/" + id + "/events?maxEvents=100")
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	ctx.Request.Header.Set("Authorization", "Bearer bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h(&ctx)
	}
	b.StopTimer()
	require.Equal(b, fasthttp.StatusOK, ctx.Response.StatusCode(), string(ctx.Response.Body()))
}

// BenchmarkPollEventsParallel is BenchmarkPollEvents from every core.
func BenchmarkPollEventsParallel(b *testing.B) {
	h, id := benchApp(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/api/v1/tasks/" + id + "/events?maxEvents=100")
		ctx.Request.Header.SetMethod(fasthttp.MethodGet)
		ctx.Request.Header.Set("Authorization", "Bearer bench")
		for pb.Next() {
			h(&ctx)
		}
	})
}

// BenchmarkCreateDeduplicated: a repeated JSON create (parse, canonicalise,
// idempotency lookup, 200).
func BenchmarkCreateDeduplicated(b *testing.B) {
	h, _ := benchApp(b)
	body := []byte(`{"clientRequestId":"dup","taskType":"noop","input":{"b":2,"a":1},"metadata":{"trace":"x"}}`)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/v1/tasks")
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.Header.Set("Authorization", "Bearer bench")
	ctx.Request.SetBody(body)
	h(&ctx) // create once
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h(&ctx)
	}
	b.StopTimer()
	require.Equal(b, fasthttp.StatusOK, ctx.Response.StatusCode(), string(ctx.Response.Body()))
}

// BenchmarkRejectedUnauthenticated: the cost of a 401 envelope.
func BenchmarkRejectedUnauthenticated(b *testing.B) {
	h, id := benchApp(b)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/v1/tasks/" + id + "/events")
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h(&ctx)
	}
	b.StopTimer()
	require.Equal(b, fasthttp.StatusUnauthorized, ctx.Response.StatusCode())
}
