package redisstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// benchClient is a lean stream client for the fan-out benchmark: it reads
// one task's stream and calls onEvent for every event, reusing its
// buffers so that the benchmark's allocation count is mostly the
// server's. The first event (the replay) is read before dialBenchClient
// returns, so onEvent sees only live events.
type benchClient struct {
	close func()
}

// benchTransport opens one connection per SSE stream.
var benchTransport = &http.Transport{DisableKeepAlives: true, MaxIdleConnsPerHost: -1}

func dialBenchClient(tb testing.TB, addr, transport, taskID string, onEvent func()) *benchClient {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var read func()
	if transport == overSSE {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/tasks/"+taskID+"/events/stream", nil)
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+owner)
		resp, err := benchTransport.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Fatalf("sse: %v %v", err, resp)
		}
		r := bufio.NewReaderSize(resp.Body, 4096)
		next := func() bool {
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return false
				}
				if bytes.HasPrefix(line, []byte("id: ")) {
					return true
				}
			}
		}
		if !next() {
			tb.Fatal("sse: no replayed event")
		}
		read = func() {
			defer resp.Body.Close()
			for next() {
				onEvent()
			}
		}
	} else {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = io.WriteString(conn, "GET /api/v1/tasks/ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"+
			"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
			"Authorization: Bearer "+owner+"\r\n\r\n")
		if err != nil {
			tb.Fatal(err)
		}
		br := bufio.NewReaderSize(conn, 4096)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			tb.Fatalf("ws upgrade: %v %v", err, resp)
		}
		if _, err := conn.Write(clientTextFrame([]byte(`{"action":"subscribe","taskId":"` + taskID + `"}`))); err != nil {
			tb.Fatal(err)
		}
		buf := make([]byte, 0, 4096)
		next := func() bool {
			for {
				op, payload, err := readServerFrame(br, buf)
				if err != nil || op == wsOpClose {
					return false
				}
				buf = payload[:0]
				if op == wsOpText && bytes.Contains(payload, []byte(`"eventId":`)) {
					return true
				}
			}
		}
		if !next() {
			tb.Fatal("ws: no replayed event")
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		read = func() {
			defer stop()
			defer conn.Close()
			for next() {
				onEvent()
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		read()
	}()
	c := &benchClient{close: func() {
		cancel()
		wg.Wait()
	}}
	tb.Cleanup(c.close)
	return c
}

// WebSocket opcodes the bench client handles.
const (
	wsOpText  = 0x1
	wsOpClose = 0x8
)

// clientTextFrame is one masked text frame (mask 1,2,3,4) of a short
// payload (under 126 bytes).
func clientTextFrame(payload []byte) []byte {
	mask := [4]byte{1, 2, 3, 4}
	f := append([]byte{0x80 | wsOpText, 0x80 | byte(len(payload))}, mask[:]...)
	for i, c := range payload {
		f = append(f, c^mask[i%4])
	}
	return f
}

// readServerFrame reads one unmasked server frame into buf (grown as
// needed) and returns its opcode and payload. Fragmented messages are not
// handled: the server sends each frame whole.
func readServerFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	head, err := r.Peek(2)
	if err != nil {
		return 0, nil, err
	}
	op, n := head[0]&0x0f, uint64(head[1]&0x7f)
	_, _ = r.Discard(2)
	ext := 0
	switch n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if ext > 0 {
		b, err := r.Peek(ext)
		if err != nil {
			return 0, nil, err
		}
		if ext == 2 {
			n = uint64(binary.BigEndian.Uint16(b))
		} else {
			n = binary.BigEndian.Uint64(b)
		}
		_, _ = r.Discard(ext)
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return op, buf, nil
}
