package measure

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTracker(t *testing.T) {
	tests := []struct {
		name     string
		seqs     []uint64
		verdicts []Verdict
		gaps     uint64
		dups     uint64
		last     uint64
		expected uint64
		missing  uint64
	}{
		{"in order", []uint64{1, 2, 3}, []Verdict{InOrder, InOrder, InOrder}, 0, 0, 3, 3, 0},
		{"gap in the middle", []uint64{1, 2, 5, 6}, []Verdict{InOrder, InOrder, Gap, InOrder}, 2, 0, 6, 6, 0},
		{"first event skipped", []uint64{2, 3}, []Verdict{Gap, InOrder}, 1, 0, 3, 3, 0},
		{"replayed duplicate after reconnect", []uint64{1, 2, 3, 3, 4}, []Verdict{InOrder, InOrder, InOrder, Duplicate, InOrder}, 0, 1, 4, 4, 0},
		{"late arrival is a dup, gap stays", []uint64{1, 3, 2}, []Verdict{InOrder, Gap, Duplicate}, 1, 1, 3, 3, 0},
		{"short at the end", []uint64{1, 2}, []Verdict{InOrder, InOrder}, 0, 0, 2, 5, 3},
		{"nothing received", nil, nil, 0, 0, 0, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			var got []Verdict
			for _, s := range tt.seqs {
				got = append(got, tr.Observe(s))
			}
			assert.Equal(t, tt.verdicts, got)
			assert.Equal(t, tt.gaps, tr.Gaps, "gaps")
			assert.Equal(t, tt.dups, tr.Dups, "dups")
			assert.Equal(t, tt.last, tr.Last, "last")
			assert.Equal(t, uint64(len(tt.seqs)), tr.Received)
			assert.Equal(t, tt.missing, tr.Missing(tt.expected))
		})
	}
}
