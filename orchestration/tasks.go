package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Page sizes of task listings.
const (
	// DefaultTaskListLimit is the page size of a listing that asks for none.
	DefaultTaskListLimit = 20
	// MaxTaskListLimit is the largest page of a listing.
	MaxTaskListLimit = 100
	// taskListScanFactor bounds the tasks one listing request examines
	// against its filters: this many times its page size.
	taskListScanFactor = 10
)

// TaskReadService answers the task read API: one task's snapshot and the
// caller's task listing. It is safe for concurrent use.
//
// A snapshot costs two small reads, whatever the length of the task's log:
// the task record, and the summary of its log that the event store keeps
// current on every append (contracts.SummaryReader; both stores of this
// library implement it). An event store without summaries is served by
// folding its retained log once per request, which is correct but reads the
// whole log. A listing walks the owner index of the registry
// (contracts.TaskLister) and reads the page's summaries in one batch.
type TaskReadService struct{ d *deps }

// Snapshot returns the state of taskID for auth. Missing and foreign tasks
// are TASK_NOT_FOUND.
func (s *TaskReadService) Snapshot(ctx context.Context, auth contracts.AuthContext, taskID string) (contracts.TaskSnapshot, error) {
	d := s.d
	task, err := d.authorize(ctx, auth, taskID, accessRead)
	if err != nil {
		return contracts.TaskSnapshot{}, err
	}
	sums, err := s.summaries(ctx, []string{taskID})
	if err != nil {
		return contracts.TaskSnapshot{}, err
	}
	snap := s.snapshot(task.Header(), &sums[0], d.clock())
	if d.log.Enabled(debugLevel) {
		d.log.Debug("task.snapshot.read", observe.Entry{TaskID: taskID, UserID: auth.Subject,
			Transport: observe.TransportInternal, Outcome: string(snap.Status)})
	}
	return snap, nil
}

// CanList reports whether List works: the registry implements
// contracts.TaskLister.
func (s *TaskReadService) CanList() bool {
	_, ok := s.d.registry.(contracts.TaskLister)
	return ok
}

// errNoLister is List's answer on a registry without an owner index.
var errNoLister = errors.New("taskbridge: the task registry does not implement contracts.TaskLister")

// List returns a page of the tasks q.Auth.Subject owns, newest first (see
// contracts.TaskCursor for the order and its stability while tasks are
// created), filtered by status and task type. q.Limit is clamped to
// 1..MaxTaskListLimit (0: DefaultTaskListLimit). One request examines at
// most ten times its page size of tasks, so a page may be short, even
// empty, while NextCursor is set. The status filter reads the registry's
// status. When the ownership policy is not SubjectOwnership, each listed
// task is loaded and checked with it too, and tasks it denies are left
// out.
func (s *TaskReadService) List(ctx context.Context, q contracts.ListTasksQuery) (contracts.TaskList, error) {
	d := s.d
	lister, ok := d.registry.(contracts.TaskLister)
	if !ok {
		return contracts.TaskList{}, bridgeerr.Wrap(bridgeerr.CodeInternal, errNoLister, "internal error")
	}
	out := contracts.TaskList{Tasks: []contracts.TaskSnapshot{}}
	if q.Auth.Subject == "" {
		return out, nil // nobody owns the tasks of an empty subject
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultTaskListLimit
	case limit > MaxTaskListLimit:
		limit = MaxTaskListLimit
	}
	page, err := lister.ListTasks(ctx, contracts.TaskListQuery{
		OwnerID: q.Auth.Subject, Statuses: q.Statuses, TaskTypes: q.TaskTypes,
		After: q.Cursor, Limit: limit, ScanLimit: limit * taskListScanFactor,
	})
	if err != nil {
		return contracts.TaskList{}, internal(err)
	}
	headers, err := s.permitted(ctx, q.Auth, page.Tasks)
	if err != nil {
		return contracts.TaskList{}, err
	}
	ids := make([]string, len(headers))
	for i := range headers {
		ids[i] = headers[i].TaskID
	}
	sums, err := s.summaries(ctx, ids)
	if err != nil {
		return contracts.TaskList{}, err
	}
	now := d.clock()
	out.Tasks = make([]contracts.TaskSnapshot, 0, len(headers))
	for i := range headers {
		out.Tasks = append(out.Tasks, s.snapshot(headers[i], &sums[i], now))
	}
	if !page.Next.IsZero() {
		next := page.Next.String()
		out.NextCursor = &next
	}
	if d.log.Enabled(debugLevel) {
		d.log.Debug("task.list.read", observe.Entry{UserID: q.Auth.Subject, Transport: observe.TransportInternal,
			Outcome: "ok", Details: map[string]any{"tasks": len(out.Tasks), "more": out.NextCursor != nil}})
	}
	return out, nil
}

