package wsframe_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/internal/wsframe"
)

// client encodes a client frame: op may carry reserved bits; masked frames
// use a fixed key.
func client(op byte, fin, masked bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := bytes.Clone(payload)
	if masked {
		key := [4]byte{0x11, 0x22, 0x33, 0x44}
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(b, p...)
}

type item struct {
	op      byte
	payload string
}

// decodeAll feeds input in pieces of step bytes (0: all at once) and
// collects every item until the first error.
func decodeAll(limit int, input []byte, step int) ([]item, error) {
	d := wsframe.Decoder{Limit: limit}
	if step <= 0 {
		step = len(input)
	}
	var out []item
	for len(input) > 0 {
		k := min(step, len(input))
		d.Feed(input[:k])
		input = input[k:]
		for {
			f, ok, err := d.Next()
			if err != nil {
				return out, err
			}
			if !ok {
				break
			}
			out = append(out, item{f.Op, string(f.Payload)})
		}
	}
	return out, nil
}

func TestDecoder(t *testing.T) {
	t.Parallel()
	sub := []byte(`{"action":"subscribe","taskId":"t1"}`)
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	big := bytes.Repeat([]byte("x"), 300)
	cases := []struct {
		name  string
		limit int
		input []byte
		want  []item
		err   error
	}{
		{"text", 4096, client(wsframe.OpText, true, true, sub), []item{{wsframe.OpText, string(sub)}}, nil},
		{"fragments with a ping between", 4096, join(
			client(wsframe.OpText, false, true, sub[:5]),
			client(wsframe.OpPing, true, true, []byte("p")),
			client(wsframe.OpContinuation, false, true, sub[5:9]),
			client(wsframe.OpContinuation, true, true, sub[9:]),
		), []item{{wsframe.OpPing, "p"}, {wsframe.OpText, string(sub)}}, nil},
		{"two messages", 4096, join(client(wsframe.OpText, true, true, []byte("a")), client(wsframe.OpText, true, true, []byte("b"))),
			[]item{{wsframe.OpText, "a"}, {wsframe.OpText, "b"}}, nil},
		{"16-bit length", 4096, client(wsframe.OpText, true, true, big), []item{{wsframe.OpText, string(big)}}, nil},
		{"empty text", 4096, client(wsframe.OpText, true, true, nil), []item{{wsframe.OpText, ""}}, nil},
		{"close with code", 0, client(wsframe.OpClose, true, true, []byte{0x03, 0xE9, 'b'}), []item{{wsframe.OpClose, "\x03\xe9b"}}, nil},
		{"pong without data frames", 0, client(wsframe.OpPong, true, true, nil), []item{{wsframe.OpPong, ""}}, nil},
		{"unmasked", 4096, client(wsframe.OpText, true, false, sub), nil, wsframe.ErrUnmasked},
		{"reserved bits", 4096, client(wsframe.OpText|0x40, true, true, sub), nil, wsframe.ErrInvalidFrame},
		{"reserved opcode", 4096, client(0x3, true, true, sub), nil, wsframe.ErrInvalidFrame},
		{"fragmented control", 4096, client(wsframe.OpPing, false, true, nil), nil, wsframe.ErrInvalidControl},
		{"control over 125 bytes", 4096, client(wsframe.OpPing, true, true, big), nil, wsframe.ErrInvalidControl},
		{"continuation first", 4096, client(wsframe.OpContinuation, true, true, sub), nil, wsframe.ErrInvalidFrame},
		{"text inside a message", 4096, join(client(wsframe.OpText, false, true, sub), client(wsframe.OpText, true, true, sub)), nil, wsframe.ErrInvalidFrame},
		{"binary", 4096, client(wsframe.OpBinary, true, true, sub), nil, wsframe.ErrBinary},
		{"over the limit", 256, client(wsframe.OpText, true, true, big), nil, wsframe.ErrTooLarge},
		{"fragments over the limit", 256, join(client(wsframe.OpText, false, true, big[:200]), client(wsframe.OpContinuation, true, true, big[:200])), nil, wsframe.ErrTooLarge},
		{"data refused without a limit", 0, client(wsframe.OpText, true, true, sub), nil, wsframe.ErrUnexpected},
		{"binary refused without a limit", 0, client(wsframe.OpBinary, true, true, sub), nil, wsframe.ErrUnexpected},
		{"absurd 64-bit length", 4096, append([]byte{0x81, 0x80 | 127}, 0xFF, 0, 0, 0, 0, 0, 0, 0), nil, wsframe.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, step := range []int{0, 1, 3, 7} {
				got, err := decodeAll(tc.limit, tc.input, step)
				if tc.err != nil {
					require.ErrorIs(t, err, tc.err, "step %d", step)
				} else {
					require.NoError(t, err, "step %d", step)
				}
				assert.Equal(t, tc.want, got, "step %d", step)
			}
		})
	}
}

