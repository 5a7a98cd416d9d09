package streaming

import (
	"sync"
	"time"
)

// writerIdle is how long a writer goroutine that finished a drain waits
// for the next one before it exits.
const writerIdle = time.Second

// writers runs the connections' drains (conn.run) on reused goroutines.
// A fresh goroutine per drain costs its creation and, because the write
// path needs more than a new goroutine's stack, a stack copy on every
// drain: under fan-out to thousands of subscribers that was a sixth of the
// hub's CPU. A writer that finished waits up to writerIdle for the next
// drain instead. A drain never waits for a busy writer: when no idle one
// takes it at once, a new goroutine starts, so a slow connection cannot
// delay another. Idle writers exit after writerIdle or when the pool is
// closed; a busy one exits when its drain returns after close.
type writers struct {
	work chan func() // unbuffered: a send succeeds only into an idle writer
	done chan struct{}

	mu     sync.Mutex
	closed bool
}

func newWriters() *writers {
	return &writers{work: make(chan func()), done: make(chan struct{})}
}

// start runs fn on an idle writer, or on a new one.
func (p *writers) start(fn func()) {
	select {
	case p.work <- fn:
		return
	default:
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		go fn() // owner: the connection whose drain fn is; it ends with the drain
		return
	}
	go p.loop(fn) // owner: the pool; exits when idle for writerIdle or at close
}

func (p *writers) loop(fn func()) {
	t := time.NewTimer(writerIdle)
	defer t.Stop()
	for {
		fn()
		t.Reset(writerIdle)
		select {
		case fn = <-p.work:
		case <-t.C:
			return
		case <-p.done:
			return
		}
	}
}

// close makes the idle writers exit and the later ones exit after their
// drain. It does not wait for busy writers (their writes have deadlines).
func (p *writers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
}
