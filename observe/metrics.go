package observe

// Tag is one metric label.
type Tag struct {
	Key   string
	Value string
}

// MetricsSink receives the library's metrics. Counters only go up; gauges
// move up and down by deltas (AddGauge(+1) when a stream opens and -1 when it
// closes, never set-to-1/set-to-0); histograms observe values (seconds for
// durations). Implementations are safe for concurrent use and must not
// block. Names are the Metric* constants; tags are the Tag* keys.
type MetricsSink interface {
	IncCounter(name string, delta float64, tags ...Tag)
	AddGauge(name string, delta float64, tags ...Tag)
	ObserveHistogram(name string, value float64, tags ...Tag)
}

// NopMetrics is a MetricsSink that discards everything.
type NopMetrics struct{}

// IncCounter implements MetricsSink.
func (NopMetrics) IncCounter(string, float64, ...Tag) {}

// AddGauge implements MetricsSink.
func (NopMetrics) AddGauge(string, float64, ...Tag) {}

// ObserveHistogram implements MetricsSink.
func (NopMetrics) ObserveHistogram(string, float64, ...Tag) {}

// Metric names recorded by the library.
const (
	MetricTaskStarts         = "taskbridge_task_starts_total"            // counter
	MetricDuplicates         = "taskbridge_duplicates_total"             // counter
	MetricCancels            = "taskbridge_cancels_total"                // counter
	MetricActions            = "taskbridge_actions_total"                // counter, tag status
	MetricResumePending      = "taskbridge_actions_resume_pending_total" // counter
	MetricTaskFailures       = "taskbridge_task_failures_total"          // counter, tag reason
	MetricReplays            = "taskbridge_replays_total"                // counter, tag transport
	MetricFallbacks          = "taskbridge_fallbacks_total"              // counter (long-polls), tag transport
	MetricStreamsActive      = "taskbridge_streams_active"               // gauge, tag transport
	MetricEventsDelivered    = "taskbridge_events_delivered_total"       // counter, tag transport
	MetricHeartbeats         = "taskbridge_heartbeats_total"             // counter, tag transport
	MetricSlowSubscribers    = "taskbridge_slow_subscriber_catchups_total"
	MetricStoreReads         = "taskbridge_store_reads_total"             // counter, tag reason (fanout|catchup|replay|poll)
	MetricDeliveryLatency    = "taskbridge_append_to_delivery_seconds"    // histogram, tag transport
	MetricHTTPRequestSeconds = "taskbridge_http_request_duration_seconds" // histogram, tags route, status
)

// Tag keys.
const (
	TagTransport = "transport"
	TagStatus    = "status"
	TagRoute     = "route"
	TagReason    = "reason"
)
