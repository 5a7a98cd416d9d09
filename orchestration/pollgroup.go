package orchestration

import (
	"context"
	"errors"
	"sync"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// pollGroups lets the long-polls waiting on one task share their store
// reads: one Watch on the Waiter per task, and after each wake-up one read
// per distinct (cursor, limit) instead of one per poll. A thousand polls
// with a cursor past the end of a busy task so cost one read per append,
// not a thousand.
//
// Correctness rests on one order: a group's watch is registered before any
// read of its round starts (both under mu), and a poll that used a round's
// read waits on that round's watch. An append after the registration closes
// the watch; one before it is in every read of the round. So no poll misses
// a wake-up, also when it joins a round whose read finished earlier.
//
// Lock order: pollGroups.mu, then pollGroup.mu.
type pollGroups struct {
	mu     sync.Mutex
	groups map[string]*pollGroup
}

// pollGroup is the shared state of the polls waiting on one task.
type pollGroup struct {
	taskID string
	refs   int // polls in the group; guarded by pollGroups.mu

	mu      sync.Mutex
	round   uint64          // wake-ups seen
	changed <-chan struct{} // this round's watch; nil: none yet
	release func()
	reads   map[readKey]*sharedRead // this round's reads
	check   *sharedCheck            // this round's existence check; nil: none yet
}

// sharedCheck is one registry look-up of a round: does the task still
// exist? done closes when it finished.
type sharedCheck struct {
	done chan struct{}
	gone bool
}

type readKey struct {
	after contracts.EventID
	limit int
}

// sharedRead is one store read of a round; done closes when it finished.
type sharedRead struct {
	done chan struct{}
	page contracts.EventPage
	err  error
}

// join adds a poll to taskID's group; leave must be called once.
func (g *pollGroups) join(taskID string) *pollGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.groups == nil {
		g.groups = make(map[string]*pollGroup)
	}
	pg := g.groups[taskID]
	if pg == nil {
		pg = &pollGroup{taskID: taskID}
		g.groups[taskID] = pg
	}
	pg.refs++
	return pg
}

// leave removes a poll; the last one out releases the group's watch.
func (g *pollGroups) leave(pg *pollGroup) {
	g.mu.Lock()
	pg.refs--
	last := pg.refs == 0
	if last {
		delete(g.groups, pg.taskID)
	}
	g.mu.Unlock()
	if last {
		pg.mu.Lock()
		release := pg.release
		pg.changed, pg.release, pg.reads, pg.check = nil, nil, nil, nil
		pg.mu.Unlock()
		if release != nil {
			release()
		}
	}
}

// read returns this round's page for (after, limit), reading the store
// only if no other poll of the round did or does, and the round's watch
// channel and number. leader reports whether this call made the read.
func (pg *pollGroup) read(ctx context.Context, w Waiter, events contracts.EventStore, after contracts.EventID, limit int) (page contracts.EventPage, changed <-chan struct{}, round uint64, leader bool, err error) {
	pg.mu.Lock()
	if pg.changed == nil {
		pg.changed, pg.release = w.Watch(pg.taskID)
		pg.round++
		pg.reads = make(map[readKey]*sharedRead)
		pg.check = nil
	}
	changed, round = pg.changed, pg.round
	key := readKey{after, limit}
	r := pg.reads[key]
	leader = r == nil
	if leader {
		r = &sharedRead{done: make(chan struct{})}
		pg.reads[key] = r
	}
	pg.mu.Unlock()
	if leader {
		// Not tied to this poll's ctx alone: others wait for the result.
		r.page, r.err = events.Read(context.WithoutCancel(ctx), pg.taskID, after, limit)
		close(r.done)
	} else {
		select {
		case <-r.done:
		case <-ctx.Done():
			return contracts.EventPage{}, changed, round, false, ctx.Err()
		}
	}
	return r.page, changed, round, leader, r.err
}

// woke ends round (once its watch fired): the next read starts a new round
// with a new watch.
func (pg *pollGroup) woke(round uint64) {
	pg.mu.Lock()
	var release func()
	if pg.round == round && pg.changed != nil {
		release = pg.release
		pg.changed, pg.release, pg.reads, pg.check = nil, nil, nil, nil
	}
	pg.mu.Unlock()
	if release != nil {
		release()
	}
}

// gone reports whether the task no longer exists in the registry, looked
// up once per round for all polls of the group (a round that is over looks
// it up for the caller alone).
func (pg *pollGroup) gone(ctx context.Context, registry contracts.TaskRegistry, round uint64) bool {
	lookup := func() bool {
		_, err := registry.Get(context.WithoutCancel(ctx), pg.taskID)
		return errors.Is(err, contracts.ErrNotFound)
	}
	pg.mu.Lock()
	if pg.round != round || pg.changed == nil {
		pg.mu.Unlock()
		return lookup()
	}
	c := pg.check
	leader := c == nil
	if leader {
		c = &sharedCheck{done: make(chan struct{})}
		pg.check = c
	}
	pg.mu.Unlock()
	if leader {
		c.gone = lookup()
		close(c.done)
		return c.gone
	}
	select {
	case <-c.done:
		return c.gone
	case <-ctx.Done():
		return false
	}
}
