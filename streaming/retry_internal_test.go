package streaming

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffPacing(t *testing.T) {
	t.Run("doubles with jitter up to the cap", func(t *testing.T) {
		var b backoff
		now := time.Unix(1000, 0)
		base := retryMinDelay
		for attempt := 1; attempt <= 20; attempt++ {
			d, ok := b.next(now, time.Hour)
			require.True(t, ok)
			assert.GreaterOrEqual(t, d, base/2, "attempt %d", attempt)
			assert.LessOrEqual(t, d, base, "attempt %d", attempt)
			base = min(2*base, retryMaxDelay)
		}
	})
	t.Run("the last wait ends at the budget, then it gives up", func(t *testing.T) {
		var b backoff
		start := time.Unix(1000, 0)
		const budget = 300 * time.Millisecond
		now := start
		var waits []time.Duration
		for {
			d, ok := b.next(now, budget)
			if !ok {
				break
			}
			waits = append(waits, d)
			now = now.Add(d)
			require.Less(t, len(waits), 100)
		}
		assert.Equal(t, start.Add(budget), now, "retries go on until exactly the budget")
		assert.GreaterOrEqual(t, len(waits), 3)
	})
	t.Run("a reset starts a new run", func(t *testing.T) {
		var b backoff
		now := time.Unix(1000, 0)
		_, ok := b.next(now, time.Second)
		require.True(t, ok)
		_, ok = b.next(now.Add(2*time.Second), time.Second)
		require.False(t, ok, "past the budget")
		b = backoff{}
		d, ok := b.next(now.Add(3*time.Second), time.Second)
		require.True(t, ok)
		assert.LessOrEqual(t, d, retryMinDelay)
	})
	t.Run("no budget, no retry", func(t *testing.T) {
		for _, budget := range []time.Duration{0, -time.Second} {
			var b backoff
			_, ok := b.next(time.Now(), budget)
			assert.False(t, ok)
		}
	})
}

func TestRetrySetStop(t *testing.T) {
	var r retrySet
	ran := make(chan struct{}, 1)
	require.True(t, r.after(time.Millisecond, func() { ran <- struct{}{} }))
	recvIn(t, ran)
	require.True(t, r.after(time.Hour, func() { t.Error("a stopped retry ran") }))
	r.stop()
	r.stop()
	assert.False(t, r.after(time.Millisecond, func() { t.Error("scheduled after stop") }))
	assert.Empty(t, r.timers)
}
