package prom_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// scrape gathers g into "name{k=v,...}" -> value; histograms appear as
// name_count and name_sum.
func scrape(tb testing.TB, g prometheus.Gatherer) map[string]float64 {
	tb.Helper()
	families, err := g.Gather()
	require.NoError(tb, err)
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			suffix := "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[f.GetName()+suffix] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[f.GetName()+suffix] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[f.GetName()+"_count"+suffix] = float64(m.GetHistogram().GetSampleCount())
				out[f.GetName()+"_sum"+suffix] = m.GetHistogram().GetSampleSum()
			default:
				tb.Fatalf("unexpected metric type %v for %s", f.GetType(), f.GetName())
			}
		}
	}
	return out
}

func newSink(tb testing.TB, opts ...prom.Option) (*prom.Sink, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	s, err := prom.New(reg, opts...)
	require.NoError(tb, err)
	return s, reg
}

func dropped(reason string) string { return prom.MetricDropped + "{reason=" + reason + "}" }

func TestNewRegistersTheCatalogue(t *testing.T) {
	t.Parallel()
	_, reg := newSink(t)
	got := scrape(t, reg)

	for _, d := range observe.Catalogue() {
		if len(d.Tags) == 0 {
			assert.Contains(t, got, d.Name+"{}", "unlabelled metrics are visible at 0 from the start")
		}
	}
	for _, r := range []string{prom.DropUnknownMetric, prom.DropWrongKind, prom.DropNegativeCounter, prom.DropInvalidLabel, prom.DropSeriesLimit} {
		assert.Equal(t, 0.0, got[dropped(r)], r)
	}

	// Every catalogue name, labelled or not, is described on the registry.
	families, err := reg.Gather()
	require.NoError(t, err)
	described := map[string]bool{}
	for _, f := range families {
		described[f.GetName()] = true
	}
	for _, d := range observe.Catalogue() {
		if len(d.Tags) == 0 {
			assert.True(t, described[d.Name], d.Name)
		}
	}
}

func TestSinkRecordsAScriptedFlow(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t)
	var sink observe.MetricsSink = s
	ws, sse := observe.TransportTags(observe.TransportWS), observe.TransportTags(observe.TransportSSE)

	sink.IncCounter(observe.MetricTaskStarts, 1)
	sink.IncCounter(observe.MetricDuplicates, 1)
	sink.IncCounter(observe.MetricActions, 1, observe.Tag{Key: observe.TagStatus, Value: "accepted"})
	sink.IncCounter(observe.MetricActions, 1, observe.Tag{Key: observe.TagStatus, Value: "conflict"})
	sink.AddGauge(observe.MetricStreamsActive, 1, ws...)
	sink.AddGauge(observe.MetricStreamsActive, 1, sse...)
	sink.IncCounter(observe.MetricEventsDelivered, 3, ws...)
	sink.IncCounter(observe.MetricEventsDelivered, 3, sse...)
	sink.ObserveHistogram(observe.MetricDeliveryLatency, 0.002, ws...)
	sink.ObserveHistogram(observe.MetricHTTPRequestSeconds, 0.5,
		observe.Tag{Key: observe.TagRoute, Value: "/tasks"}, observe.Tag{Key: observe.TagStatus, Value: "201"})
	sink.ObserveHistogram(observe.MetricHTTPRequestSeconds, 0.25,
		observe.Tag{Key: observe.TagStatus, Value: "201"}, observe.Tag{Key: observe.TagRoute, Value: "/tasks"})
	sink.IncCounter(observe.MetricTaskStarts, 2)

	mid := scrape(t, reg)
	assert.Equal(t, 2.0, mid["taskbridge_streams_active{transport=ws}"]+mid["taskbridge_streams_active{transport=sse}"])

	sink.AddGauge(observe.MetricStreamsActive, -1, ws...)
	sink.AddGauge(observe.MetricStreamsActive, -1, sse...)

	got := scrape(t, reg)
	want := map[string]float64{
		"taskbridge_task_starts_total{}":                                          3,
		"taskbridge_duplicates_total{}":                                           1,
		"taskbridge_actions_total{status=accepted}":                               1,
		"taskbridge_actions_total{status=conflict}":                               1,
		"taskbridge_streams_active{transport=ws}":                                 0,
		"taskbridge_streams_active{transport=sse}":                                0,
		"taskbridge_events_delivered_total{transport=ws}":                         3,
		"taskbridge_events_delivered_total{transport=sse}":                        3,
		"taskbridge_append_to_delivery_seconds_count{transport=ws}":               1,
		"taskbridge_append_to_delivery_seconds_sum{transport=ws}":                 0.002,
		"taskbridge_http_request_duration_seconds_count{route=/tasks,status=201}": 2,
		"taskbridge_http_request_duration_seconds_sum{route=/tasks,status=201}":   0.75,
	}
	for k, v := range want {
		assert.InDelta(t, v, got[k], 1e-9, k)
		assert.Contains(t, got, k)
	}
	for _, r := range []string{prom.DropUnknownMetric, prom.DropWrongKind, prom.DropNegativeCounter, prom.DropInvalidLabel, prom.DropSeriesLimit} {
		assert.Zero(t, got[dropped(r)], r)
	}
}

