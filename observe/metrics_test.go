package observe_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// metricNames lists every Metric* constant; the catalogue must describe each.
var metricNames = []string{
	observe.MetricTaskStarts, observe.MetricDuplicates, observe.MetricCancels, observe.MetricActions,
	observe.MetricResumePending, observe.MetricTaskFailures, observe.MetricReplays, observe.MetricFallbacks,
	observe.MetricStreamsActive, observe.MetricEventsDelivered, observe.MetricHeartbeats,
	observe.MetricSlowSubscribers, observe.MetricStoreReads, observe.MetricDeliveryLatency,
	observe.MetricHTTPRequestSeconds,
}

func TestCatalogueDescribesEveryMetric(t *testing.T) {
	t.Parallel()
	cat := observe.Catalogue()
	require.Len(t, cat, len(metricNames))
	seen := map[string]bool{}
	for _, d := range cat {
		assert.False(t, seen[d.Name], "duplicate %s", d.Name)
		seen[d.Name] = true
		assert.Contains(t, metricNames, d.Name)
		assert.Regexp(t, `^taskbridge_[a-z_]+$`, d.Name)
		assert.NotEmpty(t, d.Help, d.Name)
		switch d.Kind {
		case observe.KindCounter:
			assert.Regexp(t, `_total$`, d.Name, "counters end in _total")
			assert.Empty(t, d.Buckets)
		case observe.KindGauge:
			assert.NotRegexp(t, `_total$`, d.Name)
			assert.Empty(t, d.Buckets)
		case observe.KindHistogram:
			assert.Regexp(t, `_seconds$`, d.Name, "histograms here measure seconds")
			require.NotEmpty(t, d.Buckets, d.Name)
			assert.True(t, slices.IsSorted(d.Buckets), d.Name)
		default:
			t.Errorf("%s: unknown kind %v", d.Name, d.Kind)
		}
		for _, tag := range d.Tags {
			assert.Contains(t, []string{observe.TagTransport, observe.TagStatus, observe.TagRoute, observe.TagReason}, tag, d.Name)
		}
	}
}

func TestCatalogueKindsAndTags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kind observe.MetricKind
		tags []string
	}{
		{observe.MetricTaskStarts, observe.KindCounter, nil},
		{observe.MetricActions, observe.KindCounter, []string{observe.TagStatus}},
		{observe.MetricStreamsActive, observe.KindGauge, []string{observe.TagTransport}},
		{observe.MetricEventsDelivered, observe.KindCounter, []string{observe.TagTransport}},
		{observe.MetricStoreReads, observe.KindCounter, []string{observe.TagReason}},
		{observe.MetricDeliveryLatency, observe.KindHistogram, []string{observe.TagTransport}},
		{observe.MetricHTTPRequestSeconds, observe.KindHistogram, []string{observe.TagRoute, observe.TagStatus}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, ok := observe.LookupMetric(tt.name)
			require.True(t, ok)
			assert.Equal(t, tt.kind, d.Kind)
			assert.Equal(t, tt.tags, nilIfEmpty(d.Tags))
		})
	}
	_, ok := observe.LookupMetric("nope")
	assert.False(t, ok)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestCatalogueReturnsCopies(t *testing.T) {
	t.Parallel()
	a := observe.Catalogue()
	for i := range a {
		a[i].Name = "changed"
		for j := range a[i].Tags {
			a[i].Tags[j] = "changed"
		}
		for j := range a[i].Buckets {
			a[i].Buckets[j] = -1
		}
	}
	b := observe.Catalogue()
	for _, d := range b {
		assert.NotEqual(t, "changed", d.Name)
		assert.NotContains(t, d.Tags, "changed")
		assert.NotContains(t, d.Buckets, -1.0)
	}
}

func TestMetricKindString(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "counter", observe.KindCounter.String())
	assert.Equal(t, "gauge", observe.KindGauge.String())
	assert.Equal(t, "histogram", observe.KindHistogram.String())
	assert.Equal(t, "unknown", observe.MetricKind(0).String())
}