// TestDecoderRefusesEarly: an oversized or binary message is refused from
// its header, before its payload arrives.
func TestDecoderRefusesEarly(t *testing.T) {
	t.Parallel()
	frame := client(wsframe.OpText, true, true, bytes.Repeat([]byte("x"), 5000))
	d := wsframe.Decoder{Limit: 4096}
	d.Feed(frame[:8])
	_, _, err := d.Next()
	require.ErrorIs(t, err, wsframe.ErrTooLarge)
}

// TestDecoderHoldsNothingWhenIdle: consumed input is let go.
func TestDecoderHoldsNothingWhenIdle(t *testing.T) {
	t.Parallel()
	d := wsframe.Decoder{Limit: 4096}
	frame := client(wsframe.OpPong, true, true, []byte("x"))
	d.Feed(frame[:3])
	_, ok, err := d.Next()
	require.NoError(t, err)
	require.False(t, ok)
	assert.Equal(t, 3, d.Buffered())
	d.Feed(frame[3:])
	_, ok, err = d.Next()
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = d.Next()
	require.NoError(t, err)
	require.False(t, ok)
	assert.Zero(t, d.Buffered())
}

func TestServerFrames(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 125, 126, 0xFFFF, 0x10000} {
		payload := bytes.Repeat([]byte("y"), n)
		dst, start := wsframe.Begin([]byte("prefix"))
		dst = append(dst, payload...)
		dst = wsframe.End(dst, start, wsframe.OpText)
		require.Equal(t, "prefix", string(dst[:6]))
		op, got := serverFrame(t, dst[6:])
		assert.Equal(t, wsframe.OpText, op)
		assert.Equal(t, payload, got, "n=%d", n)
	}
	op, p := serverFrame(t, wsframe.AppendClose(nil, 1008, string(bytes.Repeat([]byte("r"), 200))))
	assert.Equal(t, wsframe.OpClose, op)
	assert.Len(t, p, wsframe.MaxControlPayload)
	code, ok := wsframe.CloseCode(p)
	require.True(t, ok)
	assert.Equal(t, 1008, code)
	_, ok = wsframe.CloseCode(nil)
	assert.False(t, ok)
	op, p = serverFrame(t, wsframe.AppendControl(nil, wsframe.OpPong, []byte("hi")))
	assert.Equal(t, wsframe.OpPong, op)
	assert.Equal(t, "hi", string(p))
}

// serverFrame decodes one unmasked, final server frame that fills b.
func serverFrame(t *testing.T, b []byte) (byte, []byte) {
	t.Helper()
	require.GreaterOrEqual(t, len(b), 2)
	require.Equal(t, byte(0x80), b[0]&0xF0, "final, no reserved bits")
	require.Zero(t, b[1]&0x80, "server frames are unmasked")
	n, h := int(b[1]&0x7F), 2
	switch n {
	case 126:
		n, h = int(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		n, h = int(binary.BigEndian.Uint64(b[2:10])), 10
	}
	require.Len(t, b, h+n)
	return b[0] & 0x0F, b[h:]
}

// FuzzDecoder: whatever the bytes and however they are split, the decoder
// never panics, hands out nothing larger than its limit, and decodes
// well-formed frames exactly.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte(`{"action":"subscribe"}`), []byte{0x89, 0x80, 1, 2, 3, 4}, uint8(3))
	f.Add([]byte{}, []byte{0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, uint8(1))
	f.Fuzz(func(t *testing.T, text, junk []byte, step uint8) {
		const limit = 512
		if len(text) <= limit {
			got, err := decodeAll(limit, client(wsframe.OpText, true, true, text), int(step))
			require.NoError(t, err)
			require.Equal(t, []item{{wsframe.OpText, string(text)}}, got)
		}
		got, _ := decodeAll(limit, junk, int(step))
		for _, it := range got {
			require.LessOrEqual(t, len(it.payload), limit)
		}
	})
}
