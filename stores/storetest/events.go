package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// RunEventStore checks a contracts.EventStore: id assignment and order
// (including across digit-length changes), strictly-after reads with limits
// and pagination, unknown tasks, rejection of the zero draft and of appends
// after the terminal event, exactly one terminal event when 20 goroutines
// race, EventPage.Ended, idempotency keys (a retry with a held key answers
// the first event, also after the terminal event), contracts.BatchReader
// when the store implements it, and the change feed. newStore must return a fresh, empty store on
// each call.
func RunEventStore(t *testing.T, newStore func(t *testing.T) contracts.EventStore) {
	t.Helper()

	t.Run("AppendAndRead", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		drafts := []contracts.EventDraft{
			contracts.Started("go"),
			mustDraft(t)(contracts.Progress(50, "half", "halfway")),
			mustDraft(t)(contracts.Message("hello", contracts.LevelInfo)),
		}
		var appended []contracts.TaskEvent
		for _, d := range drafts {
			before := time.Now().Add(-time.Second)
			ev, err := store.Append(ctx, "task-1", d)
			require.NoError(t, err)
			assert.Equal(t, d.Type(), ev.Type)
			assert.Equal(t, "task-1", ev.TaskID)
			assert.False(t, ev.EventID.IsZero(), "an appended event never has the zero id")
			assert.JSONEq(t, string(d.Payload()), string(ev.Payload))
			assert.True(t, ev.CreatedAt.After(before), "CreatedAt is the append time")
			if n := len(appended); n > 0 {
				require.Negative(t, appended[n-1].EventID.Compare(ev.EventID), "ids must increase")
			}
			appended = append(appended, ev)
		}
		page, err := store.Read(ctx, "task-1", contracts.EventID{}, 100)
		require.NoError(t, err)
		requireSameEvents(t, appended, page.Events)
		assert.False(t, page.RetentionGap)
		assert.False(t, page.Ended)
	})

	t.Run("OrderAcrossDigitLengths", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		// Append until some id's sequence reaches 10 (its predecessor in the
		// same millisecond had 9), bounded. With real clocks this usually
		// happens within a few dozen appends; ordering is checked either way.
		var ids []contracts.EventID
		crossed := false
		for i := 0; i < 2000 && !crossed; i++ {
			ev, err := store.Append(ctx, "task-1", mustDraft(t)(contracts.Progress(float64(i%101), "", "")))
			require.NoError(t, err)
			ids = append(ids, ev.EventID)
			crossed = ev.EventID.Seq >= 10
		}
		if !crossed {
			t.Logf("no id reached sequence 10 in %d appends; checked order only", len(ids))
		}
		for i := 1; i < len(ids); i++ {
			require.Negative(t, ids[i-1].Compare(ids[i]), "%s must be before %s", ids[i-1], ids[i])
		}
		got := readAll(t, store, "task-1", contracts.EventID{}, 7)
		require.Len(t, got, len(ids))
		for i := range ids {
			require.Equal(t, ids[i], got[i].EventID, "event %d", i)
		}
		for i := 1; i < len(ids); i++ {
			// Strictly after every id, including those whose text sorts
			// wrongly as a string ("...-10" < "...-9").
			page, err := store.Read(ctx, "task-1", ids[i-1], 1)
			require.NoError(t, err)
			require.Len(t, page.Events, 1)
			require.Equal(t, ids[i], page.Events[0].EventID)
		}
	})

	t.Run("StrictlyAfterWithLimits", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		ids := appendN(t, store, "task-1", 25)

		page, err := store.Read(ctx, "task-1", ids[4], 3)
		require.NoError(t, err)
		assert.Equal(t, ids[5:8], eventIDs(page.Events))

		page, err = store.Read(ctx, "task-1", contracts.EventID{}, 1)
		require.NoError(t, err)
		assert.Equal(t, ids[:1], eventIDs(page.Events), "a zero cursor reads from the start")

		page, err = store.Read(ctx, "task-1", ids[24], 10)
		require.NoError(t, err)
		assert.Empty(t, page.Events, "nothing after the last id")

		page, err = store.Read(ctx, "task-1", ids[24].Next(), 10)
		require.NoError(t, err)
		assert.Empty(t, page.Events, "nothing after a cursor past the end")

		var sizes []int
		var got []contracts.EventID
		cursor := contracts.EventID{}
		for range 10 {
			page, err := store.Read(ctx, "task-1", cursor, 10)
			require.NoError(t, err)
			sizes = append(sizes, len(page.Events))
			if len(page.Events) == 0 {
				break
			}
			got = append(got, eventIDs(page.Events)...)
			cursor = page.Events[len(page.Events)-1].EventID
		}
		assert.Equal(t, []int{10, 10, 5, 0}, sizes)
		assert.Equal(t, ids, got)
	})

	t.Run("UnknownTask", func(t *testing.T) {
		t.Parallel()
		page, err := newStore(t).Read(testContext(t), "missing", contracts.EventID{}, 10)
		require.NoError(t, err, "an unknown task reads as empty; the registry decides existence")
		assert.Empty(t, page.Events)
		assert.False(t, page.Ended)
		assert.False(t, page.RetentionGap)
	})

	t.Run("TasksAreIndependent", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		var a, b []contracts.EventID
		for i := range 5 {
			ev, err := store.Append(ctx, "task-a", mustDraft(t)(contracts.Progress(float64(i), "", "")))
			require.NoError(t, err)
			a = append(a, ev.EventID)
			ev, err = store.Append(ctx, "task-b", mustDraft(t)(contracts.Progress(float64(i), "", "")))
			require.NoError(t, err)
			b = append(b, ev.EventID)
		}
		_, err := store.Append(ctx, "task-a", mustDraft(t)(contracts.Completed(map[string]int{"n": 1})))
		require.NoError(t, err)
		ev, err := store.Append(ctx, "task-b", contracts.Started("still open"))
		require.NoError(t, err, "a terminal event of one task does not close another")
		b = append(b, ev.EventID)

		gotB := readAll(t, store, "task-b", contracts.EventID{}, 100)
		assert.Equal(t, b, eventIDs(gotB))
		for _, e := range gotB {
			assert.Equal(t, "task-b", e.TaskID)
		}
		gotA := readAll(t, store, "task-a", contracts.EventID{}, 100)
		assert.Len(t, gotA, len(a)+1)
	})

	t.Run("RejectsZeroDraft", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		_, err := store.Append(ctx, "task-1", contracts.EventDraft{})
		require.ErrorIs(t, err, contracts.ErrInvalidPayload)
		page, err := store.Read(ctx, "task-1", contracts.EventID{}, 10)
		require.NoError(t, err)
		assert.Empty(t, page.Events, "a rejected draft stores nothing")
	})

	t.Run("RejectsAfterTerminal", func(t *testing.T) {
		t.Parallel()
		terminals := []struct {
			name  string
			draft func(tb testing.TB) contracts.EventDraft
		}{
			{"completed", func(tb testing.TB) contracts.EventDraft { return mustDraft(tb)(contracts.Completed("done")) }},
			{"failed", func(tb testing.TB) contracts.EventDraft {
				return mustDraft(tb)(contracts.Failed("BOOM", "boom", false))
			}},
			{"cancelled", func(tb testing.TB) contracts.EventDraft { return mustDraft(tb)(contracts.Cancelled("user", "")) }},
		}
		for _, tc := range terminals {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				store := newStore(t)
				_, err := store.Append(ctx, "task-1", contracts.Started(""))
				require.NoError(t, err)
				term, err := store.Append(ctx, "task-1", tc.draft(t))
				require.NoError(t, err)

				_, err = store.Append(ctx, "task-1", mustDraft(t)(contracts.Progress(99, "", "")))
				require.ErrorIs(t, err, contracts.ErrTerminal, "no event after the terminal one")
				for _, again := range terminals {
					_, err = store.Append(ctx, "task-1", again.draft(t))
					require.ErrorIs(t, err, contracts.ErrTerminal, "no second terminal event (%s)", again.name)
				}
				got := readAll(t, store, "task-1", contracts.EventID{}, 100)
				require.Len(t, got, 2)
				assert.Equal(t, term.EventID, got[1].EventID)
			})
		}
	})

	t.Run("OneTerminalUnderRace", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		_, err := store.Append(ctx, "task-1", contracts.Started(""))
		require.NoError(t, err)
		const n = 20
		drafts := make([]contracts.EventDraft, n)
		for i := range n {
			switch i % 3 {
			case 0:
				drafts[i] = mustDraft(t)(contracts.Completed(i))
			case 1:
				drafts[i] = mustDraft(t)(contracts.Failed("E", fmt.Sprint(i), false))
			default:
				drafts[i] = mustDraft(t)(contracts.Cancelled(fmt.Sprint(i), ""))
			}
		}
		evs := make([]contracts.TaskEvent, n)
		errs := make([]error, n)
		together(n, func(i int) { evs[i], errs[i] = store.Append(ctx, "task-1", drafts[i]) })

		var winner contracts.TaskEvent
		wins := 0
		for i := range n {
			if errs[i] == nil {
				wins++
				winner = evs[i]
				continue
			}
			require.ErrorIs(t, errs[i], contracts.ErrTerminal, "append %d", i)
		}
		require.Equal(t, 1, wins, "exactly one of %d racing terminal appends succeeds", n)
		got := readAll(t, store, "task-1", contracts.EventID{}, 100)
		terminals := 0
		for _, e := range got {
			if e.Type.IsTerminal() {
				terminals++
			}
		}
		assert.Equal(t, 1, terminals, "the stream holds exactly one terminal event")
		require.NotEmpty(t, got)
		assert.Equal(t, winner.EventID, got[len(got)-1].EventID, "the terminal event is the last")
	})

	t.Run("Ended", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		ids := appendN(t, store, "task-1", 2)

		page, err := store.Read(ctx, "task-1", contracts.EventID{}, 100)
		require.NoError(t, err)
		assert.False(t, page.Ended, "no terminal event yet")

		term, err := store.Append(ctx, "task-1", mustDraft(t)(contracts.Completed(nil)))
		require.NoError(t, err)

		cases := []struct {
			name      string
			after     contracts.EventID
			limit     int
			wantCount int
			wantEnded bool
		}{
			{"terminal is the last returned", contracts.EventID{}, 100, 3, true},
			{"limit stops before the terminal event", contracts.EventID{}, 2, 2, false},
			{"from the middle to the end", ids[0], 100, 2, true},
			{"exactly the terminal event", ids[1], 1, 1, true},
			{"cursor at the terminal event", term.EventID, 100, 0, true},
			{"cursor past the terminal event", term.EventID.Next(), 100, 0, true},
		}
		for _, tc := range cases {
			page, err := store.Read(ctx, "task-1", tc.after, tc.limit)
			require.NoError(t, err, tc.name)
			assert.Len(t, page.Events, tc.wantCount, tc.name)
			assert.Equal(t, tc.wantEnded, page.Ended, tc.name)
		}
	})

	runBatchReader(t, newStore)
	runIdempotentAppend(t, newStore)
	runSummaryReader(t, newStore)
	runChangeFeed(t, newStore)
}

