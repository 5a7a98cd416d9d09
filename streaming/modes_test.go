package streaming_test

import (
	"io"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// TestWrappedConnectionsAreHeld: a connection the hub cannot detach (here
// fasthttp wraps it, as TLS would) is held on its goroutine although
// detaching is on, and streams exactly like a detached one.
func TestWrappedConnectionsAreHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streaming.Options{}, withWrappedConns())
	first := e.append("m1", contracts.Started(""))

	sse := dialSSE(t, e.addr, "/sse/m1", nil)
	ev, err := sse.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, first[0].EventID, ev.EventID)

	ws := dialWS(t, e.addr)
	ws.subscribe("m1", nil)
	ws.confirmation(wait)
	ev, err = ws.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, first[0].EventID, ev.EventID)
	require.Eventually(t, func() bool { return e.hub.OpenStreams() == 2 }, wait, time.Millisecond)
	e.requireMode(2) // none detached

	last := e.append("m1", completed(t))
	ev, err = sse.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, last[0].EventID, ev.EventID)
	_, err = sse.next(wait)
	require.ErrorIs(t, err, io.EOF)
	ev, err = ws.nextEvent(wait)
	require.NoError(t, err)
	assert.Equal(t, last[0].EventID, ev.EventID)
	code, _ := ws.expectClose(wait)
	assert.Equal(t, websocket.CloseNormalClosure, code)
	require.Eventually(t, func() bool { return e.hub.OpenStreams() == 0 }, wait, time.Millisecond)
}
