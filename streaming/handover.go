package streaming

import (
	"sync/atomic"
	"time"
)

// handoverTimeout is how long ServeSSE waits for fasthttp to hand the
// connection over (it does so right after the handler returns, unless the
// connection failed in between) before it gives the stream up.
const handoverTimeout = 10 * time.Second

// handover settles who ends a hijacked request: fasthttp's hijack handler,
// when it runs, or a guard timer, when fasthttp never hands the connection
// over (it could not prepare it: the client was gone). Exactly one of them
// wins; the guard's loser callback (OnClose) runs only if the handler never
// started, and a handler starting after the guard fired must not serve.
type handover struct {
	state atomic.Int32 // 0 pending, 1 handed over, 2 given up
	timer *time.Timer
}

// newHandover arms the guard: after d, unless take was called, giveUp runs.
func newHandover(d time.Duration, giveUp func()) *handover {
	g := &handover{}
	g.timer = time.AfterFunc(d, func() {
		if g.state.CompareAndSwap(0, 2) && giveUp != nil {
			giveUp()
		}
	})
	return g
}

// take is called by the hijack handler; false means the guard gave the
// request up already and the handler must return at once.
func (g *handover) take() bool {
	if !g.state.CompareAndSwap(0, 1) {
		return false
	}
	g.timer.Stop()
	return true
}
