// Package e2etest is the project's end-to-end test support: a Fiber app
// served on a real listener on 127.0.0.1:0, HTTP helpers that check the
// error envelope, an SSE reader on a raw connection that parses the wire
// format itself, a WebSocket client, socket tricks (a client whose receive
// window fills at once, a close that resets the connection) and goroutine
// and heap baselines. Fiber's app.Test buffers responses, so streams are
// only testable this way.
//
// Readers return errors instead of failing the test, so they can run on a
// test's own goroutines; frames are checked with the protocol's strict
// decoders and the project's JSON Schemas (and the reference's when
// ../shared/protocol is present, see package conformance).
//
// Everything here is for tests: it imports testing and testify.
package e2etest
