//go:build linux

package streaming

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// poller watches every detached connection for input with one epoll set
// and one goroutine, so an idle stream needs no goroutine of its own: the
// kernel says when a client sent something (a pong, a close frame) or left.
type poller struct {
	epfd       int
	wakeR      int // pipe read end, in the set: written to stop run
	wakeW      int
	mu         sync.Mutex
	slots      []pollSlot
	free       []int32
	closed     bool // stop was called: no more adds
	epfdClosed bool
}

type pollSlot struct {
	s   *session
	rc  syscall.RawConn
	gen uint32
}

// wakeSlot marks the stop pipe's events.
const wakeSlot = -1

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeSlot}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(p[0])
		_ = syscall.Close(p[1])
		return nil, err
	}
	return &poller{epfd: epfd, wakeR: p[0], wakeW: p[1]}, nil
}

// detach takes a TCP connection away from its owner: the returned
// connection shares the socket through a duplicated descriptor, so the
// owner may close its own (fasthttp does when the hijack handler returns,
// releasing its per-request buffers and goroutine) while the stream goes
// on. A connection of a counting listener (connlimit.Conn: a slotHolder)
// is unwrapped, and its slot stays held until the duplicate is closed.
// Anything else (TLS, other wrapped connections) cannot be detached.
func detach(c net.Conn) (net.Conn, bool) {
	holder, held := c.(slotHolder)
	if held {
		c = holder.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	f, err := tcp.File()
	if err != nil {
		return nil, false
	}
	defer f.Close()
	fc, err := net.FileConn(f)
	if err != nil {
		return nil, false
	}
	dup, ok := fc.(*net.TCPConn)
	if !ok {
		_ = fc.Close()
		return nil, false
	}
	if held {
		return &heldConn{TCPConn: dup, release: holder.Hold()}, true
	}
	return dup, true
}

// add starts watching s's connection.
func (p *poller) add(s *session) error {
	rc, err := s.raw.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("taskbridge: poller stopped")
	}
	var idx int32
	if n := len(p.free); n > 0 {
		idx = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		idx = int32(len(p.slots))
		p.slots = append(p.slots, pollSlot{})
	}
	slot := &p.slots[idx]
	slot.gen++
	slot.s, slot.rc = s, rc
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP,
		Fd:     idx,
		Pad:    int32(slot.gen),
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil {
		cerr = err
	}
	if cerr != nil {
		slot.s, slot.rc = nil, nil
		p.free = append(p.free, idx)
		return cerr
	}
	s.pollIdx, s.polled = idx, true
	return nil
}

// remove stops watching s; call before closing its connection.
func (p *poller) remove(s *session) {
	p.mu.Lock()
	if !s.polled {
		p.mu.Unlock()
		return
	}
	s.polled = false
	slot := &p.slots[s.pollIdx]
	rc := slot.rc
	slot.s, slot.rc = nil, nil
	p.free = append(p.free, s.pollIdx)
	if !p.epfdClosed {
		// Under mu, so run cannot close the set meanwhile.
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
	p.mu.Unlock()
}

// run dispatches input events until stop is called.
func (p *poller) run() {
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 4096)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for i := range events[:n] {
			ev := &events[i]
			if ev.Fd == wakeSlot {
				p.mu.Lock()
				p.epfdClosed = true
				_ = syscall.Close(p.epfd)
				p.mu.Unlock()
				_ = syscall.Close(p.wakeR)
				return
			}
			p.mu.Lock()
			var slot pollSlot
			if int(ev.Fd) < len(p.slots) && p.slots[ev.Fd].gen == uint32(ev.Pad) {
				slot = p.slots[ev.Fd]
			}
			p.mu.Unlock()
			if slot.s != nil {
				slot.s.onReadable(slot.rc, buf)
			}
		}
	}
}

// stop ends run; connections still watched are left to their sessions.
func (p *poller) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_, _ = syscall.Write(p.wakeW, []byte{0})
	_ = syscall.Close(p.wakeW)
}

// readNow reads what the connection holds without waiting: n > 0 bytes,
// or eof, or an error (nil with n == 0 when nothing is there).
func readNow(rc syscall.RawConn, buf []byte) (n int, eof bool, err error) {
	rerr := rc.Read(func(fd uintptr) bool {
		n, err = syscall.Read(int(fd), buf)
		return true
	})
	switch {
	case rerr != nil:
		return 0, false, rerr
	case errors.Is(err, syscall.EAGAIN):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case n == 0:
		return 0, true, nil
	}
	return n, false, nil
}
