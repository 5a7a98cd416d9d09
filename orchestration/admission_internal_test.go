package orchestration

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// TestAdmissionKeepsOnlyWhatALimitNeeds: with both limits off a create
// leaves no subject state; with only the rate on a committed task is not
// counted, and the subject is forgotten once its bucket has refilled; with
// only MaxActiveTasks on the task is counted until it is seen ended.
func TestAdmissionKeepsOnlyWhatALimitNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	registry := memstore.NewTaskRegistry(memstore.Options{Clock: clock})
	subjects := func(a *admission) int {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.subjects)
	}

	off := newAdmission(SubjectLimits{MaxActiveTasks: -1, CreatesPerSecond: -1}, registry, clock)
	for i := 0; i < 3; i++ {
		tk, err := off.admit(ctx, "alice")
		require.NoError(t, err)
		tk.commit("t1")
	}
	assert.Zero(t, subjects(off), "both limits off: nothing kept")

	rated := newAdmission(SubjectLimits{MaxActiveTasks: -1, CreatesPerSecond: 2, CreateBurst: 4}, registry, clock)
	for i := 0; i < 2; i++ {
		tk, err := rated.admit(ctx, "alice")
		require.NoError(t, err)
		tk.commit("t1")
	}
	require.Equal(t, 1, subjects(rated), "two tokens spent: the bucket is kept")
	assert.Empty(t, rated.subjects["alice"].active, "no active count without MaxActiveTasks")
	now = now.Add(500 * time.Millisecond)
	rated.sweep(ctx)
	assert.Equal(t, 1, subjects(rated), "one token back of two: still kept")
	now = now.Add(500 * time.Millisecond)
	rated.sweep(ctx)
	assert.Zero(t, subjects(rated), "the bucket has refilled: forgotten")

	active := newAdmission(SubjectLimits{MaxActiveTasks: 2, CreatesPerSecond: -1}, registry, clock)
	tk, err := active.admit(ctx, "alice")
	require.NoError(t, err)
	tk.commit("gone") // not in the registry: seen ended by the sweep
	require.Equal(t, 1, subjects(active))
	assert.Len(t, active.subjects["alice"].active, 1)
	active.sweep(ctx)
	assert.Zero(t, subjects(active), "its task ended: forgotten")
}
