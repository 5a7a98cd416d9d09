package benchwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strconv"
)

// SSEFrame is one dispatched SSE message or comment. ID and Data alias the
// reader's buffers and are valid until the next call to Next.
type SSEFrame struct {
	// ID is the value of the last id: line of the message (nil when none).
	ID []byte
	// Data is the message's data lines joined by '\n'.
	Data []byte
	// Comment is true for a comment line (": ping"); ID and Data are empty.
	Comment bool
}

// SSEReader reads SSE messages from a response body. It is owned by one
// goroutine.
type SSEReader struct {
	r    *bufio.Reader
	id   []byte
	data []byte
}

// NewSSEReader returns a reader over body with a read buffer of size bytes.
func NewSSEReader(body io.Reader, size int) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(body, size)}
}

// Next returns the next message or comment. It returns io.EOF when the
// stream ended cleanly between messages and io.ErrUnexpectedEOF when it
// ended inside one.
func (s *SSEReader) Next() (SSEFrame, error) {
	s.id = s.id[:0]
	s.data = s.data[:0]
	var sawID, sawData, inMessage bool
	for {
		line, err := s.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: accumulate it.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = s.r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			if err == io.EOF && !inMessage && len(line) == 0 {
				return SSEFrame{}, io.EOF
			}
			if err == io.EOF {
				return SSEFrame{}, io.ErrUnexpectedEOF
			}
			return SSEFrame{}, err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		if len(line) == 0 {
			if !sawData && !sawID {
				inMessage = false // nothing to dispatch (e.g. only retry:)
				continue
			}
			f := SSEFrame{Data: s.data}
			if sawID {
				f.ID = s.id
			}
			return f, nil
		}
		if line[0] == ':' {
			if !inMessage {
				return SSEFrame{Comment: true}, nil
			}
			continue
		}
		inMessage = true
		field, value, _ := bytes.Cut(line, []byte{':'})
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "id":
			s.id = append(s.id[:0], value...)
			sawID = true
		case "data":
			if sawData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			sawData = true
		}
	}
}

// ResponseHead is the part of an HTTP/1.1 response head the generator needs.
type ResponseHead struct {
	Status        int
	Chunked       bool
	ContentLength int64 // -1 when absent
	ContentType   string
}

// ErrBadResponse is wrapped by ReadResponseHead for a malformed head.
var ErrBadResponse = errors.New("benchwire: malformed HTTP response")

// ReadResponseHead reads an HTTP/1.1 status line and headers from br.
func ReadResponseHead(br *bufio.Reader) (ResponseHead, error) {
	h := ResponseHead{ContentLength: -1}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return h, err
	}
	// "HTTP/1.1 200 OK"
	parts := bytes.SplitN(bytes.TrimSpace(line), []byte{' '}, 3)
	if len(parts) < 2 || !bytes.HasPrefix(parts[0], []byte("HTTP/1.")) {
		return h, fmt.Errorf("%w: status line %q", ErrBadResponse, line)
	}
	if h.Status, err = strconv.Atoi(string(parts[1])); err != nil {
		return h, fmt.Errorf("%w: status %q", ErrBadResponse, parts[1])
	}
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return h, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return h, nil
		}
		key, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return h, fmt.Errorf("%w: header %q", ErrBadResponse, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(key, []byte("Transfer-Encoding")):
			h.Chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(key, []byte("Content-Length")):
			if h.ContentLength, err = strconv.ParseInt(string(value), 10, 64); err != nil {
				return h, fmt.Errorf("%w: content-length %q", ErrBadResponse, value)
			}
		case bytes.EqualFold(key, []byte("Content-Type")):
			h.ContentType = string(value)
		}
	}
}

// Body returns a reader of the response body that follows h on br: chunked,
// length-delimited, or until the connection closes.
func (h ResponseHead) Body(br *bufio.Reader) io.Reader {
	switch {
	case h.Chunked:
		return httputil.NewChunkedReader(br)
	case h.ContentLength >= 0:
		return io.LimitReader(br, h.ContentLength)
	default:
		return br
	}
}
