package measure_test

import (
	"fmt"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

func ExampleHistogram() {
	var h measure.Histogram // microseconds
	for _, us := range []uint64{800, 1200, 1500, 2000, 90_000} {
		h.Record(us)
	}
	s := h.Summarize()
	// The median (1500) is reported as the upper bound of its bucket, within
	// 0.8 % above it; the maximum is exact.
	fmt.Println(s.Count, s.P50, s.Max)
	// Output: 5 1503 90000
}

func ExampleTracker() {
	var t measure.Tracker
	for _, seq := range []uint64{1, 2, 4, 4, 5} { // 3 skipped, 4 twice
		t.Observe(seq)
	}
	fmt.Println("gaps", t.Gaps, "dups", t.Dups, "missing of 6:", t.Missing(6))
	// Output: gaps 1 dups 1 missing of 6: 1
}
