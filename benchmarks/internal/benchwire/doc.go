// Package benchwire is the load generator's view of the TaskBridge wire
// protocol, shared by the generator and the three bench servers: the
// benchmark mark an emitter stamps into each event (a per-task sequence
// number and the append time), cheap parsers that find the mark and the
// event id in a frame without decoding it, an SSE frame reader, a minimal
// HTTP response-head reader, and the few WebSocket framing helpers the raw
// ceiling server needs to speak to a standard WebSocket client.
//
// The parsers are deliberately shallow so that the clients, which share the
// machine's cores with the server under test, spend as little CPU per
// delivered event as possible; the generator's -strict mode decodes every
// frame with the contracts package's strict decoders in addition.
package benchwire
