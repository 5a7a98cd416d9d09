package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// fakeClock is a settable clock for retention tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func progress(tb testing.TB, p float64) contracts.EventDraft {
	tb.Helper()
	d, err := contracts.Progress(p, "", "")
	require.NoError(tb, err)
	return d
}

func completed(tb testing.TB) contracts.EventDraft {
	tb.Helper()
	d, err := contracts.Completed(map[string]bool{"ok": true})
	require.NoError(tb, err)
	return d
}

func task(id, owner, request string) contracts.TaskRecord {
	return contracts.TaskRecord{TaskID: id, OwnerID: owner, ClientRequestID: request, TaskType: "demo", Input: json.RawMessage(`{}`)}
}

func TestEventCapKeepsNewestAndReportsGap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const max, total = 100, 10_000
	s := NewEventStore(Options{MaxEventsPerTask: max})
	ids := make([]contracts.EventID, 0, total)
	for i := range total {
		ev, err := s.Append(ctx, "t", progress(t, float64(i%101)))
		require.NoError(t, err)
		ids = append(ids, ev.EventID)
	}

	page, err := s.Read(ctx, "t", contracts.EventID{}, total)
	require.NoError(t, err)
	require.Len(t, page.Events, max, "only the newest MaxEventsPerTask events are retained")
	assert.Equal(t, ids[total-max], page.Events[0].EventID)
	assert.Equal(t, ids[total-1], page.Events[max-1].EventID)
	assert.True(t, page.RetentionGap, "a zero cursor on a trimmed stream reports the gap")

	st := s.shard("t").streams["t"]
	assert.LessOrEqual(t, cap(st.events), 2*max+1, "the backing array stays bounded")

	cases := []struct {
		name    string
		after   contracts.EventID
		wantGap bool
		wantN   int
	}{
		{"cursor older than retention", ids[10], true, max},
		{"cursor at the newest dropped id", ids[total-max-1], false, max},
		{"cursor inside retention", ids[total-10], false, 9},
		{"cursor at the end", ids[total-1], false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.Read(ctx, "t", tc.after, total)
			require.NoError(t, err)
			assert.Equal(t, tc.wantGap, page.RetentionGap)
			assert.Len(t, page.Events, tc.wantN)
		})
	}
}

func TestEventCapDisabled(t *testing.T) {
	t.Parallel()
	s := NewEventStore(Options{MaxEventsPerTask: -1})
	for i := range DefaultMaxEventsPerTask + 5 {
		_, err := s.Append(context.Background(), "t", progress(t, float64(i%101)))
		require.NoError(t, err)
	}
	page, err := s.Read(context.Background(), "t", contracts.EventID{}, 1<<30)
	require.NoError(t, err)
	assert.Len(t, page.Events, DefaultMaxEventsPerTask+5)
	assert.False(t, page.RetentionGap)
}

// TestHeldPagesAreNeverRewritten checks that a page a reader holds keeps its
// events while the writer appends, trims and compacts.
func TestHeldPagesAreNeverRewritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewEventStore(Options{MaxEventsPerTask: 8})
	for i := range 8 {
		_, err := s.Append(ctx, "t", progress(t, float64(i)))
		require.NoError(t, err)
	}
	held, err := s.Read(ctx, "t", contracts.EventID{}, 8)
	require.NoError(t, err)
	require.Len(t, held.Events, 8)
	assert.Equal(t, len(held.Events), cap(held.Events), "pages are capped so a caller's append cannot reach the store")
	snapshot := append([]contracts.TaskEvent(nil), held.Events...)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 500 {
			if _, err := s.Append(ctx, "t", progress(t, float64(i%101))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 200 {
		page, err := s.Read(ctx, "t", contracts.EventID{}, 8)
		require.NoError(t, err)
		for i := 1; i < len(page.Events); i++ {
			require.Negative(t, page.Events[i-1].EventID.Compare(page.Events[i].EventID))
		}
	}
	wg.Wait()
	assert.Equal(t, snapshot, held.Events)
}

func TestReadLimitZeroStillReportsState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewEventStore(Options{})
	_, err := s.Append(ctx, "t", completed(t))
	require.NoError(t, err)
	page, err := s.Read(ctx, "t", contracts.EventID{}, 0)
	require.NoError(t, err)
	assert.Empty(t, page.Events)
	assert.False(t, page.Ended, "the terminal event is after the cursor and was not returned")
}

