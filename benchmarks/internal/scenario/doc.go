// Package scenario is the parent side of the load generator. For every
// scenario and every target (bridge, baseline, raw) it starts the server as
// a child process (the generator's own binary in server mode), creates the
// tasks through the control endpoint, spreads the subscribers over client
// child processes (each at most PerChild sockets, each on its own loopback
// source address), samples the server's RSS, goroutines and CPU (and
// redis-server's CPU and client count), drives the emitter, waits for the
// subscribers to catch up, and turns the children's merged results into a
// report.Run.
//
// The scenarios:
//
//	idle    N idle SSE or WS connections: RSS and goroutines per connection,
//	        server CPU over a window between heartbeats
//	fanout  1 task, N subscribers, a rate for a duration
//	many    T tasks with one subscriber each, a rate per task
//	resume  subscribers on every transport drop their connection at random
//	        times and reconnect with their cursor; gaps and duplicates must
//	        be zero
//	http    wrk-style create and poll throughput next to a bare Fiber JSON
//	        handler in the same server
package scenario
