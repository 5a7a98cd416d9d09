package streaming_test

import (
	"net"
	"syscall"
)

// slowReaderDialer returns a dialer whose connections have a small receive
// buffer and a small MSS (set before the handshake): a client that stops
// reading backs the server up after a few tens of KB instead of megabytes,
// and reads at full speed again when it resumes (the window stays at or
// above the MSS, so TCP's silly-window avoidance does not throttle it).
func slowReaderDialer() *net.Dialer {
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