func TestStreamsActiveReturnsToZeroUnderConcurrency(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t)
	transports := []observe.Transport{observe.TransportWS, observe.TransportSSE, observe.TransportHTTP}
	var wg sync.WaitGroup
	for i := range 6 {
		tags := observe.TransportTags(transports[i%len(transports)])
		wg.Go(func() {
			for range 500 {
				s.AddGauge(observe.MetricStreamsActive, 1, tags...)
				s.IncCounter(observe.MetricHeartbeats, 1, tags...)
				s.AddGauge(observe.MetricStreamsActive, -1, tags...)
			}
		})
	}
	wg.Wait()
	got := scrape(t, reg)
	for _, tr := range transports {
		assert.Zero(t, got["taskbridge_streams_active{transport="+string(tr)+"}"], tr)
		assert.Contains(t, got, "taskbridge_streams_active{transport="+string(tr)+"}")
		assert.Equal(t, 1000.0, got["taskbridge_heartbeats_total{transport="+string(tr)+"}"], tr)
	}
}

func TestSinkDropsAndCountsBadCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		call   func(*prom.Sink)
		reason string
	}{
		{"unknown counter", func(s *prom.Sink) { s.IncCounter("nope_total", 1) }, prom.DropUnknownMetric},
		{"unknown gauge", func(s *prom.Sink) { s.AddGauge("nope", 1) }, prom.DropUnknownMetric},
		{"unknown histogram", func(s *prom.Sink) { s.ObserveHistogram("nope_seconds", 1) }, prom.DropUnknownMetric},
		{"gauge call on a counter", func(s *prom.Sink) { s.AddGauge(observe.MetricTaskStarts, 1) }, prom.DropWrongKind},
		{"counter call on a gauge", func(s *prom.Sink) { s.IncCounter(observe.MetricStreamsActive, 1) }, prom.DropWrongKind},
		{"histogram call on a counter", func(s *prom.Sink) { s.ObserveHistogram(observe.MetricCancels, 1) }, prom.DropWrongKind},
		{"negative counter", func(s *prom.Sink) { s.IncCounter(observe.MetricCancels, -1) }, prom.DropNegativeCounter},
		{"label value not UTF-8", func(s *prom.Sink) {
			s.IncCounter(observe.MetricReplays, 1, observe.Tag{Key: observe.TagTransport, Value: "\xff\xfe"})
		}, prom.DropInvalidLabel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, reg := newSink(t)
			before := scrape(t, reg)
			assert.NotPanics(t, func() { tt.call(s) })
			after := scrape(t, reg)
			assert.Equal(t, 1.0, after[dropped(tt.reason)])
			delete(after, dropped(tt.reason))
			delete(before, dropped(tt.reason))
			assert.Equal(t, before, after, "nothing else changed")
		})
	}
}

func TestSinkSeriesLimit(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t, prom.WithMaxSeries(2))
	for _, route := range []string{"/a", "/b", "/c", "/a", "/d"} {
		s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1,
			observe.Tag{Key: observe.TagRoute, Value: route}, observe.Tag{Key: observe.TagStatus, Value: "200"})
	}
	got := scrape(t, reg)
	assert.Equal(t, 2.0, got["taskbridge_http_request_duration_seconds_count{route=/a,status=200}"])
	assert.Equal(t, 1.0, got["taskbridge_http_request_duration_seconds_count{route=/b,status=200}"])
	assert.NotContains(t, got, "taskbridge_http_request_duration_seconds_count{route=/c,status=200}")
	assert.Equal(t, 2.0, got[dropped(prom.DropSeriesLimit)])
}

func TestSinkLabelRules(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t)
	// Unknown tag keys are ignored; missing labels take "".
	s.IncCounter(observe.MetricTaskStarts, 1, observe.Tag{Key: "tenant", Value: "acme"})
	s.IncCounter(observe.MetricReplays, 1)
	s.IncCounter(observe.MetricReplays, 1, observe.Tag{Key: "extra", Value: "x"}, observe.Tag{Key: observe.TagTransport, Value: "ws"})
	s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1, observe.Tag{Key: observe.TagStatus, Value: "404"})
	// Values that would collide under a naive separator stay distinct.
	s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1,
		observe.Tag{Key: observe.TagRoute, Value: "a"}, observe.Tag{Key: observe.TagStatus, Value: "bc"})
	s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1,
		observe.Tag{Key: observe.TagRoute, Value: "ab"}, observe.Tag{Key: observe.TagStatus, Value: "c"})

	got := scrape(t, reg)
	assert.Equal(t, 1.0, got["taskbridge_task_starts_total{}"])
	assert.Equal(t, 1.0, got["taskbridge_replays_total{transport=}"])
	assert.Equal(t, 1.0, got["taskbridge_replays_total{transport=ws}"])
	assert.Equal(t, 1.0, got["taskbridge_http_request_duration_seconds_count{route=,status=404}"])
	assert.Equal(t, 1.0, got["taskbridge_http_request_duration_seconds_count{route=a,status=bc}"])
	assert.Equal(t, 1.0, got["taskbridge_http_request_duration_seconds_count{route=ab,status=c}"])
}

