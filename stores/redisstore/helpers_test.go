package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// addrEnv names the variable scripts/with-redis.sh (make test) sets.
const addrEnv = "TASKBRIDGE_REDIS_ADDR"

const skipMessage = "set TASKBRIDGE_REDIS_ADDR or run make test (scripts/with-redis.sh starts a redis-server)"

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(addrEnv) == "" {
		if e2etest.UnderCI() {
			fmt.Fprintln(os.Stderr, "redisstore: "+skipMessage+"; CI=true: failing instead of skipping the Redis tests")
			os.Exit(1)
		}
		// Examples cannot skip themselves; without a server they are left
		// out like the tests, which skip with skipMessage.
		fmt.Fprintln(os.Stderr, "redisstore: "+skipMessage+"; Redis tests and examples are skipped")
		if f := flag.Lookup("test.skip"); f != nil && f.Value.String() == "" {
			_ = flag.Set("test.skip", "^Example")
		}
	}
	// The fault tests make go-redis log its failed dials; they are expected.
	redis.SetLogger(quietLogger{})
	goleak.VerifyTestMain(m,
		// fasthttp's process-wide goroutines, started by the end-to-end
		// tests' Fiber servers (worker pool cleaner, date updater).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// quietLogger drops go-redis's internal log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// redisAddr returns the shared test server's address or skips the test.
func redisAddr(tb testing.TB) string {
	tb.Helper()
	return e2etest.RedisAddr(tb)
}

// newClient returns a client of the shared server (or skips), closed at
// cleanup. It honours context deadlines, as hosts are told to configure it.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	return dial(tb, redisAddr(tb))
}

// redisClient is the client type the tests use.
type redisClient = redis.Client

func dial(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// uniquePrefix returns a key prefix no other test uses and deletes every
// key under it at cleanup.
func uniquePrefix(tb testing.TB, c redis.UniversalClient) string {
	tb.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, tb.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	prefix := "tbtest:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	tb.Cleanup(func() { deleteKeys(tb, c, prefix) })
	return prefix
}

// deleteKeys removes every key starting with prefix.
func deleteKeys(tb testing.TB, c redis.UniversalClient, prefix string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 500).Result()
		if err != nil {
			tb.Logf("cleanup of %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				tb.Logf("cleanup of %s*: %v", prefix, err)
				return
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// keysUnder lists the keys starting with prefix.
func keysUnder(tb testing.TB, c redis.UniversalClient, prefix string) []string {
	tb.Helper()
	var all []string
	var cursor uint64
	for {
		keys, next, err := c.Scan(context.Background(), cursor, prefix+"*", 500).Result()
		require.NoError(tb, err)
		all = append(all, keys...)
		if cursor = next; cursor == 0 {
			return all
		}
	}
}

// newStores returns stores on the shared server under a fresh prefix.
func newStores(tb testing.TB, opts redisstore.Options) (contracts.Stores, *redis.Client, string) {
	tb.Helper()
	c := newClient(tb)
	opts.KeyPrefix = uniquePrefix(tb, c)
	return check(redisstore.New(c, opts))(tb), c, opts.KeyPrefix
}

// check(f())(tb) returns f's value, failing the test on f's error.
func check[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		require.NoError(tb, err)
		return v
	}
}

// testContext ends with the test or after 15 seconds.
func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
