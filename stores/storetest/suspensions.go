package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// RunSuspensionStore checks a suspension store: create and get,
// ErrAlreadyExists, ErrNotFound, Resolve as a compare-and-set (exactly one
// of 20 concurrent resolves wins and the losers get the winner's record),
// EXPIRED and CANCELLED resolutions, pending handoffs and their dispatch,
// and ExpireOpen. newStore must return a fresh, empty store on each call.
func RunSuspensionStore(t *testing.T, newStore func(t *testing.T) SuspensionStore) {
	t.Helper()

	t.Run("CreateAndGet", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		want := newSuspension("task-1", "s-1", ms(time.Now().Add(time.Hour)))
		require.NoError(t, store.Create(ctx, want))
		got, err := store.Get(ctx, "task-1", "s-1")
		require.NoError(t, err)
		requireSameSuspension(t, want, got)
		assert.Equal(t, contracts.SuspensionOpen, got.Status)
		assert.Equal(t, contracts.HandoffNone, got.Handoff)
		assert.Empty(t, got.SuccessfulActionID)
		assert.True(t, got.ResolvedAt.IsZero())
	})

	t.Run("CreateTwice", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		first := newSuspension("task-1", "s-1", time.Time{})
		require.NoError(t, store.Create(ctx, first))
		// Another suspension under the taken id. It differs from the first
		// on purpose: a store may take a record equal to the stored one for
		// a retry of the call that stored it (records carry millisecond
		// timestamps, so two made within one millisecond are equal).
		other := newSuspension("task-1", "s-1", time.Time{})
		other.CreatedAt = first.CreatedAt.Add(time.Millisecond)
		other.ReasonCode = "OTHER"
		err := store.Create(ctx, other)
		require.ErrorIs(t, err, contracts.ErrAlreadyExists)
		require.NoError(t, store.Create(ctx, newSuspension("task-2", "s-1", time.Time{})),
			"suspension ids are scoped by task")
		require.NoError(t, store.Create(ctx, newSuspension("task-1", "s-2", time.Time{})))
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Create(ctx, newSuspension("task-1", "s-1", time.Time{})))
		_, err := store.Get(ctx, "task-1", "missing")
		require.ErrorIs(t, err, contracts.ErrNotFound)
		_, err = store.Get(ctx, "missing", "s-1")
		require.ErrorIs(t, err, contracts.ErrNotFound)
		_, _, err = store.Resolve(ctx, "task-1", "missing", resolved("a-1"))
		require.ErrorIs(t, err, contracts.ErrNotFound)
		_, err = store.MarkResumeDispatched(ctx, "task-1", "missing")
		require.ErrorIs(t, err, contracts.ErrNotFound)
	})

	t.Run("ResolveIsCompareAndSet", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Create(ctx, newSuspension("task-1", "s-1", time.Time{})))
		res := resolved("a-1")
		got, won, err := store.Resolve(ctx, "task-1", "s-1", res)
		require.NoError(t, err)
		require.True(t, won)
		assert.Equal(t, contracts.SuspensionResolved, got.Status)
		assert.Equal(t, "a-1", got.SuccessfulActionID)
		assert.Equal(t, contracts.HandoffPending, got.Handoff)
		requireSameTime(t, res.At, got.ResolvedAt, "ResolvedAt")

		for _, again := range []contracts.Resolution{
			resolved("a-2"),
			{Status: contracts.SuspensionExpired, At: res.At.Add(time.Second)},
			{Status: contracts.SuspensionCancelled, At: res.At.Add(time.Second)},
		} {
			cur, won, err := store.Resolve(ctx, "task-1", "s-1", again)
			require.NoError(t, err)
			assert.False(t, won, "a resolved suspension cannot be resolved again (%s)", again.Status)
			assert.Equal(t, contracts.SuspensionResolved, cur.Status)
			assert.Equal(t, "a-1", cur.SuccessfulActionID, "the loser gets the current record")
			requireSameTime(t, res.At, cur.ResolvedAt, "ResolvedAt")
		}
		stored, err := store.Get(ctx, "task-1", "s-1")
		require.NoError(t, err)
		assert.Equal(t, "a-1", stored.SuccessfulActionID)
	})

	t.Run("ResolveWithoutAction", func(t *testing.T) {
		t.Parallel()
		for _, status := range []contracts.SuspensionStatus{contracts.SuspensionExpired, contracts.SuspensionCancelled} {
			t.Run(string(status), func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				store := newStore(t)
				require.NoError(t, store.Create(ctx, newSuspension("task-1", "s-1", time.Time{})))
				at := ms(time.Now())
				got, won, err := store.Resolve(ctx, "task-1", "s-1", contracts.Resolution{Status: status, At: at})
				require.NoError(t, err)
				require.True(t, won)
				assert.Equal(t, status, got.Status)
				requireSameTime(t, at, got.ResolvedAt, "ResolvedAt")
				assert.Empty(t, got.SuccessfulActionID)
				assert.NotEqual(t, contracts.HandoffPending, got.Handoff, "only RESOLVED leaves a handoff")

				_, won, err = store.Resolve(ctx, "task-1", "s-1", resolved("late"))
				require.NoError(t, err)
				assert.False(t, won, "a %s suspension accepts no action", status)
				pending, err := store.PendingHandoffs(ctx, 10)
				require.NoError(t, err)
				assert.Empty(t, pending)
			})
		}
	})

	t.Run("ConcurrentResolve", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Create(ctx, newSuspension("task-1", "s-1", time.Time{})))
		const n = 20
		recs := make([]contracts.SuspensionRecord, n)
		wins := make([]bool, n)
		errs := make([]error, n)
		together(n, func(i int) {
			recs[i], wins[i], errs[i] = store.Resolve(ctx, "task-1", "s-1", resolved(fmt.Sprintf("action-%d", i)))
		})
		winner := ""
		for i := range n {
			require.NoError(t, errs[i])
			if wins[i] {
				require.Empty(t, winner, "two resolves won")
				winner = fmt.Sprintf("action-%d", i)
			}
		}
		require.NotEmpty(t, winner, "one of %d concurrent resolves must win", n)
		for i := range n {
			assert.Equal(t, contracts.SuspensionResolved, recs[i].Status, "caller %d", i)
			assert.Equal(t, winner, recs[i].SuccessfulActionID, "caller %d sees the winner", i)
		}
		stored, err := store.Get(ctx, "task-1", "s-1")
		require.NoError(t, err)
		assert.Equal(t, winner, stored.SuccessfulActionID)
	})

	t.Run("Handoffs", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		for _, task := range []string{"task-a", "task-b", "task-c", "task-d"} {
			require.NoError(t, store.Create(ctx, newSuspension(task, "s-1", time.Time{})))
		}
		for _, task := range []string{"task-a", "task-b"} {
			_, won, err := store.Resolve(ctx, task, "s-1", resolved("a-"+task))
			require.NoError(t, err)
			require.True(t, won)
		}
		_, _, err := store.Resolve(ctx, "task-c", "s-1", contracts.Resolution{Status: contracts.SuspensionExpired, At: ms(time.Now())})
		require.NoError(t, err)

		pending, err := store.PendingHandoffs(ctx, 10)
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"task-a", "task-b"}, suspensionTasks(pending), "RESOLVED with a PENDING handoff only")
		for _, p := range pending {
			assert.Equal(t, contracts.HandoffPending, p.Handoff)
			assert.Equal(t, "a-"+p.TaskID, p.SuccessfulActionID)
		}
		limited, err := store.PendingHandoffs(ctx, 1)
		require.NoError(t, err)
		assert.Len(t, limited, 1, "limit is respected")

		got, err := store.MarkResumeDispatched(ctx, "task-a", "s-1")
		require.NoError(t, err)
		assert.Equal(t, contracts.HandoffDispatched, got.Handoff)
		assert.Equal(t, contracts.SuspensionResolved, got.Status)
		assert.Equal(t, "a-task-a", got.SuccessfulActionID)
		stored, err := store.Get(ctx, "task-a", "s-1")
		require.NoError(t, err)
		assert.Equal(t, contracts.HandoffDispatched, stored.Handoff)

		pending, err = store.PendingHandoffs(ctx, 10)
		require.NoError(t, err)
		assert.Equal(t, []string{"task-b"}, suspensionTasks(pending))
	})

	t.Run("ExpireOpen", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		// Deadlines lie in the future so no store can expire them on its own
		// clock; before is the caller's notion of now.
		before := ms(time.Now().Add(2 * time.Hour))
		sus := map[string]time.Time{
			"past":      before.Add(-time.Minute),
			"at":        before,
			"future":    before.Add(time.Minute),
			"none":      {},
			"resolved":  before.Add(-time.Minute),
			"cancelled": before.Add(-time.Minute),
		}
		for id, exp := range sus {
			require.NoError(t, store.Create(ctx, newSuspension("task-1", id, exp)))
		}
		_, _, err := store.Resolve(ctx, "task-1", "resolved", resolved("a-1"))
		require.NoError(t, err)
		_, _, err = store.Resolve(ctx, "task-1", "cancelled", contracts.Resolution{Status: contracts.SuspensionCancelled, At: ms(time.Now())})
		require.NoError(t, err)

		n, err := store.ExpireOpen(ctx, before)
		require.NoError(t, err)
		assert.Equal(t, 2, n, "only OPEN suspensions with a deadline at or before the cutoff expire")
		want := map[string]contracts.SuspensionStatus{
			"past":      contracts.SuspensionExpired,
			"at":        contracts.SuspensionExpired,
			"future":    contracts.SuspensionOpen,
			"none":      contracts.SuspensionOpen,
			"resolved":  contracts.SuspensionResolved,
			"cancelled": contracts.SuspensionCancelled,
		}
		for id, status := range want {
			got, err := store.Get(ctx, "task-1", id)
			require.NoError(t, err)
			assert.Equal(t, status, got.Status, id)
			if status == contracts.SuspensionExpired {
				assert.False(t, got.ResolvedAt.IsZero(), "%s: ResolvedAt is set", id)
				assert.NotEqual(t, contracts.HandoffPending, got.Handoff)
			}
		}
		n, err = store.ExpireOpen(ctx, before)
		require.NoError(t, err)
		assert.Zero(t, n, "a second sweep moves nothing")
		_, won, err := store.Resolve(ctx, "task-1", "past", resolved("late"))
		require.NoError(t, err)
		assert.False(t, won, "an expired suspension accepts no action")
	})
}

