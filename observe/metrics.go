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
// block. Names are the Metric* constants; tags are the Tag* keys (Catalogue
// lists each metric's type and tags).
//
// A variadic tags argument passed through this interface escapes, so a call
// with inline tags allocates the tag array. Hot paths pass a pre-built,
// read-only slice instead (TransportTags, or a package-level []Tag), which
// costs nothing.
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

// Metric names recorded by the library. Catalogue holds each one's type,
// help text and tag keys; the comments repeat them.
const (
	MetricTaskStarts         = "taskbridge_task_starts_total"              // counter: tasks created (not deduplicated)
	MetricDuplicates         = "taskbridge_duplicates_total"               // counter: idempotent creates answered with an existing task
	MetricCancels            = "taskbridge_cancels_total"                  // counter: accepted cancel requests
	MetricActions            = "taskbridge_actions_total"                  // counter, tag status (accepted|rejected|conflict|...)
	MetricResumePending      = "taskbridge_actions_resume_pending_total"   // counter: actions accepted whose resume is still pending
	MetricTaskFailures       = "taskbridge_task_failures_total"            // counter, tag reason (error code)
	MetricReplays            = "taskbridge_replays_total"                  // counter, tag transport
	MetricFallbacks          = "taskbridge_fallbacks_total"                // counter (long-polls), tag transport
	MetricStreamsActive      = "taskbridge_streams_active"                 // gauge (up/down), tag transport
	MetricEventsDelivered    = "taskbridge_events_delivered_total"         // counter, tag transport
	MetricHeartbeats         = "taskbridge_heartbeats_total"               // counter, tag transport
	MetricSlowSubscribers    = "taskbridge_slow_subscriber_catchups_total" // counter, tag transport
	MetricStoreReads         = "taskbridge_store_reads_total"              // counter, tag reason (fanout|catchup|replay|poll)
	MetricDeliveryLatency    = "taskbridge_append_to_delivery_seconds"     // histogram, tag transport
	MetricHTTPRequestSeconds = "taskbridge_http_request_duration_seconds"  // histogram, tags route, status
)

// Tag keys.
const (
	TagTransport = "transport"
	TagStatus    = "status"
	TagRoute     = "route"
	TagReason    = "reason"
)

// MetricKind is the type of a metric: counter, gauge or histogram.
type MetricKind uint8

// Metric kinds.
const (
	KindCounter MetricKind = iota + 1
	KindGauge
	KindHistogram
)

// String returns "counter", "gauge" or "histogram".
func (k MetricKind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	default:
		return "unknown"
	}
}

// MetricDesc describes one metric of the catalogue: its name, kind, help
// text, the tag keys it is labelled by (in a fixed order) and, for
// histograms, the suggested bucket upper bounds in seconds. Backends
// pre-register every metric from it.
type MetricDesc struct {
	Name    string
	Kind    MetricKind
	Help    string
	Tags    []string
	Buckets []float64
}

// Histogram buckets (seconds). Delivery latency is dominated by in-process
// fan-out, so it starts at half a millisecond; HTTP durations include
// long-polls, so they reach a minute.
var (
	deliveryBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	httpBuckets     = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
)

