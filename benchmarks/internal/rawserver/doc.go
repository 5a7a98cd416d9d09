// Package rawserver is the physical ceiling of the benchmarks: a minimal
// server that speaks just enough HTTP/1.1 and WebSocket to serve the
// TaskBridge SSE, WebSocket and long-poll routes to the load generator,
// with no HTTP framework, no store and no authentication.
//
// Each task keeps its events already encoded in the three wire forms (SSE
// frame, WebSocket frame, JSON). Each stream connection has one goroutine
// that waits on its task's wake channel and writes everything queued since
// its last write in one writev (net.Buffers), so it shows what the machine
// can do when framing and syscalls are all that is left. Frames are encoded
// with contracts.TaskEvent.AppendJSON, byte for byte what the bridge sends.
package rawserver
