package redisstore_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// clock is a settable clock safe for concurrent reads.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func receipt(taskID, actionID string) contracts.ActionReceipt {
	return contracts.ActionReceipt{TaskID: taskID, SuspendID: "s", ClientActionID: actionID,
		ActionType: "approve", Payload: json.RawMessage(`{"ok":true}`), ActorID: "o"}
}

// TestReceiptExpiry: Redis expires a receipt at its ExpiresAt (measured by
// the store clock at Save), Get refuses it once the clock passes
// ExpiresAt even while Redis still holds it, and Save then replaces it.
func TestReceiptExpiry(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	clk := newClock(time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC))
	s, c, p := newStores(t, redisstore.Options{Clock: clk.Now, ReceiptTTL: time.Hour})

	r, stored, err := s.Receipts.Save(ctx, receipt("task", "a1"))
	require.NoError(t, err)
	require.True(t, stored)
	assert.True(t, r.CreatedAt.Equal(clk.Now()))
	assert.True(t, r.ExpiresAt.Equal(clk.Now().Add(time.Hour)), "ReceiptTTL fills ExpiresAt")
	key := p + "{rcpt}:4:task:a1"
	assert.InDelta(t, time.Hour, pttl(t, c, key), float64(time.Minute))

	clk.Advance(time.Hour)
	_, err = s.Receipts.Get(ctx, "task", "a1")
	require.ErrorIs(t, err, contracts.ErrNotFound, "expired by the store clock")
	assert.Greater(t, pttl(t, c, key), time.Duration(0), "Redis still holds it")

	again := receipt("task", "a1")
	again.ActionType = "reject"
	r2, stored, err := s.Receipts.Save(ctx, again)
	require.NoError(t, err)
	assert.True(t, stored, "an expired receipt is replaced")
	got, err := s.Receipts.Get(ctx, "task", "a1")
	require.NoError(t, err)
	assert.Equal(t, r2, got)
	assert.Equal(t, "reject", got.ActionType)
}

// TestDeleteExpiredCountsReceiptsRedisDropped: a receipt that Redis
// already expired by TTL is still counted once by DeleteExpired, which
// empties the index; a live one is kept.
func TestDeleteExpiredCountsReceiptsRedisDropped(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, p := newStores(t, redisstore.Options{})
	short := receipt("task", "short")
	short.ExpiresAt = time.Now().Add(100 * time.Millisecond)
	_, stored, err := s.Receipts.Save(ctx, short)
	require.NoError(t, err)
	require.True(t, stored)
	long := receipt("task", "long")
	long.ExpiresAt = time.Now().Add(time.Hour)
	_, _, err = s.Receipts.Save(ctx, long)
	require.NoError(t, err)

	require.Eventually(t, func() bool { return pttl(t, c, p+"{rcpt}:4:task:short") == -2 },
		5*time.Second, 10*time.Millisecond, "Redis expires the receipt by itself")
	n, err := s.Receipts.DeleteExpired(ctx, time.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	left, err := c.ZRange(ctx, p+"{rcpt}:expiry", 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"4:task:long"}, left)
	_, err = s.Receipts.Get(ctx, "task", "long")
	require.NoError(t, err)

	n, err = s.Receipts.DeleteExpired(ctx, long.ExpiresAt)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, time.Duration(-2), pttl(t, c, p+"{rcpt}:4:task:long"))
}

// TestReceiptsWithoutExpiry: with a negative ReceiptTTL a receipt saved
// without ExpiresAt never expires and is never swept.
func TestReceiptsWithoutExpiry(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, p := newStores(t, redisstore.Options{ReceiptTTL: -1})
	r, stored, err := s.Receipts.Save(ctx, receipt("task", "a"))
	require.NoError(t, err)
	require.True(t, stored)
	assert.True(t, r.ExpiresAt.IsZero())
	assert.Equal(t, time.Duration(-1), pttl(t, c, p+"{rcpt}:4:task:a"))
	n, err := s.Receipts.DeleteExpired(ctx, time.Now().Add(1000*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = s.Receipts.Get(ctx, "task", "a")
	require.NoError(t, err)
}
