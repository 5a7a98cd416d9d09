package netpoll

import "syscall"

// Handler is told that a watched connection has input or that its peer
// left. OnReadable runs on the poller's goroutine and must not block: read
// with ReadNow into buf (the poller's, valid during the call) and hand work
// that waits elsewhere.
type Handler interface {
	OnReadable(rc syscall.RawConn, buf []byte)
}

// Key identifies one Add; the zero Key is no registration.
type Key struct {
	idx int32
	gen uint32 // never 0 for a registration
}
