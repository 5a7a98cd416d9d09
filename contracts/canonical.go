package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// The canonical form of a JSON value is what encoding/json writes for it
// after decoding it into an any with UseNumber: object members sorted by
// name (bytewise), no insignificant whitespace, numbers exactly as written,
// strings with encoding/json's escaping (", \, control characters, and <,
// >, &, U+2028, U+2029 as \u escapes). Idempotency fingerprints stored by
// earlier versions are made of these bytes, so the form must never change.
//
// canonicalSlow computes it that way (two decodes and a re-encode through
// reflection, dozens of allocations). canonicalFast writes the same bytes
// in one pass and one allocation for the values requests carry in
// practice, and gives up (ok false) on anything it does not reproduce
// exactly; CanonicalJSON then asks canonicalSlow, which also produces every
// error. FuzzCanonicalJSON checks that the two agree.

// canonicalSlow is the reference implementation of CanonicalJSON.
func canonicalSlow(raw []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after JSON value")
	}
	return json.Marshal(v)
}

// maxFastDepth bounds the nesting canonicalFast follows; deeper values go
// the slow way (which refuses nesting past encoding/json's own limit).
const maxFastDepth = 64

// canonicalFast returns the canonical form of raw, a JSON value with
// optional surrounding whitespace, or ok false when it leaves raw to
// canonicalSlow: invalid JSON, anything after the value, duplicate member
// names, escapes other than \" \\ \/ \n \r \t in strings (any escape in
// member names), characters encoding/json escapes (<, >, &, U+2028,
// U+2029), invalid UTF-8, or nesting deeper than maxFastDepth.
func canonicalFast(raw []byte) (json.RawMessage, bool) {
	out, n, ok := StrictCanonicalValue(raw)
	if !ok || !onlySpace(raw[n:]) {
		return nil, false
	}
	return out, true
}

// StrictCanonicalValue reads the JSON value at the start of data (after
// JSON whitespace) and returns its canonical form, the bytes CanonicalJSON
// returns for it, and how many bytes of data up to the value's end it
// took. It is the one-pass canonicaliser of request bodies: ok is false
// for anything it does not take, which includes everything a strict
// decoder refuses (invalid JSON, duplicate member names at any depth,
// invalid UTF-8) and a few valid forms it leaves to encoding/json (string
// escapes other than \" \\ \/ \n \r \t, any escape in a member name, the
// characters encoding/json escapes: <, >, &, U+2028, U+2029; nesting over
// 64 levels). A caller that gets false decodes data with its full decoder,
// which handles those forms or reports the error. The result is a new
// slice (its capacity is the value's length in data); data is not
// retained.
func StrictCanonicalValue(data []byte) (canonical json.RawMessage, n int, ok bool) {
	start := skipSpace(data, 0)
	end, ok := valueEnd(data, start)
	if !ok {
		return nil, 0, false
	}
	// The canonical form is never longer than the value: it only drops
	// whitespace and the backslash of \/.
	c := canonicalizer{in: data[:end], pos: start, out: make([]byte, 0, end-start)}
	if !c.value(0) || c.pos != end {
		return nil, 0, false
	}
	return c.out, end, true
}

func onlySpace(b []byte) bool { return skipSpace(b, 0) == len(b) }

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// valueEnd returns where the JSON value starting at data[i] ends, judging
// only structure (strings, brackets, delimiters); false when it does not
// end. The canonicalizer checks the rest.
func valueEnd(data []byte, i int) (int, bool) {
	start, depth := i, 0
	for i < len(data) {
		switch data[i] {
		case '"':
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			if i >= len(data) {
				return 0, false
			}
			i++
			if depth == 0 {
				return i, true
			}
		case '{', '[':
			depth++
			i++
		case '}', ']':
			if depth == 0 {
				return i, i > start
			}
			depth--
			i++
			if depth == 0 {
				return i, true
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i, i > start
			}
			i++
		default:
			i++
		}
	}
	return i, depth == 0 && i > start
}

// canonicalizer is the state of one canonicalFast call.
type canonicalizer struct {
	in  []byte
	pos int
	out []byte
	// The member spans of the objects being written, the innermost last:
	// n of them, in fixed while they fit, else all in extra. (A slice of
	// fixed kept in the struct would move the struct to the heap.)
	n     int
	fixed [32]memberSpan
	extra []memberSpan
}

// spans returns the member spans held.
func (c *canonicalizer) spans() []memberSpan {
	if c.extra != nil {
		return c.extra[:c.n]
	}
	return c.fixed[:c.n]
}

// push adds a member span.
func (c *canonicalizer) push(m memberSpan) {
	switch {
	case c.extra != nil:
		c.extra = append(c.extra[:c.n], m)
	case c.n < len(c.fixed):
		c.fixed[c.n] = m
	default:
		c.extra = append(append(make([]memberSpan, 0, 2*len(c.fixed)), c.fixed[:]...), m)
	}
	c.n++
}

