//go:build linux

package netpoll

import (
	"net"
	"sync"
)

// heldConn is a detached TCP connection whose slot is released when it is
// closed.
type heldConn struct {
	*net.TCPConn
	once    sync.Once
	release func()
}

// Close closes the descriptor and releases the slot (once).
func (c *heldConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(c.release)
	return err
}
