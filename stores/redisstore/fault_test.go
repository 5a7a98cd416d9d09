package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// server is a redis-server a fault test owns (e2etest.RedisServer), so
// that it can pause, kill and restart it without disturbing the shared one.
type server = e2etest.RedisServer

// startServer starts a private redis-server; cleanup stops it.
func startServer(tb testing.TB) *server {
	tb.Helper()
	redisAddr(tb) // same policy as every Redis test
	return e2etest.StartRedis(tb)
}

// faultClient is configured as a host should: context deadlines honoured,
// short network timeouts.
func faultClient(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           300 * time.Millisecond,
		ReadTimeout:           300 * time.Millisecond,
		WriteTimeout:          300 * time.Millisecond,
	})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// faultStores returns stores on a private server with a fast feed health
// check, and the observer of their log.
// The probe PINGs through the stores' client.
func faultStores(tb testing.TB, srv *server) (contracts.Stores, *redisstore.Probe, *observer.ObservedLogs) {
	tb.Helper()
	core, logs := observer.New(zap.WarnLevel)
	client := faultClient(tb, srv.Addr())
	s := check(redisstore.New(client, redisstore.Options{
		KeyPrefix:        "fault:",
		FeedPingInterval: 100 * time.Millisecond,
		Logger:           zap.New(core),
	}))(tb)
	return s, redisstore.NewProbe(client, 250*time.Millisecond), logs
}

func feedLost(logs *observer.ObservedLogs) int {
	return logs.FilterMessage("redisstore: change feed subscription lost; reconnecting").Len()
}

// TestFaultPause pauses Redis (SIGSTOP) under a live listener: the probe
// fails within its timeout, calls fail with their deadline instead of
// hanging, the feed notices the silence, and after SIGCONT the listener
// is told to resync, catches up from its cursor and gets new appends live.
func TestFaultPause(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t)
	s, probe, logs := faultStores(t, srv)
	rec, _ := listen(t, s.Events)
	awaitLive(t, ctx, s.Events, rec)
	resyncs := rec.resyncs()

	require.NoError(t, probe.Check(ctx))
	// A probe on a client that ignores context deadlines and would wait
	// ten seconds for a reply must still answer within its own timeout.
	lax := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = lax.Close() })
	laxProbe := redisstore.NewProbe(lax, 250*time.Millisecond)
	require.NoError(t, laxProbe.Check(ctx))

	first, err := s.Events.Append(ctx, "t", contracts.Started("before"))
	require.NoError(t, err)

	srv.Pause()
	for name, p := range map[string]*redisstore.Probe{"probe": probe, "probe on a lax client": laxProbe} {
		err := p.Check(ctx)
		require.Error(t, err, name)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "%s: ends by its own timeout", name)
		ready, details := p.CheckReadiness(ctx)
		assert.False(t, ready, name)
		assert.Equal(t, map[string]any{"redis": "unavailable"}, details, name)
	}
	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.Events.Append(actx, "t", contracts.Started("during"))
	cancel()
	require.Error(t, err, "an append to a paused Redis fails with its deadline")
	gctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.Tasks.Get(gctx, "t")
	cancel()
	require.Error(t, err)
	require.False(t, errors.Is(err, contracts.ErrNotFound))

	require.Eventually(t, func() bool { return feedLost(logs) > 0 }, 10*time.Second, 10*time.Millisecond,
		"the feed must notice that Redis stopped answering")
	srv.Resume()

	rec.waitFor(t, ctx, "a Resync after the pause", func() bool { return rec.resyncs() > resyncs })
	require.NoError(t, probe.Check(ctx))
	after, err := s.Events.Append(ctx, "t", contracts.Started("after"))
	require.NoError(t, err)
	rec.waitFor(t, ctx, "an append after the pause", func() bool { return rec.has("t", after.EventID) })

	// Catching up from the cursor yields everything after it, in order,
	// ending with the new event. (The append that timed out during the
	// pause may or may not have run once Redis woke up; either is fine.)
	page, err := s.Events.Read(ctx, "t", first.EventID, 100)
	require.NoError(t, err)
	require.NotEmpty(t, page.Events)
	assert.Equal(t, after.EventID, page.Events[len(page.Events)-1].EventID)
	assert.LessOrEqual(t, len(page.Events), 2)
	assert.False(t, page.RetentionGap)
}

// TestFaultKillRestart kills Redis (SIGKILL) and starts it again on the
// same port: calls fail meanwhile, the listener is told to resync once
// the feed is back, and new tasks work end to end (the scripts are loaded
// again transparently).
func TestFaultKillRestart(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t)
	s, probe, logs := faultStores(t, srv)
	rec, _ := listen(t, s.Events)
	awaitLive(t, ctx, s.Events, rec)
	resyncs := rec.resyncs()

	_, err := s.Events.Append(ctx, "old", contracts.Started(""))
	require.NoError(t, err)

	srv.Kill()
	require.Error(t, probe.Check(ctx))
	_, err = s.Events.Append(ctx, "old", contracts.Started(""))
	require.Error(t, err)
	require.Eventually(t, func() bool { return feedLost(logs) > 0 }, 10*time.Second, 10*time.Millisecond)

	srv.Start()
	rec.waitFor(t, ctx, "a Resync after the restart", func() bool { return rec.resyncs() > resyncs })
	require.NoError(t, probe.Check(ctx))

	// The data did not survive (no persistence): the old task is gone,
	// and a new one works end to end.
	page, err := s.Events.Read(ctx, "old", contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Empty(t, page.Events)

	task, created, err := s.Tasks.Create(ctx, contracts.TaskRecord{TaskID: "new", OwnerID: "o", ClientRequestID: "r",
		TaskType: "demo", Input: json.RawMessage(`{}`)})
	require.NoError(t, err)
	require.True(t, created)
	_, err = s.Tasks.UpdateStatus(ctx, task.TaskID, contracts.StatusRunning)
	require.NoError(t, err)
	started, err := s.Events.Append(ctx, task.TaskID, contracts.Started("again"))
	require.NoError(t, err)
	done, err := s.Events.Append(ctx, task.TaskID, must(t)(contracts.Completed("ok")))
	require.NoError(t, err)
	_, err = s.Tasks.UpdateStatus(ctx, task.TaskID, contracts.StatusCompleted)
	require.NoError(t, err)
	rec.waitFor(t, ctx, "the new task's events", func() bool { return rec.has(task.TaskID, done.EventID) })
	assert.Equal(t, []contracts.EventID{started.EventID, done.EventID}, rec.ids(task.TaskID))
	page, err = s.Events.Read(ctx, task.TaskID, contracts.EventID{}, 10)
	require.NoError(t, err)
	assert.Equal(t, []contracts.EventID{started.EventID, done.EventID}, eventIDsOf(page.Events))
	assert.True(t, page.Ended)
}

// TestFaultListenEndsWhileDown: a listener whose context ends while Redis
// is down returns, and its goroutine with it (goleak checks at exit).
func TestFaultListenEndsWhileDown(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t)
	s, _, logs := faultStores(t, srv)
	rec, stop := listen(t, s.Events)
	awaitLive(t, ctx, s.Events, rec)

	srv.Pause()
	require.Eventually(t, func() bool { return feedLost(logs) > 0 }, 10*time.Second, 10*time.Millisecond)
	require.ErrorIs(t, stop(), context.Canceled, "Listen returns while Redis is paused")
	srv.Resume()

	srv.Kill()
	rec2, stop2 := listen(t, s.Events) // Redis is down from the start
	_ = rec2
	require.ErrorIs(t, stop2(), context.Canceled, "Listen returns while Redis is down")
}
