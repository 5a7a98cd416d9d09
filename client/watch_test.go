package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/client"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
)

var allTransports = []client.Transport{client.TransportWebSocket, client.TransportSSE, client.TransportPoll}

// TestWatchEachTransport: pinned to one transport, Watch yields the task's
// whole log in order, once, and ends after the terminal event.
func TestWatchEachTransport(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	for _, tr := range allTransports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			var conns connects
			c := newClient(t, srv.Base, "alice", client.WithTransports(tr), conns.option())
			id := create(t, c, "t.steps", map[string]int{"steps": 20, "delayMs": 5})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			r := awaitWatch(t, watchAsync(ctx, c, id, contracts.EventID{}))
			require.NoError(t, r.err)
			all := srv.allEvents(t, id)
			require.Len(t, all, 22) // started, 20 progress, completed
			assert.Equal(t, ids(all), ids(r.events))
			assert.Equal(t, contracts.EventCompleted, r.events[len(r.events)-1].Type)
			assert.Equal(t, []client.Transport{tr}, conns.list())
		})
	}
}

// TestWatchResumesFrom: a Watch from a cursor yields only what follows it.
func TestWatchResumesFrom(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	c := newClient(t, srv.Base, "alice")
	id := create(t, c, "t.steps", map[string]int{"steps": 5})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	first := awaitWatch(t, watchAsync(ctx, c, id, contracts.EventID{}))
	require.NoError(t, first.err)
	require.Len(t, first.events, 7)
	for _, tr := range allTransports {
		t.Run(string(tr), func(t *testing.T) {
			c := newClient(t, srv.Base, "alice", client.WithTransports(tr))
			r := awaitWatch(t, watchAsync(ctx, c, id, first.events[3].EventID))
			require.NoError(t, r.err)
			assert.Equal(t, ids(first.events[4:]), ids(r.events))
		})
	}
}

// TestWatchEndsAtTerminalCursor: a Watch whose cursor is the terminal event
// ends at once without events or error, on every transport (SSE 204,
// WebSocket close 1000, long-poll through the 204 probe).
func TestWatchEndsAtTerminalCursor(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	c := newClient(t, srv.Base, "alice")
	id := create(t, c, "t.steps", map[string]int{"steps": 2})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r := awaitWatch(t, watchAsync(ctx, c, id, contracts.EventID{}))
	require.NoError(t, r.err)
	terminal := r.events[len(r.events)-1]
	require.True(t, terminal.Type.IsTerminal())
	for _, tr := range allTransports {
		t.Run(string(tr), func(t *testing.T) {
			var conns connects
			c := newClient(t, srv.Base, "alice", client.WithTransports(tr), conns.option())
			start := time.Now()
			r := awaitWatch(t, watchAsync(ctx, c, id, terminal.EventID))
			require.NoError(t, r.err)
			assert.Empty(t, r.events)
			assert.Less(t, time.Since(start), 5*time.Second, "no waiting for a task that is over")
		})
	}
}

// TestWatchFallsBack: behind a proxy that refuses WebSocket upgrades,
// Watch uses SSE; behind one that also buffers SSE, it uses long-poll.
// Either way it delivers the whole log once.
func TestWatchFallsBack(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(cfg *fiberbridge.Config) { cfg.Stream.HeartbeatInterval = 100 * time.Millisecond })
	for _, tc := range []struct {
		name   string
		buffer bool
		want   client.Transport
	}{
		{"websocket refused", false, client.TransportSSE},
		{"websocket refused, sse buffered", true, client.TransportPoll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy := startHTTPProxy(t, srv.Addr, tc.buffer)
			var conns connects
			core, logs := observer.New(zapcore.InfoLevel)
			c := newClient(t, proxy.Base(), "alice", conns.option(), client.WithLogger(zap.New(core)),
				client.WithHeartbeatTimeout(time.Second))
			id := create(t, c, "t.gated", nil)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ch := watchAsync(ctx, c, id, contracts.EventID{})
			require.Eventually(t, func() bool { return len(conns.list()) > 0 }, wait, 10*time.Millisecond)
			for i := range 5 {
				srv.gate(id) <- fmt.Sprint("m", i)
			}
			close(srv.gate(id))
			r := awaitWatch(t, ch)
			require.NoError(t, r.err)
			assert.Equal(t, ids(srv.allEvents(t, id)), ids(r.events))
			assert.Equal(t, []client.Transport{tc.want}, conns.list(), "connected only over the transport that works")
			assert.NotEmpty(t, logs.FilterMessage("taskbridge client: falling back").All())
		})
	}
}

