package memstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.TaskLister = (*TaskRegistry)(nil)

// errMissingOwner is returned by ListTasks for a query without an owner.
var errMissingOwner = errors.New("taskbridge: memstore: list tasks: owner id is required")

// ownerIndex lists each owner's tasks in listing order, for ListTasks. It
// is guarded by the registry's mu and follows its records: an entry is
// added when a task is created and removed with the task. The zero value
// is ready.
type ownerIndex struct {
	owners map[string][]ownerEntry // oldest first: appends are cheap
}

// ownerEntry is a task's position in its owner's listing.
type ownerEntry struct {
	ms     int64 // CreatedAt in Unix milliseconds
	taskID string
}

// compare orders entries oldest first: by ms, then by task id.
func (e ownerEntry) compare(o ownerEntry) int {
	if e.ms != o.ms {
		if e.ms < o.ms {
			return -1
		}
		return 1
	}
	return strings.Compare(e.taskID, o.taskID)
}

func entryOf(rec *contracts.TaskRecord) ownerEntry {
	return ownerEntry{ms: rec.CreatedAt.UnixMilli(), taskID: rec.TaskID}
}

// add indexes rec under its owner.
func (x *ownerIndex) add(rec *contracts.TaskRecord) {
	if x.owners == nil {
		x.owners = make(map[string][]ownerEntry)
	}
	e := entryOf(rec)
	list := x.owners[rec.OwnerID]
	if n := len(list); n == 0 || list[n-1].compare(e) < 0 {
		x.owners[rec.OwnerID] = append(list, e) // the usual case: the newest task
		return
	}
	i, found := slices.BinarySearchFunc(list, e, ownerEntry.compare)
	if !found {
		x.owners[rec.OwnerID] = slices.Insert(list, i, e)
	}
}

// remove drops rec from its owner's listing.
func (x *ownerIndex) remove(rec *contracts.TaskRecord) {
	list := x.owners[rec.OwnerID]
	i, found := slices.BinarySearchFunc(list, entryOf(rec), ownerEntry.compare)
	if !found {
		return
	}
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(x.owners, rec.OwnerID)
		return
	}
	x.owners[rec.OwnerID] = list
}

// ListTasks implements contracts.TaskLister from an in-memory index of each
// owner's tasks kept in listing order: a page costs a binary search and a
// walk over at most q.ScanLimit entries (expired tasks are skipped and
// counted). A non-positive q.Limit lists nothing.
func (r *TaskRegistry) ListTasks(_ context.Context, q contracts.TaskListQuery) (contracts.TaskListPage, error) {
	if q.OwnerID == "" {
		return contracts.TaskListPage{}, errMissingOwner
	}
	if q.Limit <= 0 {
		return contracts.TaskListPage{}, nil
	}
	budget := -1
	if q.ScanLimit > 0 {
		budget = max(q.ScanLimit, q.Limit)
	}
	nowNs := r.cfg.now().UnixNano()
	r.mu.Lock()
	r.sweepLocked(nowNs)
	r.mu.Unlock()

	r.mu.RLock()
	defer r.mu.RUnlock()
	list := r.owners.owners[q.OwnerID]
	i := len(list) // walk down from i-1: newest first
	if !q.After.IsZero() {
		i, _ = slices.BinarySearchFunc(list, ownerEntry{ms: q.After.CreatedAt.UnixMilli(), taskID: q.After.TaskID},
			ownerEntry.compare)
	}
	var page contracts.TaskListPage
	page.Tasks = make([]contracts.TaskHeader, 0, min(q.Limit, i))
	for i--; i >= 0; i-- {
		if len(page.Tasks) == q.Limit || budget == 0 {
			last := list[i+1]
			page.Next = contracts.CursorOf(last.taskID, time.UnixMilli(last.ms))
			return page, nil
		}
		budget--
		e := r.tasks[list[i].taskID]
		if e == nil || (e.expireAt != 0 && nowNs >= e.expireAt) {
			continue
		}
		if h := e.rec.Header(); q.Matches(h) {
			page.Tasks = append(page.Tasks, h)
		}
	}
	return page, nil
}