// newSuspension returns an OPEN suspension; a zero expires means no deadline.
func newSuspension(taskID, suspendID string, expires time.Time) contracts.SuspensionRecord {
	return contracts.SuspensionRecord{
		TaskID:         taskID,
		SuspendID:      suspendID,
		OwnerID:        "owner-1",
		Status:         contracts.SuspensionOpen,
		Kind:           contracts.KindUserActionRequired,
		ReasonCode:     "APPROVAL",
		AllowedActions: []string{"approve", "reject"},
		SchemaVersion:  1,
		Interaction:    map[string]any{"title": "Approve?"},
		UIHints:        map[string]any{"style": "modal"},
		Handoff:        contracts.HandoffNone,
		CreatedAt:      ms(time.Now()),
		ExpiresAt:      expires,
	}
}

func resolved(clientActionID string) contracts.Resolution {
	return contracts.Resolution{Status: contracts.SuspensionResolved, ClientActionID: clientActionID, At: ms(time.Now())}
}

func suspensionTasks(recs []contracts.SuspensionRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.TaskID
	}
	return out
}

func requireSameSuspension(tb testing.TB, want, got contracts.SuspensionRecord) {
	tb.Helper()
	require.Equal(tb, want.TaskID, got.TaskID)
	assert.Equal(tb, want.SuspendID, got.SuspendID)
	assert.Equal(tb, want.OwnerID, got.OwnerID)
	assert.Equal(tb, want.Kind, got.Kind)
	assert.Equal(tb, want.ReasonCode, got.ReasonCode)
	assert.Equal(tb, want.AllowedActions, got.AllowedActions)
	assert.Equal(tb, want.SchemaVersion, got.SchemaVersion)
	assert.Equal(tb, want.Interaction, got.Interaction)
	assert.Equal(tb, want.UIHints, got.UIHints)
	requireSameTime(tb, want.CreatedAt, got.CreatedAt, "CreatedAt")
	requireSameTime(tb, want.ExpiresAt, got.ExpiresAt, "ExpiresAt")
}
