package wsframe

import "encoding/binary"

// Opcodes (RFC 6455 section 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

const (
	// MaxHeader is the longest header of a server (unmasked) frame.
	MaxHeader = 10
	// MaxControlPayload is the largest payload of a control frame.
	MaxControlPayload = 125
	// maxLength bounds a declared payload length: larger ones are refused
	// before anything is allocated.
	maxLength = 1 << 62
)

// ProtocolError is a client frame the server refuses. Reason is the close
// reason sent back (with 1008).
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "taskbridge: websocket: " + e.Reason }

// Refusals with a fixed reason, for errors.Is and for callers that map one
// reason to another (a binary message after a subscribe is "unexpected").
var (
	ErrInvalidFrame   = &ProtocolError{Reason: "invalid frame"}
	ErrUnmasked       = &ProtocolError{Reason: "unmasked frame"}
	ErrInvalidControl = &ProtocolError{Reason: "invalid control frame"}
	ErrTooLarge       = &ProtocolError{Reason: "frame too large"}
	ErrBinary         = &ProtocolError{Reason: "binary frame"}
	ErrUnexpected     = &ProtocolError{Reason: "unexpected frame"}
)

// AppendHeader appends the header of a final, unmasked frame with opcode op
// and a payload of n bytes.
func AppendHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n <= 125:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return append(dst, 126, byte(n>>8), byte(n))
	}
	dst = append(dst, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// Begin reserves room for a header at the end of dst; append the payload
// after it and call End with the returned start. Encoders that append
// their payload in place (JSON) use it to frame without a second buffer.
func Begin(dst []byte) (out []byte, start int) {
	return append(dst, make([]byte, MaxHeader)...), len(dst)
}

// End turns dst[start:], MaxHeader reserved bytes (Begin) followed by a
// payload, into one frame with opcode op: the header is written in place
// and the payload moved up to follow it.
func End(dst []byte, start int, op byte) []byte {
	n := len(dst) - start - MaxHeader
	var hdr [MaxHeader]byte
	h := AppendHeader(hdr[:0], op, n)
	copy(dst[start+len(h):], dst[start+MaxHeader:])
	copy(dst[start:], h)
	return dst[:start+len(h)+n]
}

// AppendControl appends a control frame (ping, pong) carrying payload, cut
// to MaxControlPayload.
func AppendControl(dst []byte, op byte, payload []byte) []byte {
	if len(payload) > MaxControlPayload {
		payload = payload[:MaxControlPayload]
	}
	dst = AppendHeader(dst, op, len(payload))
	return append(dst, payload...)
}

// AppendClose appends a close frame with code and reason, the reason cut
// to fit a control frame.
func AppendClose(dst []byte, code int, reason string) []byte {
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
	}
	dst = AppendHeader(dst, OpClose, 2+len(reason))
	dst = append(dst, byte(code>>8), byte(code))
	return append(dst, reason...)
}

// CloseCode returns the status code of a close frame's payload, or false
// when the payload carries none.
func CloseCode(payload []byte) (int, bool) {
	if len(payload) < 2 {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(payload)), true
}

// Header is a parsed client frame header.
type Header struct {
	Fin bool
	Op  byte
	Len int64   // payload length
	Key [4]byte // masking key
}

// IsControl reports whether the frame is a close, ping or pong.
func (h Header) IsControl() bool { return h.Op >= OpClose }

// ParseHeader parses the header of a client frame at the start of data. It
// returns the header and its length, or n == 0 when data does not hold the
// whole header yet. Refused headers (reserved bits or opcodes, no mask, a
// fragmented or oversized control frame, an absurd length) return a
// *ProtocolError as soon as the bytes that show it are there.
func ParseHeader(data []byte) (h Header, n int, err error) {
	if len(data) < 2 {
		return h, 0, nil
	}
	b0, b1 := data[0], data[1]
	h = Header{Fin: b0&0x80 != 0, Op: b0 & 0x0F, Len: int64(b1 & 0x7F)}
	switch {
	case b0&0x70 != 0:
		return h, 0, ErrInvalidFrame
	case b1&0x80 == 0:
		return h, 0, ErrUnmasked
	}
	switch h.Op {
	case OpClose, OpPing, OpPong:
		if !h.Fin || h.Len > MaxControlPayload {
			return h, 0, ErrInvalidControl
		}
	case OpText, OpBinary, OpContinuation:
	default:
		return h, 0, ErrInvalidFrame
	}
	n = 2
	switch h.Len {
	case 126:
		if len(data) < 4 {
			return h, 0, nil
		}
		h.Len = int64(binary.BigEndian.Uint16(data[2:4]))
		n = 4
	case 127:
		if len(data) < 10 {
			return h, 0, nil
		}
		l := binary.BigEndian.Uint64(data[2:10])
		if l > maxLength {
			return h, 0, ErrTooLarge
		}
		h.Len = int64(l)
		n = 10
	}
	if len(data) < n+4 {
		return h, 0, nil
	}
	copy(h.Key[:], data[n:n+4])
	return h, n + 4, nil
}

// Unmask unmasks p in place; p starts at byte offset of the payload.
func Unmask(p []byte, key [4]byte, offset int) {
	for i := range p {
		p[i] ^= key[(offset+i)&3]
	}
}
