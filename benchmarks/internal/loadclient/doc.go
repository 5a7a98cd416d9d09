// Package loadclient is the client side of the load generator: subscribers
// that speak the TaskBridge wire protocol over real sockets (an SSE reader,
// a WebSocket client built on github.com/fasthttp/websocket, a long-poller),
// a wrk-style HTTP load loop, and the child-process protocol through which
// the generator spreads connections over several processes.
//
// A process may hold at most about 19,900 sockets here (open-file limit
// 20,000), so the generator never holds connections itself: it starts child
// processes (RunChild), hands each an Assignment over stdin, and reads their
// Reports from stdout. Each child binds its connections to its own loopback
// source addresses so that ephemeral ports do not run short.
//
// Every subscriber tracks its task's event sequence (gaps, duplicates) across
// reconnects with its cursor and records append-to-receive latency into one
// shared histogram per process.
package loadclient
