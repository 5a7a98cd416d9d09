package observe

import (
	"slices"
	"strings"
	"sync"
)

// MemoryMetrics is a MetricsSink that keeps every series in memory, for
// tests and debugging: record through it, then read values back with
// Counter, Gauge and Histogram. A series is a name plus a tag set; tag order
// does not matter. The zero value is ready to use; a MemoryMetrics is safe
// for concurrent use and must not be copied after first use. It takes a
// mutex and allocates on every call, so it is not meant for production.
type MemoryMetrics struct {
	mu         sync.Mutex
	counters   map[string]float64
	gauges     map[string]float64
	histograms map[string]*HistogramSnapshot
}

// HistogramSnapshot is what MemoryMetrics keeps for one histogram series.
type HistogramSnapshot struct {
	Count  int
	Sum    float64
	Values []float64
}

var _ MetricsSink = (*MemoryMetrics)(nil)

// NewMemoryMetrics returns an empty MemoryMetrics.
func NewMemoryMetrics() *MemoryMetrics { return &MemoryMetrics{} }

// IncCounter implements MetricsSink.
func (m *MemoryMetrics) IncCounter(name string, delta float64, tags ...Tag) {
	k := seriesKey(name, tags)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counters == nil {
		m.counters = make(map[string]float64)
	}
	m.counters[k] += delta
}

// AddGauge implements MetricsSink.
func (m *MemoryMetrics) AddGauge(name string, delta float64, tags ...Tag) {
	k := seriesKey(name, tags)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gauges == nil {
		m.gauges = make(map[string]float64)
	}
	m.gauges[k] += delta
}

// ObserveHistogram implements MetricsSink.
func (m *MemoryMetrics) ObserveHistogram(name string, value float64, tags ...Tag) {
	k := seriesKey(name, tags)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.histograms == nil {
		m.histograms = make(map[string]*HistogramSnapshot)
	}
	h := m.histograms[k]
	if h == nil {
		h = &HistogramSnapshot{}
		m.histograms[k] = h
	}
	h.Count++
	h.Sum += value
	h.Values = append(h.Values, value)
}

// Counter returns the counter series name{tags} (0 if never recorded).
func (m *MemoryMetrics) Counter(name string, tags ...Tag) float64 {
	k := seriesKey(name, tags)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counters[k]
}

// Gauge returns the gauge series name{tags} (0 if never recorded).
func (m *MemoryMetrics) Gauge(name string, tags ...Tag) float64 {
	k := seriesKey(name, tags)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gauges[k]
}

// Histogram returns a copy of the histogram series name{tags} (the zero
// snapshot if never recorded).
func (m *MemoryMetrics) Histogram(name string, tags ...Tag) HistogramSnapshot {
	k := seriesKey(name, tags)
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.histograms[k]
	if h == nil {
		return HistogramSnapshot{}
	}
	return HistogramSnapshot{Count: h.Count, Sum: h.Sum, Values: slices.Clone(h.Values)}
}

// seriesKey renders name{k1=v1,k2=v2} with tags sorted by key.
func seriesKey(name string, tags []Tag) string {
	if len(tags) == 0 {
		return name
	}
	sorted := slices.Clone(tags)
	slices.SortFunc(sorted, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
	var sb strings.Builder
	sb.WriteString(name)
	sb.WriteByte('{')
	for i, t := range sorted {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(t.Key)
		sb.WriteByte('=')
		sb.WriteString(t.Value)
	}
	sb.WriteByte('}')
	return sb.String()
}