// TestWatchResumesAfterDrops: connections cut mid-stream, while the task
// keeps emitting, cost no event and repeat none, on every transport.
func TestWatchResumesAfterDrops(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	for _, tr := range allTransports {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			proxy := startTCPProxy(t, srv.Addr)
			var conns connects
			c := newClient(t, proxy.Base(), "alice", client.WithTransports(tr), conns.option(),
				client.WithPollWait(time.Second))
			id := create(t, c, "t.gated", nil)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			var got atomic.Int64
			ch := watchCounting(ctx, c, id, contracts.EventID{}, &got)
			emitted := int64(1) // TASK_STARTED
			for round := range 3 {
				// Everything so far, the events emitted while the client was
				// cut off included, arrives before the next round.
				require.Eventually(t, func() bool { return got.Load() == emitted }, wait, 5*time.Millisecond)
				for i := range 5 {
					srv.gate(id) <- fmt.Sprintf("r%d-m%d", round, i)
				}
				proxy.Cut() // events may be in flight: some arrive, the rest come on resume
				for i := range 3 {
					srv.gate(id) <- fmt.Sprintf("r%d-gap%d", round, i) // emitted while no client is connected
				}
				emitted += 8
			}
			close(srv.gate(id))
			r := awaitWatch(t, ch)
			require.NoError(t, r.err)
			assert.Equal(t, ids(srv.allEvents(t, id)), ids(r.events), "no gap, no duplicate")
			if tr != client.TransportPoll { // a poll between requests has nothing to cut
				assert.GreaterOrEqual(t, len(conns.list()), 4, "reconnected after each cut")
			}
			for _, got := range conns.list() {
				assert.Equal(t, tr, got)
			}
		})
	}
}

// TestWatchDetectsDeadStreams: a network path that stops forwarding (no
// close, no reset) is noticed by the heartbeat timeout and replaced; the
// Watch goes on without a gap.
func TestWatchDetectsDeadStreams(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(cfg *fiberbridge.Config) { cfg.Stream.HeartbeatInterval = 100 * time.Millisecond })
	for _, tr := range []client.Transport{client.TransportWebSocket, client.TransportSSE} {
		t.Run(string(tr), func(t *testing.T) {
			t.Parallel()
			proxy := startTCPProxy(t, srv.Addr)
			var conns connects
			core, logs := observer.New(zapcore.WarnLevel)
			c := newClient(t, proxy.Base(), "alice", client.WithTransports(tr), conns.option(),
				client.WithHeartbeatTimeout(time.Second), client.WithLogger(zap.New(core)))
			id := create(t, c, "t.gated", nil)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ch := watchAsync(ctx, c, id, contracts.EventID{})
			require.Eventually(t, func() bool { return len(conns.list()) == 1 }, wait, 5*time.Millisecond)
			srv.gate(id) <- "before"
			require.Positive(t, proxy.Freeze())
			srv.gate(id) <- "while frozen"
			require.Eventually(t, func() bool { return len(conns.list()) == 2 }, wait, 10*time.Millisecond,
				"a new connection after the heartbeat timeout")
			srv.gate(id) <- "after"
			close(srv.gate(id))
			r := awaitWatch(t, ch)
			require.NoError(t, r.err)
			assert.Equal(t, ids(srv.allEvents(t, id)), ids(r.events))
			dead := logs.FilterMessage("taskbridge client: dead stream").All()
			require.NotEmpty(t, dead)
			assert.Equal(t, string(tr), dead[0].ContextMap()["transport"])
		})
	}
}