var catalogue = []MetricDesc{
	{Name: MetricTaskStarts, Kind: KindCounter, Help: "Tasks created (deduplicated creates are not counted)."},
	{Name: MetricDuplicates, Kind: KindCounter, Help: "Idempotent creates answered with an existing task."},
	{Name: MetricCancels, Kind: KindCounter, Help: "Accepted cancel requests."},
	{Name: MetricActions, Kind: KindCounter, Help: "Actions on suspended tasks, by outcome status.", Tags: []string{TagStatus}},
	{Name: MetricResumePending, Kind: KindCounter, Help: "Accepted actions whose task resume is still pending."},
	{Name: MetricTaskFailures, Kind: KindCounter, Help: "Tasks that ended failed, by reason (error code).", Tags: []string{TagReason}},
	{Name: MetricReplays, Kind: KindCounter, Help: "Replays from a client cursor, by transport.", Tags: []string{TagTransport}},
	{Name: MetricFallbacks, Kind: KindCounter, Help: "Long-poll requests (the fallback transport).", Tags: []string{TagTransport}},
	{Name: MetricStreamsActive, Kind: KindGauge, Help: "Open event streams, by transport.", Tags: []string{TagTransport}},
	{Name: MetricEventsDelivered, Kind: KindCounter, Help: "Events written to clients, by transport.", Tags: []string{TagTransport}},
	{Name: MetricHeartbeats, Kind: KindCounter, Help: "Heartbeats sent to idle streams, by transport.", Tags: []string{TagTransport}},
	{Name: MetricSlowSubscribers, Kind: KindCounter, Help: "Subscribers switched to catch-up reads after falling behind, by transport.", Tags: []string{TagTransport}},
	{Name: MetricStoreReads, Kind: KindCounter, Help: "Event store reads, by reason (fanout|catchup|replay|poll).", Tags: []string{TagReason}},
	{Name: MetricDeliveryLatency, Kind: KindHistogram, Help: "Seconds from event append to its write on a client connection, by transport.", Tags: []string{TagTransport}, Buckets: deliveryBuckets},
	{Name: MetricHTTPRequestSeconds, Kind: KindHistogram, Help: "HTTP request duration in seconds, by route template and status code.", Tags: []string{TagRoute, TagStatus}, Buckets: httpBuckets},
}

// Catalogue returns a description of every metric the library records. The
// result is a fresh copy the caller may modify.
func Catalogue() []MetricDesc {
	out := make([]MetricDesc, len(catalogue))
	for i, d := range catalogue {
		out[i] = d.clone()
	}
	return out
}

// LookupMetric returns the catalogue entry for name (a copy) and whether it
// exists.
func LookupMetric(name string) (MetricDesc, bool) {
	for _, d := range catalogue {
		if d.Name == name {
			return d.clone(), true
		}
	}
	return MetricDesc{}, false
}

func (d MetricDesc) clone() MetricDesc {
	d.Tags = append([]string(nil), d.Tags...)
	d.Buckets = append([]float64(nil), d.Buckets...)
	return d
}

var (
	tagsHTTP     = []Tag{{Key: TagTransport, Value: string(TransportHTTP)}}
	tagsSSE      = []Tag{{Key: TagTransport, Value: string(TransportSSE)}}
	tagsWS       = []Tag{{Key: TagTransport, Value: string(TransportWS)}}
	tagsInternal = []Tag{{Key: TagTransport, Value: string(TransportInternal)}}
)

// TransportTags returns the one-tag slice {transport: t}. For the four known
// transports it is a shared, pre-built slice, so passing it as tags... to a
// MetricsSink costs no allocation; callers must not modify it. Other values
// get a new slice.
func TransportTags(t Transport) []Tag {
	switch t {
	case TransportHTTP:
		return tagsHTTP
	case TransportSSE:
		return tagsSSE
	case TransportWS:
		return tagsWS
	case TransportInternal:
		return tagsInternal
	}
	return []Tag{{Key: TagTransport, Value: string(t)}}
}

// MultiMetrics returns a MetricsSink that forwards every call to each of
// sinks in order. Nil sinks and NopMetrics are skipped; with nothing left it
// returns NopMetrics, with one sink that sink itself.
func MultiMetrics(sinks ...MetricsSink) MetricsSink {
	kept := make(multiMetrics, 0, len(sinks))
	for _, s := range sinks {
		switch s.(type) {
		case nil, NopMetrics, *NopMetrics:
			continue
		}
		kept = append(kept, s)
	}
	switch len(kept) {
	case 0:
		return NopMetrics{}
	case 1:
		return kept[0]
	}
	return kept
}

type multiMetrics []MetricsSink

func (m multiMetrics) IncCounter(name string, delta float64, tags ...Tag) {
	for _, s := range m {
		s.IncCounter(name, delta, tags...)
	}
}

func (m multiMetrics) AddGauge(name string, delta float64, tags ...Tag) {
	for _, s := range m {
		s.AddGauge(name, delta, tags...)
	}
}

func (m multiMetrics) ObserveHistogram(name string, value float64, tags ...Tag) {
	for _, s := range m {
		s.ObserveHistogram(name, value, tags...)
	}
}
