package orchestration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// DefaultReceiptTTL is how long action receipts are kept (their ExpiresAt)
// when Options.ReceiptTTL is zero.
const DefaultReceiptTTL = 24 * time.Hour

// Options wires the services. Stores and Executor are required; every
// other field has a default.
type Options struct {
	// Stores are the stores the services work on. Required: every field
	// must be set (memstore.New and redisstore.New return such a bundle).
	// When Stores.Suspensions also implements
	// contracts.SuspensionMaintenance, reconciliation and suspension expiry
	// use it; otherwise they are skipped with a logged note.
	Stores contracts.Stores
	// Executor runs tasks. Required. When it implements TaskTypeRegistry,
	// creation rejects unknown task types; when it implements ResumeHook and
	// Resume is nil, it is the resume hook.
	Executor contracts.Executor
	// Ownership decides who may create tasks, and who may read and cancel
	// them. Optional. Default: SubjectOwnership{}.
	Ownership contracts.OwnershipPolicy
	// Actions decides who may act on suspensions, and lets callers that
	// may act read a task the Ownership refuses them (approvers).
	// Optional. Default: nil (whoever Ownership lets access the task acts).
	Actions contracts.ActionPolicy
	// Waiter wakes long-polls when a task's events change.
	// Optional. Default: the waiter given later with UseWaiter, or else a
	// FeedWaiter on Stores.Events started at the first waiting poll and
	// stopped by Close.
	Waiter Waiter
	// Resume is called after an action is accepted.
	// Optional. Default: Executor when it implements ResumeHook, else a no-op.
	Resume ResumeHook
	// Logger receives structured logs. Optional. Default: zap.NewNop().
	Logger *zap.Logger
	// Metrics receives counters. Optional. Default: observe.NopMetrics{}.
	Metrics observe.MetricsSink
	// Clock returns the current time. Optional. Default: time.Now.
	Clock func() time.Time
	// ReceiptTTL is how long action receipts live (their ExpiresAt).
	// Optional. Default: DefaultReceiptTTL (24h).
	ReceiptTTL time.Duration
	// LeaseSweepInterval is how often RunMaintenance takes over the
	// expired leases of Stores.Leases (LeaseService.Sweep), ending the
	// tasks of instances that died. A task whose instance died ends within
	// about its lease TTL (ExecutorOptions.LeaseTTL) plus this interval.
	// Unused without Stores.Leases.
	// Optional. Default: DefaultLeaseSweepInterval (5s). Negative:
	// RunMaintenance does not sweep (Leases.Sweep still works).
	LeaseSweepInterval time.Duration
	// SubjectLimits are per-subject quotas on creates (active tasks,
	// creates per second). Optional. Default: SubjectLimits{} (the
	// Default* values).
	SubjectLimits SubjectLimits
}

// deps is what every service shares. It is immutable after NewServices.
type deps struct {
	registry    contracts.TaskRegistry
	events      contracts.EventStore
	suspensions contracts.SuspensionStore
	receipts    contracts.ActionReceiptStore
	executor    contracts.Executor
	ownership   contracts.OwnershipPolicy
	actions     contracts.ActionPolicy // nil: ownership decides acting too
	waiter      *waiterSlot
	resume      ResumeHook
	log         *observe.Logger
	metrics     observe.MetricsSink
	clock       func() time.Time
	receiptTTL  time.Duration
	emitter     *Emitter
	leases      contracts.LeaseStore // nil: no lease sweep
	sweepEvery  time.Duration        // 0: RunMaintenance does not sweep
	sweepHolder string               // lease holder of the sweep without an in-process executor
	admission   *admission

	noMaintenance sync.Once // logs once that the suspension store cannot sweep
}

