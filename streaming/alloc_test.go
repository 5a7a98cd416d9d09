//go:build !race

package streaming

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// TestFanoutAllocatesNothingPerSubscriber locks in the hub's hot path: a
// batch costs a few allocations (its frames, once per wire format), and
// handing it to 1,000 subscribers and writing it through their writers
// costs none per subscriber.
func TestFanoutAllocatesNothingPerSubscriber(t *testing.T) {
	const n = 1000
	for _, tr := range []observe.Transport{observe.TransportSSE, observe.TransportWS} {
		t.Run(string(tr), func(t *testing.T) {
			r := newFanoutRig(t, n, tr)
			starts := make([]*conn, 0, n)
			for range 5 {
				starts = r.deliver(t, r.batch(), starts)
			}
			perBatch := testing.AllocsPerRun(50, func() { r.batch().encode(&allFormats, bothFormats) })
			fanout := testing.AllocsPerRun(50, func() { starts = r.deliver(t, r.batch(), starts) })
			t.Logf("%s: %.1f allocs per batch to %d subscribers (%.1f to build the batch)", tr, fanout, n, perBatch)
			assert.LessOrEqual(t, fanout-perBatch, float64(n)/100, "allocations per subscriber per event must be 0")
		})
	}
}
