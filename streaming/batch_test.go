package streaming_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// ReadBatch makes countingStore a contracts.BatchReader (the memstore it
// wraps is one), so the hub of a plain env takes the batched fan-out path;
// each request counts as a read and failRead fails every request. Wrappers
// that embed contracts.EventStore (flakyStore, gatedStore, ...) hide the
// method: tests through them keep the one-Read-per-task path.
func (s *countingStore) ReadBatch(ctx context.Context, reqs []contracts.ReadRequest, pages []contracts.EventPage, errs []error) {
	s.reads.Add(int64(len(reqs)))
	if s.failRead.Load() {
		for i := range reqs {
			pages[i], errs[i] = contracts.EventPage{}, errInjected
		}
		return
	}
	readBatch(ctx, s.EventStore, reqs, pages, errs)
}

// readBatch reads reqs through store's ReadBatch, or one Read each.
func readBatch(ctx context.Context, store contracts.EventStore, reqs []contracts.ReadRequest, pages []contracts.EventPage, errs []error) {
	if br, ok := store.(contracts.BatchReader); ok {
		br.ReadBatch(ctx, reqs, pages, errs)
		return
	}
	for i, r := range reqs {
		pages[i], errs[i] = store.Read(ctx, r.TaskID, r.After, r.Limit)
	}
}

// batchStore records the hub's reads: the task ids of each ReadBatch call
// and the number of Read calls. It fails a task's requests while failures
// for it are left, and can hold the read of one (task, cursor) after it
// has read the store, until released, keeping the fan-out worker busy.
type batchStore struct {
	contracts.EventStore
	mu       sync.Mutex
	batches  [][]string
	reads    int
	failures map[string]int
	failed   map[string]int
	hold     *contracts.ReadRequest
	held     chan struct{}
	release  chan struct{}
}

func newBatchStore() *batchStore {
	return &batchStore{failures: map[string]int{}, failed: map[string]int{}}
}

// wrap is the env option's store wrapper.
func (s *batchStore) wrap(inner contracts.EventStore) contracts.EventStore {
	s.EventStore = inner
	return s
}

// arm holds the next read of taskID after after (by Read or in a batch);
// held is closed once it has read the store, release lets it return (also
// at the end of the test).
func (s *batchStore) arm(t testing.TB, taskID string, after contracts.EventID) (held <-chan struct{}, release func()) {
	t.Helper()
	s.mu.Lock()
	s.hold = &contracts.ReadRequest{TaskID: taskID, After: after}
	s.held, s.release = make(chan struct{}), make(chan struct{})
	h, r := s.held, s.release
	s.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(r) }) }
	t.Cleanup(release)
	return h, release
}

// take reports whether the read of (taskID, after) is the armed one, and
// disarms it.
func (s *batchStore) takeLocked(taskID string, after contracts.EventID) (held, release chan struct{}, ok bool) {
	if s.hold == nil || s.hold.TaskID != taskID || s.hold.After != after {
		return nil, nil, false
	}
	s.hold = nil
	return s.held, s.release, true
}

func (s *batchStore) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	s.mu.Lock()
	s.reads++
	held, release, hold := s.takeLocked(taskID, after)
	s.mu.Unlock()
	page, err := s.EventStore.Read(ctx, taskID, after, limit)
	if hold {
		close(held)
		<-release
	}
	return page, err
}

func (s *batchStore) ReadBatch(ctx context.Context, reqs []contracts.ReadRequest, pages []contracts.EventPage, errs []error) {
	readBatch(ctx, s.EventStore, reqs, pages, errs)
	s.mu.Lock()
	var held, release chan struct{}
	hold := false
	tasks := make([]string, len(reqs))
	for i, r := range reqs {
		tasks[i] = r.TaskID
		if n := s.failures[r.TaskID]; n > 0 {
			s.failures[r.TaskID] = n - 1
			s.failed[r.TaskID]++
			pages[i], errs[i] = contracts.EventPage{}, errInjected
		}
		if h, rel, ok := s.takeLocked(r.TaskID, r.After); ok {
			held, release, hold = h, rel, true
		}
	}
	s.batches = append(s.batches, tasks)
	s.mu.Unlock()
	if hold {
		close(held)
		<-release
	}
}

// snapshot returns the batches recorded so far and the Read count.
func (s *batchStore) snapshot() ([][]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches), s.reads
}

// requests counts the requests for taskID in batches.
func requests(batches [][]string, taskID string) int {
	n := 0
	for _, b := range batches {
		for _, id := range b {
			if id == taskID {
				n++
			}
		}
	}
	return n
}

