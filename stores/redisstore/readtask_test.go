package redisstore_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// TestReadTaskIsGetAndRead: ReadTask answers what Get and Read answer
// apart, for a missing task, a fresh one, one with events read from
// several cursors, an ended one and one whose log was trimmed.
func TestReadTaskIsGetAndRead(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _, _ := newStores(t, redisstore.Options{MaxEventsPerTask: 4})
	events := s.Events.(*redisstore.EventStore)

	_, _, err := events.ReadTask(ctx, "missing", contracts.EventID{}, 10)
	require.ErrorIs(t, err, contracts.ErrNotFound)
	_, _, err = events.ReadTask(ctx, "", contracts.EventID{}, 10)
	require.ErrorIs(t, err, contracts.ErrNotFound)

	task, _, err := s.Tasks.Create(ctx, demoTask("rt", "o", "r"))
	require.NoError(t, err)
	check := func(after contracts.EventID, limit int) {
		t.Helper()
		wantTask, err := s.Tasks.Get(ctx, task.TaskID)
		require.NoError(t, err)
		wantPage, err := s.Events.Read(ctx, task.TaskID, after, limit)
		require.NoError(t, err)
		gotTask, gotPage, err := events.ReadTask(ctx, task.TaskID, after, limit)
		require.NoError(t, err)
		assert.Equal(t, wantTask, gotTask)
		assert.Equal(t, wantPage, gotPage)
	}
	check(contracts.EventID{}, 10)

	var ids []contracts.EventID
	for i := range 7 {
		ev, err := s.Events.Append(ctx, task.TaskID, must(t)(contracts.Progress(float64(i), "", "")))
		require.NoError(t, err)
		ids = append(ids, ev.EventID)
	}
	_, err = s.Tasks.RequestCancellation(ctx, task.TaskID, "stop")
	require.NoError(t, err)
	check(contracts.EventID{}, 10) // trimmed: a retention gap from the start
	check(ids[4], 10)
	check(ids[5], 1)
	check(ids[6], 0)

	_, err = s.Events.Append(ctx, task.TaskID, must(t)(contracts.Cancelled("stop", "stopped")))
	require.NoError(t, err)
	check(ids[6], 10) // ended
}
