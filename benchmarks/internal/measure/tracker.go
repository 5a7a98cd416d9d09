package measure

// Tracker follows one subscriber's view of a task's event sequence. Events
// are numbered 1, 2, 3, ... by the emitter; the subscriber must see each
// exactly once, in order, across any number of reconnects with its cursor.
// A Tracker is owned by one goroutine; it is not safe for concurrent use.
type Tracker struct {
	// Last is the highest sequence number seen so far (0: none).
	Last uint64
	// Received counts every observed event, duplicates included.
	Received uint64
	// Gaps counts sequence numbers that were skipped: seeing 5 after 2 adds
	// 2 (3 and 4 are missing). Missing events delivered later are counted
	// again as duplicates, never subtracted.
	Gaps uint64
	// Dups counts events at or below Last: repeats and late arrivals.
	Dups uint64
}

// Verdict is what Observe concluded about one event.
type Verdict int

// The possible verdicts of Observe.
const (
	InOrder Verdict = iota
	Gap
	Duplicate
)

// Observe records event seq and says whether it was the next one, came
// after a gap, or was a duplicate.
func (t *Tracker) Observe(seq uint64) Verdict {
	t.Received++
	switch {
	case seq == t.Last+1:
		t.Last = seq
		return InOrder
	case seq <= t.Last:
		t.Dups++
		return Duplicate
	default:
		t.Gaps += seq - t.Last - 1
		t.Last = seq
		return Gap
	}
}

// Missing returns how many of the first expected events never arrived at
// the end: expected minus Last when Last is short of it. Events skipped in
// the middle are Gaps, not Missing.
func (t *Tracker) Missing(expected uint64) uint64 {
	if t.Last >= expected {
		return 0
	}
	return expected - t.Last
}
