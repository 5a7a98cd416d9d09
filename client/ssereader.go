package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// sseMessage is one item of an event stream: a comment line, or a
// dispatched message (its data lines joined with \n).
type sseMessage struct {
	comment bool
	data    []byte
}

// sseReader parses the text/event-stream format: lines end with \n, \r\n
// or \r; a blank line dispatches the message; lines starting with ':' are
// comments; "data" fields accumulate. Fields other than data (id, event,
// retry) are not needed: an event's id is in its JSON.
type sseReader struct {
	r       *bufio.Reader
	max     int
	data    []byte
	hasData bool
	line    []byte
	cr      bool // the last line ended with \r: skip a following \n
}

func newSSEReader(r io.Reader, max int) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 32<<10), max: max}
}

var errMessageTooLarge = errors.New("taskbridge: sse: message larger than the frame limit")

// next returns the next comment or message.
func (s *sseReader) next() (sseMessage, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return sseMessage{}, err
		}
		switch {
		case len(line) == 0:
			if s.hasData {
				m := sseMessage{data: s.data}
				s.data, s.hasData = nil, false
				return m, nil
			}
		case line[0] == ':':
			return sseMessage{comment: true}, nil
		default:
			field, value, found := bytes.Cut(line, []byte(":"))
			if found && len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
			if string(field) != "data" {
				continue
			}
			if s.hasData {
				s.data = append(s.data, '\n')
			}
			if len(s.data)+len(value) > s.max {
				return sseMessage{}, errMessageTooLarge
			}
			s.data = append(s.data, value...)
			s.hasData = true
		}
	}
}

// readLine returns the next line without its terminator; the slice is
// valid until the next call.
func (s *sseReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(s.line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if s.cr {
			s.cr = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\n':
			return s.line, nil
		case '\r':
			s.cr = true
			return s.line, nil
		}
		if len(s.line) >= s.max {
			return nil, errMessageTooLarge
		}
		s.line = append(s.line, b)
	}
}
