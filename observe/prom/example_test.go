package prom_test

import (
	"bufio"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
)

// The one-line Prometheus hook-up: a sink on the host's registry, and the
// registry's handler mounted at /metrics.
func ExampleMustNew() {
	reg := prometheus.NewRegistry()
	var metrics observe.MetricsSink = prom.MustNew(reg) // pass as the library's MetricsSink
	metricsHandler := prom.Handler(reg)                 // mount at /metrics

	// What the library records while a WebSocket stream is open and closes.
	ws := observe.TransportTags(observe.TransportWS)
	metrics.IncCounter(observe.MetricTaskStarts, 1)
	metrics.AddGauge(observe.MetricStreamsActive, 1, ws...)
	metrics.IncCounter(observe.MetricEventsDelivered, 4, ws...)
	metrics.AddGauge(observe.MetricStreamsActive, -1, ws...)

	rec := httptest.NewRecorder()
	metricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "taskbridge_task_starts_total") ||
			strings.HasPrefix(line, "taskbridge_streams_active") ||
			strings.HasPrefix(line, "taskbridge_events_delivered_total") {
			fmt.Println(line)
		}
	}
	// Output:
	// taskbridge_events_delivered_total{transport="ws"} 4
	// taskbridge_streams_active{transport="ws"} 0
	// taskbridge_task_starts_total 1
}
