package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.TaskFinder = (*TaskRegistry)(nil)

// FindByClientRequestID implements contracts.TaskFinder: the live task
// that (ownerID, clientRequestID) names, or contracts.ErrNotFound (also
// when the key names a task that expired). Two round trips: the key, then
// the task's record (they live in different cluster slots). The creation
// service calls it only for creates a quota or the executor's capacity
// refused, never on the way of a create that goes through.
func (r *TaskRegistry) FindByClientRequestID(ctx context.Context, ownerID, clientRequestID string) (contracts.TaskRecord, error) {
	if clientRequestID == "" {
		return contracts.TaskRecord{}, notFound("task", "")
	}
	id, err := r.client.Get(ctx, r.keys.idem(ownerID, clientRequestID)).Result()
	if errors.Is(err, redis.Nil) {
		return contracts.TaskRecord{}, notFound("task", "")
	}
	if err != nil {
		return contracts.TaskRecord{}, fmt.Errorf("redisstore: find task by client request id: %w", err)
	}
	return r.Get(ctx, id)
}
