package streaming_test

import (
	"context"
	"encoding/json"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

func (c *wsClient) unsubscribe(taskID string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.WriteJSON(contracts.UnsubscribeRequest{Action: "unsubscribe", TaskID: taskID}))
}

// nextFrame returns the next frame that is no heartbeat.
func (c *wsClient) nextFrame(timeout time.Duration) frames.Frame {
	c.t.Helper()
	for {
		f, err := c.read(timeout)
		require.NoError(c.t, err)
		if f.Heartbeat == nil {
			return f
		}
	}
}

// expectSilence requires that nothing but heartbeats arrives for d and the
// connection stays open. The client cannot read after that (a timed-out
// read breaks it), so call it last.
func (c *wsClient) expectSilence(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			var ne net.Error
			require.ErrorAs(c.t, err, &ne, "the connection must stay open")
			require.True(c.t, ne.Timeout(), "the connection must stay open: %v", err)
			return
		}
		require.NotNil(c.t, f.Heartbeat, "unexpected frame %+v", f)
	}
}

// TestWSMultiTask: a connection that subscribes a second time follows both
// tasks; events carry their taskId; one task's terminal event ends only its
// subscription; an unsubscribed task sends nothing more; a task ended at
// the cursor is reported UNSUBSCRIBED "ended".
func TestWSMultiTask(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			a := e.append("ma", contracts.Started(""))
			b := e.append("mb", contracts.Started(""))
			ended := e.append("mc", contracts.Started(""), completed(t))

			c := dialWS(t, e.addr)
			c.subscribe("ma", nil)
			c.confirmation(wait)
			ev, err := c.nextEvent(wait)
			require.NoError(t, err)
			assert.Equal(t, a[0].EventID, ev.EventID)

			c.subscribe("mb", ptr(""))
			conf := c.confirmation(wait)
			assert.Equal(t, "mb", conf.TaskID)
			assert.Nil(t, conf.ReplayStartedAfterEventID)
			ev, err = c.nextEvent(wait)
			require.NoError(t, err)
			assert.Equal(t, b[0].EventID, ev.EventID)
			assert.Equal(t, "mb", ev.TaskID)

			// A's end ends A only.
			aEnd := e.append("ma", progress(t, 50), completed(t))
			for _, want := range aEnd {
				ev, err := c.nextEvent(wait)
				require.NoError(t, err)
				assert.Equal(t, want.EventID, ev.EventID)
			}
			bLive := e.append("mb", progress(t, 10))
			ev, err = c.nextEvent(wait)
			require.NoError(t, err)
			assert.Equal(t, bLive[0].EventID, ev.EventID)

			// Unsubscribed: nothing more of B.
			c.unsubscribe("mb")
			f := c.nextFrame(wait)
			require.NotNil(t, f.Unsubscribed, "%+v", f)
			assert.Equal(t, contracts.Unsubscribed{Type: contracts.FrameUnsubscribed, TaskID: "mb", Reason: "unsubscribed"}, *f.Unsubscribed)
			e.append("mb", progress(t, 20))

			// A task ended at the cursor: confirmed, then UNSUBSCRIBED ended.
			c.subscribe("mc", ptr(ended[1].EventID.String()))
			c.confirmation(wait)
			f = c.nextFrame(wait)
			require.NotNil(t, f.Unsubscribed, "%+v", f)
			assert.Equal(t, "ended", f.Unsubscribed.Reason)
			assert.Equal(t, "mc", f.Unsubscribed.TaskID)

			// Resubscribing B with its cursor replays what it missed.
			c.subscribe("mb", ptr(bLive[0].EventID.String()))
			c.confirmation(wait)
			ev, err = c.nextEvent(wait)
			require.NoError(t, err)
			assert.Equal(t, "mb", ev.TaskID)
			assert.Equal(t, contracts.EventProgress, ev.Type)
			c.expectSilence(100 * time.Millisecond)
			e.requireMode(1)
			assert.Equal(t, 1, e.hub.LiveSubscribers("mb"))
			assert.Equal(t, 0, e.hub.LiveSubscribers("ma"))
		})
	}
}

// TestWSMultiOptIn: a connection opened as multi-task stays open after its
// only task's terminal event and can subscribe again.
func TestWSMultiOptIn(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			first := e.append("mo1", contracts.Started(""), completed(t))
			c := dialWSPath(t, &net.Dialer{}, e.addr, "/ws-multi")
			c.subscribe("mo1", nil)
			c.confirmation(wait)
			for _, want := range first {
				ev, err := c.nextEvent(wait)
				require.NoError(t, err)
				assert.Equal(t, want.EventID, ev.EventID)
			}
			// Still open: the next frame is the answer to another subscribe
			// (a close would come first).
			second := e.append("mo2", contracts.Started(""))
			c.subscribe("mo2", nil)
			c.confirmation(wait)
			ev, err := c.nextEvent(wait)
			require.NoError(t, err)
			assert.Equal(t, second[0].EventID, ev.EventID)
			// Shutdown closes it like any stream.
			e.shutdown()
			code, _ := c.expectClose(wait)
			assert.Equal(t, websocket.CloseGoingAway, code)
		})
	}
}

