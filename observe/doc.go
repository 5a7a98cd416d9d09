// Package observe is the library's observability surface: a zap-backed
// structured logger with stable field names, a MetricsSink for counters,
// up/down gauges and histograms, a TransportDiagnosticsSink the streaming
// runtime reports to, and readiness probes.
//
// Every sink defaults to a no-op, so a host that plugs nothing pays nothing;
// a host plugs its own *zap.Logger with NewLogger and its metrics backend
// with any MetricsSink (the prom sub-package provides Prometheus).
package observe
