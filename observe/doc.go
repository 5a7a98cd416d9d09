// Package observe is the library's observability surface: a zap-backed
// structured logger with stable field names, a MetricsSink for counters,
// up/down gauges and histograms, a TransportDiagnosticsSink the streaming
// runtime reports to, and readiness probes.
//
// Every sink defaults to a no-op, so a host that plugs nothing pays nothing;
// a host passes its own *zap.Logger to the constructors' options
// (fiberbridge.Config.Logger, orchestration.ExecutorOptions.Logger, ...)
// and its metrics backend as any MetricsSink (the prom sub-package provides
// Prometheus).
//
// Logging: the library writes each line as an Entry (taskId, eventId,
// clientRequestId, clientActionId, userId, transport, outcome, details,
// error) through Logger: Debug for per-event lines, Info for lifecycle,
// Warn for denials and Error for failures. Disabled levels cost no
// allocation; With binds per-connection fields once; a line's caller is the
// library code that logged it.
//
// Metrics: the Metric* names and Tag* keys form a fixed catalogue
// (Catalogue), so backends can pre-register every series. MultiMetrics fans
// out; MemoryMetrics records in memory for tests.
//
// Diagnostics: LoggingDiagnostics turns the runtime's hooks into log lines;
// MultiDiagnostics fans out.
//
// Readiness: a Composite of named Probes answers /ready. Probes run
// concurrently under a per-probe timeout, so a hung dependency cannot hang
// the route; ExecutorProbe and StoreProbe adapt the executor and stores.
package observe
