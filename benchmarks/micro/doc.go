// Package micro holds the project's go test -bench micro benchmarks of the
// delivery path, with allocation counts:
//
//	go test -run '^$' -bench . -benchmem ./benchmarks/micro
//
// Frame encoding (SSE and WebSocket frames of one event), event id parse
// and compare, and fan-out of one appended event to 1, 100 and 1,000
// subscribers over real loopback SSE and WebSocket connections, through the
// bridge, the handwritten baseline and the raw ceiling. The fan-out
// benchmarks report deliveries/s and allocs/delivery: every allocation the
// process made during the loop (the clients are allocation-free readers),
// divided by the events delivered. 10,000 subscribers need more sockets than
// one process may hold (20,000 open files, both ends here), so that size is
// the load generator's fanout scenario. The package has no non-test code.
package micro
