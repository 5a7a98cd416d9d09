package loadclient

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

// maxErrorSamples bounds Result.ErrorSamples.
const maxErrorSamples = 8

// Result is what one child (or, merged, the whole run) measured. Counts are
// totals over every subscriber.
type Result struct {
	Subscribers     int    `json:"subscribers"`
	Connected       int    `json:"connected"`
	ConnectFailures int    `json:"connectFailures"`
	Events          uint64 `json:"events"`
	Heartbeats      uint64 `json:"heartbeats"`
	Comments        uint64 `json:"comments"`
	Confirmations   uint64 `json:"confirmations"`
	Gaps            uint64 `json:"gaps"`
	Dups            uint64 `json:"dups"`
	Missing         uint64 `json:"missing"`
	Reconnects      uint64 `json:"reconnects"`
	Errors          uint64 `json:"errors"`
	ProtocolErrors  uint64 `json:"protocolErrors"`
	// ClientCPU is the CPU time the client processes used in total.
	ClientCPU    time.Duration      `json:"clientCpuNs"`
	ErrorSamples []string           `json:"errorSamples,omitempty"`
	Latency      *measure.Histogram `json:"latencyUs"`
	HTTP         *HTTPResult        `json:"http,omitempty"`
}

// Merge adds other into r.
func (r *Result) Merge(other *Result) {
	r.Subscribers += other.Subscribers
	r.Connected += other.Connected
	r.ConnectFailures += other.ConnectFailures
	r.Events += other.Events
	r.Heartbeats += other.Heartbeats
	r.Comments += other.Comments
	r.Confirmations += other.Confirmations
	r.Gaps += other.Gaps
	r.Dups += other.Dups
	r.Missing += other.Missing
	r.Reconnects += other.Reconnects
	r.Errors += other.Errors
	r.ProtocolErrors += other.ProtocolErrors
	r.ClientCPU += other.ClientCPU
	for _, s := range other.ErrorSamples {
		if len(r.ErrorSamples) < maxErrorSamples {
			r.ErrorSamples = append(r.ErrorSamples, s)
		}
	}
	if other.Latency != nil {
		if r.Latency == nil {
			r.Latency = &measure.Histogram{}
		}
		r.Latency.Merge(other.Latency)
	}
	if other.HTTP != nil {
		if r.HTTP == nil {
			r.HTTP = &HTTPResult{}
		}
		r.HTTP.Merge(other.HTTP)
	}
}

// latencyShards spreads latency recording over several histograms, so that
// the subscribers' goroutines on different cores rarely write the same
// cache lines.
const latencyShards = 16

// counters are the shared, concurrently updated tallies of one process.
// Per-event tallies (events delivered) live in the subscribers and are
// summed at the end.
type counters struct {
	heartbeats, comments, confirmations atomic.Uint64
	reconnects, errors, protocolErrors  atomic.Uint64

	mu        sync.Mutex
	samples   []string // the first maxErrorSamples error texts
	latencyUs [latencyShards]measure.Histogram
}

func newCounters() *counters { return &counters{} }

// sample keeps the first few error texts.
func (c *counters) sample(msg string) {
	c.mu.Lock()
	if len(c.samples) < maxErrorSamples {
		c.samples = append(c.samples, msg)
	}
	c.mu.Unlock()
}

// errorSamples returns a copy of the error texts kept so far.
func (c *counters) errorSamples() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.samples)
}

func (c *counters) fill(r *Result) {
	r.Heartbeats = c.heartbeats.Load()
	r.Comments = c.comments.Load()
	r.Confirmations = c.confirmations.Load()
	r.Reconnects = c.reconnects.Load()
	r.Errors = c.errors.Load()
	r.ProtocolErrors = c.protocolErrors.Load()
	r.ErrorSamples = append(r.ErrorSamples, c.errorSamples()...)
	r.Latency = &measure.Histogram{}
	for i := range c.latencyUs {
		r.Latency.Merge(&c.latencyUs[i])
	}
}