// RunEventStoreClock checks the ids an event store assigns from a clock it
// was given: the `ms-seq` form, the sequence counting up within one
// millisecond across digit-length changes ("9-9" < "9-10", "9-12" < "10-0"),
// and strictly increasing ids when the clock goes backwards. newStore must
// return a fresh, empty store whose ids take their milliseconds from clock.
func RunEventStoreClock(t *testing.T, newStore func(t *testing.T, clock func() time.Time) contracts.EventStore) {
	t.Helper()

	t.Run("DigitLengthsAndBackwardsClock", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		clock := &manualClock{}
		store := newStore(t, clock.Now)
		var want []string
		appendAt := func(ms int64, n int) {
			clock.Set(ms)
			for range n {
				ev, err := store.Append(ctx, "task-1", contracts.Started(""))
				require.NoError(t, err)
				want = append(want, ev.EventID.String())
			}
		}
		appendAt(9, 12)             // 9-0 .. 9-11
		appendAt(10, 1)             // 10-0
		appendAt(3, 2)              // clock went back: 10-1, 10-2
		appendAt(1700000000000, 11) // 1700000000000-0 .. 1700000000000-10
		expect := []string{"9-0", "9-1", "9-2", "9-3", "9-4", "9-5", "9-6", "9-7", "9-8", "9-9", "9-10", "9-11",
			"10-0", "10-1", "10-2"}
		for i := range 11 {
			expect = append(expect, fmt.Sprintf("1700000000000-%d", i))
		}
		require.Equal(t, expect, want)

		got := readAll(t, store, "task-1", contracts.EventID{}, 4)
		var gotText []string
		for _, e := range got {
			gotText = append(gotText, e.EventID.String())
		}
		require.Equal(t, expect, gotText, "reads return id order, not string order")

		page, err := store.Read(ctx, "task-1", contracts.MustParseEventID("9-9"), 2)
		require.NoError(t, err)
		assert.Equal(t, []string{"9-10", "9-11"}, textIDs(page.Events))
		page, err = store.Read(ctx, "task-1", contracts.MustParseEventID("1700000000000-9"), 5)
		require.NoError(t, err)
		assert.Equal(t, []string{"1700000000000-10"}, textIDs(page.Events))
	})

	t.Run("FrozenClock", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		clock := &manualClock{}
		clock.Set(1_700_000_000_123)
		store := newStore(t, clock.Now)
		var last contracts.EventID
		for i := range 150 {
			ev, err := store.Append(ctx, "task-1", contracts.Started(""))
			require.NoError(t, err)
			require.Equal(t, contracts.EventID{Ms: 1_700_000_000_123, Seq: uint64(i)}, ev.EventID)
			require.Positive(t, ev.EventID.Compare(last))
			last = ev.EventID
		}
	})
}