// openLive opens an SSE stream per task (each task gets a first event),
// reads that event and waits until every stream receives live batches.
func openLive(t testing.TB, e *env, tasks []string) ([]*sseStream, []contracts.EventID) {
	t.Helper()
	streams := make([]*sseStream, len(tasks))
	first := make([]contracts.EventID, len(tasks))
	for i, task := range tasks {
		first[i] = e.append(task, contracts.Started(""))[0].EventID
		streams[i] = dialSSE(t, e.addr, "/sse/"+task, nil)
		ev, err := streams[i].nextEvent(wait)
		require.NoError(t, err)
		require.Equal(t, first[i], ev.EventID)
	}
	require.Eventually(t, func() bool {
		for _, task := range tasks {
			if e.hub.LiveSubscribers(task) != 1 {
				return false
			}
		}
		return true
	}, wait, time.Millisecond)
	return streams, first
}

// occupy holds the fan-out worker inside a read of tasks[0] (its first
// read after first: the hub's read of the event occupy appends, or the
// read a new stream makes the hub do once) and returns the release.
func occupy(t testing.TB, e *env, bs *batchStore, task string, first contracts.EventID) (release func()) {
	t.Helper()
	held, release := bs.arm(t, task, first)
	e.append(task, progress(t, 1))
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatal("the fan-out worker did not read " + task)
	}
	return release
}

func taskNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// TestBatchReadServesTasksNoticedTogether: tasks whose notices queue up
// while the fan-out worker is busy are read with one ReadBatch call, and
// each stream receives its event; the hub makes no single Read for them.
func TestBatchReadServesTasksNoticedTogether(t *testing.T) {
	t.Parallel()
	const n = 50
	bs := newBatchStore()
	e := newEnv(t, streaming.Options{FanoutWorkers: 1}, withStore(bs.wrap))
	tasks := taskNames("together", n+1)
	streams, first := openLive(t, e, tasks)

	release := occupy(t, e, bs, tasks[0], first[0])
	before, readsBefore := bs.snapshot()
	want := make([]contracts.EventID, n+1)
	for i := 1; i <= n; i++ {
		want[i] = e.append(tasks[i], progress(t, 50))[0].EventID
	}
	release()
	for i := 1; i <= n; i++ {
		ev, err := streams[i].nextEvent(wait)
		require.NoError(t, err, tasks[i])
		assert.Equal(t, want[i], ev.EventID, tasks[i])
	}
	_, err := streams[0].nextEvent(wait)
	require.NoError(t, err)

	after, readsAfter := bs.snapshot()
	after = after[len(before):]
	require.Len(t, after, 1, "one batch serves the %d tasks noticed together: %v", n, after)
	for _, task := range tasks[1:] {
		assert.Equal(t, 1, requests(after, task), "%s is read once", task)
	}
	assert.Equal(t, readsBefore, readsAfter, "the hub makes no single Read when the store reads batches")
}

// TestBatchReadFailureRetriesOnlyThatTask: a request that fails in a batch
// is retried for its task alone, after the backoff; the other tasks of the
// batch are served at once and read no more, and every stream stays open
// and receives its event.
func TestBatchReadFailureRetriesOnlyThatTask(t *testing.T) {
	t.Parallel()
	bs := newBatchStore()
	e := newEnv(t, streaming.Options{FanoutWorkers: 1}, withStore(bs.wrap))
	tasks := []string{"busy", "good", "bad"}
	streams, first := openLive(t, e, tasks)

	release := occupy(t, e, bs, tasks[0], first[0])
	before, _ := bs.snapshot()
	bs.mu.Lock()
	bs.failures["bad"] = 2
	bs.mu.Unlock()
	good := e.append("good", progress(t, 10))[0]
	bad := e.append("bad", progress(t, 20))[0]
	release()

	ev, err := streams[1].nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, good.EventID, ev.EventID)
	ev, err = streams[2].nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, bad.EventID, ev.EventID, "the failed task's event arrives after its retries")

	after, _ := bs.snapshot()
	after = after[len(before):]
	require.NotEmpty(t, after)
	assert.Subset(t, after[0], []string{"good", "bad"}, "both tasks were read in one batch")
	assert.Equal(t, 1, requests(after, "good"), "a failure of another task costs good no read: %v", after)
	assert.Equal(t, 3, requests(after, "bad"), "two failed reads, then the one that succeeds: %v", after)
	bs.mu.Lock()
	assert.Equal(t, 2, bs.failed["bad"])
	bs.mu.Unlock()

	// Nothing ended: the streams carry on.
	more := e.append("bad", progress(t, 30))[0]
	ev, err = streams[2].nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, more.EventID, ev.EventID)
}

// readOnly hides an EventStore's ReadBatch: the hub reads one task at a
// time.
type readOnly struct{ contracts.EventStore }

// fanoutPaths runs a test body with a hub that reads batches and with one
// that reads one task at a time (FanoutReadBatch: -1).
var fanoutPaths = []struct {
	name    string
	opts    streaming.Options
	batched bool
}{
	{name: "batched", batched: true},
	{name: "single", opts: streaming.Options{FanoutReadBatch: -1}},
}

