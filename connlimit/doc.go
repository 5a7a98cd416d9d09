// Package connlimit caps the connections a server holds, so that a flood of
// clients (idle TCP connections, abandoned long-polls, streams) cannot use
// up the process's file descriptors, and keeps the server accepting through
// temporary accept errors.
//
// Wrap the listener before handing it to Fiber:
//
//	ln, err := net.Listen("tcp", ":8080")
//	...
//	limited, err := connlimit.New(ln, connlimit.Config{Logger: log})
//	...
//	err = app.Listener(limited)
//
// Without it, fasthttp ends its accept loop on the first "too many open
// files" and the server stops for good; Fiber's Concurrency setting does
// not help, because it counts requests being served, not descriptors (a
// stream the TaskBridge hub detached from fasthttp holds one it does not
// see).
//
// # What is counted
//
// A slot is taken when Accept returns a connection and given back when the
// connection is closed. A descriptor duplicated from an accepted socket
// keeps the slot: the streaming runtime detaches a stream by duplicating
// its socket and lets fasthttp close the original; it calls Conn.Hold
// first, and releases the hold when the stream's own descriptor closes. So
// the count is the number of client sockets the process holds open, however
// they are served.
//
// # When the cap is reached
//
// Accept waits for a slot: new connections wait in the kernel's listen
// backlog (clients see a slow connect, not an error), and are accepted as
// others close. Combine the cap with the app's ReadTimeout and IdleTimeout,
// which close connections that send nothing, so a flood of idle
// connections drains by itself.
//
// # Accept errors
//
// Temporary errors (EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ...)
// are not returned: Accept waits (5 ms, doubling up to 1 s) and tries
// again, logging at most one warning per second. Only the listener's
// closing (net.ErrClosed) and errors that cannot heal are returned.
package connlimit
