package memstore

import (
	"context"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.TaskFinder = (*TaskRegistry)(nil)

// FindByClientRequestID implements contracts.TaskFinder: the live task
// that (ownerID, clientRequestID) names, or contracts.ErrNotFound. It takes
// the read lock only and removes nothing (an expired task is simply not
// found).
func (r *TaskRegistry) FindByClientRequestID(_ context.Context, ownerID, clientRequestID string) (contracts.TaskRecord, error) {
	if clientRequestID == "" {
		return contracts.TaskRecord{}, notFound("task", "")
	}
	nowNs := r.cfg.now().UnixNano()
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.keys[idemKey{ownerID, clientRequestID}]
	if !ok {
		return contracts.TaskRecord{}, notFound("task", "")
	}
	e := r.tasks[id]
	if e == nil || (e.expireAt != 0 && nowNs >= e.expireAt) {
		return contracts.TaskRecord{}, notFound("task", id)
	}
	return e.rec, nil
}