// runChangeFeed checks Listen: every appended id of a task is delivered in
// order (also with concurrent appenders), several listeners all receive,
// and Listen returns ctx.Err() when its context ends.
func runChangeFeed(t *testing.T, newStore func(t *testing.T) contracts.EventStore) {
	t.Helper()

	t.Run("ChangeFeedDeliversInOrder", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		rec1 := startListener(t, ctx, store)
		rec2 := startListener(t, ctx, store)
		ids := appendN(t, store, "task-1", 30)
		for _, rec := range []*recorder{rec1, rec2} {
			require.True(t, rec.waitUntil(ctx, func() bool { return len(rec.idsFor("task-1")) >= len(ids) }),
				"listener saw %d of %d changes", len(rec.idsFor("task-1")), len(ids))
			assert.Equal(t, ids, rec.idsFor("task-1"))
		}
	})

	t.Run("ChangeFeedConcurrentAppenders", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		rec := startListener(t, ctx, store)
		const writers, each = 4, 25
		appended := make([][]contracts.EventID, writers)
		errs := make([]error, writers)
		together(writers, func(w int) {
			for i := range each {
				ev, err := store.Append(ctx, "task-1", contracts.Started(fmt.Sprint(w, i)))
				if err != nil {
					errs[w] = err
					return
				}
				appended[w] = append(appended[w], ev.EventID)
			}
		})
		want := map[contracts.EventID]bool{}
		for w := range writers {
			require.NoError(t, errs[w])
			for _, id := range appended[w] {
				want[id] = true
			}
		}
		require.True(t, rec.waitUntil(ctx, func() bool { return len(rec.idsFor("task-1")) >= writers*each }),
			"listener saw %d of %d changes", len(rec.idsFor("task-1")), writers*each)
		seen := rec.idsFor("task-1")
		require.Len(t, seen, writers*each)
		for i, id := range seen {
			assert.True(t, want[id], "unexpected id %s", id)
			if i > 0 {
				require.Negative(t, seen[i-1].Compare(id), "changes of one task arrive in append order")
			}
		}
	})

	t.Run("ListenReturnsOnCancel", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- store.Listen(lctx, func(contracts.Change) {}) }()
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, context.Canceled)
		case <-ctx.Done():
			t.Fatal("Listen did not return after its context was cancelled")
		}
	})
}

