package control

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchwire"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSchedule(t *testing.T) {
	s := Schedule{Tasks: 4, PerTask: 3, Rate: 2}
	assert.Equal(t, 12, s.Total())
	// 4 tasks x 2/s = 8 events per second overall, 125 ms apart.
	assert.Equal(t, time.Duration(0), s.Due(0))
	assert.Equal(t, 125*time.Millisecond, s.Due(1))
	assert.Equal(t, time.Second, s.Due(8))
	counts := make([]int, s.Tasks)
	for k := 0; k < s.Total(); k++ {
		counts[s.Task(k)]++
		if k > 0 {
			assert.GreaterOrEqual(t, s.Due(k), s.Due(k-1), "due times never go back")
		}
	}
	assert.Equal(t, []int{3, 3, 3, 3}, counts, "every task gets PerTask events")

	assert.Equal(t, time.Duration(0), Schedule{Tasks: 2, PerTask: 5}.Due(7), "rate 0: all due at once")
}

// memBackend is an in-memory Backend that keeps appended drafts per task.
type memBackend struct {
	mu      sync.Mutex
	n       int
	events  map[string][]contracts.EventDraft
	failFor string
}

func (b *memBackend) CreateTasks(_ context.Context, n int) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, n)
	for i := range ids {
		b.n++
		ids[i] = fmt.Sprintf("task-%d", b.n)
	}
	return ids, nil
}

func (b *memBackend) Append(_ context.Context, taskID string, d contracts.EventDraft) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if taskID == b.failFor {
		return errors.New("boom")
	}
	b.events[taskID] = append(b.events[taskID], d)
	return nil
}

func (b *memBackend) ExtraStats() map[string]float64 { return map[string]float64{"answer": 42} }

func seqsOf(t *testing.T, drafts []contracts.EventDraft) []uint64 {
	t.Helper()
	var out []uint64
	for _, d := range drafts {
		ev := contracts.TaskEvent{Type: d.Type(), TaskID: "x", EventID: contracts.EventID{Ms: 1}, CreatedAt: time.Now(), Payload: d.Payload()}
		seq, _, ok := benchwire.ParseMark(ev.AppendJSON(nil))
		require.True(t, ok)
		out = append(out, seq)
	}
	return out
}

func TestServerEndToEnd(t *testing.T) {
	backend := &memBackend{events: map[string][]contracts.EventDraft{}}
	srv := httptest.NewServer(NewServer(backend))
	defer srv.Close()
	c := NewClient(strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	ctx := context.Background()

	require.NoError(t, c.WaitReady(ctx))
	st, err := c.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), st.PID)
	assert.Positive(t, st.RSS)
	assert.Positive(t, st.Goroutines)
	assert.Equal(t, 42.0, st.Extra["answer"])

	ids, err := c.CreateTasks(ctx, 3)
	require.NoError(t, err)
	require.Len(t, ids, 3)

	res, err := c.Emit(ctx, EmitRequest{TaskIDs: ids, EventsPerTask: 2, RatePerTask: 0})
	require.NoError(t, err)
	assert.Equal(t, 6, res.Appended)
	assert.Zero(t, res.Errors)
	assert.Equal(t, map[string]uint64{ids[0]: 2, ids[1]: 2, ids[2]: 2}, res.LastSeq)

	// A second emission continues each task's numbering, at a real rate.
	res, err = c.Emit(ctx, EmitRequest{TaskIDs: ids[:1], EventsPerTask: 3, RatePerTask: 200})
	require.NoError(t, err)
	assert.Equal(t, 3, res.Appended)
	assert.Equal(t, uint64(5), res.LastSeq[ids[0]])
	assert.GreaterOrEqual(t, res.Elapsed, 10*time.Millisecond, "3 events at 200/s span two intervals")
	assert.Equal(t, []uint64{1, 2, 3, 4, 5}, seqsOf(t, backend.events[ids[0]]))
	assert.Equal(t, []uint64{1, 2}, seqsOf(t, backend.events[ids[2]]))

	// Failed appends are counted and do not consume sequence numbers.
	backend.failFor = ids[1]
	res, err = c.Emit(ctx, EmitRequest{TaskIDs: ids[1:], EventsPerTask: 2})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Appended)
	assert.Equal(t, 2, res.Errors)
	assert.Equal(t, "boom", res.FirstError)
	assert.Equal(t, uint64(2), res.LastSeq[ids[1]])
	assert.Equal(t, uint64(4), res.LastSeq[ids[2]])

	require.NoError(t, c.GC(ctx))

	_, err = c.CreateTasks(ctx, 0)
	assert.ErrorContains(t, err, "400")
	_, err = c.Emit(ctx, EmitRequest{})
	assert.ErrorContains(t, err, "400")
}

func TestEmitStopsWithContext(t *testing.T) {
	backend := &memBackend{events: map[string][]contracts.EventDraft{}}
	s := NewServer(backend)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := s.Emit(ctx, EmitRequest{TaskIDs: []string{"a"}, EventsPerTask: 1000, RatePerTask: 1})
	assert.Zero(t, res.Appended)
	assert.Equal(t, context.Canceled.Error(), res.FirstError)
}

func TestEmitWorkersKeepTaskOrder(t *testing.T) {
	backend := &memBackend{events: map[string][]contracts.EventDraft{}}
	s := NewServer(backend)
	ids, err := backend.CreateTasks(context.Background(), 20)
	require.NoError(t, err)
	res := s.Emit(context.Background(), EmitRequest{TaskIDs: ids, EventsPerTask: 25, Workers: 4})
	require.Zero(t, res.Errors)
	assert.Equal(t, 500, res.Appended)
	want := make([]uint64, 25)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	for _, id := range ids {
		assert.Equal(t, want, seqsOf(t, backend.events[id]), "task %s in order", id)
		assert.Equal(t, uint64(25), res.LastSeq[id])
	}
}
