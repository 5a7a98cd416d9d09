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
//
// and, on Redis only and not part of "all", the two scale scenarios, which
// run the bridge alone as several instances (separate processes sharing one
// redis-server and one key prefix) with a separate emitter process:
//
//	scale       N streams (SSE and WebSocket alternating) on one task, spread
//	            evenly over the instances and connected in stages; with them
//	            held: RSS, goroutines and open files per instance, server CPU
//	            over a window between heartbeats (heartbeat and WebSocket ping
//	            are set longer than the run), Redis connections in total;
//	            then one event, and how long until every client had it
//	scale-many  T tasks with N/T subscribers each, every task followed
//	            through every instance, a rate per task: delivered rate,
//	            latency, server and Redis CPU
//
// Before a scale run the plan is checked against the machine's limits
// (open files per process and in total, ephemeral ports per source
// address, listen backlogs, connection tracking, memory); Config.TuneKernel
// raises the sysctls among them that root may set. A stage that falls short
// ends the connecting, and the run reports which limit stopped it and the
// largest number of streams held.
package scenario
