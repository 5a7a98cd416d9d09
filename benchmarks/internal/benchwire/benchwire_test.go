package benchwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http/httputil"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func encodedEvent(t testing.TB, seq uint64, at time.Time) []byte {
	t.Helper()
	d, err := Draft(seq, at)
	require.NoError(t, err)
	ev := contracts.TaskEvent{
		Type: d.Type(), TaskID: "0123456789abcdef0123456789abcdef",
		EventID: contracts.EventID{Ms: 1700000000123, Seq: 7}, CreatedAt: at, Payload: d.Payload(),
	}
	return ev.AppendJSON(nil)
}

func TestMarkRoundTrip(t *testing.T) {
	at := time.Unix(1_700_000_000, 123_456_789)
	frame := encodedEvent(t, 42, at)

	var ev contracts.TaskEvent
	err := json.Unmarshal(frame, &ev)
	require.NoError(t, err, "the bench event is a valid protocol event")

	seq, ns, ok := ParseMark(frame)
	require.True(t, ok)
	assert.Equal(t, uint64(42), seq)
	assert.Equal(t, at.UnixNano(), ns)
	assert.Equal(t, "1700000000123-7", string(EventID(frame)))
}

func TestParseMarkRejects(t *testing.T) {
	tests := []struct{ name, frame string }{
		{"heartbeat", `{"type":"HEARTBEAT","taskId":"t","live":true}`},
		{"other message", `{"payload":{"message":"hello"}}`},
		{"seq zero", `{"payload":{"message":"b 0 17"}}`},
		{"missing time", `{"payload":{"message":"b 12"}}`},
		{"trailing junk", `{"payload":{"message":"b 12 17x"}}`},
		{"overflow", `{"payload":{"message":"b 123456789012345678901 17"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, ok := ParseMark([]byte(tt.frame))
			assert.False(t, ok)
		})
	}
	assert.Nil(t, EventID([]byte(`{"type":"HEARTBEAT"}`)))
	assert.Nil(t, EventID([]byte(`{"eventId":"`)))
}

func TestSSEReader(t *testing.T) {
	stream := ": preamble      \n\n" +
		"id: 1-0\ndata: {\"a\":1}\n\n" +
		": ping\n\n" +
		"retry: 1000\n\n" +
		"data: line1\r\ndata: line2\r\n\r\n" +
		"id: 2-0\ndata:{\"b\":2}\n\n"
	type frame struct {
		id, data string
		hasID    bool
		comment  bool
	}
	want := []frame{
		{comment: true},
		{id: "1-0", hasID: true, data: `{"a":1}`},
		{comment: true},
		{data: "line1\nline2"},
		{id: "2-0", hasID: true, data: `{"b":2}`},
	}

	// The same stream, delivered chunked in tiny pieces, must parse the same.
	var chunked bytes.Buffer
	cw := httputil.NewChunkedWriter(&chunked)
	for i := 0; i < len(stream); i += 5 {
		end := min(i+5, len(stream))
		_, err := cw.Write([]byte(stream[i:end]))
		require.NoError(t, err)
	}
	require.NoError(t, cw.Close())
	chunked.WriteString("\r\n")

	sources := map[string]io.Reader{
		"plain":   strings.NewReader(stream),
		"chunked": httputil.NewChunkedReader(bufio.NewReader(&chunked)),
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			r := NewSSEReader(src, 16) // smaller than a line: exercises long lines
			var got []frame
			for {
				f, err := r.Next()
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				got = append(got, frame{id: string(f.ID), hasID: f.ID != nil, data: string(f.Data), comment: f.Comment})
			}
			assert.Equal(t, want, got)
		})
	}

	r := NewSSEReader(strings.NewReader("id: 3-0\ndata: x\n"), 64)
	_, err := r.Next()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "a stream cut inside a message")
}

