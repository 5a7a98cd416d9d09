package tbtemporal

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Defaults of TypeOptions.
const (
	// DefaultStartToCloseTimeout bounds one attempt of a step.
	DefaultStartToCloseTimeout = time.Minute
	// DefaultHeartbeatTimeout is how long a step attempt may go without a
	// heartbeat before Temporal gives it up as lost (its worker died) and
	// retries it on a live worker. Steps heartbeat by themselves every
	// third of it.
	DefaultHeartbeatTimeout = 10 * time.Second
	// DefaultMaxAttempts is how often a failing step is tried in all.
	DefaultMaxAttempts = 3
)

// TypeOptions are a task type's step settings (Worker.Handle): how long one
// attempt of a step may take, how soon a lost attempt is noticed, and how
// failed attempts are retried. Zero fields take the defaults.
type TypeOptions struct {
	// StartToCloseTimeout bounds one attempt of a step; an attempt that
	// runs longer is failed by Temporal and retried, and when it was the
	// last attempt the task ends TASK_FAILED with code TASK_TIMEOUT.
	// Optional. Default: DefaultStartToCloseTimeout.
	StartToCloseTimeout time.Duration
	// HeartbeatTimeout is how long a step attempt may go without a
	// heartbeat before it is retried elsewhere. The adapter heartbeats
	// for every step (every third of this), so it measures whether the
	// worker is alive, not whether the step makes progress. Optional.
	// Default: DefaultHeartbeatTimeout; negative: no heartbeat (a lost
	// attempt is noticed at its start-to-close timeout).
	HeartbeatTimeout time.Duration
	// Retry is the retry policy of steps (attempts, backoff). Optional.
	// Default: DefaultMaxAttempts attempts, 1 s initial interval doubling
	// to at most 30 s. Errors of type *orchestration.TaskError are never
	// retried: they are a handler's verdict.
	Retry *temporal.RetryPolicy
}

// activityOptions are the step activity options of o.
func (o TypeOptions) activityOptions() workflow.ActivityOptions {
	ao := workflow.ActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout,
		HeartbeatTimeout:    o.HeartbeatTimeout,
		RetryPolicy:         o.Retry,
	}
	if ao.StartToCloseTimeout <= 0 {
		ao.StartToCloseTimeout = DefaultStartToCloseTimeout
	}
	switch {
	case ao.HeartbeatTimeout == 0:
		ao.HeartbeatTimeout = DefaultHeartbeatTimeout
	case ao.HeartbeatTimeout < 0:
		ao.HeartbeatTimeout = 0
	}
	if ao.RetryPolicy == nil {
		ao.RetryPolicy = &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: DefaultMaxAttempts,
		}
	}
	return ao
}
