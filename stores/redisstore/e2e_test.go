package redisstore_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
)

// TestE2ETwoInstancesResume runs two bridge instances on one Redis: a task
// created on A (and run by A's executor) is followed over SSE and
// WebSocket on B; every event A emits arrives live on B, in order. B then
// shuts down mid-stream (bridge.Shutdown, then the app): its SSE response
// ends and its WebSocket closes 1001. Events emitted meanwhile are missed;
// each client resumes on A with its cursor and receives exactly the events
// it lacks, then the rest live, then the end of the stream.
func TestE2ETwoInstancesResume(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	prefix := uniquePrefix(t, newClient(t))
	steps := newStepper()
	a := startNode(t, "A", nodeConfig{client: newClient(t), prefix: prefix, steps: steps})
	b := startNode(t, "B", nodeConfig{client: newClient(t), prefix: prefix, steps: steps})

	taskID := createRunning(t, ctx, a, steps)
	sse := subscribe(t, "sse", overSSE, taskID, b.addr, false)
	ws := subscribe(t, "ws", overWS, taskID, b.addr, false)
	subs := []*subscriber{sse, ws}
	for _, s := range subs {
		s.waitEvents(ctx, 1) // TASK_STARTED, replayed
	}

	// Live on B, in order: each event reaches both clients before the next.
	for i := 2; i <= 4; i++ {
		steps.step(t, ctx, taskID)
		for _, s := range subs {
			s.waitEvents(ctx, i)
		}
		assert.Equal(t, storedIDs(t, ctx, a.stores.Events, taskID), sse.ids(), "live over SSE on B")
		assert.Equal(t, storedIDs(t, ctx, a.stores.Events, taskID), ws.ids(), "live over WebSocket on B")
	}

	// One more event, and B goes away while the clients follow the task.
	steps.step(t, ctx, taskID)
	b.stop()
	sseEnd, wsEnd := sse.waitEnded(ctx), ws.waitEnded(ctx)
	assert.Equal(t, "eof", sseEnd.end, "B's SSE response ends cleanly")
	assert.Equal(t, "close 1001 going away", wsEnd.end, "B's WebSocket closes with 1001")
	status, _ := a.do(http.MethodGet, "/ready", "")
	assert.Equal(t, http.StatusOK, status, "A stays ready")

	// Missed while no instance served the clients.
	steps.step(t, ctx, taskID)
	steps.step(t, ctx, taskID)
	missedFrom := map[*subscriber]int{sse: len(sse.ids()), ws: len(ws.ids())}

	for _, s := range subs {
		s.resumeOn(a.addr)
	}
	stored := storedIDs(t, ctx, a.stores.Events, taskID)
	for _, s := range subs {
		s.waitEvents(ctx, len(stored)) // the replay of what was missed
	}
	steps.step(t, ctx, taskID) // live on A
	steps.finish(t, ctx, taskID)
	for _, s := range subs {
		s.waitDone(ctx)
	}

	all := storedIDs(t, ctx, a.stores.Events, taskID)
	require.Len(t, all, 1+3+1+2+1+1, "STARTED, 3 live, 1 before the shutdown, 2 missed, 1 live on A, COMPLETED")
	for _, s := range subs {
		t.Logf("%s: %s", s.name, s.describe())
		s.assertExactly(t, all)
		s.checkFrames(t)
		conns := s.connections()
		require.Len(t, conns, 2, "%s: one connection to B, one to A", s.name)
		assert.Equal(t, b.addr, conns[0].target)
		assert.Equal(t, a.addr, conns[1].target)
		// The resumed connection starts right after the cursor: exactly
		// the events the client lacked, first of all the two it missed.
		n := missedFrom[s]
		assert.Equal(t, all[n:], conns[1].events, "%s: events on A", s.name)
		assert.Contains(t, []int{4, 5}, n, "%s: B delivered the live events, maybe the last one before it stopped", s.name)
	}
	assert.Equal(t, "eof", connAt(sse, 1).end, "SSE on A ends after the terminal event")
	assert.Equal(t, "close 1000 ", connAt(ws, 1).end, "WebSocket on A closes 1000 after the terminal event")
	if c := connAt(ws, 1).confirm; assert.NotNil(t, c, "WebSocket resume confirmed") {
		require.NotNil(t, c.ReplayStartedAfterEventID)
		assert.Equal(t, all[missedFrom[ws]-1], *c.ReplayStartedAfterEventID, "replay starts after the client's cursor")
		assert.True(t, c.Live)
		assert.False(t, c.RetentionGap)
	}
	if c := connAt(ws, 0).confirm; assert.NotNil(t, c) {
		assert.Nil(t, c.ReplayStartedAfterEventID, "first subscription without a cursor")
	}

	// The instance that stayed shows the same history to a poll.
	status, body := a.do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events?maxEvents=100", "")
	require.Equal(t, http.StatusOK, status, string(body))
	conformance.CheckBody(t, conformance.PollEventsResponse, body)
	var res contracts.PollResult
	require.NoError(t, json.Unmarshal(body, &res))
	got := make([]string, len(res.Events))
	for i, ev := range res.Events {
		got[i] = ev.EventID.String()
	}
	assert.Equal(t, all, got)
}

// connAt returns the subscriber's i-th connection record.
func connAt(s *subscriber, i int) connection {
	conns := s.connections()
	if i >= len(conns) {
		return connection{}
	}
	return conns[i]
}
