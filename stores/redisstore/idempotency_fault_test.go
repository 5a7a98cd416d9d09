package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
		Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1, // one attempt per call: the caller retries
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
	})
	t.Cleanup(func() { _ = client.Close() })
	s := check(redisstore.New(client, redisstore.Options{KeyPrefix: "retry:"}))(t)

	first, err := s.Events.Append(ctx, "t", contracts.Started("").WithIdempotencyKey("k-start"))
	require.NoError(t, err)
	draft := must(t)(contracts.Progress(50, "half", "during the pause")).WithIdempotencyKey("k-during")

	srv.Pause()
	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.Events.Append(actx, "t", draft)
	cancel()
	require.Error(t, err, "the append's outcome is unknown to the caller")
	srv.Resume()

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
		Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: 3,
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
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
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
		srv.Pause()
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.Events.Append(actx, tc.task, must(t)(contracts.Progress(1, "", tc.task)).WithIdempotencyKey(tc.key))
		cancel()
		srv.Resume()
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

// retryFault pauses the test's redis-server (SIGSTOP) just before the
// pauseAt-th EVALSHA of a call reaches it, so that attempt times out; when
// the client sends its retry, it resumes the server (SIGCONT), waits until
// the first attempt has run, and only then lets the retry through. The
// caller gets the answer of a retry that finds its first attempt applied:
// the case every script must answer as if it had run once.
type retryFault struct {
	proc  *os.Process
	calls func() int64 // EVALSHA calls Redis has run

	mu      sync.Mutex
	pauseAt int // 0: disarmed
	seen    int
	base    int64
}

func (f *retryFault) arm(pauseAt int) {
	f.mu.Lock()
	f.pauseAt, f.seen, f.base = pauseAt, 0, f.calls()
	f.mu.Unlock()
}

// awaitCalls waits until Redis has run n EVALSHA calls since arm.
func (f *retryFault) awaitCalls(n int64) {
	deadline := time.Now().Add(10 * time.Second)
	for f.calls()-f.base < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling INFO on the admin connection
	}
}

