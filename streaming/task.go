package streaming

import (
	"sync"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// taskState is the hub's view of one task with local subscribers or
// watchers. Its subscribers change only through its methods.
type taskState struct {
	id string

	mu       sync.Mutex // see the lock order in hub.go
	subs     []*subscriber
	live     int             // subscribers in subLive
	n        [numFormats]int // subscribers by wire format
	watchers []chan struct{}
	pos      contracts.EventID // the next fan-out read starts after pos
	noticed  contracts.EventID // highest id the feed announced
	more     bool              // read again even without a newer notice
	running  bool              // a pass is queued, running or waiting to retry a read
	fail     backoff           // failed fan-out reads in a row (the pass's)
	dead     bool              // removed from the hub's map
	next     *taskState        // run queue link
}

// wantPass reports whether a fan-out pass must run; it marks one running.
// Call with t.mu held.
func (t *taskState) wantPass() bool {
	if t.running || t.live == 0 || (!t.more && !t.pos.Less(t.noticed)) {
		return false
	}
	t.running = true
	return true
}

func (t *taskState) empty() bool { return len(t.subs) == 0 && len(t.watchers) == 0 }

// need reports which wire formats the task's subscribers use. Call with
// t.mu held.
func (t *taskState) need() [numFormats]bool {
	var need [numFormats]bool
	for f, n := range t.n {
		need[f] = n > 0
	}
	return need
}

// add registers s, in catch-up state. Call with t.mu held.
func (t *taskState) add(s *subscriber) {
	s.task = t
	s.idx = int32(len(t.subs))
	t.subs = append(t.subs, s)
	t.n[s.format()]++
}

// remove unregisters s; it is idempotent. Whatever was queued for s stays
// for its writer to drop. Call with t.mu held.
func (t *taskState) remove(s *subscriber) {
	if s.idx < 0 {
		return
	}
	last := len(t.subs) - 1
	moved := t.subs[last]
	t.subs[s.idx] = moved
	moved.idx = s.idx
	t.subs[last] = nil
	t.subs = t.subs[:last]
	s.idx = -1
	t.n[s.format()]--
	c := s.conn
	c.mu.Lock()
	wasLive := s.state == subLive
	s.state = subCatchup
	c.mu.Unlock()
	if wasLive {
		t.live--
	}
	if len(t.subs) == 0 {
		t.subs = nil
	}
}

// join switches s, which has read the store up to its cursor, to live
// delivery and reports whether it did, and whether a fan-out pass must be
// queued. With no other live subscriber the task's position simply moves
// to the cursor; when s's last read was made before s was registered
// (unseen: the first page, read by the caller or by ServeSSE before the
// stream existed), a change notice may have come in between and found no
// subscriber to record it, so the hub reads once from the cursor instead
// of waiting for the next notice. A live subscriber, by contrast, proves
// the task's notices have been recorded since before s's read. If the
// position is past the cursor, events the hub fanned out before s joined
// are missing: s reads on (false) while its reads still find events; when
// its last read found none (the position came from a client cursor beyond
// the store's end), the position is rewound instead, so the next pass
// re-reads from s's cursor and the others drop the repeats by id. A
// subscriber that is gone (removed, its connection ending) counts as
// joined: it reads no more.
func (t *taskState) join(s *subscriber, lastReadEmpty, unseen bool) (joined, sched bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := s.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.idx < 0 || c.state >= connClosing {
		return true, false
	}
	switch {
	case t.live == 0:
		t.pos = s.cursor
		if unseen {
			t.more = true
		}
	case s.cursor.Less(t.pos):
		if !lastReadEmpty {
			return false, false
		}
		t.pos = s.cursor
		t.more = true
	}
	s.state = subLive
	t.live++
	return true, t.wantPass()
}

// offerLocked hands b (encoded for every format present) to each live
// subscriber and collects the connections whose writer must be started.
// A subscriber whose queue is full is switched to catch-up reads. Call
// with t.mu held. It allocates nothing per subscriber.
func (t *taskState) offerLocked(formats *[numFormats]wireFormat, b *batch, starts []*conn) []*conn {
	b.encode(formats, t.need())
	for _, s := range t.subs {
		if c, slow := t.offer(s, b); c != nil || slow {
			if c != nil {
				starts = append(starts, c)
			}
			if slow {
				s.conn.hub.slowSubscriber(s)
			}
		}
	}
	return starts
}

// offer queues b for s. It returns s's connection when its writer must be
// started, and whether s was switched to catch-up. Call with t.mu held.
func (t *taskState) offer(s *subscriber, b *batch) (*conn, bool) {
	c := s.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.state != subLive || c.state >= connClosing {
		return nil, false
	}
	slow := !s.push(b)
	if slow {
		s.state = subCatchup
		t.live--
	}
	if c.kickLocked() {
		return c, slow
	}
	return nil, slow
}

// nextRead starts the next read of t's pass, or reports false when the
// pass is over (nothing new, or no live subscriber left), in which case t
// is no longer marked running.
func (t *taskState) nextRead() (fanoutRead, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live == 0 || (!t.more && !t.pos.Less(t.noticed)) {
		t.running = false
		t.fail = backoff{}
		return fanoutRead{}, false
	}
	t.more = false
	return fanoutRead{after: t.pos, noticed: t.noticed, need: t.need()}, true
}

// fanoutRead is one read of a task's pass, as nextRead started it.
type fanoutRead struct {
	after   contracts.EventID // the position read after
	noticed contracts.EventID // the highest announced id when the read began
	need    [numFormats]bool  // formats of the task's subscribers then
}

// slowSubscriber reports a subscriber switched to catch-up reads.
func (h *Hub) slowSubscriber(s *subscriber) {
	tr := transportOf[s.format()]
	h.cfg.metrics.IncCounter(observe.MetricSlowSubscribers, 1, h.tags[s.format()]...)
	h.cfg.diag.OnSlowSubscriber(tr, s.taskID)
	h.cfg.log.Debug("slow subscriber switched to catch-up reads", observe.Entry{TaskID: s.taskID, Transport: tr})
}
