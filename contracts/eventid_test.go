package contracts_test

import (
	"encoding/json"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestParseEventID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want contracts.EventID
		ok   bool
	}{
		{"ms-seq", "1700000000000-9", contracts.EventID{Ms: 1700000000000, Seq: 9}, true},
		{"bare ms means seq 0", "10", contracts.EventID{Ms: 10}, true},
		{"zero", "0-0", contracts.EventID{}, true},
		{"max", "18446744073709551615-18446744073709551615", contracts.EventID{Ms: ^uint64(0), Seq: ^uint64(0)}, true},
		{"empty", "", contracts.EventID{}, false},
		{"overflow ms", "18446744073709551616-0", contracts.EventID{}, false},
		{"overflow seq", "1-18446744073709551616", contracts.EventID{}, false},
		{"negative", "-1", contracts.EventID{}, false},
		{"trailing dash", "1-", contracts.EventID{}, false},
		{"two dashes", "1-2-3", contracts.EventID{}, false},
		{"letters", "abc", contracts.EventID{}, false},
		{"plus sign", "+1-0", contracts.EventID{}, false},
		{"space", " 1-0", contracts.EventID{}, false},
		{"hex", "0x10-0", contracts.EventID{}, false},
		{"nul", "1\x00-0", contracts.EventID{}, false},
		{"too long", "1111111111111111111111111111111111111111-1", contracts.EventID{}, false},
		{"heartbeat id of taskbridge-fastapi's SSE", "hb-abc", contracts.EventID{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := contracts.ParseEventID(tt.in)
			if !tt.ok {
				require.Error(t, err)
				assert.ErrorIs(t, err, contracts.ErrMalformedEventID)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseCursorEmptyIsZero(t *testing.T) {
	t.Parallel()
	id, err := contracts.ParseCursor("")
	require.NoError(t, err)
	assert.True(t, id.IsZero())
	_, err = contracts.ParseCursor("nope")
	assert.ErrorIs(t, err, contracts.ErrMalformedEventID)
}

func TestMalformedErrorQuotesAndTruncates(t *testing.T) {
	t.Parallel()
	long := make([]byte, 10_000)
	for i := range long {
		long[i] = 'x'
	}
	_, err := contracts.ParseEventID(string(long))
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 200, "a 10 KB cursor must not be echoed whole")
}

func TestEventIDOrderingAcrossDigitLengths(t *testing.T) {
	t.Parallel()
	ordered := []string{"1-0", "1-9", "1-10", "2-0", "9-0", "9-99", "10-0", "10-1", "100-0",
		"1700000000000-9", "1700000000000-10", "1700000000001-0"}
	ids := make([]contracts.EventID, len(ordered))
	for i, s := range ordered {
		ids[i] = contracts.MustParseEventID(s)
	}
	shuffled := append([]contracts.EventID(nil), ids...)
	sort.Slice(shuffled, func(i, j int) bool { return shuffled[j].Less(shuffled[i]) })
	sort.Slice(shuffled, func(i, j int) bool { return shuffled[i].Less(shuffled[j]) })
	assert.Equal(t, ids, shuffled)
	for i := 1; i < len(ids); i++ {
		assert.Equal(t, -1, ids[i-1].Compare(ids[i]), "%s < %s", ids[i-1], ids[i])
		assert.Equal(t, 1, ids[i].Compare(ids[i-1]))
		assert.Equal(t, 0, ids[i].Compare(ids[i]))
	}
	assert.True(t, contracts.MustParseEventID("9-0").Less(contracts.MustParseEventID("10-0")),
		`"9-0" sorts after "10-0" as a string but must come first as an id`)
}

func TestEventIDTextRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"1-0", "1700000000000-10", "18446744073709551615-18446744073709551615"} {
		id := contracts.MustParseEventID(s)
		assert.Equal(t, s, id.String())
		raw, err := json.Marshal(id)
		require.NoError(t, err)
		assert.Equal(t, `"`+s+`"`, string(raw))
		var back contracts.EventID
		require.NoError(t, json.Unmarshal(raw, &back))
		assert.Equal(t, id, back)
	}
	var bad contracts.EventID
	assert.ErrorIs(t, json.Unmarshal([]byte(`"x"`), &bad), contracts.ErrMalformedEventID)
}

func TestEventIDNext(t *testing.T) {
	t.Parallel()
	assert.Equal(t, contracts.EventID{Ms: 5, Seq: 1}, contracts.EventID{Ms: 5}.Next())
	assert.Equal(t, contracts.EventID{Ms: 6}, contracts.EventID{Ms: 5, Seq: ^uint64(0)}.Next())
}

func FuzzParseEventID(f *testing.F) {
	for _, s := range []string{"", "0", "1-0", "1700000000000-10", "-", "1-", "99999999999999999999-1", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := contracts.ParseEventID(s)
		if err != nil {
			return
		}
		again, err := contracts.ParseEventID(id.String())
		if err != nil || again != id {
			t.Fatalf("round trip of %q: %v %v", s, again, err)
		}
	})
}

func BenchmarkEventIDCompare(b *testing.B) {
	x := contracts.MustParseEventID("1700000000000-9")
	y := contracts.MustParseEventID("1700000000000-10")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n += x.Compare(y)
	}
	_ = n
}

func BenchmarkParseEventID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := contracts.ParseEventID("1700000000000-10"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventIDAppendText(b *testing.B) {
	id := contracts.MustParseEventID("1700000000000-10")
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = id.AppendText(buf[:0])
	}
}
