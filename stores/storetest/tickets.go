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

// RunTicketStore checks a contracts.TicketStore: a ticket comes back once
// with its task, auth and expiry; a second Take, an unknown key and an
// expired ticket are ErrNotFound; of many concurrent Takes of one key
// exactly one wins; keys are independent. newStore gets the clock the
// store must use for expiry; the test moves it forward.
func RunTicketStore(t *testing.T, newStore func(t *testing.T, clock func() time.Time) contracts.TicketStore) {
	base := time.Now().Round(time.Millisecond)
	ticket := func(task string, ttl time.Duration) contracts.StreamTicket {
		return contracts.StreamTicket{TaskID: task, ExpiresAt: base.Add(ttl), Auth: contracts.AuthContext{
			Subject: "alice", Scopes: []string{"read", "write"}, AppID: "app", Attributes: map[string]any{"tenant": "t1"}}}
	}
	ctx := context.Background()

	t.Run("taken once", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, func() time.Time { return base })
		want := ticket("task-1", time.Minute)
		require.NoError(t, s.Put(ctx, "k1", want))
		got, err := s.Take(ctx, "k1")
		require.NoError(t, err)
		assert.Equal(t, want.TaskID, got.TaskID)
		assert.Equal(t, want.Auth, got.Auth)
		assert.True(t, want.ExpiresAt.Equal(got.ExpiresAt), "%v vs %v", want.ExpiresAt, got.ExpiresAt)
		_, err = s.Take(ctx, "k1")
		assert.ErrorIs(t, err, contracts.ErrNotFound, "single use")
		_, err = s.Take(ctx, "never-stored")
		assert.ErrorIs(t, err, contracts.ErrNotFound)
	})

	t.Run("keys are independent", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, func() time.Time { return base })
		for i := range 3 {
			require.NoError(t, s.Put(ctx, fmt.Sprint("key-", i), ticket(fmt.Sprint("task-", i), time.Minute)))
		}
		for _, i := range []int{2, 0, 1} {
			got, err := s.Take(ctx, fmt.Sprint("key-", i))
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprint("task-", i), got.TaskID)
		}
	})

	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		var now atomic.Int64
		now.Store(base.UnixNano())
		s := newStore(t, func() time.Time { return time.Unix(0, now.Load()) })
		require.NoError(t, s.Put(ctx, "short", ticket("task", 50*time.Millisecond)))
		require.NoError(t, s.Put(ctx, "gone", ticket("task", -time.Second)))
		now.Store(base.Add(51 * time.Millisecond).UnixNano())
		_, err := s.Take(ctx, "short")
		assert.ErrorIs(t, err, contracts.ErrNotFound)
		_, err = s.Take(ctx, "gone")
		assert.ErrorIs(t, err, contracts.ErrNotFound)
	})

	t.Run("concurrent takes: one wins", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, func() time.Time { return base })
		require.NoError(t, s.Put(ctx, "race", ticket("task", time.Minute)))
		var wins, misses atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Take(ctx, "race")
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, contracts.ErrNotFound):
					misses.Add(1)
				}
			}()
		}
		wg.Wait()
		assert.EqualValues(t, 1, wins.Load())
		assert.EqualValues(t, 19, misses.Load())
	})
}
