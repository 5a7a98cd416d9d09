package contracts_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// maxEventIDErrorLen bounds the text of a malformed-cursor error: the
// prefix, a quoted copy of at most 64 bytes of input (each byte at most
// \xNN when quoted) and an ellipsis.
const maxEventIDErrorLen = len("taskbridge: malformed event id ") + 2 + 64*4 + len("...")

// FuzzParseCursor: any text is either the zero cursor (only ""), a valid id
// whose canonical text parses back to it, or an error wrapping
// ErrMalformedEventID whose message is bounded whatever the input's size
// (clients control the input; the message reaches logs). Ordering stays
// consistent with Next, and a parsed cursor never starts a replay from the
// beginning unless it is the zero cursor.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{
		"", "0", "0-0", "1", "1-0", "1-1", "1700000000000-10", "01-001", "-", "-1", "1-", "1--1", "+1-1",
		" 1-1", "1-1 ", "1_1", "1.5", "1e3", "0x10", "18446744073709551615-18446744073709551615",
		"18446744073709551616-0", "99999999999999999999-1", "1-2-3", "\x00", "1\x00-1", "١-٢",
		strings.Repeat("9", 41), strings.Repeat("1", 20) + "-" + strings.Repeat("1", 20),
		strings.Repeat("x", 10<<10),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := contracts.ParseCursor(s)
		if s == "" {
			if err != nil || !id.IsZero() {
				t.Fatalf("empty cursor: %v %v", id, err)
			}
			return
		}
		strict, strictErr := contracts.ParseEventID(s)
		if (err == nil) != (strictErr == nil) || strict != id {
			t.Fatalf("ParseCursor and ParseEventID disagree on %q: %v/%v and %v/%v", s, id, err, strict, strictErr)
		}
		if err != nil {
			if !errors.Is(err, contracts.ErrMalformedEventID) {
				t.Fatalf("error for %q does not wrap ErrMalformedEventID: %v", s, err)
			}
			if n := len(err.Error()); n > maxEventIDErrorLen {
				t.Fatalf("error for %d bytes of input is %d bytes long", len(s), n)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error text is not valid UTF-8: %q", err.Error())
			}
			return
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; (c < '0' || c > '9') && c != '-' {
				t.Fatalf("accepted %q with the byte %q", s, c)
			}
		}
		text := id.String()
		back, err := contracts.ParseCursor(text)
		if err != nil || back != id {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, id, text, back, err)
		}
		if raw, err := json.Marshal(id); err != nil || string(raw) != `"`+text+`"` {
			t.Fatalf("JSON form of %v: %s %v", id, raw, err)
		}
		if id.Compare(id) != 0 || id.Less(id) {
			t.Fatalf("%v is not equal to itself", id)
		}
		next := id.Next()
		if next.IsZero() {
			// Only the largest id has no successor; it must not wrap to
			// "replay everything".
			if id.Ms != ^uint64(0) || id.Seq != ^uint64(0) {
				t.Fatalf("Next of %v wrapped to zero", id)
			}
		} else if !id.Less(next) || next.Compare(id) != 1 {
			t.Fatalf("Next of %v is %v, not after it", id, next)
		}
	})
}
