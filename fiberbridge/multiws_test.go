package fiberbridge_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// dialMultiWS opens a WebSocket that follows several tasks from its first
// subscribe (?multi=true).
func (h *harness) dialMultiWS(token string) *wsClient {
	h.t.Helper()
	header := http.Header{}
	header.Set("Authorization", "Bearer "+token)
	c, resp := h.dialWSURL("ws://"+h.addr+"/api/v1/tasks/ws?multi=true", header)
	require.NotNil(h.t, c, "refused: %d %s", resp.status, resp.body)
	return c
}

func (c *wsClient) unsubscribe(taskID string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.WriteJSON(contracts.UnsubscribeRequest{Action: "unsubscribe", TaskID: taskID}))
}

// nextFrame returns the next frame that is no heartbeat; the connection
// must stay open.
func (c *wsClient) nextFrame(timeout time.Duration) frames.Frame {
	c.t.Helper()
	for {
		r := c.read(timeout)
		require.False(c.t, r.closed, "closed (%d %q)", r.closeCode, r.closeText)
		if r.frame.Heartbeat == nil {
			return r.frame
		}
	}
}

// messageNumber is the n of a test.gated task's "m<n>" message.
func messageNumber(t testing.TB, ev contracts.TaskEvent) int {
	t.Helper()
	var p struct {
		Message string `json:"message"`
	}
	require.NoError(t, json.Unmarshal(ev.Payload, &p))
	n, err := strconv.Atoi(p.Message[1:])
	require.NoError(t, err, p.Message)
	return n
}

// TestWebSocketFollowsFiftyTasksWithDrops: one WebSocket follows 50 tasks
// while they emit; the client drops the connection at random moments and
// resumes every unfinished task on a new one with its cursor. Each task's
// events arrive exactly once and in order (they equal the task's log), the
// message numbers have no gap, and each task ends with its terminal event.
func TestWebSocketFollowsFiftyTasksWithDrops(t *testing.T) {
	t.Parallel()
	const tasks, rounds = 50, 6
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.MaxStreamsPerSubject = 4 * tasks
		cfg.SubjectLimits.MaxActiveTasks = tasks // one subject runs them all at once
	})
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = h.create("alice", "test.gated", nil)
	}
	emitted := make(chan struct{})
	go func() { // owned by this test: ends once every task has completed
		defer close(emitted)
		for r := 1; r <= rounds; r++ {
			for _, id := range ids {
				h.gates.get(id) <- fmt.Sprintf("m%d", r)
			}
		}
		for _, id := range ids {
			close(h.gates.get(id))
		}
	}()

	type follow struct {
		cursor *string
		events []contracts.TaskEvent
		next   int // the message number expected next
		done   bool
	}
	state := make(map[string]*follow, tasks)
	for _, id := range ids {
		state[id] = &follow{next: 1}
	}
	remaining, connections := tasks, 0
	rng := rand.New(rand.NewPCG(1, 2))
	for remaining > 0 {
		connections++
		require.Less(t, connections, 200, "no progress")
		c := h.dialMultiWS("alice")
		for _, id := range ids {
			if f := state[id]; !f.done {
				c.subscribe(id, f.cursor)
			}
		}
		budget := 20 + rng.IntN(60) // events on this connection before it drops
		for remaining > 0 && budget > 0 {
			fr := c.nextFrame(wait)
			switch {
			case fr.Confirmation != nil:
				continue
			case fr.Event == nil:
				t.Fatalf("unexpected frame %+v", fr)
			}
			ev := *fr.Event
			f := state[ev.TaskID]
			require.NotNil(t, f, "event of a task never subscribed: %s", ev.TaskID)
			require.False(t, f.done, "event after the terminal event")
			if n := len(f.events); n > 0 {
				require.True(t, f.events[n-1].EventID.Less(ev.EventID), "duplicate or out of order: %s after %s", ev.EventID, f.events[n-1].EventID)
			}
			if ev.Type == contracts.EventMessage {
				require.Equal(t, f.next, messageNumber(t, ev), "gap in %s", ev.TaskID)
				f.next++
			}
			f.events = append(f.events, ev)
			f.cursor = strPtr(ev.EventID.String())
			if ev.Type.IsTerminal() {
				f.done = true
				remaining--
			}
			budget--
		}
		_ = c.conn.NetConn().Close() // dropped, not closed
	}
	recv(t, emitted, "the emitter to finish")
	assert.Greater(t, connections, 2, "the client reconnected")
	for _, id := range ids {
		f := state[id]
		assert.Equal(t, rounds+1, f.next, "%s: every message", id)
		assert.Equal(t, contracts.EventCompleted, f.events[len(f.events)-1].Type)
		assert.Equal(t, ids2(h.pollUntilTerminal("alice", id)), ids2(f.events), "%s: the task's log, once", id)
	}
}

func ids2(evs []contracts.TaskEvent) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = evs[i].EventID.String()
	}
	return out
}

