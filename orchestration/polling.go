package orchestration

import (
	"context"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// PollingService answers HTTP long-polls: events strictly after a cursor,
// optionally waiting for the first one. It is safe for concurrent use.
type PollingService struct {
	d      *deps
	groups pollGroups // polls waiting on the same task share reads
}

// Poll returns up to q.Limit events of q.TaskID strictly after q.After.
//
// When none is there yet and q.Wait > 0, it waits until an event is appended
// (woken by the Waiter, not by polling the store), q.Wait passes or ctx ends;
// a timeout or a cancelled ctx (server shutdown) returns the empty result,
// not an error. It does not wait for a task whose stream has ended, nor for
// one that no longer exists: a wait woken without new events checks the
// registry, and a task that is gone (as after a store restart without
// persistence) answers TASK_NOT_FOUND.
// NextAfterEventID is the last returned id, else the query's cursor (nil for
// the zero cursor); HasMore is true when the page is full and the stream has
// not ended. q.Limit is clamped to 1..MaxPageLimit (0 means
// DefaultPageLimit). Foreign and missing tasks are TASK_NOT_FOUND.
func (s *PollingService) Poll(ctx context.Context, q contracts.PollQuery) (contracts.PollResult, error) {
	d := s.d
	limit := clampLimit(q.Limit)
	page, err := s.readAuthorized(ctx, q, limit)
	if err != nil {
		return contracts.PollResult{}, err
	}

	transport := observe.TransportTags(observe.TransportHTTP)
	d.metrics.IncCounter(observe.MetricFallbacks, 1, transport...)
	if !q.After.IsZero() {
		d.metrics.IncCounter(observe.MetricReplays, 1, transport...)
	}

	res := contracts.PollResult{
		TaskID:       q.TaskID,
		Events:       page.Events,
		HasMore:      len(page.Events) == limit && !page.Ended,
		RetentionGap: page.RetentionGap,
	}
	if res.Events == nil {
		res.Events = []contracts.TaskEvent{}
	}
	switch {
	case len(page.Events) > 0:
		last := page.Events[len(page.Events)-1].EventID
		res.NextAfterEventID = &last
	case !q.After.IsZero():
		after := q.After
		res.NextAfterEventID = &after
	}
	if d.log.Enabled(debugLevel) {
		entry := observe.Entry{
			TaskID: q.TaskID, UserID: q.Auth.Subject, Transport: observe.TransportInternal, Outcome: "ok",
			Details: map[string]any{"batchSize": len(page.Events), "afterEventId": q.After.String(), "waited": q.Wait > 0},
		}
		if len(page.Events) > 0 {
			entry.EventID = page.Events[len(page.Events)-1].EventID.String()
		}
		d.log.Debug("task.events.polled", entry)
	}
	return res, nil
}

// TaskPageReader is an event store that reads a task's record together
// with a page of its events in one store round trip
// (redisstore.EventStore). When Options.Stores.Events is one, a poll that
// does not wait costs that one read: the record for the access check, the
// page for the answer. The record and its errors are TaskRegistry.Get's
// (contracts.ErrNotFound for a missing task), the page is
// EventStore.Read's.
type TaskPageReader interface {
	ReadTask(ctx context.Context, taskID string, after contracts.EventID, limit int) (contracts.TaskRecord, contracts.EventPage, error)
}

// readAuthorized checks the caller's access to the task and reads its
// page: in one store read when the poll does not wait and the event store
// is a TaskPageReader, else the registry's record, then read.
func (s *PollingService) readAuthorized(ctx context.Context, q contracts.PollQuery, limit int) (contracts.EventPage, error) {
	d := s.d
	pr, ok := d.events.(TaskPageReader)
	if !ok || q.Wait > 0 || q.TaskID == "" {
		if _, err := d.authorize(ctx, q.Auth, q.TaskID, accessRead); err != nil {
			return contracts.EventPage{}, err
		}
		return s.read(ctx, q, limit)
	}
	d.metrics.IncCounter(observe.MetricStoreReads, 1, pollReadTags...)
	task, page, err := pr.ReadTask(ctx, q.TaskID, q.After, limit)
	if err != nil {
		return contracts.EventPage{}, taskReadError(err)
	}
	if _, err := d.decideAccess(ctx, q.Auth, task, accessRead); err != nil {
		return contracts.EventPage{}, err
	}
	return page, nil
}

// pollReadTags tags the store reads of long-polls (shared, read-only: a
// tag built per call would be allocated per call).
var pollReadTags = []observe.Tag{{Key: observe.TagReason, Value: "poll"}}

// read reads once, and when the page is empty and q.Wait > 0, waits for a
// change and reads again until events arrive, the stream ends, the wait
// passes or ctx ends. The watch is registered before each read, so an
// append between the read and the wait still wakes it.
func (s *PollingService) read(ctx context.Context, q contracts.PollQuery, limit int) (contracts.EventPage, error) {
	d := s.d
	reads := pollReadTags
	if q.Wait <= 0 {
		d.metrics.IncCounter(observe.MetricStoreReads, 1, reads...)
		page, err := d.events.Read(ctx, q.TaskID, q.After, limit)
		if err != nil {
			return contracts.EventPage{}, internal(err)
		}
		return page, nil
	}
	timer := time.NewTimer(q.Wait)
	defer timer.Stop()
	// Polls waiting on the same task share one watch and, per wake-up, one
	// read per distinct cursor and one existence check (pollGroups).
	pg := s.groups.join(q.TaskID)
	defer s.groups.leave(pg)
	for woken := false; ; woken = true {
		page, changed, round, leader, err := pg.read(ctx, d.waiter, d.events, q.After, limit)
		if leader {
			d.metrics.IncCounter(observe.MetricStoreReads, 1, reads...)
		}
		if err != nil {
			if ctx.Err() != nil {
				return contracts.EventPage{}, nil
			}
			return contracts.EventPage{}, internal(err)
		}
		if len(page.Events) > 0 || page.Ended || page.RetentionGap {
			return page, nil
		}
		if woken {
			// Woken without new events: a change feed resync, as after a
			// store restart, which may have taken the task with it.
			if pg.gone(ctx, d.registry, round) {
				return contracts.EventPage{}, notFound()
			}
		}
		select {
		case <-changed:
			pg.woke(round)
		case <-timer.C:
			return page, nil
		case <-ctx.Done():
			return page, nil
		}
	}
}
