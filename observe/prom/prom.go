package prom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// MetricDropped is the counter of calls the Sink discarded, by reason.
const MetricDropped = "taskbridge_metrics_dropped_total"

// Reasons a call is dropped (values of the reason label of MetricDropped).
const (
	DropUnknownMetric   = "unknown_metric"   // name not in the catalogue
	DropWrongKind       = "wrong_kind"       // e.g. AddGauge on a counter
	DropNegativeCounter = "negative_counter" // IncCounter with delta < 0
	DropInvalidLabel    = "invalid_label"    // label value Prometheus rejects (not UTF-8)
	DropSeriesLimit     = "series_limit"     // the metric already has MaxSeries label sets
)

// DefaultMaxSeries is the default bound on distinct label sets per metric.
const DefaultMaxSeries = 1000

// Sink is an observe.MetricsSink backed by Prometheus collectors. Every
// metric is registered in New with fixed label names (the catalogue's tag
// keys, in order). Per call, tags whose key is not a label of the metric are
// ignored and labels without a tag take the empty value.
//
// Recording is lock-free and allocation-free once a label set has been seen:
// each metric keeps a copy-on-write cache from label values to the
// Prometheus child. The first use of a label set takes a mutex and copies the
// label values (so callers may pass strings backed by recycled buffers).
//
// A Sink is safe for concurrent use and lives as long as the registry it
// was registered on; it owns no goroutines and needs no Close.
type Sink struct {
	metrics   map[string]*metric // immutable after New
	maxSeries int
	dropped   *prometheus.CounterVec
	drops     [5]prometheus.Counter // indexed by dropReason
}

var _ observe.MetricsSink = (*Sink)(nil)

type dropReason int

const (
	dropUnknown dropReason = iota
	dropKind
	dropNegative
	dropInvalid
	dropLimit
)

var dropReasons = [...]string{DropUnknownMetric, DropWrongKind, DropNegativeCounter, DropInvalidLabel, DropSeriesLimit}

// Option configures New.
type Option func(*config)

type config struct {
	buckets     map[string][]float64
	constLabels prometheus.Labels
	maxSeries   int
	extra       []observe.MetricDesc
}

// WithBuckets sets the histogram bucket upper bounds for the metric name,
// replacing the catalogue's suggestion.
func WithBuckets(name string, buckets []float64) Option {
	return func(c *config) {
		if c.buckets == nil {
			c.buckets = make(map[string][]float64)
		}
		c.buckets[name] = append([]float64(nil), buckets...)
	}
}

// WithConstLabels adds constant labels (for example an instance or app
// name) to every metric the Sink registers.
func WithConstLabels(labels prometheus.Labels) Option {
	return func(c *config) {
		c.constLabels = make(prometheus.Labels, len(labels))
		for k, v := range labels {
			c.constLabels[k] = v
		}
	}
}

// WithMaxSeries bounds the distinct label sets kept per metric (default
// DefaultMaxSeries); calls that would create more are dropped and counted.
// n <= 0 keeps the default.
func WithMaxSeries(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxSeries = n
		}
	}
}

// WithMetrics registers further metrics beyond observe.Catalogue, for host
// code that records its own names through the same sink. An entry whose name
// is in the catalogue replaces the catalogue's description.
func WithMetrics(descs ...observe.MetricDesc) Option {
	return func(c *config) { c.extra = append(c.extra, descs...) }
}

