package fiberbridge_test

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
)

// BenchmarkPollEventsObserved is BenchmarkPollEvents with production
// observability plugged in: the Prometheus sink (request histogram, poll
// and store-read counters) and a JSON zap logger at Info (the poll lines are
// Debug, so they cost a level check). Compare with BenchmarkPollEvents for
// the price of observability per request.
func BenchmarkPollEventsObserved(b *testing.B) {
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	h, id := benchAppWith(b, func(cfg *fiberbridge.Config) {
		cfg.Logger = logger
		cfg.Metrics = prom.MustNew(prometheus.NewRegistry())
	})
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
