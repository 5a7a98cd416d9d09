package netpoll

import "net"

// SlotHolder is a connection that counts the socket it wraps (the
// connections of connlimit.Listener): NetConn returns the socket, and Hold
// keeps it counted, after the connection itself is closed, until release
// is called. Detach keeps the slot held for as long as the duplicated
// descriptor is open, so a connection cap sees every socket the process
// holds.
type SlotHolder interface {
	NetConn() net.Conn
	Hold() (release func())
}
