package e2etest

import (
	"net"
	"syscall"
)

// StalledDialer returns a dialer whose connections have a small receive
// buffer (16 KiB) and MSS, set before the handshake: a client that stops
// reading fills its window after a few tens of KB and backs the server's
// writes up, instead of absorbing megabytes first.
func StalledDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10); serr != nil {
				return
			}
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1400)
		})
		if err != nil {
			return err
		}
		return serr
	}}
}
