package fiberbridge

import (
	"net"
	"syscall"
	"time"
)

// watchClient watches the connection of a waiting long-poll and calls gone
// (once, from its own goroutine) when the client closes its side or resets
// it, so the poll answers at once and its connection, descriptor and
// goroutines are released instead of being held for the rest of the wait
// (fasthttp itself notices a departed client only when it writes the
// answer). It peeks at the socket (MSG_PEEK, nothing is consumed) from the
// runtime's network poller: an idle poll costs one parked goroutine and no
// buffer. Bytes from the client (a pipelined request, or a TLS record such
// as close_notify) end the watch without calling gone: the poll then runs
// to its normal end. Connections that are not TCP underneath (after
// unwrapping NetConn, as connlimit and crypto/tls offer) are not watched.
//
// stop ends the watch and waits for its goroutine; it wakes the peek with
// a read deadline in the past and then clears the deadline (fasthttp sets
// its own before it reads the next request).
func watchClient(c net.Conn, gone func()) (stop func()) {
	tcp := underlyingTCP(c)
	if tcp == nil {
		return func() {}
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() { // owner: the long-poll; ends at EOF, reset, data, or stop's deadline
		defer close(done)
		if peekUntilClosed(rc) {
			gone()
		}
	}()
	return func() {
		_ = tcp.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = tcp.SetReadDeadline(time.Time{})
	}
}

// underlyingTCP unwraps c (NetConn, as connlimit.Conn and tls.Conn have)
// down to its *net.TCPConn, or returns nil.
func underlyingTCP(c net.Conn) *net.TCPConn {
	for range 8 {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// peekUntilClosed waits until the socket is readable and reports whether
// the client is gone (end of stream or an error other than the deadline).
func peekUntilClosed(rc syscall.RawConn) bool {
	var (
		buf  [1]byte
		gone bool
	)
	err := rc.Read(func(fd uintptr) bool {
		n, perr := peek(fd, buf[:])
		switch {
		case perr == syscall.EAGAIN || perr == syscall.EINTR:
			return false // nothing yet: wait for readiness
		case perr != nil, n == 0:
			gone = true // reset, or orderly close
		}
		return true
	})
	return gone && err == nil
}
