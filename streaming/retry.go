package streaming

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Pacing of the retries of failed store reads (Options.StoreRetryBudget
// bounds how long they go on).
const (
	retryMinDelay = 50 * time.Millisecond
	retryMaxDelay = 2 * time.Second
)

// backoff paces one reader's retries after failed store reads: the delay
// doubles from retryMinDelay up to retryMaxDelay, half of it fixed and half
// random (so the readers of an instance spread out instead of retrying in
// step), and a run of failures gives up once budget has passed since its
// first failure. The zero value has no failure; reset it after a success.
// It is not safe for concurrent use: its owner (a task's fan-out pass, a
// stream's writer) is one goroutine at a time.
type backoff struct {
	since    int64 // UnixNano of the first failure of the current run
	attempts int   // failures in the current run
}

// next records a failure at now and returns how long to wait before the
// next attempt, or false when the budget is spent (or budget <= 0: no
// retries). The last delay ends exactly at the budget, so the reader gives
// up only when the store stayed unavailable for all of it.
func (b *backoff) next(now time.Time, budget time.Duration) (time.Duration, bool) {
	if budget <= 0 {
		return 0, false
	}
	if b.attempts == 0 {
		b.since = now.UnixNano()
	}
	b.attempts++
	left := budget - now.Sub(time.Unix(0, b.since))
	if left <= 0 {
		return 0, false
	}
	d := retryMaxDelay
	if b.attempts <= 16 {
		d = min(retryMinDelay<<(b.attempts-1), retryMaxDelay)
	}
	d = d/2 + rand.N(d/2+1)
	return min(d, left), true
}

// retrySet owns the timers of pending retries: each runs its function once
// when due, unless the set was stopped first. stop (when the hub ends)
// cancels what is pending and waits for callbacks already running, so no
// retry runs after it and none outlives the hub.
type retrySet struct {
	mu      sync.Mutex
	stopped bool
	timers  map[*time.Timer]struct{}
	running sync.WaitGroup
}

// after runs fn in d, and reports false (scheduling nothing) once the set
// is stopped.
func (r *retrySet) after(d time.Duration, fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	if r.timers == nil {
		r.timers = make(map[*time.Timer]struct{})
	}
	r.running.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer r.running.Done()
		r.mu.Lock() // t is set: after holds mu until it is
		delete(r.timers, t)
		stopped := r.stopped
		r.mu.Unlock()
		if !stopped {
			fn()
		}
	})
	r.timers[t] = struct{}{}
	return true
}

// stop cancels the pending retries and waits for running callbacks; it is
// idempotent.
func (r *retrySet) stop() {
	r.mu.Lock()
	r.stopped = true
	for t := range r.timers {
		if t.Stop() {
			r.running.Done()
		}
		delete(r.timers, t)
	}
	r.mu.Unlock()
	r.running.Wait()
}