// permitted applies a custom ownership policy (and the action policy's
// CanRead, as for a snapshot) to listed tasks; the default policy only
// compares the owner, which the listing already did.
func (s *TaskReadService) permitted(ctx context.Context, auth contracts.AuthContext, hs []contracts.TaskHeader) ([]contracts.TaskHeader, error) {
	switch s.d.ownership.(type) {
	case SubjectOwnership, *SubjectOwnership:
		return hs, nil
	}
	kept := hs[:0:0]
	for _, h := range hs {
		task, err := s.d.registry.Get(ctx, h.TaskID)
		if errors.Is(err, contracts.ErrNotFound) {
			continue // expired since it was listed
		}
		if err != nil {
			return nil, internal(err)
		}
		if s.d.ownership.CanAccess(ctx, auth, task) == nil ||
			(s.d.actions != nil && s.d.actions.CanRead(ctx, auth, task) == nil) {
			kept = append(kept, h)
		}
	}
	return kept, nil
}

// summaries reads the log summaries of ids, from the event store's
// SummaryReader or, without one, by folding each retained log.
func (s *TaskReadService) summaries(ctx context.Context, ids []string) ([]contracts.TaskLogSummary, error) {
	if sr, ok := s.d.events.(contracts.SummaryReader); ok {
		sums, err := sr.Summaries(ctx, ids)
		if err != nil {
			return nil, internal(err)
		}
		return sums, nil
	}
	sums := make([]contracts.TaskLogSummary, len(ids))
	for i, id := range ids {
		var after contracts.EventID
		for {
			page, err := s.d.events.Read(ctx, id, after, MaxPageLimit)
			if err != nil {
				return nil, internal(err)
			}
			for j := range page.Events {
				sums[i].Apply(&page.Events[j])
			}
			if len(page.Events) < MaxPageLimit || page.Ended {
				break
			}
			after = page.Events[len(page.Events)-1].EventID
		}
	}
	return sums, nil
}

// snapshot combines a task's header and its log summary at now. The log
// is the source of truth for the end of a task: a terminal event sets the
// status even when the registry has not caught up yet. An open suspension
// whose deadline has passed is not reported (an action on it would be
// REJECTED_EXPIRED).
func (s *TaskReadService) snapshot(h contracts.TaskHeader, sum *contracts.TaskLogSummary, now time.Time) contracts.TaskSnapshot {
	snap := contracts.TaskSnapshot{
		TaskID: h.TaskID, TaskType: h.TaskType, Status: h.Status, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt,
		CancelRequested: h.CancelRequested,
	}
	if !sum.LastEventID.IsZero() {
		id := sum.LastEventID
		snap.LastEventID = &id
		if sum.LastEventAt.After(snap.UpdatedAt) {
			snap.UpdatedAt = sum.LastEventAt
		}
	}
	if st, ok := contracts.TerminalStatusFor(sum.TerminalType); ok {
		snap.Status = st
	}
	if sum.Progress != nil {
		var p contracts.ProgressPayload
		if s.decode(h.TaskID, sum.Progress, &p) {
			snap.Progress = &contracts.ProgressSnapshot{Percent: p.Progress, Stage: p.Stage, Message: p.Message}
		}
	}
	if sum.Suspended != nil && !snap.Status.IsTerminal() {
		var p contracts.SuspendedPayload
		if s.decode(h.TaskID, sum.Suspended, &p) && (p.ExpiresAt == nil || now.Before(*p.ExpiresAt)) {
			snap.Suspension = &p
		}
	}
	switch sum.TerminalType {
	case contracts.EventCompleted:
		var p struct {
			Result json.RawMessage `json:"result"`
		}
		if s.decode(h.TaskID, sum.Terminal, &p) {
			snap.Result = p.Result
			if snap.Result == nil {
				snap.Result = json.RawMessage("null")
			}
		}
	case contracts.EventFailed:
		var p contracts.FailedPayload
		if s.decode(h.TaskID, sum.Terminal, &p) {
			snap.Failure = &p
		}
	case contracts.EventCancelled:
		var p contracts.CancelledPayload
		if s.decode(h.TaskID, sum.Terminal, &p) {
			snap.Cancellation = &p
		}
	}
	return snap
}

// decode decodes a stored payload, logging (and reporting false) when it
// does not decode; stores only hold validated payloads, so that is a store
// fault, and the snapshot leaves the part out rather than failing.
func (s *TaskReadService) decode(taskID string, raw json.RawMessage, v any) bool {
	if err := json.Unmarshal(raw, v); err != nil {
		s.d.log.Error("task.snapshot.undecodable", observe.Entry{TaskID: taskID, Transport: observe.TransportInternal,
			Outcome: "skipped", Err: err})
		return false
	}
	return true
}
