package contracts

import (
	"errors"
	"strconv"
)

// ErrMalformedEventID is returned (wrapped) by ParseEventID and ParseCursor
// for text that is not an event id. The HTTP layer answers it with 400.
var ErrMalformedEventID = errors.New("taskbridge: malformed event id")

// maxEventIDLen bounds the text form: two 20-digit numbers and a dash.
const maxEventIDLen = 41

// EventID identifies an event within one task's stream. It has the shape of
// a Redis stream id, `ms-seq`: the milliseconds of the append and a sequence
// number within that millisecond. Ids of one task are strictly increasing in
// Compare order. The zero EventID ("0-0") is never assigned to an event and
// stands for "no cursor": replay from the start of what is retained.
//
// EventID is a small value type, safe to copy and compare with ==.
type EventID struct {
	Ms  uint64
	Seq uint64
}

// ParseEventID parses the text form of an event id. It accepts `ms-seq` and,
// like Redis, a bare `ms` meaning `ms-0`. Anything else, including the empty
// string, returns an error wrapping ErrMalformedEventID.
func ParseEventID(s string) (EventID, error) {
	if s == "" || len(s) > maxEventIDLen {
		return EventID{}, malformed(s)
	}
	msText, seqText := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			msText, seqText = s[:i], s[i+1:]
			if seqText == "" {
				return EventID{}, malformed(s)
			}
			break
		}
	}
	ms, ok := parseDigits(msText)
	if !ok {
		return EventID{}, malformed(s)
	}
	var seq uint64
	if seqText != "" {
		if seq, ok = parseDigits(seqText); !ok {
			return EventID{}, malformed(s)
		}
	}
	return EventID{Ms: ms, Seq: seq}, nil
}

// ParseCursor parses a client-supplied replay cursor. The empty string is the
// zero cursor (replay from the start); anything else must be a valid id.
func ParseCursor(s string) (EventID, error) {
	if s == "" {
		return EventID{}, nil
	}
	return ParseEventID(s)
}

// MustParseEventID is ParseEventID for literals in tests and examples; it
// panics on malformed input.
func MustParseEventID(s string) EventID {
	id, err := ParseEventID(s)
	if err != nil {
		panic(err)
	}
	return id
}

func malformed(s string) error {
	const maxQuoted = 64
	if len(s) > maxQuoted {
		s = s[:maxQuoted] + "..."
	}
	return &eventIDError{text: s}
}

type eventIDError struct{ text string }

func (e *eventIDError) Error() string {
	return ErrMalformedEventID.Error() + " " + strconv.Quote(e.text)
}

func (e *eventIDError) Unwrap() error { return ErrMalformedEventID }

// parseDigits parses a non-empty run of ASCII digits into a uint64, rejecting
// signs, spaces and overflow.
func parseDigits(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// IsZero reports whether id is the zero cursor.
func (id EventID) IsZero() bool { return id.Ms == 0 && id.Seq == 0 }

// Compare returns -1, 0 or +1 as id is before, equal to or after other.
func (id EventID) Compare(other EventID) int {
	switch {
	case id.Ms < other.Ms:
		return -1
	case id.Ms > other.Ms:
		return 1
	case id.Seq < other.Seq:
		return -1
	case id.Seq > other.Seq:
		return 1
	}
	return 0
}

// Less reports whether id comes before other.
func (id EventID) Less(other EventID) bool { return id.Compare(other) < 0 }

// Next returns the smallest id after id, for exclusive range starts.
func (id EventID) Next() EventID {
	if id.Seq == ^uint64(0) {
		return EventID{Ms: id.Ms + 1}
	}
	return EventID{Ms: id.Ms, Seq: id.Seq + 1}
}

// String returns the `ms-seq` text form.
func (id EventID) String() string {
	var buf [maxEventIDLen]byte
	return string(id.AppendText(buf[:0]))
}

// AppendText appends the `ms-seq` text form to dst and returns the result.
func (id EventID) AppendText(dst []byte) []byte {
	dst = strconv.AppendUint(dst, id.Ms, 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, id.Seq, 10)
}

// MarshalText implements encoding.TextMarshaler, so EventID is a JSON string.
func (id EventID) MarshalText() ([]byte, error) { return id.AppendText(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseEventID rules.
func (id *EventID) UnmarshalText(text []byte) error {
	parsed, err := ParseEventID(string(text))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}
