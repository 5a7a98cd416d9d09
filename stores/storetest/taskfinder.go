package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// runTaskFinder checks contracts.TaskFinder on registries that implement
// it (skipped otherwise): the task a key names is found with its current
// state, also once it ended; keys are scoped by owner; unknown keys, the
// empty key and the losing record of an idempotency race are not found.
func runTaskFinder(t *testing.T, newRegistry func(t *testing.T) contracts.TaskRegistry) {
	t.Run("FindByClientRequestID", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		tf, ok := reg.(contracts.TaskFinder)
		if !ok {
			t.Skipf("storetest: %T does not implement contracts.TaskFinder", reg)
		}
		want := newTask("task-1", "owner-1", "req-1")
		_, created, err := reg.Create(ctx, want)
		require.NoError(t, err)
		require.True(t, created)
		_, created, err = reg.Create(ctx, newTask("task-2", "owner-1", "req-1"))
		require.NoError(t, err)
		require.False(t, created)

		got, err := tf.FindByClientRequestID(ctx, "owner-1", "req-1")
		require.NoError(t, err)
		requireSameTask(t, want, got)

		_, err = reg.UpdateStatus(ctx, "task-1", contracts.StatusRunning)
		require.NoError(t, err)
		_, err = reg.UpdateStatus(ctx, "task-1", contracts.StatusFailed)
		require.NoError(t, err)
		got, err = tf.FindByClientRequestID(ctx, "owner-1", "req-1")
		require.NoError(t, err, "an ended task is found while it is retained")
		require.Equal(t, "task-1", got.TaskID)
		require.Equal(t, contracts.StatusFailed, got.Status)

		for _, tc := range []struct{ owner, request string }{
			{"owner-2", "req-1"}, // another owner's key
			{"owner-1", "req-2"}, // never used
			{"owner-1", ""},      // no key
			{"owner-", "1:req-1"},
		} {
			_, err := tf.FindByClientRequestID(ctx, tc.owner, tc.request)
			require.ErrorIs(t, err, contracts.ErrNotFound, "%q/%q", tc.owner, tc.request)
		}
	})
}
