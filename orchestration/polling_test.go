package orchestration_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func TestPollPages(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	evs := appendN(t, h.store, task.TaskID, 5)
	tests := []struct {
		name     string
		after    contracts.EventID
		limit    int
		wantIDs  []contracts.EventID
		wantNext *contracts.EventID
		hasMore  bool
	}{
		{"from the start", contracts.EventID{}, 10, ids(evs), &evs[4].EventID, false},
		{"strictly after the cursor", evs[1].EventID, 10, ids(evs[2:]), &evs[4].EventID, false},
		{"limited page has more", contracts.EventID{}, 2, ids(evs[:2]), &evs[1].EventID, true},
		{"exact fit reports more (cannot know)", evs[2].EventID, 2, ids(evs[3:]), &evs[4].EventID, true},
		{"nothing after the last: cursor echoed", evs[4].EventID, 10, nil, &evs[4].EventID, false},
		{"zero limit uses the default", contracts.EventID{}, 0, ids(evs), &evs[4].EventID, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{
				Auth: auth("alice"), TaskID: task.TaskID, After: tt.after, Limit: tt.limit,
			})
			require.NoError(t, err)
			assert.Equal(t, task.TaskID, res.TaskID)
			assert.Equal(t, tt.wantIDs, nilIfEmpty(ids(res.Events)))
			assert.NotNil(t, res.Events, "events is [] on the wire, never null")
			assert.Equal(t, tt.wantNext, res.NextAfterEventID)
			assert.Equal(t, tt.hasMore, res.HasMore)
		})
	}
}

func TestPollEmptyZeroCursorHasNullNext(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusAccepted)
	res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID, Limit: 10})
	require.NoError(t, err)
	assert.Nil(t, res.NextAfterEventID)
	assert.Empty(t, res.Events)
	assert.False(t, res.HasMore)
}

func TestPollClampsLimit(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	appendN(t, h.store, task.TaskID, orchestration.MaxPageLimit+3)
	res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID, Limit: 10_000})
	require.NoError(t, err)
	assert.Len(t, res.Events, orchestration.MaxPageLimit)
	assert.True(t, res.HasMore)
	res, err = h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID, Limit: -1})
	require.NoError(t, err)
	assert.Len(t, res.Events, orchestration.DefaultPageLimit)
}

func TestPollEndedPageHasNoMore(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	appendN(t, h.store, task.TaskID, 1)
	done, err := contracts.Completed(map[string]int{"n": 1})
	require.NoError(t, err)
	_, err = h.store.Append(context.Background(), task.TaskID, done)
	require.NoError(t, err)
	res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID, Limit: 2})
	require.NoError(t, err)
	assert.Len(t, res.Events, 2)
	assert.False(t, res.HasMore, "a full page ending with the terminal event has no more")
}

func TestPollForeignAndMissingAreTheSame(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	_, foreign := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("mallory"), TaskID: task.TaskID})
	_, missing := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("mallory"), TaskID: "nope"})
	fe := requireCode(t, foreign, bridgeerr.CodeTaskNotFound)
	me := requireCode(t, missing, bridgeerr.CodeTaskNotFound)
	assert.Equal(t, me.Error(), fe.Error())
	now := time.Now()
	assert.Equal(t, me.Envelope(now), fe.Envelope(now))
	assert.Equal(t, 404, fe.HTTPStatus())
	_, anonymous := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{TaskID: task.TaskID})
	requireCode(t, anonymous, bridgeerr.CodeTaskNotFound)
	denied := h.logged("task.access.denied")
	require.NotEmpty(t, denied)
	assert.Equal(t, zapcore.WarnLevel, denied[0].Level)
}

// signalWaiter wraps a Waiter and reports each Watch call.
type signalWaiter struct {
	orchestration.Waiter
	watched chan string
}

func (w signalWaiter) Watch(taskID string) (<-chan struct{}, func()) {
	ch, release := w.Waiter.Watch(taskID)
	w.watched <- taskID
	return ch, release
}

