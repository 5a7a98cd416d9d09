package redisstore_test

import (
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	t.Run("up", func(t *testing.T) {
		p := redisstore.NewProbe(newClient(t), 0)
		require.NoError(t, p.Check(ctx))
		ready, details := p.CheckReadiness(ctx)
		assert.True(t, ready)
		assert.Equal(t, map[string]any{"redis": "ok"}, details)
	})

	t.Run("nothing listening", func(t *testing.T) {
		redisAddr(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		p := redisstore.NewProbe(c, time.Second)
		require.Error(t, p.Check(ctx))
		ready, details := p.CheckReadiness(ctx)
		assert.False(t, ready)
		assert.Equal(t, map[string]any{"redis": "unavailable"}, details)
	})
}
