// Package bridgeserver is the bench server of the library itself (tbserver):
// a Fiber app with the TaskBridge handler group mounted by
// fiberbridge.New(...).Register, on the memory or Redis stores, plus a bare
// Fiber JSON route for the http scenario's ceiling.
//
// Its executor accepts one task type, bench.hold, and runs nothing: the
// load generator appends events through the control endpoint, which calls
// orchestration.Emitter.Emit the way a worker (in this process or another)
// emits. So the scenarios measure the streaming runtime, not a demo task's
// handler, and do not depend on the demo tasks.
package bridgeserver
