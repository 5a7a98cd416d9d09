package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// runTaskLister checks contracts.TaskLister on registries that implement it
// (skipped otherwise): newest-first order with ties broken by task id,
// owners kept apart, pagination without gaps or repeats also while tasks
// are created, the filters, the scan bound, the headers, and that losers of
// an idempotency race are never listed.
func runTaskLister(t *testing.T, newRegistry func(t *testing.T) contracts.TaskRegistry) {
	t.Run("ListNewestFirst", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		tl := taskLister(t, reg)
		base := ms(time.Now())
		// Same millisecond for b, c and d (sub-millisecond parts do not count).
		at := map[string]time.Time{
			"a": base.Add(-time.Second),
			"b": base.Add(100 * time.Microsecond), "c": base.Add(900 * time.Microsecond), "d": base,
			"e": base.Add(2 * time.Millisecond),
		}
		for _, id := range []string{"c", "a", "e", "d", "b"} {
			createAt(t, reg, id, "owner-1", "demo", at[id])
		}
		createAt(t, reg, "x", "owner-2", "demo", base)

		page, err := tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-1", Limit: 10})
		require.NoError(t, err)
		assert.Equal(t, []string{"e", "d", "c", "b", "a"}, headerIDs(page.Tasks))
		assert.True(t, page.Next.IsZero(), "the whole listing fits: no next cursor")
		for _, h := range page.Tasks {
			assert.Equal(t, "owner-1", h.OwnerID)
			requireSameTime(t, ms(at[h.TaskID]), ms(h.CreatedAt), h.TaskID+": CreatedAt")
		}

		page, err = tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-2", Limit: 10})
		require.NoError(t, err)
		assert.Equal(t, []string{"x"}, headerIDs(page.Tasks))

		page, err = tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "nobody", Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, page.Tasks)
		assert.True(t, page.Next.IsZero())

		page, err = tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-1", Limit: 0})
		require.NoError(t, err)
		assert.Empty(t, page.Tasks, "a zero limit lists nothing")

		_, err = tl.ListTasks(ctx, contracts.TaskListQuery{Limit: 10})
		require.Error(t, err, "the owner is required")
	})

	t.Run("ListHeaders", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		tl := taskLister(t, reg)
		createAt(t, reg, "t1", "owner-1", "report", ms(time.Now()))
		_, err := reg.UpdateStatus(ctx, "t1", contracts.StatusRunning)
		require.NoError(t, err)
		rec, err := reg.RequestCancellation(ctx, "t1", "stop")
		require.NoError(t, err)

		page, err := tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-1", Limit: 1})
		require.NoError(t, err)
		require.Len(t, page.Tasks, 1)
		h := page.Tasks[0]
		assert.Equal(t, "t1", h.TaskID)
		assert.Equal(t, "report", h.TaskType)
		assert.Equal(t, contracts.StatusRunning, h.Status)
		assert.True(t, h.CancelRequested)
		requireSameTime(t, rec.UpdatedAt, h.UpdatedAt, "UpdatedAt")
	})

	t.Run("ListPagesWhileCreating", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		tl := taskLister(t, reg)
		base := ms(time.Now())
		var want []string
		for i := 20; i >= 1; i-- { // t20 is the newest
			want = append(want, fmt.Sprintf("t%02d", i))
		}
		for i := 1; i <= 20; i++ {
			// Pairs share a millisecond, so ties are paged through too.
			createAt(t, reg, fmt.Sprintf("t%02d", i), "owner-1", "demo", base.Add(time.Duration(i/2)*time.Millisecond))
		}
		var got []string
		q := contracts.TaskListQuery{OwnerID: "owner-1", Limit: 3}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 20, "the listing does not end")
			page, err := tl.ListTasks(ctx, q)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page.Tasks), q.Limit)
			got = append(got, headerIDs(page.Tasks)...)
			// New tasks arrive between pages; they sort before every cursor.
			createAt(t, reg, fmt.Sprintf("new-%d", pages), "owner-1", "demo", base.Add(time.Hour))
			if page.Next.IsZero() {
				break
			}
			q.After = page.Next
		}
		assert.Equal(t, want, got, "every task exactly once, in order, none of the new ones")

		// A cursor survives its text form.
		page, err := tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-1", Limit: 2})
		require.NoError(t, err)
		after, err := contracts.ParseTaskCursor(page.Next.String())
		require.NoError(t, err)
		next, err := tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-1", Limit: 2, After: after})
		require.NoError(t, err)
		require.Len(t, next.Tasks, 2)
		assert.NotContains(t, headerIDs(page.Tasks), next.Tasks[0].TaskID)
	})

	t.Run("ListFilters", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		tl := taskLister(t, reg)
		base := ms(time.Now())
		type spec struct {
			id, typ string
			path    []contracts.TaskStatus
		}
		run, done, fail := contracts.StatusRunning, contracts.StatusCompleted, contracts.StatusFailed
		specs := []spec{
			{"a1", "alpha", nil}, {"a2", "alpha", []contracts.TaskStatus{run}},
			{"a3", "alpha", []contracts.TaskStatus{run, done}}, {"b1", "beta", []contracts.TaskStatus{run}},
			{"b2", "beta", []contracts.TaskStatus{fail}}, {"c1", "gamma", []contracts.TaskStatus{run, done}},
		}
		for i, s := range specs {
			createAt(t, reg, s.id, "owner-1", s.typ, base.Add(time.Duration(i)*time.Millisecond))
			for _, st := range s.path {
				_, err := reg.UpdateStatus(ctx, s.id, st)
				require.NoError(t, err)
			}
		}
		cases := []struct {
			name     string
			statuses []contracts.TaskStatus
			types    []string
			want     []string
		}{
			{"no filter", nil, nil, []string{"c1", "b2", "b1", "a3", "a2", "a1"}},
			{"running", []contracts.TaskStatus{run}, nil, []string{"b1", "a2"}},
			{"terminal", []contracts.TaskStatus{done, fail}, nil, []string{"c1", "b2", "a3"}},
			{"type", nil, []string{"alpha"}, []string{"a3", "a2", "a1"}},
			{"two types", nil, []string{"gamma", "beta"}, []string{"c1", "b2", "b1"}},
			{"type and status", []contracts.TaskStatus{run}, []string{"alpha", "gamma"}, []string{"a2"}},
			{"nothing matches", []contracts.TaskStatus{contracts.StatusCancelled}, nil, nil},
		}
		for _, tc := range cases {
			for _, scan := range []int{0, 1, 2} {
				q := contracts.TaskListQuery{OwnerID: "owner-1", Statuses: tc.statuses, TaskTypes: tc.types, Limit: 2, ScanLimit: scan}
				var got []string
				for pages := 0; ; pages++ {
					require.Less(t, pages, 10, "%s: the listing does not end", tc.name)
					page, err := tl.ListTasks(ctx, q)
					require.NoError(t, err)
					require.LessOrEqual(t, len(page.Tasks), q.Limit)
					got = append(got, headerIDs(page.Tasks)...)
					for _, h := range page.Tasks {
						require.True(t, q.Matches(h), "%s: %s does not match", tc.name, h.TaskID)
					}
					if page.Next.IsZero() {
						break
					}
					q.After = page.Next
				}
				assert.Equal(t, tc.want, got, "%s, scan limit %d", tc.name, scan)
			}
		}
	})

	t.Run("ListScanBound", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		tl := taskLister(t, reg)
		base := ms(time.Now())
		for i := range 6 {
			typ := "skip"
			if i == 0 {
				typ = "keep" // the oldest
			}
			createAt(t, reg, fmt.Sprintf("t%d", i), "owner-1", typ, base.Add(time.Duration(i)*time.Millisecond))
		}
		page, err := tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-1", TaskTypes: []string{"keep"}, Limit: 1, ScanLimit: 3})
		require.NoError(t, err)
		assert.Empty(t, page.Tasks, "three tasks examined, none matches")
		require.False(t, page.Next.IsZero(), "the page is short, not the end")
		assert.Equal(t, "t3", page.Next.TaskID, "the next page starts after the last examined task")
	})

	t.Run("ListNeverShowsLosers", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		tl := taskLister(t, reg)
		const n = 20
		together(n, func(i int) {
			_, _, _ = reg.Create(ctx, newTask(fmt.Sprintf("task-%d", i), "owner-1", "same-request"))
		})
		winner, _, err := reg.Create(ctx, newTask("probe", "owner-1", "same-request"))
		require.NoError(t, err)
		for range 2 { // the second listing reads an index the first may have pruned
			page, err := tl.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "owner-1", Limit: 100})
			require.NoError(t, err)
			assert.Equal(t, []string{winner.TaskID}, headerIDs(page.Tasks))
		}
	})
}

// taskLister returns reg as a TaskLister or skips the test.
func taskLister(tb testing.TB, reg contracts.TaskRegistry) contracts.TaskLister {
	tb.Helper()
	tl, ok := reg.(contracts.TaskLister)
	if !ok {
		tb.Skipf("storetest: %T does not implement contracts.TaskLister", reg)
	}
	return tl
}

// createAt creates an ACCEPTED task of owner and type created at at.
func createAt(tb testing.TB, reg contracts.TaskRegistry, id, owner, typ string, at time.Time) {
	tb.Helper()
	task := newTask(id, owner, "req-"+id)
	task.TaskType, task.CreatedAt, task.UpdatedAt = typ, at, at
	_, created, err := reg.Create(context.Background(), task)
	require.NoError(tb, err)
	require.True(tb, created, id)
}

func headerIDs(hs []contracts.TaskHeader) []string {
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.TaskID)
	}
	return ids
}
