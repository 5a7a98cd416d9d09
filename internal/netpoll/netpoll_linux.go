//go:build linux

package netpoll

import (
	"errors"
	"net"
	"sync"
	"syscall"
)

// Poller watches connections for input with one epoll set and one
// goroutine (Run). Add, Remove and Stop are safe for concurrent use;
// handlers run on Run's goroutine, one at a time, and must not block.
type Poller struct {
	epfd       int
	wakeR      int // pipe read end, in the set: written to stop Run
	wakeW      int
	mu         sync.Mutex // guards the fields below; a leaf lock
	slots      []slot
	free       []int32
	closed     bool // Stop was called: no more adds
	epfdClosed bool
}

type slot struct {
	h   Handler
	rc  syscall.RawConn
	gen uint32
}

// wakeSlot marks the stop pipe's events.
const wakeSlot = -1

// New returns a poller; start Run in a goroutine and end it with Stop.
func New() (*Poller, error) {
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
	return &Poller{epfd: epfd, wakeR: p[0], wakeW: p[1]}, nil
}

// Detach takes a TCP connection away from its owner: the returned
// connection shares the socket through a duplicated descriptor, so the
// owner may close its own (fasthttp does when the hijack handler returns,
// releasing its per-request buffers and goroutine) while the stream goes
// on. A connection of a counting listener (connlimit.Conn: a SlotHolder)
// is unwrapped, and its slot stays held until the duplicate is closed.
// Anything else (TLS, other wrapped connections) cannot be detached.
func Detach(c net.Conn) (net.Conn, bool) {
	holder, held := c.(SlotHolder)
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

// Add starts watching c: h.OnReadable runs on Run's goroutine whenever c
// has input or its peer left. Remove the returned key before closing c.
func (p *Poller) Add(c syscall.Conn, h Handler) (Key, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Key{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Key{}, errors.New("taskbridge: poller stopped")
	}
	var idx int32
	if n := len(p.free); n > 0 {
		idx = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		idx = int32(len(p.slots))
		p.slots = append(p.slots, slot{})
	}
	s := &p.slots[idx]
	if s.gen++; s.gen == 0 {
		s.gen = 1
	}
	s.h, s.rc = h, rc
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP,
		Fd:     idx,
		Pad:    int32(s.gen),
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil {
		cerr = err
	}
	if cerr != nil {
		s.h, s.rc = nil, nil
		p.free = append(p.free, idx)
		return Key{}, cerr
	}
	return Key{idx: idx, gen: s.gen}, nil
}

// Remove stops watching the connection of k. It is idempotent: a key whose
// slot was reused is ignored.
func (p *Poller) Remove(k Key) {
	if k.gen == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(k.idx) >= len(p.slots) || p.slots[k.idx].gen != k.gen || p.slots[k.idx].h == nil {
		return
	}
	s := &p.slots[k.idx]
	rc := s.rc
	s.h, s.rc = nil, nil
	p.free = append(p.free, k.idx)
	if !p.epfdClosed {
		// Under mu, so Run cannot close the set meanwhile.
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
}

// Watched returns how many connections the poller watches (added and not
// yet removed).
func (p *Poller) Watched() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.slots) - len(p.free)
}

// Run dispatches input events until Stop is called.
func (p *Poller) Run() {
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
			var s slot
			if int(ev.Fd) < len(p.slots) && p.slots[ev.Fd].gen == uint32(ev.Pad) {
				s = p.slots[ev.Fd]
			}
			p.mu.Unlock()
			if s.h != nil {
				s.h.OnReadable(s.rc, buf)
			}
		}
	}
}

// Stop ends Run; connections still watched are left to their owners. It
// is idempotent.
func (p *Poller) Stop() {
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

// ReadNow reads what the connection holds without waiting: n > 0 bytes,
// or eof, or an error (nil with n == 0 when nothing is there).
func ReadNow(rc syscall.RawConn, buf []byte) (n int, eof bool, err error) {
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
