// Package netpoll lets the streaming runtime hold thousands of idle
// connections without a goroutine each. Detach takes a TCP connection away
// from its owner (fasthttp) by duplicating its descriptor, so the owner can
// return and release its per-request state while the stream goes on; a
// Poller watches every detached connection for input with one epoll set
// and one goroutine, and calls the connection's Handler when a client sent
// something (a WebSocket pong, a close frame) or left.
//
// Detaching and polling exist on Linux only. Elsewhere New fails and Detach
// refuses, and callers keep a goroutine reading each connection instead;
// the streaming runtime can also be told not to detach (its "held" mode),
// which is how both modes are tested on Linux.
package netpoll