// TestWatchTypedErrors: refusals end the Watch with a typed error on
// every transport instead of retrying forever.
func TestWatchTypedErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(cfg *fiberbridge.Config) { cfg.MaxStreamsPerSubject = 1 })
	owner := newClient(t, srv.Base, "alice")
	id := create(t, owner, "t.gated", nil)
	t.Cleanup(func() { close(srv.gate(id)) })

	for _, tr := range allTransports {
		t.Run(string(tr), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			for _, tc := range []struct {
				name   string
				user   string
				taskID string
				want   error
				code   *bridgeerr.Error
			}{
				{"no credentials", "", id, client.ErrUnauthorized, bridgeerr.ErrAuthentication},
				{"unknown task", "alice", "no-such-task", client.ErrNotFound, bridgeerr.ErrTaskNotFound},
				{"another owner's task", "bob", id, client.ErrNotFound, bridgeerr.ErrTaskNotFound},
			} {
				c := newClient(t, srv.Base, tc.user, client.WithTransports(tr))
				r := awaitWatch(t, watchAsync(ctx, c, tc.taskID, contracts.EventID{}))
				require.Error(t, r.err, tc.name)
				assert.ErrorIs(t, r.err, tc.want, tc.name)
				assert.ErrorIs(t, r.err, tc.code, tc.name)
				var re *client.ResponseError
				require.ErrorAs(t, r.err, &re, tc.name)
				assert.Empty(t, r.events, tc.name)
			}
		})
	}

	// 429: alice's one stream slot is taken by a first Watch.
	c := newClient(t, srv.Base, "carol")
	held := create(t, c, "t.gated", nil)
	t.Cleanup(func() { close(srv.gate(held)) })
	ctx, cancel := context.WithCancel(context.Background())
	var conns connects
	holder := newClient(t, srv.Base, "carol", client.WithTransports(client.TransportSSE), conns.option())
	var yielded atomic.Int64
	first := watchCounting(ctx, holder, held, contracts.EventID{}, &yielded)
	srv.gate(held) <- "hello"
	// The SSE stream is open, and has both events (TASK_STARTED and the
	// message; the handler emits it after taking it from the gate).
	require.Eventually(t, func() bool { return len(conns.list()) == 1 && yielded.Load() == 2 }, wait, 5*time.Millisecond)
	for _, tr := range []client.Transport{client.TransportWebSocket, client.TransportSSE} {
		c := newClient(t, srv.Base, "carol", client.WithTransports(tr))
		r := awaitWatch(t, watchAsync(ctx, c, held, contracts.EventID{}))
		assert.ErrorIs(t, r.err, client.ErrRateLimited, string(tr))
		assert.ErrorIs(t, r.err, bridgeerr.ErrTooManyStreams, string(tr))
	}
	cancel()
	r := awaitWatch(t, first)
	assert.ErrorIs(t, r.err, context.Canceled)
	require.Len(t, r.events, 2)
}

// TestWatchStopsWhenTheConsumerBreaks: breaking out of the loop closes the
// stream (the server sees the subscriber go) and yields nothing more.
func TestWatchStopsWhenTheConsumerBreaks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(cfg *fiberbridge.Config) { cfg.MaxStreamsPerSubject = 1 })
	c := newClient(t, srv.Base, "alice")
	id := create(t, c, "t.gated", nil)
	t.Cleanup(func() { close(srv.gate(id)) })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for range 3 {
		// The one stream slot comes back each time the consumer breaks.
		require.Eventually(t, func() bool {
			for ev, err := range c.Watch(ctx, id, contracts.EventID{}) {
				if errors.Is(err, client.ErrRateLimited) {
					return false
				}
				return assert.NoError(t, err) && assert.Equal(t, contracts.EventStarted, ev.Type) // breaks out
			}
			return false
		}, wait, 20*time.Millisecond, "the server released the stream slot")
	}
}