func TestPollWaitWakesOnAppend(t *testing.T) {
	store := newFakeStore()
	fw := orchestration.NewFeedWaiter(store)
	runWaiter(t, fw, store)
	w := signalWaiter{Waiter: fw, watched: make(chan string, 4)}
	h := newHarnessOn(t, store, orchestration.Options{Waiter: w})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	first := appendN(t, store, task.TaskID, 1)[0]

	type result struct {
		res contracts.PollResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{
			Auth: auth("alice"), TaskID: task.TaskID, After: first.EventID, Limit: 10, Wait: time.Minute,
		})
		done <- result{res, err}
	}()
	recv(t, w.watched, "watch") // the watch is registered: an append now cannot be missed
	ev := appendN(t, store, task.TaskID, 1)[0]
	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.Equal(t, []contracts.EventID{ev.EventID}, ids(r.res.Events))
		assert.Equal(t, &ev.EventID, r.res.NextAfterEventID)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting poll was not woken by the append")
	}
	assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricReplays, observe.Tag{Key: observe.TagTransport, Value: "http"}))
	assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricFallbacks, observe.Tag{Key: observe.TagTransport, Value: "http"}))
}

func TestPollWaitIgnoresOtherTasks(t *testing.T) {
	store := newFakeStore()
	fw := orchestration.NewFeedWaiter(store)
	runWaiter(t, fw, store)
	w := signalWaiter{Waiter: fw, watched: make(chan string, 8)}
	h := newHarnessOn(t, store, orchestration.Options{Waiter: w})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	other := h.seedTask(t, "alice", contracts.StatusRunning)
	done := make(chan contracts.PollResult, 1)
	go func() {
		res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{
			Auth: auth("alice"), TaskID: task.TaskID, Limit: 10, Wait: time.Minute,
		})
		assert.NoError(t, err)
		done <- res
	}()
	recv(t, w.watched, "watch")
	appendN(t, store, other.TaskID, 1)
	ev := appendN(t, store, task.TaskID, 1)[0]
	res := recv(t, done, "poll")
	assert.Equal(t, []contracts.EventID{ev.EventID}, ids(res.Events))
}

func TestPollWaitTimesOutEmpty(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	evs := appendN(t, h.store, task.TaskID, 1)
	res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{
		Auth: auth("alice"), TaskID: task.TaskID, After: evs[0].EventID, Limit: 10, Wait: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	assert.Empty(t, res.Events)
	assert.Equal(t, &evs[0].EventID, res.NextAfterEventID)
	assert.False(t, res.HasMore)
}

func TestPollWaitEndsOnContextCancel(t *testing.T) {
	store := newFakeStore()
	w := signalWaiter{Waiter: orchestration.NewFeedWaiter(store), watched: make(chan string, 4)}
	h := newHarnessOn(t, store, orchestration.Options{Waiter: w})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		res, err := h.svc.Polling.Poll(ctx, contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID, Wait: time.Hour})
		assert.Empty(t, res.Events)
		done <- err
	}()
	recv(t, w.watched, "watch")
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "shutdown answers the empty result")
	case <-time.After(10 * time.Second):
		t.Fatal("poll ignored its context")
	}
}

func TestPollDoesNotWaitOnEndedStream(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	done, err := contracts.Completed(nil)
	require.NoError(t, err)
	ev, err := h.store.Append(context.Background(), task.TaskID, done)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := h.svc.Polling.Poll(ctx, contracts.PollQuery{
		Auth: auth("alice"), TaskID: task.TaskID, After: ev.EventID, Wait: time.Hour,
	})
	require.NoError(t, err)
	require.NoError(t, ctx.Err(), "poll waited on a stream that has ended")
	assert.Empty(t, res.Events)
}

func TestPollLogsAtDebug(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	appendN(t, h.store, task.TaskID, 2)
	_, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID})
	require.NoError(t, err)
	polled := h.logged("task.events.polled")
	require.Len(t, polled, 1)
	assert.Equal(t, zapcore.DebugLevel, polled[0].Level)
	assert.Equal(t, task.TaskID, fieldOf(polled[0], observe.FieldTaskID))
	assert.Equal(t, "2-0", fieldOf(polled[0], observe.FieldEventID))
}

func ids(evs []contracts.TaskEvent) []contracts.EventID {
	out := make([]contracts.EventID, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID
	}
	return out
}

func nilIfEmpty(s []contracts.EventID) []contracts.EventID {
	if len(s) == 0 {
		return nil
	}
	return s
}

