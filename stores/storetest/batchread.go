package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// runBatchReader checks contracts.BatchReader on stores that implement it
// (RunEventStore calls it; a store without the port skips it, saying so):
// every result of a batch equals Read of the same request (cursors zero,
// mid, last and past the end; limits; unknown tasks; ended tasks), the
// same task may appear several times, results overwrite what the caller's
// slices held and nothing past len(reqs) is touched, and an empty batch
// does nothing.
func runBatchReader(t *testing.T, newStore func(t *testing.T) contracts.EventStore) {
	t.Helper()

	t.Run("ReadBatchEqualsRead", func(t *testing.T) {
		t.Parallel()
		store := newStore(t)
		br := batchReader(t, store)
		ctx := testContext(t)
		a := appendN(t, store, "task-a", 12)
		b := appendN(t, store, "task-b", 3)
		term, err := store.Append(ctx, "task-b", mustDraft(t)(contracts.Completed(nil)))
		require.NoError(t, err)
		b = append(b, term.EventID)

		reqs := []contracts.ReadRequest{
			{TaskID: "task-a", Limit: 100},
			{TaskID: "task-a", After: a[4], Limit: 3},
			{TaskID: "task-a", After: a[4], Limit: 100},
			{TaskID: "task-a", After: a[11], Limit: 10},
			{TaskID: "task-a", After: a[11].Next(), Limit: 10},
			{TaskID: "task-a", Limit: 1},
			{TaskID: "task-a", Limit: 0},
			{TaskID: "task-a", After: a[2], Limit: -1},
			{TaskID: "task-b", Limit: 100},
			{TaskID: "task-b", Limit: 2},
			{TaskID: "task-b", After: b[2], Limit: 1},
			{TaskID: "task-b", After: term.EventID, Limit: 10},
			{TaskID: "task-b", After: term.EventID, Limit: 0},
			{TaskID: "missing", Limit: 10},
			{TaskID: "missing", After: a[3], Limit: 10},
			{TaskID: "task-a", Limit: 100}, // duplicates of earlier requests
			{TaskID: "task-b", Limit: 2},
			{TaskID: "task-a", After: a[4], Limit: 3},
		}
		pages, errs := staleResults(len(reqs) + 2)
		br.ReadBatch(ctx, reqs, pages, errs)
		for i, r := range reqs {
			name := fmt.Sprintf("request %d (%s after %s, limit %d)", i, r.TaskID, r.After, r.Limit)
			require.NoError(t, errs[i], name)
			want, err := store.Read(ctx, r.TaskID, r.After, r.Limit)
			require.NoError(t, err, name)
			requireSamePage(t, want, pages[i], name)
		}
		assert.Equal(t, a, eventIDs(pages[0].Events))
		assert.Equal(t, a[5:8], eventIDs(pages[1].Events))
		assert.True(t, pages[8].Ended, "an ended task's last page says so")
		assert.False(t, pages[9].Ended, "a page stopping before the terminal event is not ended")
		for _, extra := range []int{len(reqs), len(reqs) + 1} {
			assert.Len(t, pages[extra].Events, 1, "ReadBatch writes nothing past len(reqs)")
			assert.Error(t, errs[extra], "ReadBatch writes nothing past len(reqs)")
		}
	})

	t.Run("ReadBatchEmpty", func(t *testing.T) {
		t.Parallel()
		store := newStore(t)
		br := batchReader(t, store)
		ctx := testContext(t)
		appendN(t, store, "task-a", 2)
		br.ReadBatch(ctx, nil, nil, nil)
		pages, errs := staleResults(2)
		br.ReadBatch(ctx, []contracts.ReadRequest{}, pages, errs)
		assert.Len(t, pages[0].Events, 1, "an empty batch touches nothing")
		assert.Error(t, errs[0], "an empty batch touches nothing")
	})

	t.Run("ReadBatchManyTasks", func(t *testing.T) {
		t.Parallel()
		store := newStore(t)
		br := batchReader(t, store)
		ctx := testContext(t)
		const tasks = 150
		reqs := make([]contracts.ReadRequest, 0, 2*tasks)
		last := make([]contracts.EventID, tasks)
		for i := range tasks {
			id := fmt.Sprintf("task-%d", i)
			got := appendN(t, store, id, 1+i%3)
			last[i] = got[len(got)-1]
			reqs = append(reqs, contracts.ReadRequest{TaskID: id, Limit: 10},
				contracts.ReadRequest{TaskID: id, After: got[0], Limit: 10})
		}
		pages := make([]contracts.EventPage, len(reqs))
		errs := make([]error, len(reqs))
		br.ReadBatch(ctx, reqs, pages, errs)
		for i, r := range reqs {
			require.NoError(t, errs[i], "request %d", i)
			n := 1 + (i/2)%3
			if i%2 == 1 {
				n--
			}
			require.Len(t, pages[i].Events, n, "request %d", i)
			for _, ev := range pages[i].Events {
				require.Equal(t, r.TaskID, ev.TaskID, "request %d", i)
			}
			if n > 0 {
				require.Equal(t, last[i/2], pages[i].Events[n-1].EventID, "request %d", i)
			}
		}
	})
}

