package fiberbridge_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// Plug the host's zap logger and a Prometheus registry in (one line each),
// expose /metrics (one more line) and build /ready from named probes.
func ExampleMetricsHandler() {
	logger := zap.NewNop() // the host's *zap.Logger
	registry := prometheus.NewRegistry()
	metrics := prom.MustNew(registry)

	stores := memstore.New(memstore.Options{})
	executor, err := orchestration.NewExecutor(orchestration.ExecutorOptions{
		Stores: stores, Logger: logger, Metrics: metrics, // the same two for the executor
	})
	if err != nil {
		panic(err)
	}
	executor.Handle("noop", func(context.Context, *orchestration.TaskContext) (any, error) { return struct{}{}, nil })

	bridge, err := fiberbridge.New(fiberbridge.Config{
		Stores:       stores,
		Executor:     executor,
		AuthResolver: apiKeyAuth,
		Logger:       logger,  // zap
		Metrics:      metrics, // Prometheus
		Readiness: observe.NewComposite(2*time.Second,
			observe.NamedProbe{Name: "executor", Probe: observe.ExecutorProbe(executor)}),
	})
	if err != nil {
		panic(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler})
	bridge.Register(app)
	app.Get("/metrics", fiberbridge.MetricsHandler(prom.Handler(registry))) // opt-in

	call := func(method, path, body string) string {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("X-Api-Key", "k1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := app.Test(req, -1)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return string(data)
	}
	call("POST", "/api/v1/tasks", `{"clientRequestId":"r1","taskType":"noop"}`)
	call("POST", "/api/v1/tasks", `{"clientRequestId":"r1","taskType":"noop"}`)
	fmt.Println(call("GET", "/ready", ""))
	for _, line := range strings.Split(call("GET", "/metrics", ""), "\n") {
		if strings.HasPrefix(line, "taskbridge_task_starts_total") || strings.HasPrefix(line, "taskbridge_duplicates_total") ||
			strings.HasPrefix(line, `taskbridge_http_request_duration_seconds_count{route="/api/v1/tasks"`) {
			fmt.Println(line)
		}
	}

	ctx := context.Background()
	_ = bridge.Shutdown(ctx)
	_ = executor.Close(ctx)
	// Output:
	// {"status":"ready","details":{"executor":{"status":"ok","message":""}}}
	// taskbridge_duplicates_total 1
	// taskbridge_http_request_duration_seconds_count{route="/api/v1/tasks",status="200"} 1
	// taskbridge_http_request_duration_seconds_count{route="/api/v1/tasks",status="201"} 1
	// taskbridge_task_starts_total 1
}