// runWaiter runs fw until the test ends and waits until it listens.
func runWaiter(t testing.TB, fw *orchestration.FeedWaiter, store *fakeStore) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = fw.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		recv(t, (<-chan struct{})(stopped), "the waiter to stop")
	})
	select {
	case <-store.listening:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter never listened")
	}
}

// wakeWaiter is a Waiter the test wakes by hand, as a change feed resync
// wakes every watcher without any new event.
type wakeWaiter struct{ watches chan chan struct{} }

func (w wakeWaiter) Watch(string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.watches <- ch
	return ch, func() {}
}

// TestPollWaitEndsWhenTheTaskVanishes: a waiting long-poll woken without
// new events (a feed resync after a store restart) checks that its task
// still exists: one that does keeps waiting, one that is gone answers
// TASK_NOT_FOUND at once rather than an empty page at the end of the wait.
func TestPollWaitEndsWhenTheTaskVanishes(t *testing.T) {
	store := newFakeStore()
	w := wakeWaiter{watches: make(chan chan struct{}, 4)}
	h := newHarnessOn(t, store, orchestration.Options{Waiter: w})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{
			Auth: auth("alice"), TaskID: task.TaskID, Limit: 10, Wait: time.Minute,
		})
		done <- err
	}()
	close(recv(t, w.watches, "first watch")) // resync: the task still exists
	second := recv(t, w.watches, "second watch")
	store.mu.Lock()
	delete(store.tasks, task.TaskID) // the store lost it
	store.mu.Unlock()
	close(second)
	err := recv(t, done, "poll")
	requireCode(t, err, bridgeerr.CodeTaskNotFound)
}

// pageReader is an event store that is also an
// orchestration.TaskPageReader, counting its reads and the registry's.
type pageReader struct {
	*fakeStore
	readTasks, gets atomic.Int32
}

func (p *pageReader) ReadTask(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.TaskRecord, contracts.EventPage, error) {
	p.readTasks.Add(1)
	task, err := p.fakeStore.Get(ctx, taskID)
	if err != nil {
		return contracts.TaskRecord{}, contracts.EventPage{}, err
	}
	page, err := p.fakeStore.Read(ctx, taskID, after, limit)
	return task, page, err
}

func (p *pageReader) Get(ctx context.Context, taskID string) (contracts.TaskRecord, error) {
	p.gets.Add(1)
	return p.fakeStore.Get(ctx, taskID)
}

// TestPollReadsRecordAndPageTogether: on an event store that reads a
// task's record with its page (redisstore: one round trip), a poll that
// does not wait makes that one read and still decides access on the
// record: a foreign or missing task is TASK_NOT_FOUND, nothing of it
// returned. A waiting poll reads as before.
func TestPollReadsRecordAndPageTogether(t *testing.T) {
	store := &pageReader{fakeStore: newFakeStore()}
	h := newHarnessOn(t, store.fakeStore, orchestration.Options{
		Stores: contracts.Stores{Tasks: store, Events: store},
	})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	evs := appendN(t, h.store, task.TaskID, 3)

	res, err := h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID, After: evs[0].EventID})
	require.NoError(t, err)
	assert.Equal(t, ids(evs[1:]), ids(res.Events))
	assert.Equal(t, int32(1), store.readTasks.Load(), "one read of record and page")
	assert.Zero(t, store.gets.Load(), "no separate read of the record")

	for _, q := range []contracts.PollQuery{
		{Auth: auth("mallory"), TaskID: task.TaskID},
		{Auth: auth("alice"), TaskID: "no-such-task"},
	} {
		res, err := h.svc.Polling.Poll(context.Background(), q)
		requireCode(t, err, bridgeerr.CodeTaskNotFound)
		assert.Empty(t, res.Events)
	}

	store.readTasks.Store(0)
	res, err = h.svc.Polling.Poll(context.Background(), contracts.PollQuery{Auth: auth("alice"), TaskID: task.TaskID, Wait: time.Second})
	require.NoError(t, err)
	assert.Len(t, res.Events, 3)
	assert.Zero(t, store.readTasks.Load(), "a waiting poll checks access first and reads after registering its watch")
	assert.Equal(t, int32(1), store.gets.Load())
}
