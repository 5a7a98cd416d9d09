package orchestration

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func queuedRun(owner, id string) *run {
	return &run{task: contracts.TaskRecord{TaskID: id, OwnerID: owner}}
}

// popAll pops until the queue is empty and returns the task ids in order.
func popAll(q *fairQueue) []string {
	var ids []string
	for r := q.pop(); r != nil; r = q.pop() {
		ids = append(ids, r.task.TaskID)
	}
	return ids
}

// TestFairQueueOrder: round-robin over the subjects in the order they
// started waiting, FIFO within a subject, a subject that empties and comes
// back waits behind the others, the size bounds all subjects together,
// and every push leaves one token for a worker.
func TestFairQueueOrder(t *testing.T) {
	q := newFairQueue(8)
	for _, r := range []*run{
		queuedRun("a", "a1"), queuedRun("a", "a2"), queuedRun("a", "a3"),
		queuedRun("b", "b1"), queuedRun("c", "c1"), queuedRun("c", "c2"),
	} {
		require.True(t, q.push(r))
	}
	assert.Equal(t, 6, q.len())
	assert.Len(t, q.ready, 6, "one token per queued run")
	assert.Equal(t, "a1", q.pop().task.TaskID)
	assert.Equal(t, "b1", q.pop().task.TaskID)
	// b is empty now; its next task waits behind c and a.
	require.True(t, q.push(queuedRun("b", "b2")))
	require.True(t, q.push(queuedRun("d", "d1")))
	require.True(t, q.push(queuedRun("d", "d2")))
	require.True(t, q.push(queuedRun("d", "d3")))
	assert.False(t, q.push(queuedRun("e", "e1")), "8 waiting: full for every subject")
	assert.Equal(t, []string{"c1", "a2", "b2", "d1", "c2", "a3", "d2", "d3"}, popAll(q))
	assert.Equal(t, 0, q.len())
	assert.Nil(t, q.pop())
	assert.Empty(t, q.subjects, "emptied subjects are forgotten")
	require.True(t, q.push(queuedRun("e", "e1")), "room again")
	assert.Equal(t, []string{"e1"}, popAll(q))
}

// BenchmarkFairQueue pops a run and pushes it back on a queue kept at
// 1,024 runs of 1, 100 or 1,000 subjects: the cost per run stays flat as
// the subjects grow.
func BenchmarkFairQueue(b *testing.B) {
	for _, subjects := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subjects=%d", subjects), func(b *testing.B) {
			q := newFairQueue(1024)
			for i := range 1024 {
				q.push(queuedRun(fmt.Sprintf("s%d", i%subjects), fmt.Sprintf("t%d", i)))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				<-q.ready
				q.push(q.pop())
			}
		})
	}
}
