package contracts

import "context"

// TaskFinder is an optional port a TaskRegistry may implement to look a
// task up by its idempotency key (both registries of this library do).
// The creation service uses it when a create is refused for a quota or
// for the executor's capacity: a retry of a create that did succeed then
// answers its task (deduplicated, or IDEMPOTENCY_CONFLICT for another
// payload) instead of the refusal. Callers detect it with a type
// assertion. Implementations are safe for concurrent use.
type TaskFinder interface {
	// FindByClientRequestID returns the task that (ownerID,
	// clientRequestID) names, the record Create would return for a repeat
	// of it, or ErrNotFound when no live task does (never created,
	// created without a clientRequestId, or expired).
	FindByClientRequestID(ctx context.Context, ownerID, clientRequestID string) (TaskRecord, error)
}
