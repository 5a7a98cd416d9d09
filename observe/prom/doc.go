// Package prom is a Prometheus implementation of observe.MetricsSink.
//
// New registers one collector per metric of observe.Catalogue (plus any
// added with WithMetrics) on the prometheus.Registerer the host passes, with
// fixed label names, so a scrape always shows the full catalogue and no call
// can panic: unknown metric names, calls of the wrong kind, negative counter
// deltas, invalid label values and series past the per-metric limit are
// dropped and counted in taskbridge_metrics_dropped_total{reason}.
//
// The one-line hook-up, with the handler mounted at /metrics:
//
//	reg := prometheus.NewRegistry()
//	metrics := prom.MustNew(reg) // pass as the library's MetricsSink
//	mux.Handle("/metrics", prom.Handler(reg))
//
// The package knows nothing of Fiber: the handler is a plain http.Handler,
// which the Fiber layer adapts.
package prom