func TestReadResponseHead(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want ResponseHead
		body string
		err  bool
	}{
		{"chunked sse", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			ResponseHead{Status: 200, Chunked: true, ContentLength: -1, ContentType: "text/event-stream"}, "hello", false},
		{"content length", "HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\nabcdef",
			ResponseHead{Status: 204, ContentLength: 3}, "abc", false},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nrest",
			ResponseHead{Status: 200, ContentLength: -1}, "rest", false},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", ResponseHead{}, "", true},
		{"bad header", "HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", ResponseHead{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw))
			h, err := ReadResponseHead(br)
			if tt.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, h)
			body, err := io.ReadAll(h.Body(br))
			require.NoError(t, err)
			assert.Equal(t, tt.body, string(body))
		})
	}
}

func TestAcceptKey(t *testing.T) {
	// The example of RFC 6455 section 1.3.
	assert.Equal(t, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="))
}

func TestServerFrameLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'x'}, n)
		f := AppendServerFrame(nil, OpText, payload)
		assert.Equal(t, byte(0x81), f[0])
		switch {
		case n <= 125:
			assert.Equal(t, byte(n), f[1])
			assert.Len(t, f, 2+n)
		case n <= 65535:
			assert.Equal(t, byte(126), f[1])
			assert.Equal(t, uint16(n), binary.BigEndian.Uint16(f[2:4]))
			assert.Len(t, f, 4+n)
		default:
			assert.Equal(t, byte(127), f[1])
			assert.Equal(t, uint64(n), binary.BigEndian.Uint64(f[2:10]))
			assert.Len(t, f, 10+n)
		}
	}
}

func maskedFrame(op byte, payload []byte, mask [4]byte) []byte {
	f := []byte{0x80 | op}
	switch n := len(payload); {
	case n <= 125:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i&3])
	}
	return f
}

func TestReadClientFrame(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	sub := []byte(`{"action":"subscribe","taskId":"t1"}`)
	long := bytes.Repeat([]byte{'y'}, 300)
	in := append(maskedFrame(OpText, sub, mask), maskedFrame(OpPing, long, mask)...)
	br := bufio.NewReader(bytes.NewReader(in))

	op, payload, err := ReadClientFrame(br, 1024)
	require.NoError(t, err)
	assert.Equal(t, byte(OpText), op)
	assert.Equal(t, sub, payload)

	op, payload, err = ReadClientFrame(br, 1024)
	require.NoError(t, err)
	assert.Equal(t, byte(OpPing), op)
	assert.Equal(t, long, payload)

	_, _, err = ReadClientFrame(br, 1024)
	assert.ErrorIs(t, err, io.EOF)

	_, _, err = ReadClientFrame(bufio.NewReader(bytes.NewReader(maskedFrame(OpText, long, mask))), 100)
	assert.ErrorIs(t, err, ErrFrameTooLarge)

	_, _, err = ReadClientFrame(bufio.NewReader(bytes.NewReader(AppendServerFrame(nil, OpText, sub))), 100)
	assert.ErrorIs(t, err, ErrUnmaskedFrame)
}

func TestClientAndServerFrameRoundTrip(t *testing.T) {
	mask := [4]byte{9, 8, 7, 6}
	for _, n := range []int{0, 5, 125, 126, 70_000} {
		payload := bytes.Repeat([]byte{'z'}, n)
		// A client frame reads back through ReadClientFrame...
		op, got, err := ReadClientFrame(bufio.NewReader(bytes.NewReader(AppendClientFrame(nil, OpText, payload, mask))), 1<<20)
		require.NoError(t, err)
		assert.Equal(t, byte(OpText), op)
		assert.Equal(t, payload, got)
		// ...and a server frame through ReadServerFrame.
		op, fin, got, err := ReadServerFrame(bufio.NewReader(bytes.NewReader(AppendServerFrame(nil, OpClose, payload))), nil, 1<<20)
		require.NoError(t, err)
		assert.Equal(t, byte(OpClose), op)
		assert.True(t, fin)
		assert.Equal(t, string(payload), string(got))
	}
	_, _, _, err := ReadServerFrame(bufio.NewReader(bytes.NewReader(AppendServerFrame(nil, OpText, make([]byte, 300)))), nil, 100)
	assert.ErrorIs(t, err, ErrFrameTooLarge)
	_, _, _, err = ReadServerFrame(bufio.NewReader(bytes.NewReader(AppendClientFrame(nil, OpText, []byte("x"), mask))), nil, 100)
	assert.Error(t, err, "a masked frame is not a server frame")
}