func TestEventIDsFromClock(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		clock []time.Time
		want  []string
	}{
		{"epoch never yields the zero id", []time.Time{time.UnixMilli(0), time.UnixMilli(0)}, []string{"0-1", "0-2"}},
		{"before the epoch counts as zero", []time.Time{time.UnixMilli(-5), time.UnixMilli(2)}, []string{"0-1", "2-0"}},
		{"clock goes back", []time.Time{time.UnixMilli(50), time.UnixMilli(49), time.UnixMilli(51)}, []string{"50-0", "50-1", "51-0"}},
		{"sequence crosses digit lengths", repeat(time.UnixMilli(7), 12), []string{"7-0", "7-1", "7-2", "7-3", "7-4", "7-5", "7-6", "7-7", "7-8", "7-9", "7-10", "7-11"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			i := 0
			s := NewEventStore(Options{Clock: func() time.Time { return tc.clock[i] }})
			var got []string
			for i = range tc.clock {
				ev, err := s.Append(context.Background(), "t", contracts.Started(""))
				require.NoError(t, err)
				got = append(got, ev.EventID.String())
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func repeat(t time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = t
	}
	return out
}

func TestNextIDAtMaxSequence(t *testing.T) {
	t.Parallel()
	last := contracts.EventID{Ms: 5, Seq: ^uint64(0)}
	assert.Equal(t, contracts.EventID{Ms: 6}, nextID(last, time.UnixMilli(5)))
}

// TestTerminalTasksExpire creates and terminates many tasks with a short TTL
// on a fake clock and checks that every store forgets them, their
// idempotency keys included, while live tasks stay.
func TestTerminalTasksExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	st := New(Options{Clock: clock.Now, TerminalTTL: time.Minute})
	const n = 500
	for i := range n {
		id := fmt.Sprintf("task-%d", i)
		_, created, err := st.Tasks.Create(ctx, task(id, "owner", "req-"+id))
		require.NoError(t, err)
		require.True(t, created)
		require.NoError(t, st.Suspensions.Create(ctx, contracts.SuspensionRecord{TaskID: id, SuspendID: "s"}))
		_, _, err = st.Receipts.Save(ctx, contracts.ActionReceipt{TaskID: id, ClientActionID: "a"})
		require.NoError(t, err)
		_, err = st.Events.Append(ctx, id, contracts.Started(""))
		require.NoError(t, err)
		switch i % 3 {
		case 0: // terminal event first, then status (the executor's order)
			_, err = st.Events.Append(ctx, id, completed(t))
			require.NoError(t, err)
			_, err = st.Tasks.UpdateStatus(ctx, id, contracts.StatusRunning)
			require.NoError(t, err)
			_, err = st.Tasks.UpdateStatus(ctx, id, contracts.StatusCompleted)
			require.NoError(t, err)
		case 1: // status only (e.g. a submission failure): events go too
			_, err = st.Tasks.UpdateStatus(ctx, id, contracts.StatusFailed)
			require.NoError(t, err)
		default: // terminal event only
			_, err = st.Events.Append(ctx, id, completed(t))
			require.NoError(t, err)
		}
	}
	_, _, err := st.Tasks.Create(ctx, task("live", "owner", "req-live"))
	require.NoError(t, err)
	_, err = st.Events.Append(ctx, "live", contracts.Started(""))
	require.NoError(t, err)

	clock.Advance(59 * time.Second)
	got, err := st.Tasks.Get(ctx, "task-0")
	require.NoError(t, err, "terminal tasks stay for TerminalTTL")
	assert.Equal(t, contracts.StatusCompleted, got.Status)
	page, err := st.Events.Read(ctx, "task-1", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Len(t, page.Events, 1)

	clock.Advance(time.Second)
	for _, id := range []string{"task-0", "task-1", "task-2"} {
		_, err := st.Tasks.Get(ctx, id)
		require.ErrorIs(t, err, contracts.ErrNotFound, id)
		page, err := st.Events.Read(ctx, id, contracts.EventID{}, 10)
		require.NoError(t, err)
		assert.Empty(t, page.Events, id)
		_, err = st.Suspensions.Get(ctx, id, "s")
		require.ErrorIs(t, err, contracts.ErrNotFound, id)
		_, err = st.Receipts.Get(ctx, id, "a")
		require.ErrorIs(t, err, contracts.ErrNotFound, id)
	}

	// One write per store sweeps everything that is due.
	_, err = st.Events.Append(ctx, "live", progress(t, 10))
	require.NoError(t, err)
	_, err = st.Tasks.UpdateStatus(ctx, "live", contracts.StatusRunning)
	require.NoError(t, err)
	require.NoError(t, st.Suspensions.Create(ctx, contracts.SuspensionRecord{TaskID: "live", SuspendID: "s"}))
	_, _, err = st.Receipts.Save(ctx, contracts.ActionReceipt{TaskID: "live", ClientActionID: "a"})
	require.NoError(t, err)

	cs := concrete(st)
	tasks, keys := cs.Tasks.len()
	assert.Equal(t, 1, tasks, "only the live task is left")
	assert.Equal(t, 1, keys)
	assert.Equal(t, 1, cs.Events.len())
	assert.Equal(t, 1, cs.Suspensions.len())
	receipts, _ := cs.Receipts.len()
	assert.Equal(t, 1, receipts)
	for name, q := range map[string]*expiryQueue{"tasks": &cs.Tasks.exp, "events": &cs.Events.exp,
		"suspensions": &cs.Suspensions.exp, "receipts": &cs.Receipts.exp} {
		assert.Zero(t, q.len(), "%s expiry queue is drained", name)
	}

	again, created, err := st.Tasks.Create(ctx, task("task-0-again", "owner", "req-task-0"))
	require.NoError(t, err)
	assert.True(t, created, "an expired task's idempotency key is free again")
	assert.Equal(t, "task-0-again", again.TaskID)
	ev, err := st.Events.Append(ctx, "task-0", contracts.Started(""))
	require.NoError(t, err, "an expired stream starts afresh")
	assert.False(t, ev.EventID.IsZero())
}

func TestTerminalTTLNegativeKeepsForever(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	st := New(Options{Clock: clock.Now, TerminalTTL: -1})
	_, _, err := st.Tasks.Create(ctx, task("t", "o", "r"))
	require.NoError(t, err)
	_, err = st.Tasks.UpdateStatus(ctx, "t", contracts.StatusFailed)
	require.NoError(t, err)
	_, err = st.Events.Append(ctx, "t", completed(t))
	require.NoError(t, err)
	clock.Advance(1000 * time.Hour)
	_, err = st.Tasks.Get(ctx, "t")
	require.NoError(t, err)
	page, err := st.Events.Read(ctx, "t", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Len(t, page.Events, 1)
	assert.True(t, page.Ended)
}

func TestStandaloneEventStoreExpiresOnTerminalEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	s := NewEventStore(Options{Clock: clock.Now, TerminalTTL: time.Minute})
	_, err := s.Append(ctx, "done", completed(t))
	require.NoError(t, err)
	_, err = s.Append(ctx, "open", contracts.Started(""))
	require.NoError(t, err)
	clock.Advance(time.Minute)
	_, err = s.Append(ctx, "open", contracts.Started(""))
	require.NoError(t, err)
	assert.Equal(t, 1, s.len())
	page, err := s.Read(ctx, "open", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Len(t, page.Events, 2, "streams without a terminal event stay")
}

func TestReceiptTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	s := NewReceiptStore(Options{Clock: clock.Now, ReceiptTTL: time.Hour})
	r, stored, err := s.Save(ctx, contracts.ActionReceipt{TaskID: "t", ClientActionID: "a", Payload: json.RawMessage(`{"x":1}`)})
	require.NoError(t, err)
	require.True(t, stored)
	assert.Equal(t, clock.Now(), r.CreatedAt, "a zero CreatedAt is the clock's time")
	assert.Equal(t, clock.Now().Add(time.Hour), r.ExpiresAt, "a zero ExpiresAt is CreatedAt + ReceiptTTL")

	clock.Advance(time.Hour)
	_, err = s.Get(ctx, "t", "a")
	require.ErrorIs(t, err, contracts.ErrNotFound, "an expired receipt is never returned")
	_, stored, err = s.Save(ctx, contracts.ActionReceipt{TaskID: "t", ClientActionID: "a"})
	require.NoError(t, err)
	assert.True(t, stored, "the expired receipt was swept by the write")
	receipts, heapEntries := s.len()
	assert.Equal(t, 1, receipts)
	assert.Equal(t, 1, heapEntries)

	forever := NewReceiptStore(Options{Clock: clock.Now, ReceiptTTL: -1})
	r, _, err = forever.Save(ctx, contracts.ActionReceipt{TaskID: "t", ClientActionID: "a"})
	require.NoError(t, err)
	assert.True(t, r.ExpiresAt.IsZero())
	n, err := forever.DeleteExpired(ctx, clock.Now().Add(1000*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestReceiptPayloadIsCopied(t *testing.T) {
	t.Parallel()
	s := NewReceiptStore(Options{})
	payload := []byte(`{"x":1}`)
	_, _, err := s.Save(context.Background(), contracts.ActionReceipt{TaskID: "t", ClientActionID: "a", Payload: payload})
	require.NoError(t, err)
	payload[2] = 'y'
	r, err := s.Get(context.Background(), "t", "a")
	require.NoError(t, err)
	assert.JSONEq(t, `{"x":1}`, string(r.Payload))
}

func TestDeleteExpiredDoesNotRunTheTerminalClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	st := New(Options{Clock: clock.Now, TerminalTTL: time.Hour})
	_, _, err := st.Receipts.Save(ctx, contracts.ActionReceipt{TaskID: "t", ClientActionID: "a", ExpiresAt: clock.Now().Add(48 * time.Hour)})
	require.NoError(t, err)
	_, err = st.Events.Append(ctx, "t", completed(t))
	require.NoError(t, err)

	n, err := st.Receipts.DeleteExpired(ctx, clock.Now().Add(2*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = st.Receipts.Get(ctx, "t", "a")
	require.NoError(t, err, "the task's TTL runs on the store clock, not on the DeleteExpired cutoff")

	clock.Advance(time.Hour)
	_, err = st.Receipts.Get(ctx, "t", "a")
	require.ErrorIs(t, err, contracts.ErrNotFound, "gone with its terminal task")
}

// TestExpiryBehindALaterDeadline covers a clock that went backwards: the
// FIFO holds a later deadline in front of an earlier one, and reads still
// report the earlier task gone on time.
func TestExpiryBehindALaterDeadline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	reg := NewTaskRegistry(Options{Clock: clock.Now, TerminalTTL: time.Minute})
	for _, id := range []string{"later", "earlier"} {
		_, _, err := reg.Create(ctx, task(id, "o", id))
		require.NoError(t, err)
	}
	_, err := reg.UpdateStatus(ctx, "later", contracts.StatusFailed)
	require.NoError(t, err)
	clock.Advance(-time.Hour)
	_, err = reg.UpdateStatus(ctx, "earlier", contracts.StatusFailed)
	require.NoError(t, err)

	clock.Advance(time.Minute)
	_, err = reg.Get(ctx, "earlier")
	require.ErrorIs(t, err, contracts.ErrNotFound)
	_, err = reg.Get(ctx, "later")
	require.NoError(t, err)
	tasks, keys := reg.len()
	assert.Equal(t, 1, tasks)
	assert.Equal(t, 1, keys)

	clock.Advance(time.Hour)
	_, _, err = reg.Create(ctx, task("new", "o", "new"))
	require.NoError(t, err)
	tasks, _ = reg.len()
	assert.Equal(t, 1, tasks, "the write swept the later deadline too")
	assert.Zero(t, reg.exp.len())
}

// concreteStores are the stores of a bundle New returned, by their types.
type concreteStores struct {
	Tasks       *TaskRegistry
	Events      *EventStore
	Suspensions *SuspensionStore
	Receipts    *ReceiptStore
}

func concrete(s contracts.Stores) concreteStores {
	return concreteStores{Tasks: s.Tasks.(*TaskRegistry), Events: s.Events.(*EventStore),
		Suspensions: s.Suspensions.(*SuspensionStore), Receipts: s.Receipts.(*ReceiptStore)}
}
