package redisstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

func openSuspension(taskID, suspendID string, expires time.Time) contracts.SuspensionRecord {
	return contracts.SuspensionRecord{
		TaskID: taskID, SuspendID: suspendID, OwnerID: "o", Kind: contracts.KindUserActionRequired,
		ReasonCode: "APPROVE", AllowedActions: []string{"approve"}, SchemaVersion: 1, ExpiresAt: expires,
		Interaction: map[string]any{"form": map[string]any{"fields": []any{"a", "b"}}},
	}
}

// TestSuspensionIndexes follows one suspension through its indexes: in the
// open set while OPEN with a deadline, in the pending set once RESOLVED,
// out of both once dispatched, and with the terminal TTL from then on.
func TestSuspensionIndexes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	s, c, p := newStores(t, redisstore.Options{Clock: func() time.Time { return now },
		ActiveTTL: time.Hour, TerminalTTL: 10 * time.Minute})
	rec := openSuspension("task", "s1", now.Add(time.Minute))
	require.NoError(t, s.Suspensions.Create(ctx, rec))
	key := p + "{susp}:4:task:s1"
	members := func(index string) []string {
		m, err := c.ZRange(ctx, p+"{susp}:"+index, 0, -1).Result()
		require.NoError(t, err)
		return m
	}
	assert.Equal(t, []string{"4:task:s1"}, members("open"))
	assert.Empty(t, members("pending"))
	assert.InDelta(t, time.Hour, pttl(t, c, key), float64(time.Minute))

	got, err := s.Suspensions.Get(ctx, "task", "s1")
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionOpen, got.Status)
	assert.Equal(t, contracts.HandoffNone, got.Handoff)
	assert.Equal(t, rec.Interaction, got.Interaction)
	assert.True(t, got.CreatedAt.Equal(now))

	won, ok, err := s.Suspensions.Resolve(ctx, "task", "s1", contracts.Resolution{
		Status: contracts.SuspensionResolved, ClientActionID: "a1"})
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, contracts.HandoffPending, won.Handoff)
	assert.True(t, won.ResolvedAt.Equal(now), "a zero At means the clock")
	assert.Empty(t, members("open"))
	assert.Equal(t, []string{"4:task:s1"}, members("pending"))

	_, err = s.Suspensions.MarkResumeDispatched(ctx, "task", "s1")
	require.NoError(t, err)
	assert.Empty(t, members("pending"))
	assert.LessOrEqual(t, pttl(t, c, key), 10*time.Minute)
	assert.Greater(t, pttl(t, c, key), 9*time.Minute)
}

// TestPendingHandoffsDropsExpiredEntries: an index entry whose record has
// expired is not returned and is removed.
func TestPendingHandoffsDropsExpiredEntries(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, p := newStores(t, redisstore.Options{})
	for _, id := range []string{"s1", "s2"} {
		require.NoError(t, s.Suspensions.Create(ctx, openSuspension("task", id, time.Time{})))
		_, ok, err := s.Suspensions.Resolve(ctx, "task", id, contracts.Resolution{
			Status: contracts.SuspensionResolved, ClientActionID: "a-" + id})
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.NoError(t, c.Del(ctx, p+"{susp}:4:task:s1").Err()) // as if its TTL ran out
	pending, err := s.Suspensions.(contracts.SuspensionMaintenance).PendingHandoffs(ctx, 0)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.Equal(t, "s2", pending[0].SuspendID)
	left, err := c.ZRange(ctx, p+"{susp}:pending", 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"4:task:s2"}, left)
}

// TestExpireOpenInBatches expires more suspensions than one script batch
// holds, leaving later deadlines and resolved ones alone.
func TestExpireOpenInBatches(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, c, p := newStores(t, redisstore.Options{})
	const due = 300
	for i := range due {
		require.NoError(t, s.Suspensions.Create(ctx, openSuspension(fmt.Sprint("t", i), "s", base.Add(time.Duration(i)*time.Second))))
	}
	require.NoError(t, s.Suspensions.Create(ctx, openSuspension("later", "s", base.Add(time.Hour))))
	require.NoError(t, s.Suspensions.Create(ctx, openSuspension("resolved", "s", base)))
	_, ok, err := s.Suspensions.Resolve(ctx, "resolved", "s", contracts.Resolution{Status: contracts.SuspensionCancelled})
	require.NoError(t, err)
	require.True(t, ok)

	cut := base.Add(due * time.Second)
	n, err := s.Suspensions.(contracts.SuspensionMaintenance).ExpireOpen(ctx, cut)
	require.NoError(t, err)
	assert.Equal(t, due, n)
	got, err := s.Suspensions.Get(ctx, "t7", "s")
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionExpired, got.Status)
	assert.True(t, got.ResolvedAt.Equal(cut))
	later, err := s.Suspensions.Get(ctx, "later", "s")
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionOpen, later.Status)
	left, err := c.ZRange(ctx, p+"{susp}:open", 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"5:later:s"}, left)

	n, err = s.Suspensions.(contracts.SuspensionMaintenance).ExpireOpen(ctx, cut)
	require.NoError(t, err)
	assert.Zero(t, n)
}