// TestWSMultiRefusals: a later subscribe to a foreign task or over the
// per-connection limit is answered SUBSCRIPTION_ERROR and the connection
// goes on; a second subscribe to a followed task, a malformed frame and a
// binary frame still close 1008 "unexpected frame".
func TestWSMultiRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{WSMaxSubscriptions: 2})
	e.append("mr1", contracts.Started(""))
	e.append("mr2", contracts.Started(""))
	e.append("mr3", contracts.Started(""))

	c := dialWS(t, e.addr)
	c.subscribe("mr1", nil)
	c.confirmation(wait)
	_, err := c.nextEvent(wait)
	require.NoError(t, err)
	c.subscribe("foreign-9", nil)
	f := c.nextFrame(wait)
	require.NotNil(t, f.SubscriptionError, "%+v", f)
	assert.Equal(t, "foreign-9", f.SubscriptionError.TaskID)
	assert.Equal(t, "TASK_NOT_FOUND", f.SubscriptionError.Code)
	assert.Equal(t, "task not found", f.SubscriptionError.Message)

	c.subscribe("mr2", nil)
	c.confirmation(wait)
	_, err = c.nextEvent(wait)
	require.NoError(t, err)
	c.subscribe("mr3", nil)
	f = c.nextFrame(wait)
	require.NotNil(t, f.SubscriptionError, "%+v", f)
	assert.Equal(t, "TOO_MANY_STREAMS", f.SubscriptionError.Code)
	// Unsubscribing frees a place.
	c.unsubscribe("mr1")
	require.NotNil(t, c.nextFrame(wait).Unsubscribed)
	c.subscribe("mr3", nil)
	c.confirmation(wait)
	ev, err := c.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, "mr3", ev.TaskID)

	for name, send := range map[string]func(*websocket.Conn) error{
		"second subscribe to a followed task": func(w *websocket.Conn) error {
			return w.WriteJSON(contracts.SubscribeRequest{Action: "subscribe", TaskID: "mr2"})
		},
		"malformed frame": func(w *websocket.Conn) error {
			return w.WriteMessage(websocket.TextMessage, []byte(`{"action":"unsubscribe","taskId":"mr2","x":1}`))
		},
		"binary frame": func(w *websocket.Conn) error { return w.WriteMessage(websocket.BinaryMessage, []byte(`{}`)) },
	} {
		t.Run(name, func(t *testing.T) {
			c := dialWS(t, e.addr)
			c.subscribe("mr1", nil)
			c.confirmation(wait)
			c.subscribe("mr2", nil)
			for f := c.nextFrame(wait); f.Confirmation == nil; f = c.nextFrame(wait) {
				require.NotNil(t, f.Event, "%+v", f)
			}
			require.NoError(t, send(c.conn))
			code, reason := c.expectClose(wait)
			assert.Equal(t, websocket.ClosePolicyViolation, code)
			assert.Equal(t, "unexpected frame", reason)
		})
	}
}

// TestWSSingleTaskOption: with WSMaxSubscriptions 1 a second subscribe to
// another task is a violation, as in the v1 protocol.
func TestWSSingleTaskOption(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{WSMaxSubscriptions: 1})
	c := dialWS(t, e.addr)
	c.subscribe("ms1", nil)
	c.confirmation(wait)
	c.subscribe("ms2", nil)
	code, reason := c.expectClose(wait)
	assert.Equal(t, websocket.ClosePolicyViolation, code)
	assert.Equal(t, "unexpected frame", reason)
}