// maintenance returns the suspension store's sweeping side, or false (noted
// in the log once) when it has none.
func (d *deps) maintenance() (contracts.SuspensionMaintenance, bool) {
	m, ok := d.suspensions.(contracts.SuspensionMaintenance)
	if !ok {
		d.noMaintenance.Do(func() {
			d.log.Info("orchestration.maintenance.unsupported", observe.Entry{
				Transport: observe.TransportInternal, Outcome: "skipped",
				Details: map[string]any{"reason": "the suspension store does not implement contracts.SuspensionMaintenance: " +
					"pending resume handoffs are not reconciled and open suspensions are not expired by retention"},
			})
		})
	}
	return m, ok
}

// Services is the service layer built by NewServices: one service per use
// case, all sharing the same stores, executor and sinks. Services and each of
// its services are safe for concurrent use. Services owns the goroutine of
// its default FeedWaiter (started at the first waiting poll when no waiter
// was given); Close stops it.
type Services struct {
	Creation       *CreationService
	Polling        *PollingService
	Cancellation   *CancellationService
	Actions        *ActionService
	Subscription   *SubscriptionService
	Reconciliation *ReconciliationService
	Retention      *RetentionService
	Tasks          *TaskReadService
	Leases         *LeaseService

	d *deps
}

// NewServices validates opts, fills defaults and builds the services. It
// returns an error when a store or the executor is missing. It does no I/O
// and starts no goroutine; call Close when the services are no longer used.
func NewServices(opts Options) (*Services, error) {
	missing := opts.Stores.Missing()
	if opts.Executor == nil {
		missing = append(missing, "Executor")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("taskbridge: orchestration.NewServices: %s must be set", strings.Join(missing, ", "))
	}
	st := opts.Stores
	d := &deps{
		registry:    st.Tasks,
		events:      st.Events,
		suspensions: st.Suspensions,
		receipts:    st.Receipts,
		executor:    opts.Executor,
		ownership:   opts.Ownership,
		actions:     opts.Actions,
		resume:      opts.Resume,
		log:         observe.NewLogger(opts.Logger),
		metrics:     opts.Metrics,
		clock:       opts.Clock,
		receiptTTL:  opts.ReceiptTTL,
	}
	if d.ownership == nil {
		d.ownership = SubjectOwnership{}
	}
	if d.resume == nil {
		if h, ok := opts.Executor.(ResumeHook); ok {
			d.resume = h
		} else {
			d.resume = nopResume{}
		}
	}
	if d.metrics == nil {
		d.metrics = observe.NopMetrics{}
	}
	if d.clock == nil {
		d.clock = time.Now
	}
	if d.receiptTTL <= 0 {
		d.receiptTTL = DefaultReceiptTTL
	}
	if opts.Stores.Leases != nil {
		d.leases, d.sweepHolder = opts.Stores.Leases, "sweeper-"+contracts.NewID()
		switch {
		case opts.LeaseSweepInterval == 0:
			d.sweepEvery = DefaultLeaseSweepInterval
		case opts.LeaseSweepInterval > 0:
			d.sweepEvery = opts.LeaseSweepInterval
		}
	}
	d.emitter = newEmitter(d.registry, d.events, d.suspensions, d.log, d.clock, RetryPolicy{})
	d.admission = newAdmission(opts.SubjectLimits, d.registry, d.clock)
	d.waiter = newWaiterSlot(d.events, opts.Waiter, func(err error) {
		d.log.Error("orchestration.waiter.stopped", observe.Entry{
			Transport: observe.TransportInternal, Outcome: "failed", Err: err,
		})
	})
	return &Services{
		Creation:       &CreationService{d: d},
		Polling:        &PollingService{d: d},
		Cancellation:   &CancellationService{d: d},
		Actions:        &ActionService{d: d},
		Subscription:   &SubscriptionService{d: d},
		Reconciliation: &ReconciliationService{d: d},
		Retention:      &RetentionService{d: d},
		Tasks:          &TaskReadService{d: d},
		Leases:         &LeaseService{d: d},
		d:              d,
	}, nil
}

// UseWaiter makes w the waiter of long-polls from now on, in place of
// Options.Waiter's default, so the services share a waiter the process runs
// anyway (fiberbridge.New calls it with its streaming hub). A FeedWaiter
// the services had started is stopped; polls waiting on it re-read and
// wait on w. UseWaiter is a no-op when Options.Waiter was set, or after
// Close.
func (s *Services) UseWaiter(w Waiter) { s.d.waiter.use(w) }

