package loadclient

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Dialer opens TCP connections from a rotating set of local source
// addresses. Binding with IP_BIND_ADDRESS_NO_PORT defers the choice of the
// source port to connect(), so each source address has the whole ephemeral
// port range per destination. Dialer is safe for concurrent use.
type Dialer struct {
	ips     []net.IP
	next    atomic.Uint32
	timeout time.Duration
}

// NewDialer returns a dialer that rotates over sourceIPs (empty: let the
// kernel choose). It fails on an address that does not parse.
func NewDialer(sourceIPs []string, timeout time.Duration) (*Dialer, error) {
	d := &Dialer{timeout: timeout}
	for _, s := range sourceIPs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("loadclient: bad source address %q", s)
		}
		d.ips = append(d.ips, ip)
	}
	return d, nil
}

// DialContext opens a TCP connection to addr.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: -1}
	if len(d.ips) > 0 {
		ip := d.ips[int(d.next.Add(1)-1)%len(d.ips)]
		nd.LocalAddr = &net.TCPAddr{IP: ip}
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return nd.DialContext(ctx, network, addr)
}