// recorder collects the changes a listener receives; signal wakes a waiter
// after each one.
type recorder struct {
	mu      sync.Mutex
	changes []contracts.Change
	signal  chan struct{}
}

func newRecorder() *recorder {
	return &recorder{signal: make(chan struct{}, 1)}
}

func (r *recorder) record(c contracts.Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// idsFor returns the ids received for taskID, ignoring Resync changes.
func (r *recorder) idsFor(taskID string) []contracts.EventID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []contracts.EventID
	for _, c := range r.changes {
		if c.TaskID == taskID && !c.Resync {
			ids = append(ids, c.LastEventID)
		}
	}
	return ids
}

// waitUntil waits for cond, re-checking after every change, until ctx ends.
func (r *recorder) waitUntil(ctx context.Context, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-r.signal:
		case <-ctx.Done():
			return cond()
		}
	}
}

// startListener runs store.Listen on a goroutine owned by the test and
// returns once the listener is subscribed, which the port announces with a
// first Change{Resync: true}; that announcement is itself a conformance
// rule. The goroutine is stopped and joined at cleanup.
func startListener(tb testing.TB, ctx context.Context, store contracts.EventStore) *recorder {
	tb.Helper()
	rec := newRecorder()
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- store.Listen(lctx, rec.record) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				tb.Errorf("Listen returned %v after cancel, want context.Canceled", err)
			}
		case <-time.After(testTimeout):
			tb.Error("Listen did not return after its context was cancelled")
		}
	})
	subscribed := rec.waitUntil(ctx, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.changes) > 0 && rec.changes[0].Resync
	})
	if !subscribed {
		select {
		case err := <-done:
			done <- err // for the cleanup
			require.FailNowf(tb, "Listen returned early", "error: %v", err)
		default:
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		require.FailNowf(tb, "Listen did not announce its subscription",
			"want a first Change{Resync: true}; got %v", rec.changes)
	}
	return rec
}

