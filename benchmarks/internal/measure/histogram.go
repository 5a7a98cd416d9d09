package measure

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
)

// subBits sets the histogram's precision: every power-of-two range is split
// into 2^subBits linear buckets, so a recorded value is reported with a
// relative error below 2^-subBits (under 0.8 %). Values below 2^subBits are
// exact.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxExp     = 64 - subBits - 1
	numBuckets = subCount + (maxExp+1)*subCount
)

// Histogram records non-negative integer samples (the generator records
// microseconds) into log-linear buckets. Record is safe for concurrent use
// and allocation-free; the zero value is ready. Reading methods (Quantile,
// Count, MarshalJSON, ...) may run concurrently with Record and then see a
// consistent-enough snapshot for progress output; read final numbers after
// the recorders stopped.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Uint64
	min    atomic.Uint64 // stored as value+1 so that zero means "none yet"
	max    atomic.Uint64
}

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(v) - subBits - 1
	return subCount + exp*subCount + int(v>>uint(exp)) - subCount
}

// bucketRange returns the smallest and largest value that land in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	exp := (i - subCount) / subCount
	sub := uint64((i-subCount)%subCount) + subCount
	lo = sub << uint(exp)
	hi = lo + (uint64(1) << uint(exp)) - 1
	return lo, hi
}

// Record adds one sample.
func (h *Histogram) Record(v uint64) {
	h.counts[bucketOf(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
	for {
		cur := h.max.Load()
		if v <= cur || h.max.CompareAndSwap(cur, v) {
			break
		}
	}
	for {
		cur := h.min.Load()
		if (cur != 0 && v+1 >= cur) || h.min.CompareAndSwap(cur, v+1) {
			break
		}
	}
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Max returns the largest sample, exactly (0 when empty).
func (h *Histogram) Max() uint64 { return h.max.Load() }

// Min returns the smallest sample, exactly (0 when empty).
func (h *Histogram) Min() uint64 {
	if m := h.min.Load(); m > 0 {
		return m - 1
	}
	return 0
}

// Mean returns the arithmetic mean of the samples (0 when empty).
func (h *Histogram) Mean() float64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the value at quantile q (0 < q <= 1): the upper bound of
// the bucket holding the ceil(q*count)-th smallest sample, capped at Max, so
// it never under-reports and is within the bucket precision of the true
// value. q <= 0 returns Min; an empty histogram returns 0.
func (h *Histogram) Quantile(q float64) uint64 {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	if q <= 0 {
		return h.Min()
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= n {
		return h.Max()
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketRange(i)
			if m := h.Max(); hi > m {
				return m
			}
			if lo := h.Min(); hi < lo {
				return lo
			}
			return hi
		}
	}
	return h.Max()
}

// Merge adds every sample of other into h. other must not be recorded into
// concurrently.
func (h *Histogram) Merge(other *Histogram) {
	if other.count.Load() == 0 {
		return
	}
	for i := range other.counts {
		if c := other.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.count.Add(other.count.Load())
	h.sum.Add(other.sum.Load())
	if m := other.Max(); m > h.max.Load() {
		h.max.Store(m)
	}
	if om := other.min.Load(); om != 0 {
		if cur := h.min.Load(); cur == 0 || om < cur {
			h.min.Store(om)
		}
	}
}

// histogramJSON is the sparse wire form of a Histogram: [bucket, count]
// pairs for non-empty buckets only.
type histogramJSON struct {
	Count   uint64      `json:"count"`
	Sum     uint64      `json:"sum"`
	Min     uint64      `json:"min"`
	Max     uint64      `json:"max"`
	Buckets [][2]uint64 `json:"buckets"`
}

// MarshalJSON encodes the histogram sparsely, so it can cross the pipe from
// a child process and be merged by the parent.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histogramJSON{Count: h.Count(), Sum: h.sum.Load(), Min: h.Min(), Max: h.Max(), Buckets: [][2]uint64{}}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON replaces h's contents with the encoded histogram. It checks
// that the bucket counts add up to the total.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	var in histogramJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	var fresh Histogram
	var total uint64
	for _, b := range in.Buckets {
		if b[0] >= numBuckets {
			return fmt.Errorf("measure: histogram bucket %d out of range", b[0])
		}
		fresh.counts[b[0]].Add(b[1])
		total += b[1]
	}
	if total != in.Count {
		return errors.New("measure: histogram buckets do not add up to its count")
	}
	fresh.count.Store(in.Count)
	fresh.sum.Store(in.Sum)
	fresh.max.Store(in.Max)
	if in.Count > 0 {
		fresh.min.Store(in.Min + 1)
	}
	h.Reset()
	h.Merge(&fresh)
	return nil
}

// Reset empties the histogram. It must not run concurrently with Record.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.count.Store(0)
	h.sum.Store(0)
	h.min.Store(0)
	h.max.Store(0)
}

// Summary is the usual digest of a latency histogram, in the histogram's
// unit.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   uint64  `json:"p50"`
	P90   uint64  `json:"p90"`
	P99   uint64  `json:"p99"`
	Max   uint64  `json:"max"`
}

// Summarize returns count, mean, p50, p90, p99 and max.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.Count(),
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		Max:   h.Max(),
	}
}