// memberSpan is one object member as written to out: out[start:end] is
// `"name":value`, and the name (without quotes) is out[start+1:nameEnd].
type memberSpan struct{ start, nameEnd, end int }

func (c *canonicalizer) skipSpace() { c.pos = skipSpace(c.in, c.pos) }

// value writes the value at c.pos.
func (c *canonicalizer) value(depth int) bool {
	if c.pos >= len(c.in) || depth > maxFastDepth {
		return false
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(depth + 1)
	case b == '[':
		return c.array(depth + 1)
	case b == '"':
		return c.str(false)
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	}
	return false
}

func (c *canonicalizer) literal(lit string) bool {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
		return false
	}
	c.out = append(c.out, lit...)
	c.pos += len(lit)
	return true
}

// number copies a number that follows JSON's grammar, as written.
func (c *canonicalizer) number() bool {
	in, i := c.in, c.pos
	if in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case i < len(in) && in[i] >= '1' && in[i] <= '9':
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(in) && in[i] == '.' {
		i++
		start := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		start := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	c.out = append(c.out, in[c.pos:i]...)
	c.pos = i
	return true
}

// str copies the string at c.pos. A member name (name true) may hold no
// escape at all, so that its bytes are its decoded value and compare as
// encoding/json compares names.
func (c *canonicalizer) str(name bool) bool {
	in := c.in
	i := c.pos + 1
	c.out = append(c.out, '"')
	start := i
	for {
		if i >= len(in) {
			return false
		}
		b := in[i]
		switch {
		case b == '"':
			c.out = append(c.out, in[start:i]...)
			c.out = append(c.out, '"')
			c.pos = i + 1
			return true
		case b == '\\':
			if name || i+1 >= len(in) {
				return false
			}
			c.out = append(c.out, in[start:i]...)
			switch e := in[i+1]; e {
			case '"', '\\', 'n', 'r', 't':
				c.out = append(c.out, '\\', e)
			case '/':
				c.out = append(c.out, '/')
			default:
				return false
			}
			i += 2
			start = i
		case b < 0x20 || b == '<' || b == '>' || b == '&':
			return false
		case b < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(in[i:])
			if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
				return false
			}
			i += size
		}
	}
}

func (c *canonicalizer) array(depth int) bool {
	c.out = append(c.out, '[')
	c.pos++
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return true
	}
	for {
		if !c.value(depth) {
			return false
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return false
		}
		switch c.in[c.pos] {
		case ',':
			c.out = append(c.out, ',')
			c.pos++
			c.skipSpace()
		case ']':
			c.out = append(c.out, ']')
			c.pos++
			return true
		default:
			return false
		}
	}
}

func (c *canonicalizer) object(depth int) bool {
	c.out = append(c.out, '{')
	c.pos++
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		return true
	}
	first := c.n
	for {
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return false
		}
		m := memberSpan{start: len(c.out)}
		if !c.str(true) {
			return false
		}
		m.nameEnd = len(c.out) - 1
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return false
		}
		c.pos++
		c.out = append(c.out, ':')
		c.skipSpace()
		if !c.value(depth) {
			return false
		}
		m.end = len(c.out)
		c.push(m)
		c.skipSpace()
		if c.pos >= len(c.in) {
			return false
		}
		switch c.in[c.pos] {
		case ',':
			c.out = append(c.out, ',')
			c.pos++
			c.skipSpace()
		case '}':
			c.pos++
			ok := c.sortMembers(c.spans()[first:])
			c.n = first
			c.out = append(c.out, '}')
			return ok
		default:
			return false
		}
	}
}

// sortMembers puts the members of one object, written in input order, in
// name order; false for a duplicate name.
func (c *canonicalizer) sortMembers(ms []memberSpan) bool {
	name := func(m memberSpan) []byte { return c.out[m.start+1 : m.nameEnd] }
	sorted := true
	for i := 1; i < len(ms); i++ {
		switch cmp := bytes.Compare(name(ms[i-1]), name(ms[i])); {
		case cmp == 0:
			return false
		case cmp > 0:
			sorted = false
		}
	}
	if sorted {
		return true
	}
	// Insertion sort of the spans (objects are small), then the region
	// is rebuilt from a copy in that order.
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && bytes.Compare(name(ms[j-1]), name(ms[j])) > 0; j-- {
			ms[j-1], ms[j] = ms[j], ms[j-1]
		}
	}
	for i := 1; i < len(ms); i++ {
		if bytes.Equal(name(ms[i-1]), name(ms[i])) {
			return false
		}
	}
	lo, hi := ms[0].start, ms[0].end
	for _, m := range ms[1:] {
		lo, hi = min(lo, m.start), max(hi, m.end)
	}
	var scratch [512]byte
	region := append(scratch[:0], c.out[lo:hi]...)
	w := lo
	for i, m := range ms {
		if i > 0 {
			c.out[w] = ','
			w++
		}
		w += copy(c.out[w:], region[m.start-lo:m.end-lo])
	}
	return w == hi
}
