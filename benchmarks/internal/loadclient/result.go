package loadclient

import (
	"sync/atomic"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

// maxErrorSamples bounds Result.ErrorSamples.
const maxErrorSamples = 8

// Result is what one child (or, merged, the whole run) measured. Counts are
// totals over every subscriber.
type Result struct {
	Subscribers     int                `json:"subscribers"`
	Connected       int                `json:"connected"`
	ConnectFailures int                `json:"connectFailures"`
	Events          uint64             `json:"events"`
	Heartbeats      uint64             `json:"heartbeats"`
	Comments        uint64             `json:"comments"`
	Confirmations   uint64             `json:"confirmations"`
	Gaps            uint64             `json:"gaps"`
	Dups            uint64             `json:"dups"`
	Missing         uint64             `json:"missing"`
	Reconnects      uint64             `json:"reconnects"`
	Errors          uint64             `json:"errors"`
	ProtocolErrors  uint64             `json:"protocolErrors"`
	ErrorSamples    []string           `json:"errorSamples,omitempty"`
	Latency         *measure.Histogram `json:"latencyUs"`
	HTTP            *HTTPResult        `json:"http,omitempty"`
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

// counters are the shared, concurrently updated tallies of one process.
type counters struct {
	events, heartbeats, comments, confirmations atomic.Uint64
	reconnects, errors, protocolErrors          atomic.Uint64

	samples   chan string
	latencyUs measure.Histogram
}

func newCounters() *counters {
	return &counters{samples: make(chan string, maxErrorSamples)}
}

// sample keeps the first few error texts.
func (c *counters) sample(msg string) {
	select {
	case c.samples <- msg:
	default:
	}
}

func (c *counters) fill(r *Result) {
	r.Events = c.events.Load()
	r.Heartbeats = c.heartbeats.Load()
	r.Comments = c.comments.Load()
	r.Confirmations = c.confirmations.Load()
	r.Reconnects = c.reconnects.Load()
	r.Errors = c.errors.Load()
	r.ProtocolErrors = c.protocolErrors.Load()
	for {
		select {
		case s := <-c.samples:
			r.ErrorSamples = append(r.ErrorSamples, s)
			continue
		default:
		}
		break
	}
	r.Latency = &measure.Histogram{}
	r.Latency.Merge(&c.latencyUs)
}