func TestTransportTags(t *testing.T) {
	t.Parallel()
	for _, tr := range []observe.Transport{observe.TransportHTTP, observe.TransportSSE, observe.TransportWS, observe.TransportInternal, "carrier-pigeon"} {
		tags := observe.TransportTags(tr)
		assert.Equal(t, []observe.Tag{{Key: observe.TagTransport, Value: string(tr)}}, tags)
	}
	assert.Same(t, &observe.TransportTags(observe.TransportWS)[0], &observe.TransportTags(observe.TransportWS)[0],
		"known transports share one slice")
}

func TestMultiMetrics(t *testing.T) {
	t.Parallel()
	assert.Equal(t, observe.NopMetrics{}, observe.MultiMetrics())
	assert.Equal(t, observe.NopMetrics{}, observe.MultiMetrics(nil, observe.NopMetrics{}, &observe.NopMetrics{}))
	one := observe.NewMemoryMetrics()
	assert.Same(t, one, observe.MultiMetrics(nil, one, observe.NopMetrics{}))

	a, b := observe.NewMemoryMetrics(), observe.NewMemoryMetrics()
	m := observe.MultiMetrics(a, nil, b)
	ws := observe.TransportTags(observe.TransportWS)
	m.IncCounter(observe.MetricEventsDelivered, 3, ws...)
	m.AddGauge(observe.MetricStreamsActive, 1, ws...)
	m.ObserveHistogram(observe.MetricDeliveryLatency, 0.25, ws...)
	for _, s := range []*observe.MemoryMetrics{a, b} {
		assert.Equal(t, 3.0, s.Counter(observe.MetricEventsDelivered, ws...))
		assert.Equal(t, 1.0, s.Gauge(observe.MetricStreamsActive, ws...))
		assert.Equal(t, observe.HistogramSnapshot{Count: 1, Sum: 0.25, Values: []float64{0.25}},
			s.Histogram(observe.MetricDeliveryLatency, ws...))
	}
}

func TestMemoryMetrics(t *testing.T) {
	t.Parallel()
	var m observe.MemoryMetrics // zero value is usable
	route := observe.Tag{Key: observe.TagRoute, Value: "/tasks"}
	status := observe.Tag{Key: observe.TagStatus, Value: "201"}

	m.IncCounter(observe.MetricTaskStarts, 1)
	m.IncCounter(observe.MetricTaskStarts, 2)
	m.ObserveHistogram(observe.MetricHTTPRequestSeconds, 0.5, route, status)
	m.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1.5, status, route)
	m.AddGauge(observe.MetricStreamsActive, 1, observe.TransportTags(observe.TransportSSE)...)
	m.AddGauge(observe.MetricStreamsActive, -1, observe.TransportTags(observe.TransportSSE)...)

	assert.Equal(t, 3.0, m.Counter(observe.MetricTaskStarts))
	assert.Zero(t, m.Counter(observe.MetricTaskStarts, route), "a different tag set is a different series")
	h := m.Histogram(observe.MetricHTTPRequestSeconds, route, status)
	assert.Equal(t, 2, h.Count, "tag order does not matter")
	assert.Equal(t, 2.0, h.Sum)
	h.Values[0] = 99
	assert.Equal(t, []float64{0.5, 1.5}, m.Histogram(observe.MetricHTTPRequestSeconds, route, status).Values, "snapshots are copies")
	assert.Zero(t, m.Gauge(observe.MetricStreamsActive, observe.TransportTags(observe.TransportSSE)...))
	assert.Equal(t, observe.HistogramSnapshot{}, m.Histogram("never"))
}

func TestMemoryMetricsConcurrent(t *testing.T) {
	t.Parallel()
	m := observe.NewMemoryMetrics()
	ws := observe.TransportTags(observe.TransportWS)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.AddGauge(observe.MetricStreamsActive, 1, ws...)
				m.IncCounter(observe.MetricHeartbeats, 1, ws...)
				m.AddGauge(observe.MetricStreamsActive, -1, ws...)
			}
		})
	}
	wg.Wait()
	assert.Zero(t, m.Gauge(observe.MetricStreamsActive, ws...))
	assert.Equal(t, 800.0, m.Counter(observe.MetricHeartbeats, ws...))
}
