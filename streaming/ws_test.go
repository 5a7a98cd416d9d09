package streaming_test

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

func TestWSReplayLiveAndTerminalClose(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			metrics := newCounterSink()
			e := newEnv(t, streaming.Options{Metrics: metrics}, m.opt)
			first := e.append("w1", contracts.Started(""), progress(t, 20))

			c := dialWS(t, e.addr)
			c.subscribe("w1", nil)
			conf := c.confirmation(wait)
			e.requireMode(1)
			assert.Equal(t, "w1", conf.TaskID)
			assert.Nil(t, conf.ReplayStartedAfterEventID)
			assert.True(t, conf.Live)
			assert.False(t, conf.RetentionGap)

			var got []contracts.TaskEvent
			for range first {
				ev, err := c.nextEvent(wait)
				require.NoError(t, err)
				got = append(got, ev)
			}
			live := e.append("w1", progress(t, 60), completed(t))
			for range live {
				ev, err := c.nextEvent(wait)
				require.NoError(t, err)
				got = append(got, ev)
			}
			assert.Equal(t, ids(append(first, live...)), ids(got))
			code, _ := c.expectClose(wait)
			assert.Equal(t, websocket.CloseNormalClosure, code)
			require.Eventually(t, func() bool { return e.hub.OpenStreams() == 0 }, wait, 5*time.Millisecond)
			assert.Equal(t, float64(4), metrics.get(observe.MetricEventsDelivered, "ws"))

		})
	}
}

func TestWSCursor(t *testing.T) {
	t.Parallel()
	metrics := newCounterSink()
	e := newEnv(t, streaming.Options{Metrics: metrics})
	evs := e.append("w2", contracts.Started(""), progress(t, 1), progress(t, 2))

	c := dialWS(t, e.addr)
	c.subscribe("w2", ptr(evs[0].EventID.String()))
	conf := c.confirmation(wait)
	require.NotNil(t, conf.ReplayStartedAfterEventID)
	assert.Equal(t, evs[0].EventID.String(), *conf.ReplayStartedAfterEventID)
	for _, want := range evs[1:] {
		ev, err := c.nextEvent(wait)
		require.NoError(t, err)
		assert.Equal(t, want.EventID, ev.EventID)
	}
	assert.Equal(t, float64(1), metrics.get(observe.MetricReplays, "ws"))
}

func TestWSEndedTaskConfirmsThenCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	evs := e.append("w3", contracts.Started(""), completed(t))
	c := dialWS(t, e.addr)
	c.subscribe("w3", ptr(evs[1].EventID.String()))
	c.confirmation(wait)
	code, _ := c.expectClose(wait)
	assert.Equal(t, websocket.CloseNormalClosure, code)
}

func TestWSRetentionGapIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{}, withMemOptions(memStoreCap(2)))
	evs := e.append("w4", contracts.Started(""), progress(t, 1), progress(t, 2), progress(t, 3))
	c := dialWS(t, e.addr)
	c.subscribe("w4", ptr(evs[0].EventID.String()))
	conf := c.confirmation(wait)
	assert.True(t, conf.RetentionGap)
	ev, err := c.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, evs[2].EventID, ev.EventID)
}

func TestWSHeartbeatsWhenIdle(t *testing.T) {
	t.Parallel()
	metrics := newCounterSink()
	e := newEnv(t, streaming.Options{HeartbeatInterval: 30 * time.Millisecond, Metrics: metrics})
	c := dialWS(t, e.addr)
	c.subscribe("w5", nil)
	c.confirmation(wait)
	for range 2 {
		f, err := c.read(wait)
		require.NoError(t, err)
		require.NotNil(t, f.Heartbeat)
		assert.Equal(t, "w5", f.Heartbeat.TaskID)
	}
	assert.GreaterOrEqual(t, metrics.get(observe.MetricHeartbeats, "ws"), float64(2))
}

