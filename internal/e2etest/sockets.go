package e2etest

import (
	"errors"
	"net"
)

// Abort closes conn with SO_LINGER 0, so the peer sees a reset (RST)
// instead of an orderly end: a client that vanishes mid-write.
func Abort(conn net.Conn) error {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		if u, isU := conn.(interface{ NetConn() net.Conn }); isU {
			tc, ok = u.NetConn().(*net.TCPConn)
		}
	}
	if !ok {
		return errors.New("e2etest: Abort needs a TCP connection")
	}
	if err := tc.SetLinger(0); err != nil {
		return err
	}
	return tc.Close()
}
