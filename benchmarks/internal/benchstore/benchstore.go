package benchstore

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// Store kinds.
const (
	Memory = "mem"
	Redis  = "redis"
)

// RedisAddrEnv is the environment variable scripts/with-redis.sh exports.
const RedisAddrEnv = "TASKBRIDGE_REDIS_ADDR"

// Options selects and sizes the stores.
type Options struct {
	// Kind is Memory or Redis.
	Kind string
	// RedisAddr is host:port of the redis-server. Default: $TASKBRIDGE_REDIS_ADDR.
	RedisAddr string
	// RedisPoolSize bounds the Redis client's connections. Default: go-redis's.
	RedisPoolSize int
	// KeyPrefix is the Redis key prefix; processes that share tasks (a
	// server and a separate emitter) share it. Default: a fresh one.
	KeyPrefix string
}

// NewKeyPrefix returns a fresh Redis key prefix for one run.
func NewKeyPrefix() string {
	return fmt.Sprintf("tbbench:%d-%s:", os.Getpid(), contracts.NewID()[:8])
}

// Bundle is an open set of stores. Close releases the Redis client.
type Bundle struct {
	Kind string
	contracts.Stores
	// Redis is the client (nil for Memory) and KeyPrefix the prefix of
	// every key the stores write.
	Redis     *redis.Client
	KeyPrefix string
}

// Open opens the stores; for Redis it checks the server answers.
func Open(ctx context.Context, opts Options) (*Bundle, error) {
	switch opts.Kind {
	case "", Memory:
		// Load runs measure streaming, not the store's memory limits.
		unbounded := memstore.Options{MaxBytes: -1, MaxBytesPerOwner: -1, MaxTasks: -1, MaxTasksPerOwner: -1}
		return &Bundle{Kind: Memory, Stores: memstore.New(unbounded)}, nil
	case Redis:
		addr := opts.RedisAddr
		if addr == "" {
			addr = os.Getenv(RedisAddrEnv)
		}
		if addr == "" {
			return nil, fmt.Errorf("benchstore: no Redis address (set -redis-addr or %s)", RedisAddrEnv)
		}
		client := redis.NewClient(&redis.Options{
			Addr:                  addr,
			PoolSize:              opts.RedisPoolSize,
			PoolTimeout:           30 * time.Second,
			ContextTimeoutEnabled: true,
		})
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := client.Ping(pctx).Err(); err != nil {
			client.Close()
			return nil, fmt.Errorf("benchstore: redis %s: %w", addr, err)
		}
		prefix := opts.KeyPrefix
		if prefix == "" {
			prefix = NewKeyPrefix()
		}
		s, err := redisstore.New(client, redisstore.Options{KeyPrefix: prefix})
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("benchstore: %w", err)
		}
		return &Bundle{Kind: Redis, Stores: s, Redis: client, KeyPrefix: prefix}, nil
	}
	return nil, fmt.Errorf("benchstore: unknown store %q (mem or redis)", opts.Kind)
}

// Close releases the Redis client, if any.
func (b *Bundle) Close() error {
	if b.Redis != nil {
		return b.Redis.Close()
	}
	return nil
}

// ExtraStats reports the Redis client's pool, for control.Stats.
func (b *Bundle) ExtraStats() map[string]float64 {
	if b.Redis == nil {
		return nil
	}
	ps := b.Redis.PoolStats()
	return map[string]float64{"redisPoolConns": float64(ps.TotalConns), "redisPoolTimeouts": float64(ps.Timeouts)}
}

// NewTaskRecord returns a fresh ACCEPTED task of the bench task type owned
// by owner, for servers that create tasks without the creation service.
func NewTaskRecord(owner, taskType string) contracts.TaskRecord {
	now := time.Now().Round(0)
	input := []byte("{}")
	return contracts.TaskRecord{
		TaskID:          contracts.NewID(),
		OwnerID:         owner,
		ClientRequestID: contracts.NewID(),
		TaskType:        taskType,
		Input:           input,
		Fingerprint:     contracts.Fingerprint(taskType, input, nil),
		Status:          contracts.StatusAccepted,
		CreatedAt:       now,
		UpdatedAt:       now,
	}
}
