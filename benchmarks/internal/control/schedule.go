package control

import "time"

// Schedule spreads Tasks*PerTask events evenly over time: event k goes to
// task k mod Tasks and is due k/(Rate*Tasks) seconds after the start, so
// every task sees Rate events per second and the tasks take turns.
type Schedule struct {
	Tasks   int
	PerTask int
	// Rate is events per second per task; <= 0 makes every event due at
	// once.
	Rate float64
}

// Total returns the number of events in the schedule.
func (s Schedule) Total() int { return s.Tasks * s.PerTask }

// Task returns the index of the task event k goes to.
func (s Schedule) Task(k int) int { return k % s.Tasks }

// Due returns when event k is due, relative to the start.
func (s Schedule) Due(k int) time.Duration {
	if s.Rate <= 0 || s.Tasks == 0 {
		return 0
	}
	return time.Duration(float64(k) / (s.Rate * float64(s.Tasks)) * float64(time.Second))
}
