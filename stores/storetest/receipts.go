package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// RunReceiptStore checks a contracts.ActionReceiptStore: save and get,
// create-if-absent per (TaskID, ClientActionID) also under 20 concurrent
// saves, ErrNotFound, and DeleteExpired. newStore must return a fresh, empty
// store on each call.
func RunReceiptStore(t *testing.T, newStore func(t *testing.T) contracts.ActionReceiptStore) {
	t.Helper()

	t.Run("SaveAndGet", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		want := newReceipt("task-1", "a-1", `{"approved":true}`, ms(time.Now().Add(time.Hour)))
		got, stored, err := store.Save(ctx, want)
		require.NoError(t, err)
		require.True(t, stored)
		requireSameReceipt(t, want, got)
		got, err = store.Get(ctx, "task-1", "a-1")
		require.NoError(t, err)
		requireSameReceipt(t, want, got)
	})

	t.Run("CreateIfAbsent", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		exp := ms(time.Now().Add(time.Hour))
		first := newReceipt("task-1", "a-1", `{"v":1}`, exp)
		_, stored, err := store.Save(ctx, first)
		require.NoError(t, err)
		require.True(t, stored)

		got, stored, err := store.Save(ctx, newReceipt("task-1", "a-1", `{"v":2}`, exp))
		require.NoError(t, err)
		assert.False(t, stored, "same (task, clientActionId) is not stored again")
		requireSameReceipt(t, first, got)
		got, err = store.Get(ctx, "task-1", "a-1")
		require.NoError(t, err)
		requireSameReceipt(t, first, got)

		for _, other := range []contracts.ActionReceipt{
			newReceipt("task-1", "a-2", `{"v":3}`, exp),
			newReceipt("task-2", "a-1", `{"v":4}`, exp),
		} {
			got, stored, err := store.Save(ctx, other)
			require.NoError(t, err)
			assert.True(t, stored, "%s/%s is a different key", other.TaskID, other.ClientActionID)
			requireSameReceipt(t, other, got)
		}
	})

	t.Run("ConcurrentSave", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		exp := ms(time.Now().Add(time.Hour))
		const n = 20
		recs := make([]contracts.ActionReceipt, n)
		stored := make([]bool, n)
		errs := make([]error, n)
		together(n, func(i int) {
			r := newReceipt("task-1", "a-1", fmt.Sprintf(`{"v":%d}`, i), exp)
			r.ActorID = fmt.Sprintf("actor-%d", i)
			recs[i], stored[i], errs[i] = store.Save(ctx, r)
		})
		winner := -1
		for i := range n {
			require.NoError(t, errs[i])
			if stored[i] {
				require.Equal(t, -1, winner, "two saves stored")
				winner = i
			}
		}
		require.NotEqual(t, -1, winner, "one of %d concurrent saves must store", n)
		for i := range n {
			assert.Equal(t, recs[winner].ActorID, recs[i].ActorID, "caller %d sees the stored receipt", i)
			assert.JSONEq(t, string(recs[winner].Payload), string(recs[i].Payload), "caller %d", i)
		}
		got, err := store.Get(ctx, "task-1", "a-1")
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("actor-%d", winner), got.ActorID)
	})

	t.Run("GetUnknown", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		_, _, err := store.Save(ctx, newReceipt("task-1", "a-1", `{}`, ms(time.Now().Add(time.Hour))))
		require.NoError(t, err)
		_, err = store.Get(ctx, "task-1", "missing")
		require.ErrorIs(t, err, contracts.ErrNotFound)
		_, err = store.Get(ctx, "missing", "a-1")
		require.ErrorIs(t, err, contracts.ErrNotFound)
	})

	t.Run("DeleteExpired", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		// Expiries lie in the future so no store drops them on its own
		// clock; the cutoff is passed explicitly.
		base := ms(time.Now().Add(time.Hour))
		receipts := map[string]time.Time{
			"early": base,
			"at":    base.Add(time.Minute),
			"late":  base.Add(2 * time.Hour),
		}
		for id, exp := range receipts {
			_, _, err := store.Save(ctx, newReceipt("task-1", id, `{}`, exp))
			require.NoError(t, err)
		}
		n, err := store.DeleteExpired(ctx, base.Add(time.Minute))
		require.NoError(t, err)
		assert.Equal(t, 2, n, "receipts expiring at or before the cutoff are removed")
		for _, id := range []string{"early", "at"} {
			_, err = store.Get(ctx, "task-1", id)
			require.ErrorIs(t, err, contracts.ErrNotFound, id)
		}
		_, err = store.Get(ctx, "task-1", "late")
		require.NoError(t, err)
		n, err = store.DeleteExpired(ctx, base.Add(time.Minute))
		require.NoError(t, err)
		assert.Zero(t, n, "a second sweep removes nothing")

		got, stored, err := store.Save(ctx, newReceipt("task-1", "early", `{"again":true}`, base.Add(3*time.Hour)))
		require.NoError(t, err)
		assert.True(t, stored, "a deleted receipt's key is free again")
		assert.JSONEq(t, `{"again":true}`, string(got.Payload))
	})
}

func newReceipt(taskID, clientActionID, payload string, expires time.Time) contracts.ActionReceipt {
	return contracts.ActionReceipt{
		TaskID:         taskID,
		SuspendID:      "s-1",
		ClientActionID: clientActionID,
		ActionType:     "approve",
		Payload:        json.RawMessage(payload),
		ActorID:        "actor-1",
		CreatedAt:      ms(time.Now()),
		ExpiresAt:      expires,
	}
}

func requireSameReceipt(tb testing.TB, want, got contracts.ActionReceipt) {
	tb.Helper()
	require.Equal(tb, want.TaskID, got.TaskID)
	assert.Equal(tb, want.SuspendID, got.SuspendID)
	assert.Equal(tb, want.ClientActionID, got.ClientActionID)
	assert.Equal(tb, want.ActionType, got.ActionType)
	assert.JSONEq(tb, string(want.Payload), string(got.Payload))
	assert.Equal(tb, want.ActorID, got.ActorID)
	requireSameTime(tb, want.CreatedAt, got.CreatedAt, "CreatedAt")
	requireSameTime(tb, want.ExpiresAt, got.ExpiresAt, "ExpiresAt")
}
