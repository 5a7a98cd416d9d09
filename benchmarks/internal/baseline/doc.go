// Package baseline is the handwritten comparison server of the benchmarks:
// the protocol's routes written on Fiber the way taskbridge-fastapi (the
// Python server of the same protocol, https://github.com/nikkiw/task-bridge)
// does it and the way a host would by hand, with no hub.
//
// Every stream connection runs its own loop: a blocking read on the store
// for events after its own cursor, with a timeout (on Redis one XREAD BLOCK
// per connection; on the memory store a wait on the task's change followed
// by the connection's own Read), then it encodes what it read itself,
// writes it, and after an empty wait sends a heartbeat and sleeps 100 ms,
// as taskbridge-fastapi's SSE loop does. The SSE wait times out after 5 s and the
// WebSocket wait after 25 s, taskbridge-fastapi's defaults. It uses the same
// stores as the bridge (memstore or redisstore), so the comparison
// isolates the streaming runtime.
package baseline
