//go:build !race

package prom_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"

	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/observe/prom"
)

func TestRecordingSeenSeriesDoesNotAllocate(t *testing.T) {
	var s observe.MetricsSink = prom.MustNew(prometheus.NewRegistry())
	ws := observe.TransportTags(observe.TransportWS)
	tests := []struct {
		name string
		call func()
	}{
		{"counter without tags", func() { s.IncCounter(observe.MetricTaskStarts, 1) }},
		{"counter with transport", func() { s.IncCounter(observe.MetricEventsDelivered, 1, ws...) }},
		{"gauge up and down", func() {
			s.AddGauge(observe.MetricStreamsActive, 1, ws...)
			s.AddGauge(observe.MetricStreamsActive, -1, ws...)
		}},
		{"histogram with two tags", func() { s.ObserveHistogram(observe.MetricHTTPRequestSeconds, 0.01, httpTags...) }},
		{"dropped call", func() { s.IncCounter("unknown_total", 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.call() // first use creates the series
			assert.Zero(t, testing.AllocsPerRun(1000, tt.call))
		})
	}
}
