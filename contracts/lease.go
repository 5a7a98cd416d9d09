package contracts

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseHeld is returned by LeaseStore.Acquire when another holder's
// lease on the task has not expired.
var ErrLeaseHeld = errors.New("taskbridge: the task's lease is held by another instance")

// Lease is an instance's claim on a task it runs: Holder renews it while
// it runs the task, and Deadline is when it expires unless renewed.
type Lease struct {
	TaskID   string
	Holder   string
	Deadline time.Time
}

// LeaseStore holds the leases of running tasks, so that a task whose
// runner died is noticed and ended (or run again) by another instance: the
// instance that runs a task renews its lease well within the lease's TTL;
// when the instance dies the lease expires, and a sweeper on any instance
// takes it over (TakeExpired) and ends the task.
//
// Deadlines come from the store's clock (for Redis, the server's), so the
// clocks of the instances need not agree. Implementations are safe for
// concurrent use.
type LeaseStore interface {
	// Acquire gives holder the lease on taskID until ttl from now. It
	// succeeds when the task has no lease, when holder holds it (the
	// lease is renewed) and when the lease has expired (holder takes it
	// over); it returns ErrLeaseHeld when another holder's lease has not
	// expired.
	Acquire(ctx context.Context, taskID, holder string, ttl time.Duration) error
	// Renew extends holder's leases on taskIDs until ttl from now and
	// returns the ids it did not renew: holder has lost them (no lease, or
	// another holder's after a takeover). A lease that expired but that
	// nobody took over is still holder's and is renewed: its runner was
	// only late (a store that was down, a paused process). A ttl of zero
	// or less ends the leases' term at once, handing the tasks to the next
	// TakeExpired (a draining instance hands back the tasks it has not
	// started).
	Renew(ctx context.Context, holder string, taskIDs []string, ttl time.Duration) (lost []string, err error)
	// Release deletes holder's lease on taskID, once the task has ended.
	// Another holder's lease is left alone; a missing lease is no error.
	Release(ctx context.Context, taskID, holder string) error
	// TakeExpired gives holder, until ttl from now, up to limit leases
	// that have expired, and returns them as they were (their previous
	// holder and deadline), oldest deadline first. Each expired lease is
	// taken by exactly one caller; one that is not released expires again
	// after ttl and is taken again.
	TakeExpired(ctx context.Context, holder string, ttl time.Duration, limit int) ([]Lease, error)
}
