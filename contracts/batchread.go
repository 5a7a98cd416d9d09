package contracts

import "context"

// ReadRequest is one read of a batch: the arguments of EventStore.Read for
// one task.
type ReadRequest struct {
	TaskID string
	After  EventID
	Limit  int
}

// BatchReader is an optional port an EventStore may implement to make many
// reads in one call, so a reader that serves thousands of tasks (the
// streaming hub's fan-out) pays one round trip to the store per batch
// rather than one per task. Callers detect it with a type assertion and
// fall back to Read when a store does not implement it.
// Implementations are safe for concurrent use.
type BatchReader interface {
	// ReadBatch makes the read of every request of reqs and stores its
	// result in pages[i] and errs[i]; pages and errs must be at least
	// len(reqs) long (ReadBatch writes only their first len(reqs)
	// elements, overwriting what they held, and panics when one is
	// shorter). Each result equals what Read(ctx, r.TaskID, r.After,
	// r.Limit) would have returned at some moment during the call,
	// including its Ended and RetentionGap flags and the ownership rules of
	// its Events. Requests are independent: the same task may appear more
	// than once, and a failed request sets errs[i] and leaves pages[i]
	// zero (never a partial page) without failing the others. An empty
	// reqs does nothing. The caller owns the three slices and may reuse
	// them once ReadBatch has returned; it keeps no reference to them.
	ReadBatch(ctx context.Context, reqs []ReadRequest, pages []EventPage, errs []error)
}
