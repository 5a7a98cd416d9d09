package streaming

import (
	"context"
	"sync"
	"time"
)

// wheel is the one timer of all streams: a hashed timing wheel whose slots
// hold the connections due in that tick. A single goroutine sleeps until the
// next non-empty slot and visits its connections (heartbeat when idle, ping,
// dead-peer check); each visit says when to look again. No timer and no
// goroutine exist per connection, and nothing runs between due times.
type wheel struct {
	enabled bool
	tick    time.Duration
	n       int64
	first   time.Duration // earliest anything can fall due after a stream starts
	base    time.Time
	kick    chan struct{}

	mu    sync.Mutex
	slots [][]*conn
	cur   int64 // last tick processed
	armed int64 // tick the runner sleeps until; -1 while it waits for work
}

func newWheel(cfg config) *wheel {
	w := &wheel{base: time.Now(), kick: make(chan struct{}, 1), armed: -1}
	var shortest, longest time.Duration
	for _, d := range []time.Duration{cfg.heartbeat, cfg.wsPing} {
		if d > 0 && (shortest == 0 || d < shortest) {
			shortest = d
		}
	}
	if shortest == 0 {
		return w
	}
	longest = max(cfg.heartbeat, cfg.wsPing)
	if cfg.wsPing > 0 {
		longest = max(longest, cfg.wsPing+cfg.wsPongTimeout)
		shortest = min(shortest, cfg.wsPongTimeout)
	}
	w.enabled = true
	w.first = min(positiveOr(cfg.heartbeat), positiveOr(cfg.wsPing))
	w.tick = min(max(shortest/8, time.Millisecond), time.Second)
	w.n = int64(longest/w.tick) + 3
	w.slots = make([][]*conn, w.n)
	return w
}

func positiveOr(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Duration(1<<63 - 1)
	}
	return d
}

func (w *wheel) tickOf(t time.Time) int64 { return int64(t.Sub(w.base) / w.tick) }

// add schedules a new stream's first visit.
func (w *wheel) add(s *conn, now time.Time) {
	if w.enabled {
		w.schedule(s, now.Add(w.first))
	}
}

// schedule puts s in the slot of time at (never earlier than at).
func (w *wheel) schedule(s *conn, at time.Time) {
	w.mu.Lock()
	t := (int64(at.Sub(w.base)) + int64(w.tick) - 1) / int64(w.tick)
	t = min(max(t, w.cur+1), w.cur+w.n-1)
	slot := &w.slots[t%w.n]
	s.wheelTick, s.wheelPos = t, int32(len(*slot))
	*slot = append(*slot, s)
	wake := w.armed < 0 || t < w.armed
	w.mu.Unlock()
	if wake {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// remove takes s out of its slot, if it is in one.
func (w *wheel) remove(s *conn) {
	if !w.enabled {
		return
	}
	w.mu.Lock()
	if s.wheelTick > 0 {
		slot := &w.slots[s.wheelTick%w.n]
		last := len(*slot) - 1
		moved := (*slot)[last]
		(*slot)[s.wheelPos] = moved
		moved.wheelPos = s.wheelPos
		(*slot)[last] = nil
		*slot = (*slot)[:last]
		s.wheelTick = 0
	}
	w.mu.Unlock()
}

// run sleeps until the next due slot and visits its connections, until ctx
// ends.
func (w *wheel) run(ctx context.Context) {
	if !w.enabled {
		return
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var due []*conn
	for {
		w.mu.Lock()
		next := int64(-1)
		for t := w.cur + 1; t <= w.cur+w.n; t++ {
			if len(w.slots[t%w.n]) > 0 {
				next = t
				break
			}
		}
		w.armed = next
		w.mu.Unlock()
		if next < 0 {
			select {
			case <-w.kick:
				continue
			case <-ctx.Done():
				return
			}
		}
		if d := time.Until(w.base.Add(time.Duration(next) * w.tick)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-w.kick:
				timer.Stop()
				continue
			case <-ctx.Done():
				return
			}
		}
		now := time.Now()
		w.mu.Lock()
		nowTick := w.tickOf(now)
		for t := w.cur + 1; t <= nowTick && t <= w.cur+w.n; t++ {
			slot := &w.slots[t%w.n]
			for i, s := range *slot {
				s.wheelTick = 0
				due = append(due, s)
				(*slot)[i] = nil
			}
			*slot = (*slot)[:0]
		}
		w.cur = max(w.cur, nowTick)
		w.mu.Unlock()
		for i, s := range due {
			if at, ok := s.visit(now); ok {
				w.schedule(s, at)
			}
			due[i] = nil
		}
		due = due[:0]
	}
}
