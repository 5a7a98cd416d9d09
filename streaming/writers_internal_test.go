package streaming

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goid returns the calling goroutine's id (from its stack header).
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// alive reports whether goroutine id exists.
func alive(id uint64) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Contains(buf, fmt.Appendf(nil, "goroutine %d [", id))
}

// handOff gives fn to an idle writer, waiting until one is idle.
func handOff(t *testing.T, p *writers, fn func()) {
	t.Helper()
	require.Eventually(t, func() bool {
		select {
		case p.work <- fn:
			return true
		default:
			return false
		}
	}, 5*time.Second, time.Millisecond, "no writer became idle")
}

func TestWritersReuseAnIdleWriter(t *testing.T) {
	p := newWriters()
	defer p.close()
	ran := make(chan uint64, 1)
	p.start(func() { ran <- goid() })
	first := recvIn(t, ran)
	for range 10 {
		handOff(t, p, func() { ran <- goid() })
		assert.Equal(t, first, recvIn(t, ran), "the drain ran on the idle writer")
	}
	// start itself hands a drain to the idle writer.
	handOff(t, p, func() { ran <- goid() })
	recvIn(t, ran)
	require.Eventually(t, func() bool {
		p.start(func() { ran <- goid() })
		return <-ran == first
	}, 5*time.Second, time.Millisecond)
}

func TestWritersNeverWaitForABusyWriter(t *testing.T) {
	p := newWriters()
	defer p.close()
	release := make(chan struct{})
	blocked := make(chan struct{})
	p.start(func() {
		close(blocked)
		<-release // a drain stuck on a slow connection
	})
	recvIn(t, blocked)
	done := make(chan struct{})
	p.start(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a drain waited for a busy writer")
	}
	close(release)
}

func TestWritersExitWhenClosed(t *testing.T) {
	p := newWriters()
	ran := make(chan uint64, 1)
	p.start(func() { ran <- goid() })
	id := recvIn(t, ran)
	assert.True(t, alive(id), "the writer waits for the next drain")
	p.close()
	require.Eventually(t, func() bool { return !alive(id) }, 5*time.Second, time.Millisecond,
		"the idle writer exits on close")
	// After close a drain still runs, on a goroutine of its own.
	p.start(func() { ran <- goid() })
	assert.NotEqual(t, id, recvIn(t, ran))
}

func TestWritersExitWhenIdle(t *testing.T) {
	p := newWriters()
	defer p.close()
	ran := make(chan uint64, 1)
	p.start(func() { ran <- goid() })
	id := recvIn(t, ran)
	require.Eventually(t, func() bool { return !alive(id) }, 5*writerIdle, 10*time.Millisecond,
		"an idle writer exits after writerIdle")
}

// recvIn receives from ch or fails the test after 5 s.
func recvIn[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received within 5 s")
		panic("unreachable")
	}
}
