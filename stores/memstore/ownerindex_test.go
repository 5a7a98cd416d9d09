package memstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// The owner index follows task expiry: a task that expired is not listed
// (also before a sweep removed it) and its entry is gone once it is swept.
func TestOwnerIndexFollowsExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	stores := New(Options{Clock: clock.Now, TerminalTTL: time.Minute})
	reg := stores.Tasks.(*TaskRegistry)
	for _, id := range []string{"old", "live"} {
		_, _, err := stores.Tasks.Create(ctx, task(id, "alice", id))
		require.NoError(t, err)
		clock.Advance(time.Millisecond)
	}
	_, err := stores.Tasks.UpdateStatus(ctx, "old", contracts.StatusFailed)
	require.NoError(t, err)

	list := func() []string {
		page, err := reg.ListTasks(ctx, contracts.TaskListQuery{OwnerID: "alice", Limit: 10})
		require.NoError(t, err)
		var ids []string
		for _, h := range page.Tasks {
			ids = append(ids, h.TaskID)
		}
		return ids
	}
	assert.Equal(t, []string{"live", "old"}, list())

	clock.Advance(time.Minute)
	assert.Equal(t, []string{"live"}, list(), "an expired task is not listed")
	reg.mu.RLock()
	entries := len(reg.owners.owners["alice"])
	reg.mu.RUnlock()
	assert.Equal(t, 1, entries, "the listing swept the expired task out of the index")

	// Its idempotency key is free again; the new task is listed once.
	_, created, err := stores.Tasks.Create(ctx, task("again", "alice", "old"))
	require.NoError(t, err)
	require.True(t, created)
	assert.Equal(t, []string{"again", "live"}, list())

	_, err = stores.Tasks.UpdateStatus(ctx, "live", contracts.StatusCancelled)
	require.NoError(t, err)
	_, err = stores.Tasks.UpdateStatus(ctx, "again", contracts.StatusCancelled)
	require.NoError(t, err)
	clock.Advance(time.Minute)
	assert.Empty(t, list())
	reg.mu.RLock()
	_, kept := reg.owners.owners["alice"]
	reg.mu.RUnlock()
	assert.False(t, kept, "an owner without tasks leaves no index behind")
}

// The summary is folded on append, so the cap dropping the events it came
// from does not change it.
func TestSummarySurvivesTheCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := NewEventStore(Options{MaxEventsPerTask: 2})
	_, err := store.Append(ctx, "t", progress(t, 30))
	require.NoError(t, err)
	for range 5 {
		d, err := contracts.Message("chatter", "")
		require.NoError(t, err)
		_, err = store.Append(ctx, "t", d)
		require.NoError(t, err)
	}
	page, err := store.Read(ctx, "t", contracts.EventID{}, 10)
	require.NoError(t, err)
	require.True(t, page.RetentionGap, "the progress event was dropped")
	sums, err := store.Summaries(ctx, []string{"t"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"progress":30}`, string(sums[0].Progress))
	assert.Equal(t, page.Events[len(page.Events)-1].EventID, sums[0].LastEventID)
}

// An expired task's summary is the zero one.
func TestSummaryFollowsExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	store := NewEventStore(Options{Clock: clock.Now, TerminalTTL: time.Minute})
	_, err := store.Append(ctx, "t", completed(t))
	require.NoError(t, err)
	sums, err := store.Summaries(ctx, []string{"t"})
	require.NoError(t, err)
	assert.Equal(t, contracts.EventCompleted, sums[0].TerminalType)
	clock.Advance(time.Minute)
	sums, err = store.Summaries(ctx, []string{"t"})
	require.NoError(t, err)
	assert.Equal(t, contracts.TaskLogSummary{}, sums[0])
	assert.Zero(t, store.len(), "reading it removed the expired stream")
}
