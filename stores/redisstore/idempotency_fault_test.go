package redisstore_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// TestFaultAppendRetryAfterApplied is the ambiguous failure the
// idempotency key exists for: an append sent to a paused Redis fails by its
// deadline, yet Redis runs it when it wakes up. The caller's retry with the
// same key answers the event that attempt stored, and the log holds it
// once.
func TestFaultAppendRetryAfterApplied(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t)
	client := redis.NewClient(&redis.Options{
		Addr: srv.addr(), ContextTimeoutEnabled: true, MaxRetries: -1, // one attempt per call: the caller retries
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
	})
	t.Cleanup(func() { _ = client.Close() })
	s := check(redisstore.New(client, redisstore.Options{KeyPrefix: "retry:"}))(t)

	first, err := s.Events.Append(ctx, "t", contracts.Started("").WithIdempotencyKey("k-start"))
	require.NoError(t, err)
	draft := must(t)(contracts.Progress(50, "half", "during the pause")).WithIdempotencyKey("k-during")

	srv.pause()
	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.Events.Append(actx, "t", draft)
	cancel()
	require.Error(t, err, "the append's outcome is unknown to the caller")
	srv.resume()

	// Redis ran the attempt once it woke up.
	var applied []contracts.TaskEvent
	require.Eventually(t, func() bool {
		page, err := s.Events.Read(ctx, "t", first.EventID, 10)
		applied = page.Events
		return err == nil && len(page.Events) == 1
	}, 10*time.Second, 10*time.Millisecond, "the paused append was applied when Redis resumed")

	retried, err := s.Events.Append(ctx, "t", draft)
	require.NoError(t, err)
	assert.Equal(t, applied[0].EventID, retried.EventID, "the retry answers the event the first attempt stored")
	assert.Equal(t, contracts.EventProgress, retried.Type)
	assert.JSONEq(t, string(draft.Payload()), string(retried.Payload))
	assert.Equal(t, applied[0].CreatedAt, retried.CreatedAt)

	page, err := s.Events.Read(ctx, "t", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []contracts.EventID{first.EventID, retried.EventID}, eventIDsOf(page.Events), "each event once")
}

// TestFaultClientRetriesAreSafe keeps go-redis's own retries on (its
// default: a command that timed out is sent again on another connection,
// up to MaxRetries times). While Redis is paused every attempt waits in its
// socket, and all of them run when Redis wakes up. With a key on the
// append the log holds the event once; the control without a key stores
// it once per attempt, which is what a paused Redis did to unkeyed
// appends.
func TestFaultClientRetriesAreSafe(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t)
	var sent atomic.Int64 // EVALSHA commands written to Redis
	client := redis.NewClient(&redis.Options{
		Addr: srv.addr(), ContextTimeoutEnabled: true, MaxRetries: 3,
		MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, sent: &sent}, nil
		},
	})
	t.Cleanup(func() { _ = client.Close() })
	admin := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = admin.Close() })
	s := check(redisstore.New(client, redisstore.Options{KeyPrefix: "clientretry:"}))(t)
	// Load the script, so every attempt below is one EVALSHA. Each round
	// fills the pool with four ready connections first: a retry takes
	// another one and sends its attempt at once (a new connection's
	// handshake would time out against the paused server before the
	// command is sent).
	_, err := s.Events.Append(ctx, "warm-up", contracts.Started(""))
	require.NoError(t, err)

	for _, tc := range []struct{ task, key string }{{"keyed", "k"}, {"unkeyed", ""}} {
		var conns []*redis.Conn
		for range 4 {
			cn := client.Conn()
			require.NoError(t, cn.Ping(ctx).Err())
			conns = append(conns, cn)
		}
		for _, cn := range conns {
			require.NoError(t, cn.Close())
		}
		require.NoError(t, admin.ConfigResetStat(ctx).Err())
		sent.Store(0)
		srv.pause()
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.Events.Append(actx, tc.task, must(t)(contracts.Progress(1, "", tc.task)).WithIdempotencyKey(tc.key))
		cancel()
		srv.resume()
		require.Error(t, err, "%s: every attempt timed out", tc.task)
		attempts := sent.Load()
		require.Greater(t, attempts, int64(1), "%s: the client retried the append", tc.task)

		// Wait until Redis has run every attempt the client sent.
		require.Eventually(t, func() bool { return evalshaCalls(t, admin) >= attempts }, 10*time.Second, 10*time.Millisecond,
			"%s: Redis ran the %d attempts", tc.task, attempts)
		page, err := s.Events.Read(ctx, tc.task, contracts.EventID{}, 10)
		require.NoError(t, err)
		if tc.key != "" {
			assert.Len(t, page.Events, 1, "keyed: %d attempts ran, the event is stored once", attempts)
		} else {
			assert.Len(t, page.Events, int(attempts), "unkeyed: every attempt stored the event")
		}
	}
}

// countingConn counts the EVALSHA commands written through it.
type countingConn struct {
	net.Conn
	sent *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	if bytes.Contains(bytes.ToLower(p), []byte("evalsha")) {
		c.sent.Add(1)
	}
	return c.Conn.Write(p)
}

// evalshaCalls reads how many EVALSHA calls Redis ran since CONFIG
// RESETSTAT (INFO commandstats).
func evalshaCalls(tb testing.TB, c *redis.Client) int64 {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		return n
	}
	return 0
}
