//go:build !race

package orchestration

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestFairQueueNoAllocations: once the queue has held as many subjects at
// once as it ever will, push and pop allocate nothing.
func TestFairQueueNoAllocations(t *testing.T) {
	q := newFairQueue(64)
	runs := make([]*run, 64)
	for i := range runs {
		runs[i] = queuedRun(fmt.Sprintf("s%d", i%8), fmt.Sprintf("t%d", i))
	}
	cycle := func() {
		for _, r := range runs {
			q.push(r)
		}
		for q.pop() != nil {
			<-q.ready
		}
	}
	cycle()
	assert.Zero(t, testing.AllocsPerRun(10, cycle))
}
