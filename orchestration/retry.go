package orchestration

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Defaults of RetryPolicy.
const (
	// DefaultRetryBudget is how long an emit retries a failed append or
	// status update before it reports the failure.
	DefaultRetryBudget = 15 * time.Second
	// DefaultAttemptTimeout bounds one attempt of a store write.
	DefaultAttemptTimeout = 5 * time.Second
)

// Pacing of retries: the wait doubles from retryMinWait to retryMaxWait,
// half of it fixed and half random, so the writers of an instance spread
// out instead of retrying in step.
const (
	retryMinWait = 50 * time.Millisecond
	retryMaxWait = 2 * time.Second
)

// RetryPolicy bounds how the Emitter (and the executor, which emits
// through one) retries a store write that failed without a definite
// answer: a timeout, a reset connection, a store that is briefly down. An
// append carries an idempotency key that stays the same across its
// retries, and status updates are idempotent, so a retry never stores an
// event twice, even when the failed attempt was applied after all.
//
// Definite answers are not retried: the task has ended (ErrTerminal), the
// event is invalid, the task or a record does not exist, a status move is
// not allowed. Nor is anything once the caller's context has ended.
//
// The terminal event of a task the in-process executor runs is not bound
// by Budget: it is retried until it is written, the task's lease is lost
// (another instance ends the task), or the executor is stopped for good
// (Close's context ended).
type RetryPolicy struct {
	// Budget is how long after the first failure retries go on; the wait
	// between attempts grows from 50ms to 2s, with jitter.
	// Optional. Default: DefaultRetryBudget (15s). Negative: no retries.
	Budget time.Duration
	// AttemptTimeout bounds each attempt, so that a store that stopped
	// answering costs one timeout per attempt and not the whole budget.
	// Optional. Default: DefaultAttemptTimeout (5s). Negative: no bound
	// besides the caller's context.
	AttemptTimeout time.Duration
}

// retrier is a RetryPolicy with defaults applied: budget 0 means no
// retries, attempt 0 no per-attempt bound.
type retrier struct {
	budget  time.Duration
	attempt time.Duration
}

func (p RetryPolicy) retrier() retrier {
	r := retrier{budget: p.Budget, attempt: p.AttemptTimeout}
	switch {
	case r.budget == 0:
		r.budget = DefaultRetryBudget
	case r.budget < 0:
		r.budget = 0
	}
	switch {
	case r.attempt == 0:
		r.attempt = DefaultAttemptTimeout
	case r.attempt < 0:
		r.attempt = 0
	}
	return r
}

// definite reports whether err is an answer a retry cannot change.
func definite(err error) bool {
	return errors.Is(err, contracts.ErrTerminal) || errors.Is(err, contracts.ErrInvalidPayload) ||
		errors.Is(err, contracts.ErrNotFound) || errors.Is(err, contracts.ErrInvalidTransition) ||
		errors.Is(err, contracts.ErrAlreadyExists)
}

// do runs op until it succeeds, fails definitely, ctx ends, or the budget
// is spent (never, when unbounded); retried is called before each retry
// with the attempt number (1 for the first retry) and the error. It
// returns op's last error.
func (r retrier) do(ctx context.Context, unbounded bool, op func(ctx context.Context) error,
	retried func(attempt int, err error)) error {
	var first time.Time
	for attempt := 0; ; attempt++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if r.attempt > 0 {
			actx, cancel = context.WithTimeout(ctx, r.attempt)
		}
		err := op(actx)
		cancel()
		if err == nil || definite(err) || ctx.Err() != nil {
			return err
		}
		now := time.Now()
		if attempt == 0 {
			first = now
		}
		wait := retryMaxWait
		if attempt < 6 {
			wait = min(retryMinWait<<attempt, retryMaxWait)
		}
		wait = wait/2 + rand.N(wait/2+1)
		if !unbounded {
			left := r.budget - now.Sub(first)
			if left <= 0 {
				return err
			}
			wait = min(wait, left)
		}
		if retried != nil {
			retried(attempt+1, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}