// manualClock is a clock a test sets by milliseconds since the epoch.
type manualClock struct{ ms atomic.Int64 }

// Set moves the clock to ms milliseconds after the epoch.
func (c *manualClock) Set(ms int64) { c.ms.Store(ms) }

// Now returns the clock's time.
func (c *manualClock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

func appendN(tb testing.TB, store contracts.EventStore, taskID string, n int) []contracts.EventID {
	tb.Helper()
	ctx := testContext(tb)
	ids := make([]contracts.EventID, 0, n)
	for i := range n {
		ev, err := store.Append(ctx, taskID, mustDraft(tb)(contracts.Progress(float64(i%101), "", fmt.Sprint(i))))
		require.NoError(tb, err)
		ids = append(ids, ev.EventID)
	}
	return ids
}

// readAll pages through a task's events from after with the given page size.
func readAll(tb testing.TB, store contracts.EventStore, taskID string, after contracts.EventID, pageSize int) []contracts.TaskEvent {
	tb.Helper()
	ctx := testContext(tb)
	var all []contracts.TaskEvent
	for {
		page, err := store.Read(ctx, taskID, after, pageSize)
		require.NoError(tb, err)
		require.LessOrEqual(tb, len(page.Events), pageSize, "a page holds at most limit events")
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		after = page.Events[len(page.Events)-1].EventID
	}
}

func eventIDs(evs []contracts.TaskEvent) []contracts.EventID {
	ids := make([]contracts.EventID, len(evs))
	for i := range evs {
		ids[i] = evs[i].EventID
	}
	return ids
}

func textIDs(evs []contracts.TaskEvent) []string {
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].EventID.String()
	}
	return ids
}

func requireSameEvents(tb testing.TB, want, got []contracts.TaskEvent) {
	tb.Helper()
	require.Len(tb, got, len(want))
	for i := range want {
		assert.Equal(tb, want[i].Type, got[i].Type, "event %d", i)
		assert.Equal(tb, want[i].TaskID, got[i].TaskID, "event %d", i)
		assert.Equal(tb, want[i].EventID, got[i].EventID, "event %d", i)
		assert.JSONEq(tb, string(want[i].Payload), string(got[i].Payload), "event %d", i)
		assert.WithinDuration(tb, want[i].CreatedAt, got[i].CreatedAt, time.Millisecond, "event %d", i)
	}
}

// mustDraft unwraps a draft constructor's result: mustDraft(t)(contracts.Progress(...)).
func mustDraft(tb testing.TB) func(contracts.EventDraft, error) contracts.EventDraft {
	return func(d contracts.EventDraft, err error) contracts.EventDraft {
		tb.Helper()
		require.NoError(tb, err)
		return d
	}
}
