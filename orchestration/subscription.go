package orchestration

import (
	"context"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// SubscriptionService checks access to a task's stream and reads replay
// batches for the streaming runtime (SSE and WebSocket). It is safe for
// concurrent use. Transport metrics (replays, deliveries) are the runtime's,
// which knows the transport.
type SubscriptionService struct{ d *deps }

// Authorize returns the task when auth may read it. Foreign and missing
// tasks are the same TASK_NOT_FOUND.
func (s *SubscriptionService) Authorize(ctx context.Context, auth contracts.AuthContext, taskID string) (contracts.TaskRecord, error) {
	return s.d.authorize(ctx, auth, taskID, accessRead)
}

// Replay authorizes auth and reads up to limit events strictly after after
// (clamped like polling: 0 means DefaultPageLimit, at most MaxPageLimit). The
// page reports a retention gap and whether the stream has ended.
func (s *SubscriptionService) Replay(ctx context.Context, auth contracts.AuthContext, taskID string, after contracts.EventID, limit int) (contracts.TaskRecord, contracts.EventPage, error) {
	task, err := s.Authorize(ctx, auth, taskID)
	if err != nil {
		return contracts.TaskRecord{}, contracts.EventPage{}, err
	}
	s.d.metrics.IncCounter(observe.MetricStoreReads, 1, observe.Tag{Key: observe.TagReason, Value: "replay"})
	page, err := s.d.events.Read(ctx, taskID, after, clampLimit(limit))
	if err != nil {
		return contracts.TaskRecord{}, contracts.EventPage{}, internal(err)
	}
	return task, page, nil
}