// Close stops the goroutine Services started (its default FeedWaiter) and
// waits for it. It is idempotent and does not close the stores or the
// executor, which the host owns. ctx is accepted for symmetry with the
// other Close methods; stopping the waiter does not block on I/O.
func (s *Services) Close(ctx context.Context) error {
	s.d.waiter.close()
	return nil
}

// DefaultMaintenanceInterval is RunMaintenance's period when every <= 0.
const DefaultMaintenanceInterval = time.Minute

// RunMaintenance runs Retention.Prune and Reconciliation.ReconcilePending
// once at start and then every interval, and, with Stores.Leases,
// Leases.Sweep every Options.LeaseSweepInterval, until ctx ends, logging
// failures. It blocks; the host runs it in a goroutine it owns and stops it
// by cancelling ctx (fiberbridge.New runs it until Shutdown). It returns
// ctx.Err().
func (s *Services) RunMaintenance(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = DefaultMaintenanceInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var sweep <-chan time.Time
	if s.d.leases != nil && s.d.sweepEvery > 0 {
		st := time.NewTicker(s.d.sweepEvery)
		defer st.Stop()
		sweep = st.C
		s.sweep(ctx)
	}
	s.maintain(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			s.maintain(ctx)
		case <-sweep:
			s.sweep(ctx)
		}
	}
}

// sweep runs one lease sweep, logging a failure.
func (s *Services) sweep(ctx context.Context) {
	if _, err := s.Leases.Sweep(ctx); err != nil && ctx.Err() == nil {
		s.d.log.Error("task.lease.sweep_failed", observe.Entry{
			Transport: observe.TransportInternal, Outcome: "failed", Err: err,
		})
	}
}

func (s *Services) maintain(ctx context.Context) {
	s.d.admission.sweep(ctx)
	if _, err := s.Retention.Prune(ctx); err != nil && ctx.Err() == nil {
		s.d.log.Error("task.retention.failed", observe.Entry{
			Transport: observe.TransportInternal, Outcome: "failed", Err: err,
		})
	}
	if _, err := s.Reconciliation.ReconcilePending(ctx); err != nil && ctx.Err() == nil {
		s.d.log.Error("task.resume.reconcile_failed", observe.Entry{
			Transport: observe.TransportInternal, Outcome: "failed", Err: err,
		})
	}
}

// SubjectOwnership is the default OwnershipPolicy: any authenticated caller
// (non-empty Subject) may create tasks, and a task is visible only to the
// subject that owns it. It is stateless and safe for concurrent use.
type SubjectOwnership struct{}

var _ contracts.OwnershipPolicy = SubjectOwnership{}

// errNoSubject is SubjectOwnership's denial.
var errNoSubject = errors.New("taskbridge: an authenticated subject is required")

// errNotOwner is SubjectOwnership's access denial.
var errNotOwner = errors.New("taskbridge: task belongs to another subject")

// CanCreate implements contracts.OwnershipPolicy: the subject must be set.
func (SubjectOwnership) CanCreate(_ context.Context, auth contracts.AuthContext) error {
	if auth.Subject == "" {
		return errNoSubject
	}
	return nil
}

// CanAccess implements contracts.OwnershipPolicy: the subject must own task.
func (SubjectOwnership) CanAccess(_ context.Context, auth contracts.AuthContext, task contracts.TaskRecord) error {
	if auth.Subject == "" || auth.Subject != task.OwnerID {
		return errNotOwner
	}
	return nil
}

// TaskTypeRegistry is implemented by executors that know which task types
// they run. When Options.Executor implements it, creation rejects other
// types with INVALID_REQUEST listing the known ones.
type TaskTypeRegistry interface {
	// TaskTypes returns the registered task types, sorted.
	TaskTypes() []string
}