func TestWSPolicyViolations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{WSReadLimit: 256, WSHandshakeTimeout: 100 * time.Millisecond})
	tests := []struct {
		name   string
		send   func(*websocket.Conn) error
		reason string
	}{
		{name: "binary frame", send: func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.BinaryMessage, []byte(`{"action":"subscribe","taskId":"x"}`))
		}, reason: "binary frame"},
		{name: "not JSON", send: func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte("hello"))
		}, reason: "invalid subscribe frame"},
		{name: "empty", send: func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, nil)
		}, reason: "invalid subscribe frame"},
		{name: "wrong shape", send: func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte(`{"action":"unsubscribe","taskId":"x"}`))
		}, reason: "invalid subscribe frame"},
		{name: "unknown field", send: func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte(`{"action":"subscribe","taskId":"x","extra":1}`))
		}, reason: "invalid subscribe frame"},
		{name: "malformed cursor", send: func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, []byte(`{"action":"subscribe","taskId":"x","lastEventId":"abc"}`))
		}, reason: "invalid subscribe frame"},
		{name: "oversized", send: func(c *websocket.Conn) error {
			big := `{"action":"subscribe","taskId":"` + strings.Repeat("x", 300) + `"}`
			return c.WriteMessage(websocket.TextMessage, []byte(big))
		}, reason: "frame too large"},
		{name: "handshake timeout", send: func(*websocket.Conn) error { return nil }, reason: "handshake timeout"},
		{name: "foreign task", send: func(c *websocket.Conn) error {
			return c.WriteJSON(contracts.SubscribeRequest{Action: "subscribe", TaskID: "foreign-1"})
		}, reason: "TASK_NOT_FOUND"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialWS(t, e.addr)
			require.NoError(t, tc.send(c.conn))
			code, reason := c.expectClose(wait)
			assert.Equal(t, websocket.ClosePolicyViolation, code)
			assert.Equal(t, tc.reason, reason)
		})
	}
}

func TestWSFramesAfterSubscribeClose1008(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			tests := []struct {
				name string
				send func(*websocket.Conn) error
			}{
				{name: "second subscribe", send: func(c *websocket.Conn) error {
					return c.WriteJSON(contracts.SubscribeRequest{Action: "subscribe", TaskID: "w6"})
				}},
				{name: "text frame", send: func(c *websocket.Conn) error {
					return c.WriteMessage(websocket.TextMessage, []byte("hi"))
				}},
				{name: "binary frame", send: func(c *websocket.Conn) error {
					return c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
				}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					c := dialWS(t, e.addr)
					c.subscribe("w6", nil)
					c.confirmation(wait)
					require.NoError(t, tc.send(c.conn))
					code, reason := c.expectClose(wait)
					assert.Equal(t, websocket.ClosePolicyViolation, code)
					assert.Equal(t, "unexpected frame", reason)
				})
			}

		})
	}
}

func TestWSClientPingAndClose(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			c := dialWS(t, e.addr)
			pongs := make(chan string, 1)
			c.conn.SetPongHandler(func(data string) error { pongs <- data; return nil })
			c.subscribe("w7", nil)
			c.confirmation(wait)
			require.NoError(t, c.conn.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(wait)))
			_, err := c.read(200 * time.Millisecond) // the pong is handled while reading
			require.Error(t, err)
			select {
			case p := <-pongs:
				assert.Equal(t, "are you there", p)
			default:
				t.Fatal("no pong")
			}

			// A client close is answered with a close and the stream is released.
			c2 := dialWS(t, e.addr)
			c2.subscribe("w7", nil)
			c2.confirmation(wait)
			require.NoError(t, c2.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye")))
			code, _ := c2.expectClose(wait)
			assert.Equal(t, websocket.CloseGoingAway, code)
			require.Eventually(t, func() bool { return e.hub.OpenStreams() == 1 }, wait, 5*time.Millisecond)

		})
	}
}