// New builds a Sink and registers its collectors on reg. It fails if a
// description is invalid or a collector conflicts with one already on reg;
// a second Sink on the same registry with the same descriptions shares the
// first one's collectors instead of failing.
func New(reg prometheus.Registerer, opts ...Option) (*Sink, error) {
	if reg == nil {
		return nil, errors.New("taskbridge: prom.New: nil Registerer")
	}
	cfg := config{maxSeries: DefaultMaxSeries}
	for _, o := range opts {
		o(&cfg)
	}

	descs := observe.Catalogue()
	for _, d := range cfg.extra {
		replaced := false
		for i := range descs {
			if descs[i].Name == d.Name {
				descs[i], replaced = d, true
				break
			}
		}
		if !replaced {
			descs = append(descs, d)
		}
	}

	s := &Sink{metrics: make(map[string]*metric, len(descs)), maxSeries: cfg.maxSeries}
	for _, d := range descs {
		if b, ok := cfg.buckets[d.Name]; ok {
			d.Buckets = b
		}
		m, err := newMetric(reg, d, cfg.constLabels)
		if err != nil {
			return nil, err
		}
		s.metrics[d.Name] = m
	}

	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        MetricDropped,
		Help:        "Metric calls the TaskBridge Prometheus sink discarded, by reason.",
		ConstLabels: cfg.constLabels,
	}, []string{"reason"})
	c, err := register(reg, dropped)
	if err != nil {
		return nil, err
	}
	s.dropped = c.(*prometheus.CounterVec)
	for i, r := range dropReasons {
		s.drops[i] = s.dropped.WithLabelValues(r)
	}
	return s, nil
}

// MustNew is New that panics on error, for one-line wiring at boot.
func MustNew(reg prometheus.Registerer, opts ...Option) *Sink {
	s, err := New(reg, opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// Handler returns the http.Handler to mount at /metrics, serving what g
// gathers (pass the *prometheus.Registry given to New, or
// prometheus.DefaultGatherer). Errors while gathering are logged nowhere and
// the rest is still served.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// IncCounter implements observe.MetricsSink.
func (s *Sink) IncCounter(name string, delta float64, tags ...observe.Tag) {
	m := s.lookup(name, observe.KindCounter)
	if m == nil {
		return
	}
	if delta < 0 {
		s.drops[dropNegative].Inc()
		return
	}
	if c := s.series(m, tags); c != nil {
		c.counter.Add(delta)
	}
}

// AddGauge implements observe.MetricsSink.
func (s *Sink) AddGauge(name string, delta float64, tags ...observe.Tag) {
	m := s.lookup(name, observe.KindGauge)
	if m == nil {
		return
	}
	if c := s.series(m, tags); c != nil {
		c.gauge.Add(delta)
	}
}

// ObserveHistogram implements observe.MetricsSink.
func (s *Sink) ObserveHistogram(name string, value float64, tags ...observe.Tag) {
	m := s.lookup(name, observe.KindHistogram)
	if m == nil {
		return
	}
	if c := s.series(m, tags); c != nil {
		c.observer.Observe(value)
	}
}

func (s *Sink) lookup(name string, kind observe.MetricKind) *metric {
	m := s.metrics[name]
	switch {
	case m == nil:
		s.drops[dropUnknown].Inc()
		return nil
	case m.kind != kind:
		s.drops[dropKind].Inc()
		return nil
	}
	return m
}

// metric is one registered collector and its cache of children.
type metric struct {
	kind         observe.MetricKind
	labels       []string
	counterVec   *prometheus.CounterVec
	gaugeVec     *prometheus.GaugeVec
	histogramVec *prometheus.HistogramVec

	unlabelled *child                            // the only child when labels is empty
	cache      atomic.Pointer[map[string]*child] // copy-on-write: readers never lock
	mu         sync.Mutex                        // serialises cache growth
}

// child is one label set's Prometheus metric; exactly one field is set.
type child struct {
	counter  prometheus.Counter
	gauge    prometheus.Gauge
	observer prometheus.Observer
}

func newMetric(reg prometheus.Registerer, d observe.MetricDesc, constLabels prometheus.Labels) (*metric, error) {
	m := &metric{kind: d.Kind, labels: append([]string(nil), d.Tags...)}
	switch d.Kind {
	case observe.KindCounter:
		c, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: d.Name, Help: d.Help, ConstLabels: constLabels,
		}, m.labels))
		if err != nil {
			return nil, err
		}
		v, ok := c.(*prometheus.CounterVec)
		if !ok {
			return nil, conflict(d)
		}
		m.counterVec = v
	case observe.KindGauge:
		c, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: d.Name, Help: d.Help, ConstLabels: constLabels,
		}, m.labels))
		if err != nil {
			return nil, err
		}
		v, ok := c.(*prometheus.GaugeVec)
		if !ok {
			return nil, conflict(d)
		}
		m.gaugeVec = v
	case observe.KindHistogram:
		c, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: d.Name, Help: d.Help, ConstLabels: constLabels, Buckets: d.Buckets,
		}, m.labels))
		if err != nil {
			return nil, err
		}
		v, ok := c.(*prometheus.HistogramVec)
		if !ok {
			return nil, conflict(d)
		}
		m.histogramVec = v
	default:
		return nil, fmt.Errorf("taskbridge: prom.New: metric %q has unknown kind %d", d.Name, d.Kind)
	}
	empty := map[string]*child{}
	m.cache.Store(&empty)
	if len(m.labels) == 0 {
		ch, err := m.newChild(nil)
		if err != nil {
			return nil, fmt.Errorf("taskbridge: prom.New: metric %q: %w", d.Name, err)
		}
		m.unlabelled = ch
	}
	return m, nil
}

