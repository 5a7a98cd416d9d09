package prom_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
)

// benchSink returns the sink behind the MetricsSink interface, as the
// library calls it.
func benchSink(b *testing.B) observe.MetricsSink {
	b.Helper()
	return prom.MustNew(prometheus.NewRegistry())
}

var httpTags = []observe.Tag{{Key: observe.TagRoute, Value: "/tasks/:id"}, {Key: observe.TagStatus, Value: "200"}}

func BenchmarkIncCounterNoTags(b *testing.B) {
	s := benchSink(b)
	b.ReportAllocs()
	for b.Loop() {
		s.IncCounter(observe.MetricTaskStarts, 1)
	}
}

func BenchmarkIncCounterTransportTags(b *testing.B) {
	s := benchSink(b)
	tags := observe.TransportTags(observe.TransportWS)
	b.ReportAllocs()
	for b.Loop() {
		s.IncCounter(observe.MetricEventsDelivered, 1, tags...)
	}
}

func BenchmarkIncCounterTransportTagsParallel(b *testing.B) {
	s := benchSink(b)
	tags := observe.TransportTags(observe.TransportWS)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.IncCounter(observe.MetricEventsDelivered, 1, tags...)
		}
	})
}

// BenchmarkIncCounterInlineTag shows the cost of building the tag at the
// call site: the variadic array escapes through the interface.
func BenchmarkIncCounterInlineTag(b *testing.B) {
	s := benchSink(b)
	b.ReportAllocs()
	for b.Loop() {
		s.IncCounter(observe.MetricActions, 1, observe.Tag{Key: observe.TagStatus, Value: "accepted"})
	}
}

func BenchmarkAddGaugeUpDown(b *testing.B) {
	s := benchSink(b)
	tags := observe.TransportTags(observe.TransportSSE)
	b.ReportAllocs()
	for b.Loop() {
		s.AddGauge(observe.MetricStreamsActive, 1, tags...)
		s.AddGauge(observe.MetricStreamsActive, -1, tags...)
	}
}

func BenchmarkObserveHistogramTwoTags(b *testing.B) {
	s := benchSink(b)
	b.ReportAllocs()
	for b.Loop() {
		s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 0.012, httpTags...)
	}
}

func BenchmarkObserveHistogramTwoTagsParallel(b *testing.B) {
	s := benchSink(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 0.012, httpTags...)
		}
	})
}

// BenchmarkPrometheusDirect is the floor: the same histogram child looked up
// by Prometheus itself on every call.
func BenchmarkPrometheusDirect(b *testing.B) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "x_seconds", Help: "x"}, []string{"route", "status"})
	b.ReportAllocs()
	for b.Loop() {
		h.WithLabelValues("/tasks/:id", "200").Observe(0.012)
	}
}