func TestWSDeadPeerIsDropped(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{WSPingInterval: 50 * time.Millisecond, WSPongTimeout: 200 * time.Millisecond, HeartbeatInterval: -1}, m.opt)
			c := dialWS(t, e.addr)
			c.subscribe("w8", nil)
			c.confirmation(wait)
			pings := 0
			c.conn.SetPingHandler(func(string) error { pings++; return nil }) // never answers
			_ = c.conn.SetReadDeadline(time.Now().Add(wait))
			_, _, err := c.conn.ReadMessage()
			require.Error(t, err)
			var ce *websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, websocket.CloseAbnormalClosure, ce.Code, "a dead peer is dropped without a close handshake")
			assert.GreaterOrEqual(t, pings, 1)
			require.Eventually(t, func() bool { return e.hub.OpenStreams() == 0 }, wait, 5*time.Millisecond)

			// A live peer (gorilla answers pings while reading) stays
			// connected, past the pong timeout several times over. Its
			// hub allows a second for the answer: a client goroutine
			// under the race detector on a loaded machine may not run
			// within the 250 ms above.
			live := newEnv(t, streaming.Options{WSPingInterval: 50 * time.Millisecond, WSPongTimeout: time.Second, HeartbeatInterval: -1}, m.opt)
			c2 := dialWS(t, live.addr)
			c2.subscribe("w8", nil)
			c2.confirmation(wait)
			answered := 0
			c2.conn.SetPingHandler(func(data string) error {
				answered++
				return c2.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(wait))
			})
			_, err = c2.read(3 * time.Second) // ping interval + pong timeout, nearly three times
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			assert.True(t, ne.Timeout(), "still open: %v", err)
			assert.Greater(t, answered, 3, "pinged all along")
			assert.Equal(t, 1, live.hub.OpenStreams())

		})
	}
}

func TestWSStoreFailureCloses1011(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{StoreRetryBudget: -1}) // no retries: the first failure ends the stream
	c := dialWS(t, e.addr)
	e.append("w9", contracts.Started(""))
	c.subscribe("w9", nil)
	c.confirmation(wait)
	_, err := c.nextEvent(wait)
	require.NoError(t, err)
	e.store.failRead.Store(true)
	e.append("w9", progress(t, 3))
	code, reason := c.expectClose(wait)
	assert.Equal(t, websocket.CloseInternalServerErr, code)
	assert.Equal(t, "store unavailable", reason)
}

func TestWSRawFrames(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			sub := []byte(`{"action":"subscribe","taskId":"w10"}`)
			t.Run("fragmented subscribe with a ping in between", func(t *testing.T) {
				c := dialRawWS(t, e.addr)
				c.frame(0x1, false, true, sub[:10])
				c.frame(0x9, true, true, []byte("p"))
				c.frame(0x0, true, true, sub[10:])
				op, payload := c.readFrame()
				assert.Equal(t, byte(0xA), op, "pong first")
				assert.Equal(t, "p", string(payload))
				op, payload = c.readFrame()
				require.Equal(t, byte(0x1), op)
				assert.Contains(t, string(payload), `"SUBSCRIPTION_CONFIRMED"`)
			})
			t.Run("unmasked frame", func(t *testing.T) {
				c := dialRawWS(t, e.addr)
				c.frame(0x1, true, false, sub)
				code, reason := c.readClose()
				assert.Equal(t, 1008, code)
				assert.Equal(t, "unmasked frame", reason)
			})
			t.Run("reserved bits", func(t *testing.T) {
				c := dialRawWS(t, e.addr)
				c.frame(0x1|0x40, true, true, sub)
				code, _ := c.readClose()
				assert.Equal(t, 1008, code)
			})
			t.Run("continuation first", func(t *testing.T) {
				c := dialRawWS(t, e.addr)
				c.frame(0x0, true, true, sub)
				code, reason := c.readClose()
				assert.Equal(t, 1008, code)
				assert.Equal(t, "invalid frame", reason)
			})
			t.Run("fragments over the limit", func(t *testing.T) {
				c := dialRawWS(t, e.addr)
				chunk := bytes.Repeat([]byte("x"), 3000)
				c.frame(0x1, false, true, chunk)
				c.frame(0x0, true, true, chunk)
				code, reason := c.readClose()
				assert.Equal(t, 1008, code)
				assert.Equal(t, "frame too large", reason)
			})
			t.Run("unmasked frame after subscribe", func(t *testing.T) {
				c := dialRawWS(t, e.addr)
				c.frame(0x1, true, true, sub)
				op, _ := c.readFrame()
				require.Equal(t, byte(0x1), op)
				c.frame(0xA, true, false, nil)
				code, reason := c.readClose()
				assert.Equal(t, 1008, code)
				assert.Equal(t, "unmasked frame", reason)
			})

		})
	}
}

