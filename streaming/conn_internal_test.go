package streaming

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// TestConnLifecycleMovesForward: the lifecycle only moves forward, along
// the documented arrows; everything else (going back, skipping the start,
// leaving released) is refused and changes nothing.
func TestConnLifecycleMovesForward(t *testing.T) {
	t.Parallel()
	names := map[connState]string{
		connHandshake: "handshake", connReady: "ready", connCancelled: "cancelled", connOpen: "open",
		connEnding: "ending", connClosing: "closing", connDead: "dead", connReleased: "released",
	}
	allowed := map[[2]connState]bool{
		{connHandshake, connReady}: true, {connHandshake, connCancelled}: true, {connHandshake, connDead}: true,
		{connReady, connOpen}: true, {connReady, connCancelled}: true, {connReady, connDead}: true,
		{connCancelled, connEnding}: true, {connCancelled, connDead}: true,
		{connOpen, connEnding}: true, {connOpen, connClosing}: true, {connOpen, connDead}: true,
		{connEnding, connClosing}: true, {connEnding, connDead}: true,
		{connClosing, connDead}:  true,
		{connDead, connReleased}: true,
	}
	for from := connHandshake; from <= connReleased; from++ {
		for to := connHandshake; to <= connReleased; to++ {
			c := &conn{state: from}
			moved := c.moveLocked(to)
			want := allowed[[2]connState{from, to}]
			assert.Equal(t, want, moved, "%s -> %s", names[from], names[to])
			if moved {
				assert.Equal(t, to, c.state)
				assert.Greater(t, to, from, "%s -> %s goes back", names[from], names[to])
			} else {
				assert.Equal(t, from, c.state, "a refused move changes nothing")
			}
		}
	}
}

// TestBusyTaskDoesNotStarveCatchUp: on a connection that follows several
// tasks, a task whose live batches keep coming and another that must read
// the store take turns: the read is made no later than the drain after it
// became due, however full the other's queue stays.
func TestBusyTaskDoesNotStarveCatchUp(t *testing.T) {
	t.Parallel()
	mem := memstore.NewEventStore(memstore.Options{})
	backlog := make([]contracts.EventID, 0, 3)
	for range 3 {
		ev, err := mem.Append(context.Background(), "back", contracts.Started(""))
		require.NoError(t, err)
		backlog = append(backlog, ev.EventID)
	}
	h, err := NewHub(mem, Options{HeartbeatInterval: -1, WSPingInterval: -1, ReplayBatchSize: 1})
	require.NoError(t, err)
	c, busy := newTestConn(h, observe.TransportWS, "busy", &discardConn{})
	back := newSubscriber(c, "back", contracts.EventID{}, h.cfg.queueSize)
	require.True(t, c.addSub(back))
	h.register(busy)
	h.register(back)
	c.state, c.writing = connOpen, true // this test is the writer
	seq := uint64(1)
	queueBusy := func() {
		ev := sampleEvent(contracts.EventID{Ms: 1, Seq: seq})
		ev.TaskID = "busy"
		seq++
		b := newBatch([]contracts.TaskEvent{ev})
		b.encode(&h.formats, bothFormats)
		c.mu.Lock()
		busy.state = subLive
		require.True(t, busy.push(b))
		c.mu.Unlock()
	}
	for step := range 6 {
		queueBusy() // the busy task never lets its queue run dry
		require.True(t, c.step(), "step %d", step)
	}
	assert.Equal(t, backlog[2], back.cursor, "every page of the backlog was read while the busy task streamed")
	// Drains and reads alternated: the batches queued before the last
	// drain were all written (the sixth waits for the next one).
	assert.Equal(t, contracts.EventID{Ms: 1, Seq: 5}, busy.cursor)
}
