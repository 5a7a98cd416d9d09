package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// readMetrics counts the bridge's store reads by reason (fanout, catchup,
// replay, poll).
type readMetrics struct {
	observe.NopMetrics
	mu    sync.Mutex
	reads map[string]int
}

func newReadMetrics() *readMetrics { return &readMetrics{reads: make(map[string]int)} }

func (m *readMetrics) IncCounter(name string, delta float64, tags ...observe.Tag) {
	if name != observe.MetricStoreReads {
		return
	}
	reason := ""
	for _, t := range tags {
		if t.Key == observe.TagReason {
			reason = t.Value
		}
	}
	m.mu.Lock()
	m.reads[reason] += int(delta)
	m.mu.Unlock()
}

func (m *readMetrics) snapshot() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.reads))
	for k, v := range m.reads {
		out[k] = v
	}
	return out
}

// commandCalls returns the server's call counts per command since the
// last CONFIG RESETSTAT (INFO commandstats; commands run by scripts
// count too).
func commandCalls(tb testing.TB, c redis.UniversalClient) map[string]int {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(tb, err)
	out := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.Atoi(calls)
		require.NoError(tb, err, line)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// seedTask creates a task owned by owner with TASK_STARTED, as a worker
// elsewhere would, without an executor run.
func seedTask(tb testing.TB, ctx context.Context, s contracts.Stores) string {
	tb.Helper()
	id := contracts.NewID()
	_, _, err := s.Tasks.Create(ctx, contracts.TaskRecord{TaskID: id, OwnerID: owner, ClientRequestID: id,
		TaskType: "seeded", Status: contracts.StatusAccepted})
	require.NoError(tb, err)
	_, err = s.Events.Append(ctx, id, contracts.Started(""))
	require.NoError(tb, err)
	return id
}

// TestFanoutReadsGrowWithTasksNotSubscribers counts the reads of the
// events that Redis serves (XRANGE calls, from INFO commandstats of a
// private server) while subscribers watch tasks live through one bridge:
// one read per task per batch, whatever the number of subscribers. Each
// event is appended once every subscriber has the previous one, so each
// is a batch of its own and the count is exact; a burst appended at once
// is read in at most as many batches as it has events.
func TestFanoutReadsGrowWithTasksNotSubscribers(t *testing.T) {
	t.Parallel()
	ctx := faultContext(t)
	srv := startServer(t)
	admin := outageClient(t, srv.Addr())
	metrics := newReadMetrics()
	n := startNode(t, "A", nodeConfig{client: outageClient(t, srv.Addr()), prefix: "fan:", metrics: metrics})

	const events, burst = 5, 20
	for _, tc := range []struct{ tasks, subsPerTask int }{
		{1, 1}, {1, 100}, {4, 1}, {4, 25},
	} {
		name := fmt.Sprintf("tasks=%d/subs=%d", tc.tasks, tc.subsPerTask)
		t.Run(name, func(t *testing.T) {
			ids := make([]string, tc.tasks)
			var subs []*subscriber
			for i := range ids {
				ids[i] = seedTask(t, ctx, n.stores)
				for j := range tc.subsPerTask {
					transport := overSSE
					if j%2 == 1 {
						transport = overWS
					}
					subs = append(subs, subscribe(t, fmt.Sprintf("%s/%d", transport, j), transport, ids[i], n.addr, false))
				}
			}
			appendAll := func() {
				for _, id := range ids {
					_, err := n.stores.Events.Append(ctx, id, must(t)(contracts.Progress(50, "", "")))
					require.NoError(t, err)
				}
			}
			received := 1
			waitAll := func() {
				for _, s := range subs {
					s.waitEvents(ctx, received)
				}
			}
			waitAll() // TASK_STARTED, replayed; every stream is registered
			// One event everyone receives live: every stream has joined.
			appendAll()
			received++
			waitAll()

			require.NoError(t, admin.ConfigResetStat(ctx).Err())
			before := metrics.snapshot()
			for range events {
				appendAll()
				received++
				waitAll()
			}
			paced := commandCalls(t, admin)
			after := metrics.snapshot()

			require.NoError(t, admin.ConfigResetStat(ctx).Err())
			for range burst {
				appendAll()
			}
			received += burst
			waitAll()
			bursty := commandCalls(t, admin)

			t.Logf("%d tasks x %d subscribers: %d paced events per task -> %d XRANGE (hub fan-out reads %d, catch-up %d); "+
				"a burst of %d per task -> %d XRANGE",
				tc.tasks, tc.subsPerTask, events, paced["xrange"], after["fanout"]-before["fanout"],
				after["catchup"]-before["catchup"], burst, bursty["xrange"])
			assert.Equal(t, tc.tasks*events, paced["xrange"], "one read per task per event")
			assert.Equal(t, tc.tasks*events, after["fanout"]-before["fanout"], "the hub's own count agrees")
			assert.Zero(t, after["catchup"]-before["catchup"]+after["replay"]-before["replay"], "no subscriber fell back to its own reads")
			assert.Equal(t, 2*tc.tasks*events, paced["evalsha"], "scripts: one append and one read per task per event")
			assert.GreaterOrEqual(t, bursty["xrange"], tc.tasks, "at least one read per task")
			assert.LessOrEqual(t, bursty["xrange"], tc.tasks*burst, "at most one read per event, never per subscriber")
			for _, s := range subs {
				stored := storedIDs(t, ctx, n.stores.Events, s.taskID)
				s.assertExactly(t, stored)
			}
		})
	}
}

// BenchmarkFanoutThroughRedis appends one event per operation to a task
// that N subscribers (half SSE, half WebSocket) follow live through one
// bridge on the Redis stores, and waits until every subscriber has it:
// append, change notice, one read, encoding and N writes. It runs on the
// shared test server (make bench). Reported besides time and allocations
// per operation (which include the test's own clients): deliveries/s and
// the hub's fan-out reads per operation (one, whatever N).
func BenchmarkFanoutThroughRedis(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) { benchFanout(b, subs) })
	}
}

func benchFanout(b *testing.B, subs int) {
	ctx := context.Background()
	c := newClient(b)
	metrics := newReadMetrics()
	n := startNode(b, "bench", nodeConfig{client: c, prefix: uniquePrefix(b, c), metrics: metrics})
	taskID := seedTask(b, ctx, n.stores)

	var pending atomic.Int64
	delivered := make(chan struct{}, 1)
	clients := make([]*benchClient, subs)
	for i := range clients {
		transport := overSSE
		if i%2 == 1 {
			transport = overWS
		}
		clients[i] = dialBenchClient(b, n.addr, transport, taskID, func() {
			if pending.Add(-1) == 0 {
				delivered <- struct{}{}
			}
		})
	}
	draft := must(b)(contracts.Progress(50, "stage", "halfway there"))
	emit := func() {
		pending.Store(int64(subs))
		if _, err := n.stores.Events.Append(ctx, taskID, draft); err != nil {
			b.Fatal(err)
		}
		<-delivered
	}
	emit() // every client is live

	readsBefore := metrics.snapshot()["fanout"]
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		emit()
	}
	b.StopTimer()
	ops := float64(b.N)
	b.ReportMetric(ops*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(metrics.snapshot()["fanout"]-readsBefore)/ops, "reads/op")
	for _, cl := range clients {
		cl.close()
	}
}