// write is called for each write of the client's connections.
func (f *retryFault) write(p []byte, do func() (int, error)) (int, error) {
	if !bytes.Contains(bytes.ToLower(p), []byte("evalsha")) {
		return do()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pauseAt == 0 {
		return do()
	}
	f.seen++
	switch f.seen {
	case f.pauseAt:
		_ = f.proc.Signal(syscall.SIGSTOP)
	case f.pauseAt + 1:
		_ = f.proc.Signal(syscall.SIGCONT)
		f.awaitCalls(int64(f.pauseAt)) // the timed-out attempt ran
		f.pauseAt = 0
	}
	return do()
}

type faultConn struct {
	net.Conn
	f *retryFault
}

func (c *faultConn) Write(p []byte) (int, error) {
	return c.f.write(p, func() (int, error) { return c.Conn.Write(p) })
}

// TestFaultRetriedWritesAnswerOnce runs each write of the stores while the
// Redis client's own retry re-sends it after a timeout, both attempts then
// running: every script answers the retry as if it had run once (created,
// stored, won, saved), so go-redis's retries (on by default) are safe.
func TestFaultRetriedWritesAnswerOnce(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = admin.Close() })
	fault := &retryFault{proc: srv.Process(), calls: func() int64 { return evalshaCalls(t, admin) }}
	client := redis.NewClient(&redis.Options{
		Addr: srv.Addr(), ContextTimeoutEnabled: true, MaxRetries: 3,
		MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond,
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &faultConn{Conn: c, f: fault}, nil
		},
	})
	t.Cleanup(func() { _ = client.Close() })
	stores := map[bool]contracts.Stores{}
	for _, armed := range []bool{false, true} {
		st, err := redisstore.New(client, redisstore.Options{KeyPrefix: fmt.Sprint("retried-", armed, ":")})
		require.NoError(t, err)
		stores[armed] = st
	}
	warm := func() { // ready connections for the attempt and its retry, scripts loaded
		var conns []*redis.Conn
		for range 3 {
			cn := client.Conn()
			require.NoError(t, cn.Ping(ctx).Err())
			conns = append(conns, cn)
		}
		for _, cn := range conns {
			require.NoError(t, cn.Close())
		}
	}
	now := time.Now().Truncate(time.Millisecond)
	task := contracts.TaskRecord{TaskID: "t1", OwnerID: "o", ClientRequestID: "r1", TaskType: "demo",
		Input: json.RawMessage(`{}`), CreatedAt: now, UpdatedAt: now}
	susp := contracts.SuspensionRecord{TaskID: "t1", SuspendID: "s1", OwnerID: "o", Status: contracts.SuspensionOpen,
		Kind: contracts.KindUserActionRequired, ReasonCode: "R", AllowedActions: []string{"approve"}, SchemaVersion: 1,
		Handoff: contracts.HandoffNone, CreatedAt: now}
	receipt := contracts.ActionReceipt{TaskID: "t1", SuspendID: "s1", ClientActionID: "a1", ActionType: "approve",
		Payload: json.RawMessage(`{}`), ActorID: "o", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}

	type testCase struct {
		name    string
		pauseAt int // which EVALSHA of the call is retried
		call    func() error
	}
	cases := func(s contracts.Stores) []testCase {
		return []testCase{
			// A create is one pipeline (record, idempotency key, owner
			// index): its retry finds all three applied.
			{"create: the record", 1, func() error {
				got, created, err := s.Tasks.Create(ctx, task)
				if err == nil && (!created || got.TaskID != task.TaskID) {
					err = fmt.Errorf("created %v, task %q", created, got.TaskID)
				}
				return err
			}},
			{"create again: answered with the first task", 0, func() error {
				got, created, err := s.Tasks.Create(ctx, contracts.TaskRecord{TaskID: "t-other", OwnerID: "o", ClientRequestID: "r1",
					TaskType: "demo", Input: json.RawMessage(`{}`)})
				if err == nil && (created || got.TaskID != task.TaskID) {
					err = fmt.Errorf("created %v, task %q", created, got.TaskID)
				}
				return err
			}},
			{"create: the idempotency key, held by the first attempt", 1, func() error {
				t2 := task
				t2.TaskID, t2.ClientRequestID = "t2", "r2"
				_, created, err := s.Tasks.Create(ctx, t2)
				if err == nil && !created {
					err = errors.New("not created")
				}
				if err == nil {
					_, err = s.Tasks.Get(ctx, "t2") // not discarded as a duplicate of itself
				}
				return err
			}},
			{"suspension", 1, func() error { return s.Suspensions.Create(ctx, susp) }},
			{"resolve", 1, func() error {
				_, won, err := s.Suspensions.Resolve(ctx, "t1", "s1", contracts.Resolution{
					Status: contracts.SuspensionResolved, ClientActionID: "a1", At: now})
				if err == nil && !won {
					err = errors.New("lost to its own first attempt")
				}
				return err
			}},
			{"receipt", 1, func() error {
				_, saved, err := s.Receipts.Save(ctx, receipt)
				if err == nil && !saved {
					err = errors.New("not saved")
				}
				return err
			}},
			{"append", 1, func() error {
				_, err := s.Events.Append(ctx, "t1", contracts.Started("").WithIdempotencyKey("k"))
				return err
			}},
		}
	}
	// A first round without faults loads every script, so that each
	// attempt below is one EVALSHA that runs (not NOSCRIPT).
	for _, tc := range cases(stores[false]) {
		require.NoError(t, tc.call(), "unarmed "+tc.name)
	}
	s := stores[true]
	for _, tc := range cases(s) {
		warm()
		fault.arm(tc.pauseAt)
		assert.NoError(t, tc.call(), tc.name)
	}
	page, err := s.Events.Read(ctx, "t1", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Len(t, page.Events, 1, "the retried append stored one event")
}
