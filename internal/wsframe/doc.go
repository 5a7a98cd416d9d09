// Package wsframe is the one place where the streaming runtime encodes and
// parses WebSocket frames (RFC 6455): server frames are written unmasked
// and unfragmented by the Append functions, and client frames are parsed
// by ParseHeader and assembled into messages by Decoder.
//
// A Decoder is fed whatever bytes a connection yields, in any split (a
// blocking read on a held connection, or the epoll poller's read of a
// detached one), and hands out complete control frames and complete text
// messages up to a size limit. It checks what a server must refuse: an
// unmasked frame, reserved bits or opcodes, a fragmented or oversized
// control frame, a continuation with no message, a new message inside
// another, a binary message, and a message over the limit. Each refusal is
// a *ProtocolError whose Reason is the close reason sent back with 1008.
//
// The package knows nothing of tasks, subscriptions or connections; it is
// internal to this module.
package wsframe