// ResumeHook hands an accepted action back to whatever runs the task. The
// action service calls it once per accepted action; reconciliation calls it
// again for handoffs left PENDING, so implementations must be idempotent. A
// nil error marks the handoff DISPATCHED.
type ResumeHook interface {
	Resume(ctx context.Context, cmd contracts.SubmitActionCommand, s contracts.SuspensionRecord) error
}

// ResumeFunc adapts a function to ResumeHook.
type ResumeFunc func(ctx context.Context, cmd contracts.SubmitActionCommand, s contracts.SuspensionRecord) error

// Resume implements ResumeHook.
func (f ResumeFunc) Resume(ctx context.Context, cmd contracts.SubmitActionCommand, s contracts.SuspensionRecord) error {
	return f(ctx, cmd, s)
}

// nopResume is the default hook when the executor has none: workers in
// other processes learn of accepted actions from the event stream.
type nopResume struct{}

func (nopResume) Resume(context.Context, contracts.SubmitActionCommand, contracts.SuspensionRecord) error {
	return nil
}

// notFound is the one TASK_NOT_FOUND every service returns, for missing and
// foreign tasks alike, so the two cannot be told apart.
func notFound() *bridgeerr.Error {
	return bridgeerr.Wrap(bridgeerr.CodeTaskNotFound, contracts.ErrNotFound, "task not found")
}

// internal turns a store failure into a *bridgeerr.Error (INTERNAL_ERROR
// unless the cause maps to a stable code).
func internal(err error) *bridgeerr.Error { return bridgeerr.From(err) }

// access is what a caller asks to do with a task.
type access int

const (
	accessRead   access = iota // poll, stream, subscribe
	accessCancel               // cancel
	accessAct                  // submit an action (the ActionPolicy decides per suspension)
)

// authorize loads the task and applies the ownership policy, and the
// action policy's CanRead for callers the ownership policy refuses.
// Missing and invisible tasks both return notFound(); a caller who may only
// read (an approver) gets TASK_OWNERSHIP_ERROR for a cancel.
func (d *deps) authorize(ctx context.Context, auth contracts.AuthContext, taskID string, want access) (contracts.TaskRecord, error) {
	if taskID == "" {
		return contracts.TaskRecord{}, notFound()
	}
	task, err := d.registry.Get(ctx, taskID)
	if err != nil {
		return contracts.TaskRecord{}, taskReadError(err)
	}
	return d.decideAccess(ctx, auth, task, want)
}

// taskReadError maps a failed read of a task's record: not found, or an
// internal error.
func taskReadError(err error) error {
	if errors.Is(err, contracts.ErrNotFound) {
		return notFound()
	}
	return internal(err)
}

// decideAccess is authorize's decision on a record already read.
func (d *deps) decideAccess(ctx context.Context, auth contracts.AuthContext, task contracts.TaskRecord, want access) (contracts.TaskRecord, error) {
	taskID := task.TaskID
	err := d.ownership.CanAccess(ctx, auth, task)
	if err == nil {
		return task, nil
	}
	if d.actions != nil {
		if rerr := d.actions.CanRead(ctx, auth, task); rerr == nil {
			if want != accessCancel {
				return task, nil
			}
			d.log.Warn("task.access.denied", observe.Entry{
				TaskID: taskID, UserID: auth.Subject, Transport: observe.TransportInternal, Outcome: "cancel_denied", Err: err,
			})
			return contracts.TaskRecord{}, bridgeerr.Wrap(bridgeerr.CodeTaskOwnership, err, "only the task's owner may cancel it")
		}
	}
	d.log.Warn("task.access.denied", observe.Entry{
		TaskID: taskID, UserID: auth.Subject, Transport: observe.TransportInternal, Outcome: "denied", Err: err,
	})
	return contracts.TaskRecord{}, notFound()
}

// clampLimit bounds a page size to 1..MaxPageLimit; 0 (unset) is
// DefaultPageLimit.
func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultPageLimit
	case limit > MaxPageLimit:
		return MaxPageLimit
	}
	return limit
}

// Page limits of polling and replay, as in the protocol's maxEvents.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 500
)
