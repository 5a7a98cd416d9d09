package measure

import (
	"encoding/json"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBucketRoundTrip(t *testing.T) {
	values := []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 65_535, 1 << 20, 123_456_789, math.MaxUint64}
	for _, v := range values {
		i := bucketOf(v)
		require.Less(t, i, numBuckets, "value %d", v)
		lo, hi := bucketRange(i)
		assert.LessOrEqual(t, lo, v, "value %d", v)
		assert.GreaterOrEqual(t, hi, v, "value %d", v)
		if v >= subCount {
			assert.LessOrEqual(t, float64(hi-lo)/float64(lo), 1.0/subCount, "bucket width of %d", v)
		}
	}
	// Buckets are contiguous and ordered.
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		require.Equal(t, prevHi+1, lo, "bucket %d", i)
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name    string
		samples func(h *Histogram)
		q       float64
		want    uint64
		tol     float64 // relative tolerance
	}{
		{"empty", func(*Histogram) {}, 0.5, 0, 0},
		{"single", func(h *Histogram) { h.Record(42) }, 0.99, 42, 0},
		{"exact small values p50", func(h *Histogram) {
			for v := uint64(1); v <= 100; v++ {
				h.Record(v)
			}
		}, 0.5, 50, 0},
		{"exact small values p90", func(h *Histogram) {
			for v := uint64(1); v <= 100; v++ {
				h.Record(v)
			}
		}, 0.9, 90, 0},
		{"p99 of 1..10000", func(h *Histogram) {
			for v := uint64(1); v <= 10_000; v++ {
				h.Record(v)
			}
		}, 0.99, 9_900, 1.0 / subCount},
		{"p100 is the exact max", func(h *Histogram) {
			for v := uint64(1); v <= 10_000; v++ {
				h.Record(v * 7)
			}
		}, 1, 70_000, 0},
		{"outlier only moves the max", func(h *Histogram) {
			for i := 0; i < 999; i++ {
				h.Record(1000)
			}
			h.Record(5_000_000)
		}, 0.99, 1000, 1.0 / subCount},
		{"q<=0 is min", func(h *Histogram) {
			h.Record(300)
			h.Record(900)
		}, 0, 300, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			tt.samples(&h)
			got := h.Quantile(tt.q)
			if tt.tol == 0 {
				assert.Equal(t, tt.want, got)
				return
			}
			assert.GreaterOrEqual(t, got, tt.want, "never under-reports")
			assert.InEpsilon(t, float64(tt.want), float64(got), tt.tol)
		})
	}
}

func TestSummaryAndMinMax(t *testing.T) {
	var h Histogram
	for _, v := range []uint64{10, 20, 30, 40} {
		h.Record(v)
	}
	s := h.Summarize()
	assert.Equal(t, uint64(4), s.Count)
	assert.Equal(t, 25.0, s.Mean)
	assert.Equal(t, uint64(20), s.P50)
	assert.Equal(t, uint64(40), s.P99)
	assert.Equal(t, uint64(40), s.Max)
	assert.Equal(t, uint64(10), h.Min())

	var zero Histogram
	zero.Record(0)
	assert.Equal(t, uint64(0), zero.Min())
	assert.Equal(t, uint64(1), zero.Count())
}

func TestConcurrentRecordAndMerge(t *testing.T) {
	var a, b Histogram
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				a.Record(uint64(g*1000 + i))
			}
		}(g)
	}
	wg.Wait()
	b.Record(1_000_000)
	b.Merge(&a)
	assert.Equal(t, uint64(4001), b.Count())
	assert.Equal(t, uint64(1_000_000), b.Max())
	assert.Equal(t, uint64(0), b.Min())
	// 0..3999 plus one outlier: the median is the 2001st value, 2000.
	assert.InEpsilon(t, 2000.0, float64(b.Quantile(0.5)), 1.0/subCount)
	assert.GreaterOrEqual(t, b.Quantile(0.5), uint64(2000))
}

func TestHistogramJSONRoundTrip(t *testing.T) {
	var h Histogram
	for v := uint64(5); v < 50_000; v += 37 {
		h.Record(v)
	}
	data, err := json.Marshal(&h)
	require.NoError(t, err)

	var back Histogram
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, h.Summarize(), back.Summarize())
	assert.Equal(t, h.Min(), back.Min())

	var empty Histogram
	data, err = json.Marshal(&empty)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, uint64(0), back.Count())
	assert.Equal(t, uint64(0), back.Min())

	assert.Error(t, json.Unmarshal([]byte(`{"count":3,"buckets":[[1,1]]}`), &back), "counts must add up")
	assert.Error(t, json.Unmarshal([]byte(`{"count":1,"buckets":[[99999999,1]]}`), &back), "bucket out of range")
}
