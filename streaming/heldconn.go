package streaming

import (
	"net"
	"sync"
)

// slotHolder is a connection that counts the socket it wraps (the
// connections of connlimit.Listener): NetConn returns the socket, and Hold
// keeps it counted, after the connection itself is closed, until release
// is called. The hub holds a slot for as long as a detached stream's
// duplicated descriptor is open, so a connection cap sees every socket the
// process holds.
type slotHolder interface {
	NetConn() net.Conn
	Hold() (release func())
}

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