// TestWSMultiSubscriptionStoreFailure: when a task's fan-out reads fail for
// the whole retry budget, a multi-task connection reports UNSUBSCRIBED
// "store unavailable" for that task and goes on with the others.
func TestWSMultiSubscriptionStoreFailure(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			fail := &failingTask{task: "mf-bad"}
			e := newEnv(t, streaming.Options{StoreRetryBudget: -1, FanoutReadBatch: 1}, m.opt,
				withStore(func(s contracts.EventStore) contracts.EventStore { fail.EventStore = s; return fail }))
			e.append("mf-bad", contracts.Started(""))
			e.append("mf-good", contracts.Started(""))
			c := dialWS(t, e.addr)
			c.subscribe("mf-bad", nil)
			c.confirmation(wait)
			_, err := c.nextEvent(wait)
			require.NoError(t, err)
			c.subscribe("mf-good", nil)
			c.confirmation(wait)
			_, err = c.nextEvent(wait)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return e.hub.LiveSubscribers("mf-bad") == 1 }, wait, time.Millisecond)

			fail.on.Store(true)
			e.append("mf-bad", progress(t, 1))
			f := c.nextFrame(wait)
			require.NotNil(t, f.Unsubscribed, "%+v", f)
			assert.Equal(t, contracts.Unsubscribed{Type: contracts.FrameUnsubscribed, TaskID: "mf-bad", Reason: "store unavailable"}, *f.Unsubscribed)
			good := e.append("mf-good", progress(t, 2))
			ev, err := c.nextEvent(wait)
			require.NoError(t, err)
			assert.Equal(t, good[0].EventID, ev.EventID)
			assert.Equal(t, 0, e.hub.LiveSubscribers("mf-bad"))
		})
	}
}

// TestWSMultiPipelined: subscribe frames sent back to back, before the
// first confirmation, are all served in order (the frames the handshake
// read along with the first one are not lost).
func TestWSMultiPipelined(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			c := dialRawWS(t, e.addr)
			ids := []string{"mp1", "mp2", "mp3", "mp4"}
			for _, id := range ids {
				e.append(id, contracts.Started(""))
			}
			for _, id := range ids {
				raw, err := json.Marshal(contracts.SubscribeRequest{Action: "subscribe", TaskID: id})
				require.NoError(t, err)
				c.frame(0x1, true, true, raw)
			}
			confirmed := map[string]bool{}
			events := map[string]int{}
			for len(confirmed) < len(ids) || len(events) < len(ids) {
				op, p := c.readFrame()
				require.Equal(t, byte(0x1), op)
				f, err := frames.Decode(p)
				require.NoError(t, err)
				switch {
				case f.Confirmation != nil:
					confirmed[f.Confirmation.TaskID] = true
				case f.Event != nil:
					require.True(t, confirmed[f.Event.TaskID], "event before its confirmation")
					events[f.Event.TaskID]++
				}
			}
			assert.Len(t, events, len(ids))
		})
	}
}

// failingTask fails the fan-out reads of one task while on is set.
type failingTask struct {
	contracts.EventStore
	task string
	on   atomic.Bool
}

func (s *failingTask) Read(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	if taskID == s.task && s.on.Load() {
		return contracts.EventPage{}, errInjected
	}
	return s.EventStore.Read(ctx, taskID, after, limit)
}

// TestWSTaskGone: after a feed resync, a task the store no longer has ends
// a connection that follows only it (1011 "task no longer exists") and
// only its own subscription on a multi-task connection. The task is gone
// only from the test's own resync on: the feed's first Resync (its
// subscription) also runs the check, later than the hub's start, and must
// not end the streams the test is still opening.
func TestWSTaskGone(t *testing.T) {
	t.Parallel()
	var gone atomic.Bool
	exists := func(_ context.Context, taskID string) (bool, error) { return !gone.Load() || taskID != "mg-gone", nil }
	e, _, feed := newOutageEnv(t, streaming.Options{TaskExists: exists})
	e.append("mg-gone", contracts.Started(""))
	e.append("mg-live", contracts.Started(""))

	single := dialWS(t, e.addr)
	single.subscribe("mg-gone", nil)
	single.confirmation(wait)
	_, err := single.nextEvent(wait)
	require.NoError(t, err)
	multi := dialWSPath(t, &net.Dialer{}, e.addr, "/ws-multi")
	for _, id := range []string{"mg-gone", "mg-live"} {
		multi.subscribe(id, nil)
		multi.confirmation(wait)
		_, err := multi.nextEvent(wait)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return e.hub.LiveSubscribers("mg-gone") == 2 }, wait, time.Millisecond)

	gone.Store(true)
	feed.resync <- struct{}{}
	code, reason := single.expectClose(wait)
	assert.Equal(t, websocket.CloseInternalServerErr, code)
	assert.Equal(t, "task no longer exists", reason)
	f := multi.nextFrame(wait)
	require.NotNil(t, f.Unsubscribed, "%+v", f)
	assert.Equal(t, contracts.Unsubscribed{Type: contracts.FrameUnsubscribed, TaskID: "mg-gone", Reason: "task no longer exists"}, *f.Unsubscribed)
	live := e.append("mg-live", progress(t, 5))
	ev, err := multi.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, live[0].EventID, ev.EventID)
}
