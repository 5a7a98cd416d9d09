package streaming

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