func TestSinkCopiesLabelValues(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t)
	// A label value backed by a buffer the caller recycles (as fasthttp does).
	buf := []byte("/tasks")
	recycled := unsafe.String(&buf[0], len(buf))
	tags := []observe.Tag{{Key: observe.TagRoute, Value: recycled}, {Key: observe.TagStatus, Value: "200"}}
	s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1, tags...)
	copy(buf, "/xxxxx")
	s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1,
		observe.Tag{Key: observe.TagRoute, Value: "/tasks"}, observe.Tag{Key: observe.TagStatus, Value: "200"})

	got := scrape(t, reg)
	assert.Equal(t, 2.0, got["taskbridge_http_request_duration_seconds_count{route=/tasks,status=200}"])
	assert.NotContains(t, got, "taskbridge_http_request_duration_seconds_count{route=/xxxxx,status=200}")
}

func TestTwoSinksShareARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a, err := prom.New(reg)
	require.NoError(t, err)
	b, err := prom.New(reg)
	require.NoError(t, err)
	a.IncCounter(observe.MetricCancels, 1)
	b.IncCounter(observe.MetricCancels, 1)
	assert.Equal(t, 2.0, scrape(t, reg)["taskbridge_cancels_total{}"])
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	_, err := prom.New(nil)
	require.Error(t, err)

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: observe.MetricTaskStarts, Help: "someone else's"}))
	_, err = prom.New(reg)
	require.Error(t, err, "a different collector under a catalogue name is a conflict")

	_, err = prom.New(prometheus.NewRegistry(), prom.WithMetrics(observe.MetricDesc{Name: "", Kind: observe.KindCounter, Help: "x"}))
	require.Error(t, err)
	_, err = prom.New(prometheus.NewRegistry(), prom.WithMetrics(observe.MetricDesc{Name: "no_kind", Help: "x"}))
	require.Error(t, err)

	assert.Panics(t, func() { prom.MustNew(nil) })
}

func TestOptions(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s, err := prom.New(reg,
		prom.WithConstLabels(prometheus.Labels{"app": "demo"}),
		prom.WithBuckets(observe.MetricDeliveryLatency, []float64{0.1, 1}),
		prom.WithMetrics(
			observe.MetricDesc{Name: "demo_jobs_total", Kind: observe.KindCounter, Help: "Host jobs.", Tags: []string{"queue"}},
			observe.MetricDesc{Name: observe.MetricCancels, Kind: observe.KindCounter, Help: "Cancels, by route.", Tags: []string{observe.TagRoute}},
		),
	)
	require.NoError(t, err)
	s.IncCounter("demo_jobs_total", 2, observe.Tag{Key: "queue", Value: "q1"})
	s.IncCounter(observe.MetricCancels, 1, observe.Tag{Key: observe.TagRoute, Value: "/tasks/:id/cancel"})
	s.ObserveHistogram(observe.MetricDeliveryLatency, 0.05, observe.TransportTags(observe.TransportWS)...)

	got := scrape(t, reg)
	assert.Equal(t, 2.0, got["demo_jobs_total{app=demo,queue=q1}"])
	assert.Equal(t, 1.0, got["taskbridge_cancels_total{app=demo,route=/tasks/:id/cancel}"])

	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != observe.MetricDeliveryLatency {
			continue
		}
		buckets := f.GetMetric()[0].GetHistogram().GetBucket()
		require.Len(t, buckets, 2)
		assert.Equal(t, 0.1, buckets[0].GetUpperBound())
		assert.Equal(t, uint64(1), buckets[0].GetCumulativeCount())
		return
	}
	t.Fatal("delivery latency histogram not gathered")
}

func TestHandlerServesTheRegistry(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t)
	s.AddGauge(observe.MetricStreamsActive, 1, observe.TransportTags(observe.TransportSSE)...)
	s.IncCounter(observe.MetricTaskStarts, 5)

	srv := httptest.NewServer(prom.Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	text := string(body)
	assert.Contains(t, text, "# TYPE taskbridge_streams_active gauge")
	assert.Contains(t, text, `taskbridge_streams_active{transport="sse"} 1`)
	assert.Contains(t, text, "taskbridge_task_starts_total 5")
}

func TestSinkConcurrentNewSeries(t *testing.T) {
	t.Parallel()
	s, reg := newSink(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 1,
					observe.Tag{Key: observe.TagRoute, Value: fmt.Sprintf("/r%d", i)},
					observe.Tag{Key: observe.TagStatus, Value: fmt.Sprint(200 + g%2)})
			}
		})
	}
	wg.Wait()
	got := scrape(t, reg)
	for i := range 50 {
		for _, st := range []string{"200", "201"} {
			assert.Equal(t, 2.0, got[fmt.Sprintf("taskbridge_http_request_duration_seconds_count{route=/r%d,status=%s}", i, st)])
		}
	}
}