func conflict(d observe.MetricDesc) error {
	return fmt.Errorf("taskbridge: prom.New: metric %q is already registered as another type", d.Name)
}

// register registers c on reg, or returns the equal collector already there.
func register(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return are.ExistingCollector, nil
	}
	return nil, fmt.Errorf("taskbridge: prom.New: %w", err)
}

func (m *metric) newChild(values []string) (*child, error) {
	switch m.kind {
	case observe.KindCounter:
		c, err := m.counterVec.GetMetricWithLabelValues(values...)
		return &child{counter: c}, err
	case observe.KindGauge:
		g, err := m.gaugeVec.GetMetricWithLabelValues(values...)
		return &child{gauge: g}, err
	default:
		o, err := m.histogramVec.GetMetricWithLabelValues(values...)
		return &child{observer: o}, err
	}
}

// maxInlineKey is the key length built on the stack; longer keys allocate.
const maxInlineKey = 128

// series returns the child for tags, creating it on first use, or nil after
// counting a drop.
func (s *Sink) series(m *metric, tags []observe.Tag) *child {
	if m.unlabelled != nil {
		return m.unlabelled
	}
	var buf [maxInlineKey]byte
	key := appendKey(buf[:0], m.labels, tags)
	if ch := (*m.cache.Load())[string(key)]; ch != nil {
		return ch
	}
	return s.grow(m, string(key), tags)
}

// appendKey encodes the value of each label (from tags, "" when absent) as a
// length-prefixed string, so distinct label sets never share a key.
func appendKey(dst []byte, labels []string, tags []observe.Tag) []byte {
	for _, l := range labels {
		v := tagValue(tags, l)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

func tagValue(tags []observe.Tag, key string) string {
	for i := range tags {
		if tags[i].Key == key {
			return tags[i].Value
		}
	}
	return ""
}

// grow adds the child for tags to m's cache (slow path, first use of a label
// set). key is copied before it is kept.
func (s *Sink) grow(m *metric, key string, tags []observe.Tag) *child {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.cache.Load()
	if ch := old[key]; ch != nil {
		return ch
	}
	if len(old) >= s.maxSeries {
		s.drops[dropLimit].Inc()
		return nil
	}
	values := make([]string, len(m.labels))
	for i, l := range m.labels {
		values[i] = strings.Clone(tagValue(tags, l))
	}
	ch, err := m.newChild(values)
	if err != nil {
		s.drops[dropInvalid].Inc()
		return nil
	}
	next := make(map[string]*child, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[strings.Clone(key)] = ch
	m.cache.Store(&next)
	return ch
}