func TestServeWebSocketLastsAsLongAsTheStream(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{}, m.opt)
			e.append("w11", contracts.Started(""))
			c := dialWSPath(t, &net.Dialer{}, e.addr, "/ws-blocking")
			c.subscribe("w11", nil)
			c.confirmation(wait)
			_, err := c.nextEvent(wait)
			require.NoError(t, err)
			assert.Equal(t, int64(0), e.blockingDone.Load(), "the handler runs while the stream does")
			e.append("w11", completed(t))
			_, err = c.nextEvent(wait)
			require.NoError(t, err)
			code, _ := c.expectClose(wait)
			assert.Equal(t, websocket.CloseNormalClosure, code)
			require.Eventually(t, func() bool { return e.blockingDone.Load() == 1 }, wait, time.Millisecond)
		})
	}
}

func TestAttachWebSocketCallsOnCloseOnce(t *testing.T) {
	t.Parallel()
	for _, m := range connModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, streaming.Options{WSHandshakeTimeout: 50 * time.Millisecond}, m.opt)
			e.append("w12", contracts.Started(""), completed(t))
			endings := []func(*wsClient){
				func(c *wsClient) { // terminal
					c.subscribe("w12", nil)
					c.expectClose(wait)
				},
				func(c *wsClient) { // refused
					c.subscribe("foreign-x", nil)
					c.expectClose(wait)
				},
				func(c *wsClient) { c.expectClose(wait) }, // handshake timeout
				func(c *wsClient) { _ = c.conn.Close() },  // client gone
			}
			for _, end := range endings {
				end(dialWS(t, e.addr))
			}
			require.Eventually(t, func() bool { return e.wsClosed.Load() == int64(len(endings)) }, wait, time.Millisecond)
			assert.Equal(t, 0, e.hub.OpenStreams())
			// Exactly once: no late second call.
			e.shutdown()
			assert.Equal(t, int64(len(endings)), e.wsClosed.Load())
		})
	}
}

// TestWSClientGoneAtOnceIsUnwatched: WebSocket clients that subscribe and
// reset their connection at once, so that the poller may see the end
// while the stream is still being set up, leave nothing behind: every
// stream ends and the poller watches no connection (a release that ran
// before the connection's poller key was stored used to unwatch nothing).
func TestWSClientGoneAtOnceIsUnwatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{})
	e.append("gone-at-once", contracts.Started(""))
	for range 200 {
		c := dialWS(t, e.addr)
		c.subscribe("gone-at-once", nil)
		tc, ok := c.conn.NetConn().(*net.TCPConn)
		require.True(t, ok)
		require.NoError(t, tc.SetLinger(0))
		require.NoError(t, tc.Close())
	}
	require.Eventually(t, func() bool { return e.hub.OpenStreams() == 0 && e.hub.WatchedConns() == 0 }, wait, time.Millisecond,
		"open streams %d, watched connections %d", e.hub.OpenStreams(), e.hub.WatchedConns())
}