// TestWebSocketSecondSubscribe: without the multi parameter a connection
// becomes multi-task with its second subscribe: a foreign task is answered
// SUBSCRIPTION_ERROR and the connection goes on; one task's terminal event
// ends only that task; an unsubscribed task sends nothing more.
func TestWebSocketSecondSubscribe(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	a := h.create("alice", "test.gated", nil)
	b := h.create("alice", "test.gated", nil)
	foreign := h.create("bob", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(foreign)) })

	c, _ := h.dialWS("alice", false)
	require.NotNil(t, c)
	c.subscribe(a, nil)
	require.NotNil(t, c.nextFrame(wait).Confirmation)
	c.subscribe(foreign, nil)
	c.subscribe(b, nil)
	var refused *contracts.SubscriptionError
	confirmed := false
	for refused == nil || !confirmed {
		f := c.nextFrame(wait)
		switch {
		case f.SubscriptionError != nil:
			refused = f.SubscriptionError
		case f.Confirmation != nil:
			assert.Equal(t, b, f.Confirmation.TaskID)
			confirmed = true
		default:
			require.NotNil(t, f.Event, "%+v", f)
		}
	}
	assert.Equal(t, contracts.SubscriptionError{Type: contracts.FrameSubscriptionError, TaskID: foreign,
		Code: string(bridgeerr.CodeTaskNotFound), Message: "task not found"}, *refused)

	close(h.gates.get(a)) // a completes: its terminal event, no close
	for {
		f := c.nextFrame(wait)
		require.NotNil(t, f.Event, "%+v", f)
		if f.Event.TaskID == a && f.Event.Type.IsTerminal() {
			break
		}
	}
	h.gates.get(b) <- "m1"
	for {
		ev := c.nextEvent(wait)
		if ev.Type == contracts.EventMessage {
			assert.Equal(t, b, ev.TaskID)
			break
		}
	}
	c.unsubscribe(b)
	f := c.nextFrame(wait)
	require.NotNil(t, f.Unsubscribed, "%+v", f)
	assert.Equal(t, contracts.Unsubscribed{Type: contracts.FrameUnsubscribed, TaskID: b, Reason: "unsubscribed"}, *f.Unsubscribed)
	h.gates.get(b) <- "m2"
	close(h.gates.get(b))
	// Nothing of b arrives any more; the connection is still open and
	// answers the next subscribe.
	other := h.create("alice", "test.steps", map[string]int{"steps": 1})
	c.subscribe(other, nil)
	for f := c.nextFrame(wait); f.Confirmation == nil; f = c.nextFrame(wait) {
		t.Fatalf("unexpected frame %+v", f)
	}
}

// TestWebSocketSubscriptionLimits: the per-connection limit refuses a
// subscribe over it, each task beyond the first takes one of the subject's
// stream slots (shared with SSE), and an unsubscribe gives its slot back.
func TestWebSocketSubscriptionLimits(t *testing.T) {
	t.Parallel()
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.MaxStreamsPerSubject = 3
		cfg.Stream.WSMaxSubscriptions = 2
	})
	ids := []string{h.create("alice", "test.gated", nil), h.create("alice", "test.gated", nil), h.create("alice", "test.gated", nil)}
	t.Cleanup(func() {
		for _, id := range ids {
			close(h.gates.get(id))
		}
	})
	confirm := func(c *wsClient, id string) {
		t.Helper()
		c.subscribe(id, nil)
		for f := c.nextFrame(wait); f.Confirmation == nil; f = c.nextFrame(wait) {
			require.NotNil(t, f.Event, "%+v", f)
		}
	}
	refusal := func(c *wsClient, id string) *contracts.SubscriptionError {
		t.Helper()
		c.subscribe(id, nil)
		for {
			f := c.nextFrame(wait)
			if f.SubscriptionError != nil {
				return f.SubscriptionError
			}
			require.NotNil(t, f.Event, "%+v", f)
		}
	}

	c := h.dialMultiWS("alice")
	confirm(c, ids[0]) // the connection's slot
	confirm(c, ids[1]) // a second slot
	e := refusal(c, ids[2])
	assert.Equal(t, string(bridgeerr.CodeTooManyStreams), e.Code, "the connection's limit")
	assert.Equal(t, "too many subscriptions on this connection", e.Message)

	s, _ := h.openSSE("alice", ids[2], "", nil) // the third slot
	require.NotNil(t, s)
	_, r := h.openSSE("alice", ids[2], "", nil)
	checkEnvelope(t, r, http.StatusTooManyRequests, bridgeerr.CodeTooManyStreams)

	c.unsubscribe(ids[1])
	// The gated tasks' live events (TASK_STARTED comes from the executor
	// whenever it runs) may still arrive before the answer.
	for f := c.nextFrame(wait); f.Unsubscribed == nil; f = c.nextFrame(wait) {
		require.NotNil(t, f.Event, "%+v", f)
	}
	// The slot is back: another stream of alice's fits, and then the
	// subject's limit refuses the connection's next task.
	s2, r := h.openSSE("alice", ids[1], "", nil)
	require.NotNil(t, s2, "%d %s", r.status, r.body)
	e = refusal(c, ids[1])
	assert.Equal(t, string(bridgeerr.CodeTooManyStreams), e.Code, "the subject's limit")
	assert.Equal(t, "too many open streams", e.Message)
	s2.close()
	require.Eventually(t, func() bool {
		c.subscribe(ids[1], nil)
		for {
			f := c.nextFrame(wait)
			switch {
			case f.Confirmation != nil:
				return true
			case f.SubscriptionError != nil:
				return false
			}
		}
	}, wait, 10*time.Millisecond)
}

// TestWebSocketMultiParameter: multi must be a boolean.
func TestWebSocketMultiParameter(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	header := http.Header{}
	header.Set("Authorization", "Bearer alice")
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	_, resp, err := d.Dial("ws://"+h.addr+"/api/v1/tasks/ws?multi=yes", header)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
}
