package contracts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// canonicalCases are inputs on both sides of the fast path's limits.
var canonicalCases = []string{
	`{}`, ` { } `, `[]`, `[ ]`, `null`, `true`, `false`, `0`, `-0`, `1.50`, `-12e+3`, `1E-7`, `123456789012345678901234567890`,
	`""`, `"abc"`, `{"a":1}`, `{"b":2,"a":1}`, `{ "b" : [1, 2.50, {"y":1,"x":2}], "a" : "s" }`,
	`{"z":{"d":{"b":1,"a":2},"c":[{"f":1,"e":2}]},"y":[],"x":{}}`,
	`{"a":"x\"y\\z\/w\nv\rq\tp"}`, `{"a":"\b\f"}`, `{"a":"\u0041\u00e9\ud83d\ude00"}`, `{"a":"\ud800"}`,
	`{"a":"<b>&amp;</b>"}`, `{"<":1,">":2}`, `{"a":"\u2028\u2029"}`, "{\"a\":\"\u2028\"}",
	`{"é":1,"e":2,"ß":3,"z":4}`, `{"日本":"語","a":"ü"}`, "{\"a\":\"\xff\"}", "{\"\xfe\":1}",
	`{"a":1,"a":2}`, `{"b":1,"a":1,"b":3}`, `{"a\"":1,"a":2}`, `{"a\u0062":1,"ab":2}`, `{"":1," ":2}`,
	`{"a":1} `, `{"a":1} x`, `{"a":1} 1`, `{"a":1}}`, `{"a":1`, `{"a"`, `{"a":}`, `{a:1}`, `{"a":1,}`,
	`[1,]`, `[1 2]`, `01`, `1.`, `.5`, `1e`, `-`, `+1`, `tru`, `nul`, `truex`, `[true false]`, ``, ` `,
	"\t{\n\"a\"\r:\n1}\n", `{"a":[1,[2,[3,{"c":3,"b":2}]]]}`, `"\u0000"`, "\"a\x01\"", `{"k":"v"}` + "\x00",
	strings.Repeat("[", 70) + strings.Repeat("]", 70),
	strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70),
	`{` + strings.Repeat(`"k":1,`, 3) + `"j":2}`,
	bigObject(40, true), bigObject(40, false), bigObject(300, false),
}

// bigObject builds an object of n members with long values, in name order
// or reversed, so that reordering needs more than the stack scratch buffer.
func bigObject(n int, sorted bool) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		k := i
		if !sorted {
			k = n - 1 - i
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k`)
		b.WriteString(strings.Repeat("0", 4-len(itoa(k))))
		b.WriteString(itoa(k))
		b.WriteString(`":"`)
		b.WriteString(strings.Repeat("v", 20))
		b.WriteString(`"`)
	}
	b.WriteByte('}')
	return b.String()
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

// checkCanonical asserts that CanonicalJSON answers raw exactly as the
// reference (encoding/json) does, and that the fast path, when it answers,
// gives the same bytes.
func checkCanonical(t *testing.T, raw []byte) {
	t.Helper()
	want, wantErr := canonicalSlow(raw)
	got, gotErr := CanonicalJSON(raw)
	if (wantErr == nil) != (gotErr == nil) || !bytes.Equal(want, got) {
		t.Fatalf("CanonicalJSON(%q) = %q, %v; encoding/json gives %q, %v", raw, got, gotErr, want, wantErr)
	}
	if wantErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("CanonicalJSON(%q) error %q, encoding/json's %q", raw, gotErr, wantErr)
	}
	if fast, ok := canonicalFast(raw); ok && (wantErr != nil || !bytes.Equal(fast, want)) {
		t.Fatalf("fast path on %q = %q; encoding/json gives %q, %v", raw, fast, want, wantErr)
	}
}

func TestCanonicalJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range canonicalCases {
		checkCanonical(t, []byte(s))
	}
}

// TestCanonicalFastPathTakes: the values requests carry go the one-pass
// way (otherwise the fast path would silently cost nothing but time).
func TestCanonicalFastPathTakes(t *testing.T) {
	for _, s := range []string{
		`{}`, `{"n":1}`, `{"b":2,"a":1}`, `{ "b" : [1, 2.50, {"y":1,"x":2}], "a" : "s" }`,
		`{"a":"x\"y\\z\/w\nv"}`, `{"日本":"語","a":"ü"}`, bigObject(300, false),
	} {
		_, ok := canonicalFast([]byte(s))
		assert.True(t, ok, "fast path refused %s", s)
	}
}

