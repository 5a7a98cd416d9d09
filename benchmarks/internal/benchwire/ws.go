package benchwire

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
)

// WebSocket opcodes used by the raw server.
const (
	OpText  = 0x1
	OpClose = 0x8
	OpPing  = 0x9
	OpPong  = 0xA
)

// wsGUID is the fixed suffix of RFC 6455's accept-key computation.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey returns the Sec-WebSocket-Accept value for a client's
// Sec-WebSocket-Key.
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// AppendServerFrame appends an unmasked, final server frame with opcode op
// and payload to dst.
func AppendServerFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// ErrFrameTooLarge is returned by ReadClientFrame for a frame over its limit.
var ErrFrameTooLarge = errors.New("benchwire: websocket frame too large")

// ErrUnmaskedFrame is returned by ReadClientFrame for a frame a client sent
// without a mask, which RFC 6455 forbids.
var ErrUnmaskedFrame = errors.New("benchwire: unmasked client frame")

// ReadClientFrame reads one masked client frame of at most limit payload
// bytes and returns its opcode and unmasked payload. Fragmented messages
// are not supported (the protocol's client frames are small); a
// continuation frame is returned as is.
func ReadClientFrame(br *bufio.Reader, limit int) (op byte, payload []byte, err error) {
	var head [2]byte
	if _, err = io.ReadFull(br, head[:]); err != nil {
		return 0, nil, err
	}
	op = head[0] & 0x0F
	if head[1]&0x80 == 0 {
		return 0, nil, ErrUnmaskedFrame
	}
	n := uint64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > uint64(limit) {
		return 0, nil, ErrFrameTooLarge
	}
	var mask [4]byte
	if _, err = io.ReadFull(br, mask[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return op, payload, nil
}

// AppendClientFrame appends a final client frame with opcode op, payload
// masked with mask, to dst.
func AppendClientFrame(dst []byte, op byte, payload []byte, mask [4]byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	for i, b := range payload {
		dst = append(dst, b^mask[i&3])
	}
	return dst
}

// ReadServerFrame reads one unmasked server frame of at most limit payload
// bytes into buf (grown as needed) and returns its opcode, whether it is
// final, and the payload, which aliases buf.
func ReadServerFrame(br *bufio.Reader, buf []byte, limit int) (op byte, fin bool, payload []byte, err error) {
	// Header bytes come through ReadByte, which (unlike io.ReadFull on a
	// local array) does not allocate: benchmarks count this reader's
	// allocations as the server's.
	b0, err := br.ReadByte()
	if err != nil {
		return 0, false, nil, err
	}
	b1, err := br.ReadByte()
	if err != nil {
		return 0, false, nil, err
	}
	op, fin = b0&0x0F, b0&0x80 != 0
	if b1&0x80 != 0 {
		return 0, false, nil, errors.New("benchwire: masked server frame")
	}
	n := uint64(b1 & 0x7F)
	if n >= 126 {
		size := 2
		if n == 127 {
			size = 8
		}
		n = 0
		for i := 0; i < size; i++ {
			c, err := br.ReadByte()
			if err != nil {
				return 0, false, nil, err
			}
			n = n<<8 | uint64(c)
		}
	}
	if n > uint64(limit) {
		return 0, false, nil, ErrFrameTooLarge
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	payload = buf[:n]
	_, err = io.ReadFull(br, payload)
	return op, fin, payload, err
}
