package observe_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// The one-line zap hook-up: wrap the host's *zap.Logger. Every line carries
// the stable field names.
func ExampleNewLogger() {
	log := observe.NewLogger(zap.NewExample()) // the host's own *zap.Logger

	log.Info("task created", observe.Entry{
		TaskID:          "t-1",
		ClientRequestID: "req-42",
		UserID:          "u-7",
		Transport:       observe.TransportHTTP,
		Outcome:         "created",
	})
	log.Warn("task access denied", observe.Entry{TaskID: "t-2", UserID: "u-8", Transport: observe.TransportWS, Outcome: "not_found"})
	// Output:
	// {"level":"info","msg":"task created","taskId":"t-1","clientRequestId":"req-42","userId":"u-7","transport":"http","outcome":"created"}
	// {"level":"warn","msg":"task access denied","taskId":"t-2","userId":"u-8","transport":"ws","outcome":"not_found"}
}

// With binds per-connection fields once; per-event lines then carry only
// what changes.
func ExampleLogger_With() {
	log := observe.NewLogger(zap.NewExample())
	conn := log.With(observe.Entry{TaskID: "t-1", UserID: "u-7", Transport: observe.TransportSSE})

	conn.Debug("event delivered", observe.Entry{EventID: "1700000000000-0"})
	conn.Info("stream closed", observe.Entry{Outcome: "terminal"})
	// Output:
	// {"level":"debug","msg":"event delivered","taskId":"t-1","eventId":"1700000000000-0","userId":"u-7","transport":"sse"}
	// {"level":"info","msg":"stream closed","taskId":"t-1","userId":"u-7","transport":"sse","outcome":"terminal"}
}

// A composite of named probes answers /ready: one failing or hung probe
// makes the instance not ready, and the details name it.
func ExampleNewComposite() {
	hung := make(chan struct{})
	defer close(hung)

	ready := observe.NewComposite(50*time.Millisecond,
		observe.NamedProbe{Name: "executor", Probe: observe.ProbeFunc(func(context.Context) error { return nil })},
		observe.NamedProbe{Name: "store", Probe: observe.ProbeFunc(func(context.Context) error {
			return errors.New("redis: connection refused")
		})},
		observe.NamedProbe{Name: "search", Probe: observe.ProbeFunc(func(context.Context) error {
			<-hung // ignores its context: abandoned at the timeout
			return nil
		})},
	)

	ok, details := ready.CheckReadiness(context.Background())
	body, _ := json.Marshal(details)
	fmt.Println(ok)
	fmt.Println(string(body))
	// Output:
	// false
	// {"executor":{"status":"ok","message":""},"search":{"status":"timeout","message":"no answer within 50ms"},"store":{"status":"failing","message":"redis: connection refused"}}
}

// MemoryMetrics records in memory, for tests of code that takes a
// MetricsSink.
func ExampleMemoryMetrics() {
	m := observe.NewMemoryMetrics()
	sse := observe.TransportTags(observe.TransportSSE)

	m.AddGauge(observe.MetricStreamsActive, 1, sse...)
	m.IncCounter(observe.MetricEventsDelivered, 3, sse...)
	m.AddGauge(observe.MetricStreamsActive, -1, sse...)

	fmt.Println(m.Counter(observe.MetricEventsDelivered, sse...), m.Gauge(observe.MetricStreamsActive, sse...))
	// Output:
	// 3 0
}