// TestNoticeDuringEmptyFanoutRead: a change notice that comes in while a
// fan-out read is on its way is not forgotten when that read finds
// nothing (it was made before the append). Regression: an empty read made
// the hub forget every notice up to then, so the event waited for the
// task's next append. Here the empty read is the one a new SSE stream
// makes the hub do from its cursor.
func TestNoticeDuringEmptyFanoutRead(t *testing.T) {
	t.Parallel()
	for _, p := range fanoutPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			bs := newBatchStore()
			wrap := bs.wrap
			if !p.batched {
				wrap = func(s contracts.EventStore) contracts.EventStore { return readOnly{bs.wrap(s)} }
			}
			e := newEnv(t, p.opts, withStore(wrap))
			first := e.append("quiet", contracts.Started(""))[0]
			held, release := bs.arm(t, "quiet", first.EventID)
			s := dialSSE(t, e.addr, "/sse/quiet", nil)
			ev, err := s.nextEvent(wait)
			require.NoError(t, err)
			require.Equal(t, first.EventID, ev.EventID)
			select {
			case <-held:
			case <-time.After(wait):
				t.Fatal("the hub did not read from the new stream's cursor")
			}
			next := e.append("quiet", completed(t))[0]
			release()
			ev, err = s.nextEvent(wait)
			require.NoError(t, err, "the event announced during the empty read must arrive")
			assert.Equal(t, next.EventID, ev.EventID)
			s.expectEnd(wait)
			batches, _ := bs.snapshot()
			assert.Equal(t, p.batched, len(batches) > 0, "batches: %v", batches)
		})
	}
}

// TestBatchedAndSingleDeliverTheSame: many tasks appended to concurrently,
// in pages smaller than the backlog (so passes take several reads), with
// SSE and WebSocket subscribers: both fan-out paths deliver every event
// once, in order, and end every stream; store reads are counted per
// request either way.
func TestBatchedAndSingleDeliverTheSame(t *testing.T) {
	t.Parallel()
	const tasks, events = 12, 15
	for _, p := range fanoutPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			bs := newBatchStore()
			wrap := bs.wrap
			if !p.batched {
				wrap = func(s contracts.EventStore) contracts.EventStore { return readOnly{bs.wrap(s)} }
			}
			metrics := newCounterSink()
			opts := p.opts
			opts.LiveBatchSize = 4
			opts.Metrics = metrics
			e := newEnv(t, opts, withStore(wrap))
			names := taskNames("same", tasks)
			sse := make([]*sseStream, tasks)
			ws := make([]*wsClient, tasks)
			for i, task := range names {
				e.append(task, contracts.Started(""))
				sse[i] = dialSSE(t, e.addr, "/sse/"+task, nil)
				ws[i] = dialWS(t, e.addr)
				ws[i].subscribe(task, nil)
				ws[i].confirmation(wait)
			}
			require.Eventually(t, func() bool {
				for _, task := range names {
					if e.hub.LiveSubscribers(task) != 2 {
						return false
					}
				}
				return true
			}, wait, time.Millisecond)

			var wg sync.WaitGroup
			appended := make([][]contracts.EventID, tasks)
			for w := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < tasks; i += 3 {
						for j := range events {
							d, _ := contracts.Progress(float64(j), "", "")
							ev, err := e.mem.Append(context.Background(), names[i], d)
							if err != nil {
								t.Error(err)
								return
							}
							appended[i] = append(appended[i], ev.EventID)
						}
					}
				}()
			}
			wg.Wait()
			for i, task := range names {
				appended[i] = append(appended[i], e.append(task, completed(t))[0].EventID)
			}
			for i, task := range names {
				gotSSE := readRestSSE(t, sse[i])
				gotWS := readRestWS(t, ws[i], streaming.CloseNormal)
				for _, got := range [][]contracts.TaskEvent{gotSSE, gotWS} {
					require.NotEmpty(t, got, task)
					require.Equal(t, appended[i], eventIDs(got[1:]), "%s: every event once, in order", task)
				}
			}
			batches, reads := bs.snapshot()
			fanout := metrics.get(observe.MetricStoreReads, "fanout")
			if p.batched {
				assert.NotEmpty(t, batches)
				total := 0
				for _, b := range batches {
					total += len(b)
				}
				assert.Equal(t, float64(total), fanout, "one store read counted per request")
				assert.Less(t, len(batches), total, "batches held several tasks")
			} else {
				assert.Empty(t, batches)
				assert.Positive(t, reads)
			}
			assert.GreaterOrEqual(t, fanout, float64(tasks*(events+1)/4), "fan-out reads are counted")
		})
	}
}

func eventIDs(evs []contracts.TaskEvent) []contracts.EventID {
	out := make([]contracts.EventID, len(evs))
	for i := range evs {
		out[i] = evs[i].EventID
	}
	return out
}
