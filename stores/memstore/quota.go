package memstore

import (
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Approximate bookkeeping cost of a task record and an event beyond their
// variable parts (ids, times, map and slice entries), so that many tiny
// writes count too.
const (
	taskOverhead  = 512
	eventOverhead = 256
)

// quotaRetryAfter is what a refused subject is told to wait: its data
// leaves only when its tasks end and their retention passes, which the
// store cannot predict for running tasks.
const quotaRetryAfter = 30 * time.Second

// quota counts the tasks and bytes (task records with their input,
// metadata and attachments, and events) held by one bundle of stores,
// overall and per owner, and refuses writes past the limits. Tasks leave
// the count when their retention ends (it is a terminalHook, linked like
// the stores), events also when MaxEventsPerTask drops them. Nothing is
// evicted to make room: a full store refuses, and what retention allows to
// go goes on its schedule.
//
// Lock order: a store's own lock, then quota.mu (quota calls nothing).
type quota struct {
	maxTasks, maxTasksPerOwner int64
	maxBytes, maxBytesPerOwner int64

	mu     sync.Mutex
	tasks  map[string]*quotaTask
	owners map[string]*usage
	total  usage
	exp    expiryQueue
}

type quotaTask struct {
	owner    string
	bytes    int64
	expireAt int64 // UnixNano; 0: not scheduled
	slot     bool  // counted as a task (admitTask); a task known only from its events is not
}

type usage struct{ tasks, bytes int64 }

// newQuota returns the quota of a bundle, or nil (nothing counted, nothing
// refused) when every limit is off: counting would then only cost each
// write a map entry and a lock.
func newQuota(c config) *quota {
	if c.maxTasks < 0 && c.maxTasksPerOwner < 0 && c.maxBytes < 0 && c.maxBytesPerOwner < 0 {
		return nil
	}
	return &quota{
		maxTasks: int64(c.maxTasks), maxTasksPerOwner: int64(c.maxTasksPerOwner),
		maxBytes: c.maxBytes, maxBytesPerOwner: c.maxBytesPerOwner,
		tasks: make(map[string]*quotaTask), owners: make(map[string]*usage),
	}
}

// admitTask counts a new task of owner holding bytes, or refuses it with a
// *contracts.LimitError.
func (q *quota) admitTask(taskID, owner string, bytes int64, nowNs int64) error {
	if q == nil {
		return nil
	}
	bytes += taskOverhead
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sweepLocked(nowNs)
	u := q.owners[owner]
	if u == nil {
		u = &usage{}
	}
	if err := q.checkLocked(u, 1, bytes); err != nil {
		return err
	}
	if old := q.tasks[taskID]; old != nil {
		q.dropLocked(taskID, old) // an id reused after expiry
	}
	q.owners[owner] = u
	q.tasks[taskID] = &quotaTask{owner: owner, bytes: bytes, slot: true}
	u.tasks++
	u.bytes += bytes
	q.total.tasks++
	q.total.bytes += bytes
	return nil
}

// admitEvent counts an event of bytes for taskID, or refuses it. Terminal
// events are always admitted (a task must be able to end), and so are
// events of tasks the registry does not know (an event store used on its
// own), which count towards the overall limit only.
func (q *quota) admitEvent(taskID string, bytes int64, terminal bool, nowNs int64) error {
	if q == nil {
		return nil
	}
	bytes += eventOverhead
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sweepLocked(nowNs)
	t := q.tasks[taskID]
	if t == nil {
		t = &quotaTask{}
		q.tasks[taskID] = t
	}
	u := q.owners[t.owner]
	if u == nil {
		u = &usage{}
		q.owners[t.owner] = u
	}
	if !terminal {
		if err := q.checkLocked(u, 0, bytes); err != nil {
			return err
		}
	}
	t.bytes += bytes
	u.bytes += bytes
	q.total.bytes += bytes
	return nil
}

// releaseEvent uncounts an event of bytes the cap dropped.
func (q *quota) releaseEvent(taskID string, bytes int64) {
	if q == nil {
		return
	}
	bytes += eventOverhead
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.tasks[taskID]
	if t == nil {
		return
	}
	t.bytes -= bytes
	if u := q.owners[t.owner]; u != nil {
		u.bytes -= bytes
	}
	q.total.bytes -= bytes
}

// checkLocked refuses adding tasks and bytes to owner usage u past a limit.
func (q *quota) checkLocked(u *usage, tasks, bytes int64) error {
	full := func(limit string, max int64) error {
		return &contracts.LimitError{Err: contracts.ErrStoreFull, Limit: limit, Max: max}
	}
	over := func(limit string, max int64) error {
		return &contracts.LimitError{Err: contracts.ErrQuotaExceeded, Limit: limit, Max: max, RetryAfter: quotaRetryAfter}
	}
	switch {
	case tasks > 0 && q.maxTasksPerOwner > 0 && u.tasks+tasks > q.maxTasksPerOwner:
		return over("MaxTasksPerOwner", q.maxTasksPerOwner)
	case q.maxBytesPerOwner > 0 && u.bytes+bytes > q.maxBytesPerOwner:
		return over("MaxBytesPerOwner", q.maxBytesPerOwner)
	case tasks > 0 && q.maxTasks > 0 && q.total.tasks+tasks > q.maxTasks:
		return full("MaxTasks", q.maxTasks)
	case q.maxBytes > 0 && q.total.bytes+bytes > q.maxBytes:
		return full("MaxBytes", q.maxBytes)
	}
	return nil
}

// expireTask implements terminalHook: the task leaves the count at
// deadline, when the stores forget it.
func (q *quota) expireTask(taskID string, deadline time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.tasks[taskID]; t != nil && t.expireAt == 0 {
		t.expireAt = deadline.UnixNano()
		q.exp.push(taskID, deadline)
	}
}

// sweepLocked uncounts the tasks whose retention ended.
func (q *quota) sweepLocked(nowNs int64) {
	if !q.exp.due(nowNs) {
		return
	}
	for _, id := range q.exp.popDue(nowNs) {
		if t := q.tasks[id]; t != nil && t.expireAt != 0 && t.expireAt <= nowNs {
			q.dropLocked(id, t)
		}
	}
}

func (q *quota) dropLocked(taskID string, t *quotaTask) {
	delete(q.tasks, taskID)
	u := q.owners[t.owner]
	if u == nil {
		return
	}
	u.bytes -= t.bytes
	q.total.bytes -= t.bytes
	if t.slot {
		u.tasks--
		q.total.tasks--
	}
	if u.tasks == 0 && u.bytes <= 0 {
		delete(q.owners, t.owner)
	}
}

// Usage is what a bundle of stores holds, as counted for its limits.
type Usage struct {
	// Tasks and Bytes held overall.
	Tasks, Bytes int64
}

// usageOf returns the overall usage and that of owner.
func (q *quota) usageOf(owner string) (all, of Usage) {
	q.mu.Lock()
	defer q.mu.Unlock()
	all = Usage{Tasks: q.total.tasks, Bytes: q.total.bytes}
	if u := q.owners[owner]; u != nil {
		of = Usage{Tasks: u.tasks, Bytes: u.bytes}
	}
	return all, of
}
