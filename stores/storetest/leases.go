package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// leaseTTL is the TTL of the leases the suite lets expire: long enough for
// a loaded machine to renew one before it expires, short enough to wait for.
const leaseTTL = 300 * time.Millisecond

// RunLeaseStore checks a contracts.LeaseStore on the store's own clock (a
// Redis server's TIME): acquire and renew by the holder, refusal for
// others while the lease runs, takeover once it expired, a late renewal
// that keeps a lease nobody took and reports one taken over as lost, a renewal with a zero TTL that hands the lease to
// the next TakeExpired, release by the holder only, TakeExpired's limit
// and order, and exactly one taker for each expired lease when 10
// sweepers race. newStore must return a fresh, empty store on each call.
func RunLeaseStore(t *testing.T, newStore func(t *testing.T) contracts.LeaseStore) {
	t.Helper()

	t.Run("AcquireAndRenew", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Acquire(ctx, "task-1", "a", time.Minute))
		require.NoError(t, store.Acquire(ctx, "task-1", "a", time.Minute), "the holder acquires its own lease again")
		require.ErrorIs(t, store.Acquire(ctx, "task-1", "b", time.Minute), contracts.ErrLeaseHeld)

		lost, err := store.Renew(ctx, "a", []string{"task-1", "unknown"}, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"unknown"}, lost, "a lease that does not exist is lost")
		lost, err = store.Renew(ctx, "b", []string{"task-1"}, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"task-1"}, lost, "another holder's lease is not renewed")
		lost, err = store.Renew(ctx, "a", nil, time.Minute)
		require.NoError(t, err)
		assert.Empty(t, lost)

		taken, err := store.TakeExpired(ctx, "sweeper", time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, taken, "a running lease is not expired")
	})

	t.Run("ExpiryAndTakeover", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Acquire(ctx, "task-1", "a", leaseTTL))
		taken := awaitExpired(t, store, "sweeper", 1)
		require.Len(t, taken, 1)
		assert.Equal(t, "task-1", taken[0].TaskID)
		assert.Equal(t, "a", taken[0].Holder, "the previous holder")
		assert.False(t, taken[0].Deadline.IsZero())

		again, err := store.TakeExpired(ctx, "other", time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, again, "a taken lease is not taken twice")
		lost, err := store.Renew(ctx, "a", []string{"task-1"}, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"task-1"}, lost, "the previous holder has lost it")
		require.ErrorIs(t, store.Acquire(ctx, "task-1", "a", time.Minute), contracts.ErrLeaseHeld,
			"the sweeper holds it now")
		lost, err = store.Renew(ctx, "sweeper", []string{"task-1"}, time.Minute)
		require.NoError(t, err)
		assert.Empty(t, lost, "the taker holds it")
	})

	t.Run("AcquireAfterExpiry", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Acquire(ctx, "task-1", "a", leaseTTL))
		require.Eventually(t, func() bool { return store.Acquire(ctx, "task-1", "b", time.Minute) == nil },
			5*time.Second, 10*time.Millisecond, "an expired lease is taken over by Acquire")
		lost, err := store.Renew(ctx, "a", []string{"task-1"}, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"task-1"}, lost)
	})

	t.Run("RenewLate", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Acquire(ctx, "task-1", "a", leaseTTL))
		require.NoError(t, store.Acquire(ctx, "task-2", "a", leaseTTL)) // expires with task-1 or later
		require.Eventually(t, func() bool { return store.Acquire(ctx, "task-2", "probe", time.Minute) == nil },
			5*time.Second, 10*time.Millisecond, "task-2's lease did not expire")
		lost, err := store.Renew(ctx, "a", []string{"task-1"}, time.Minute)
		require.NoError(t, err)
		assert.Empty(t, lost, "an expired lease nobody took over is still its holder's")
		taken, err := store.TakeExpired(ctx, "sweeper", time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, taken, "the renewed lease runs again")
		lost, err = store.Renew(ctx, "a", []string{"task-2"}, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, []string{"task-2"}, lost, "a lease taken over is lost")
	})

	t.Run("HandBack", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Acquire(ctx, "task-1", "a", time.Hour))
		require.NoError(t, store.Acquire(ctx, "task-2", "a", time.Hour))
		lost, err := store.Renew(ctx, "a", []string{"task-1"}, 0)
		require.NoError(t, err)
		assert.Empty(t, lost)
		taken, err := store.TakeExpired(ctx, "b", time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, taken, 1, "a lease renewed with a zero TTL is expired at once")
		assert.Equal(t, "task-1", taken[0].TaskID)
		assert.Equal(t, "a", taken[0].Holder)
		require.NoError(t, store.Acquire(ctx, "task-1", "b", time.Minute), "the taker may acquire it")
	})

	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		require.NoError(t, store.Acquire(ctx, "task-1", "a", time.Hour))
		require.NoError(t, store.Release(ctx, "task-1", "b"), "another holder's release is no error")
		require.ErrorIs(t, store.Acquire(ctx, "task-1", "b", time.Hour), contracts.ErrLeaseHeld, "and changes nothing")
		require.NoError(t, store.Release(ctx, "task-1", "a"))
		require.NoError(t, store.Release(ctx, "task-1", "a"), "releasing twice is no error")
		require.NoError(t, store.Release(ctx, "never", "a"))
		require.NoError(t, store.Acquire(ctx, "task-1", "b", time.Hour), "a released lease is free")

		require.NoError(t, store.Acquire(ctx, "task-2", "a", leaseTTL))
		require.NoError(t, store.Release(ctx, "task-2", "a"))
		require.NoError(t, store.Acquire(ctx, "task-3", "a", leaseTTL))
		taken := awaitExpired(t, store, "sweeper", 1)
		assert.Equal(t, "task-3", taken[0].TaskID, "a released lease never expires")
	})

	t.Run("TakeExpiredLimitAndOrder", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		for i := range 5 {
			require.NoError(t, store.Acquire(ctx, fmt.Sprint("task-", i), "a", time.Hour))
		}
		for i := range 5 { // hand them back one by one: deadlines in this order (ties: by id)
			_, err := store.Renew(ctx, "a", []string{fmt.Sprint("task-", i)}, 0)
			require.NoError(t, err)
		}
		first, err := store.TakeExpired(ctx, "b", time.Minute, 3)
		require.NoError(t, err)
		assert.Equal(t, []string{"task-0", "task-1", "task-2"}, leaseIDs(first), "oldest deadline first, at most limit")
		rest, err := store.TakeExpired(ctx, "b", time.Minute, 3)
		require.NoError(t, err)
		assert.Equal(t, []string{"task-3", "task-4"}, leaseIDs(rest))
		none, err := store.TakeExpired(ctx, "b", time.Minute, 0)
		require.NoError(t, err)
		assert.Empty(t, none)
	})

	t.Run("TakeExpiredRace", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		store := newStore(t)
		const tasks, sweepers = 20, 10
		var ids []string
		for i := range tasks {
			id := fmt.Sprint("task-", i)
			ids = append(ids, id)
			require.NoError(t, store.Acquire(ctx, id, "dead", time.Hour))
		}
		_, err := store.Renew(ctx, "dead", ids, 0)
		require.NoError(t, err)
		var mu sync.Mutex
		byTask := map[string][]string{}
		errs := make([]error, sweepers)
		together(sweepers, func(i int) {
			holder := fmt.Sprint("sweeper-", i)
			taken, err := store.TakeExpired(ctx, holder, time.Hour, 3)
			errs[i] = err
			mu.Lock()
			defer mu.Unlock()
			for _, l := range taken {
				byTask[l.TaskID] = append(byTask[l.TaskID], holder)
			}
		})
		for _, err := range errs {
			require.NoError(t, err)
		}
		assert.Len(t, byTask, tasks, "every expired lease was taken")
		for id, takers := range byTask {
			assert.Len(t, takers, 1, "%s taken by %v", id, takers)
		}
	})
}

// awaitExpired waits until TakeExpired gives holder n leases (taking them)
// and returns them.
func awaitExpired(tb testing.TB, store contracts.LeaseStore, holder string, n int) []contracts.Lease {
	tb.Helper()
	ctx := testContext(tb)
	var all []contracts.Lease
	require.Eventually(tb, func() bool {
		taken, err := store.TakeExpired(ctx, holder, time.Hour, n-len(all))
		if err != nil {
			return false
		}
		all = append(all, taken...)
		return len(all) >= n
	}, 5*time.Second, 10*time.Millisecond, "%d leases did not expire", n)
	return all
}

func leaseIDs(ls []contracts.Lease) []string {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.TaskID
	}
	return ids
}