// RunBatchReaderRetention checks ReadBatch against Read where a store's
// cap has dropped events: RetentionGap for cursors before and at the
// dropped ids, none after. newStore must return a fresh, empty store that
// implements contracts.BatchReader and retains about maxEvents events per
// task (dropping the oldest); a store that caps only approximately must
// drop some event once it holds 4*maxEvents+16.
func RunBatchReaderRetention(t *testing.T, newStore func(t *testing.T, maxEvents int) contracts.EventStore) {
	t.Helper()
	t.Run("ReadBatchRetentionGap", func(t *testing.T) {
		t.Parallel()
		const maxEvents = 5
		store := newStore(t, maxEvents)
		br := batchReader(t, store)
		ctx := testContext(t)
		var all []contracts.EventID
		for len(all) < 4*maxEvents+16 {
			all = append(all, appendN(t, store, "task-a", 1)...)
			page, err := store.Read(ctx, "task-a", contracts.EventID{}, 1)
			require.NoError(t, err)
			if page.RetentionGap && len(all) > 2*maxEvents {
				break
			}
		}
		oldest, err := store.Read(ctx, "task-a", contracts.EventID{}, 1)
		require.NoError(t, err)
		require.True(t, oldest.RetentionGap, "the store dropped no event of %d", len(all))
		require.NotEmpty(t, oldest.Events)
		first := oldest.Events[0].EventID // the oldest retained

		reqs := []contracts.ReadRequest{
			{TaskID: "task-a", Limit: 100},
			{TaskID: "task-a", After: all[0], Limit: 2},
			{TaskID: "task-a", After: first, Limit: 100},
			{TaskID: "task-a", After: all[len(all)-2], Limit: 100},
			{TaskID: "task-a", Limit: 0},
		}
		pages, errs := staleResults(len(reqs))
		br.ReadBatch(ctx, reqs, pages, errs)
		for i, r := range reqs {
			name := fmt.Sprintf("request %d (after %s, limit %d)", i, r.After, r.Limit)
			require.NoError(t, errs[i], name)
			want, err := store.Read(ctx, r.TaskID, r.After, r.Limit)
			require.NoError(t, err, name)
			requireSamePage(t, want, pages[i], name)
		}
		assert.True(t, pages[0].RetentionGap, "a zero cursor before dropped events has a gap")
		assert.True(t, pages[1].RetentionGap, "a cursor before the last dropped event has a gap")
		assert.False(t, pages[2].RetentionGap, "no gap after the oldest retained event")
		assert.True(t, pages[4].RetentionGap, "a limit of 0 still reports the gap")
	})
}

// batchReader returns store as a BatchReader or skips the test.
func batchReader(tb testing.TB, store contracts.EventStore) contracts.BatchReader {
	tb.Helper()
	br, ok := store.(contracts.BatchReader)
	if !ok {
		tb.Skipf("storetest: %T does not implement contracts.BatchReader", store)
	}
	return br
}

var errStale = errors.New("storetest: stale result the store must overwrite")

// staleResults returns n pages and errors filled with stale values, as a
// caller reusing its slices would pass them.
func staleResults(n int) ([]contracts.EventPage, []error) {
	pages := make([]contracts.EventPage, n)
	errs := make([]error, n)
	for i := range pages {
		pages[i] = contracts.EventPage{
			Events:       []contracts.TaskEvent{{TaskID: "stale", EventID: contracts.EventID{Ms: 1}}},
			Ended:        true,
			RetentionGap: true,
		}
		errs[i] = errStale
	}
	return pages, errs
}

// requireSamePage fails unless got holds the same events and flags as want.
func requireSamePage(tb testing.TB, want, got contracts.EventPage, name string) {
	tb.Helper()
	require.Equal(tb, eventIDs(want.Events), eventIDs(got.Events), "%s: ids", name)
	for i := range want.Events {
		w, g := want.Events[i], got.Events[i]
		require.Equal(tb, w.Type, g.Type, "%s: event %d", name, i)
		require.Equal(tb, w.TaskID, g.TaskID, "%s: event %d", name, i)
		require.JSONEq(tb, string(w.Payload), string(g.Payload), "%s: event %d", name, i)
		requireSameTime(tb, w.CreatedAt, g.CreatedAt, fmt.Sprintf("%s: event %d createdAt", name, i))
	}
	require.Equal(tb, want.Ended, got.Ended, "%s: Ended", name)
	require.Equal(tb, want.RetentionGap, got.RetentionGap, "%s: RetentionGap", name)
}