// checkStrictValue asserts that StrictCanonicalValue, when it takes the
// value at the start of data, took a whole value that encoding/json
// canonicalises to the same bytes.
func checkStrictValue(t *testing.T, data []byte) {
	t.Helper()
	out, n, ok := StrictCanonicalValue(data)
	if !ok {
		return
	}
	if n <= 0 || n > len(data) {
		t.Fatalf("StrictCanonicalValue(%q) took %d bytes", data, n)
	}
	want, err := canonicalSlow(data[:n])
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("StrictCanonicalValue(%q) = %q of %q; encoding/json gives %q, %v", data, out, data[:n], want, err)
	}
}

func TestStrictCanonicalValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		n    int
	}{
		{`{"b":1,"a":2},"x":1}`, `{"a":2,"b":1}`, 13},
		{` [1, 2] }`, `[1,2]`, 7},
		{`"s" ,`, `"s"`, 3},
		{`12}`, `12`, 2},
		{`null,`, `null`, 4},
		{"true\n", `true`, 4},
	} {
		out, n, ok := StrictCanonicalValue([]byte(tc.in))
		require.True(t, ok, tc.in)
		assert.Equal(t, tc.want, string(out), tc.in)
		assert.Equal(t, tc.n, n, tc.in)
	}
	for _, in := range []string{``, ` `, `}`, `,`, `{"a":1,"a":2}`, `{"a":1`, `"abc`, `tru,`, `12x,`, `{"a":"\u0041"}`, "\"\xff\""} {
		_, _, ok := StrictCanonicalValue([]byte(in))
		assert.False(t, ok, in)
	}
	for _, s := range canonicalCases {
		checkStrictValue(t, []byte(s))
		checkStrictValue(t, []byte(s+`,"more":1}`))
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonicalCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkCanonical(t, raw)
		checkStrictValue(t, raw)
	})
}

// fingerprintReference is Fingerprint as first written (a streamed hash of
// every field); fingerprints stored by earlier versions were made by it, so
// Fingerprint must give the same text for every input.
func fingerprintReference(taskType string, canonicalInput []byte, attachments []Attachment) string {
	h := sha256.New()
	writeField := func(s string) {
		var n [20]byte
		h.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
		h.Write([]byte{':'})
		io.WriteString(h, s)
	}
	writeField(taskType)
	writeField(string(canonicalInput))
	for _, a := range attachments {
		writeField(a.Filename)
		writeField(a.ContentType)
		writeField(strconv.FormatInt(a.Size, 10))
		writeField(a.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestFingerprintUnchanged(t *testing.T) {
	att := NewAttachment("a.txt", "text/plain", []byte("hello"))
	for _, tc := range []struct {
		taskType string
		input    string
		atts     []Attachment
	}{
		{"", "", nil},
		{"bench.hold", `{"n":1}`, nil},
		{"demo", `{}`, []Attachment{att}},
		{"demo", `{}`, []Attachment{att, NewAttachment("", "", nil)}},
		{strings.Repeat("t", 300), strings.Repeat("x", 200), nil},
		{"demo", `{"k":"` + strings.Repeat("v", 460) + `"}`, nil},
		{"demo", `{"k":"` + strings.Repeat("v", 10000) + `"}`, nil},
	} {
		assert.Equal(t, fingerprintReference(tc.taskType, []byte(tc.input), tc.atts),
			Fingerprint(tc.taskType, []byte(tc.input), tc.atts), "%s %.40s", tc.taskType, tc.input)
	}
}

// TestAppendTimeMatchesFormat: appendTime writes what AppendFormat with
// TimeLayout writes, at the edges of its fast range and beyond.
func TestAppendTimeMatchesFormat(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("x", -7*3600-1800), time.FixedZone("y", 14*3600)}
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 999_999_999), time.Unix(1_700_000_000, 123_456_789),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 1_000_000, time.UTC),
		time.Date(1999, 9, 9, 9, 9, 9, 9_000_000, time.UTC), time.Date(2024, 2, 29, 12, 0, 0, 500_000, time.UTC),
	}
	for i := range 2000 {
		times = append(times, time.Unix(int64(i)*987_654_321, int64(i)*7_777_777%1_000_000_000))
	}
	for _, tm := range times {
		for _, z := range zones {
			in := tm.In(z)
			want := in.UTC().AppendFormat([]byte("x"), TimeLayout)
			assert.Equal(t, string(want), string(appendTime([]byte("x"), in)), "%v", in)
		}
	}
}
