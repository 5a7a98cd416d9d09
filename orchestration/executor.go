package orchestration

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Handler runs one task of a registered type. ctx is cancelled when the
// task's cancellation is requested or the executor closes; a handler should
// return promptly then (it keeps its worker until it returns). The returned
// result becomes TASK_COMPLETED's result (any JSON-encodable value; a
// json.RawMessage is used as is); an error becomes TASK_FAILED (see
// TaskError); a panic becomes TASK_FAILED with code TASK_PANIC.
type Handler func(ctx context.Context, task *TaskContext) (result any, err error)

// TaskError is an error a handler returns (or wraps) to choose the code,
// message and retryability of the TASK_FAILED event. Any other error fails
// the task with code TASK_FAILED and a generic message, so internal error
// text never reaches clients. Cause is optional and never sent.
type TaskError struct {
	Code      string
	Message   string
	Retryable bool
	Cause     error
}

// Error implements error.
func (e *TaskError) Error() string {
	s := "taskbridge: task failed: " + e.Code + ": " + e.Message
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *TaskError) Unwrap() error { return e.Cause }

// Codes and reasons of the terminal events the executor writes.
const (
	CodeTaskFailed       = "TASK_FAILED"
	CodeTaskPanic        = "TASK_PANIC"
	CodeInvalidResult    = "TASK_RESULT_INVALID"
	CodeExecutorShutdown = "EXECUTOR_SHUTDOWN"
	// CodeStoreUnavailable: the handler returned the error of an emit that
	// the store kept failing past the emit retries (see RetryPolicy); the
	// task may be submitted again.
	CodeStoreUnavailable    = "STORE_UNAVAILABLE"
	CodeSuspensionExpired   = "SUSPENSION_EXPIRED"
	CodeSuspensionCancelled = "SUSPENSION_CANCELLED"
	// DefaultCancelReason is TASK_CANCELLED's reason when the request gave none.
	DefaultCancelReason = "cancelled_by_user"
)

// Errors of the executor and of TaskContext.Suspend.
var (
	// ErrQueueFull: Submit found the bounded queue full.
	ErrQueueFull = errors.New("taskbridge: executor queue is full")
	// ErrExecutorClosed: Submit after Close.
	ErrExecutorClosed = errors.New("taskbridge: executor is closed")
	// ErrUnknownTaskType: Submit of a task type with no handler.
	ErrUnknownTaskType = errors.New("taskbridge: no handler for task type")
	// ErrSuspensionExpired: Suspend's deadline passed without an accepted
	// action. It wraps context.DeadlineExceeded; returned from a handler it
	// fails the task with code SUSPENSION_EXPIRED.
	ErrSuspensionExpired = &TaskError{Code: CodeSuspensionExpired,
		Message: "no action was accepted before the suspension expired", Cause: context.DeadlineExceeded}
	// ErrSuspensionCancelled: the suspension was cancelled by someone else
	// (not by this task's context). It wraps context.Canceled.
	ErrSuspensionCancelled = &TaskError{Code: CodeSuspensionCancelled,
		Message: "the suspension was cancelled", Cause: context.Canceled}
)

// Defaults of ExecutorOptions.
const (
	// DefaultMaxConcurrent is the worker count. Handlers mostly wait (on
	// I/O, and a suspended handler keeps its worker while a user decides),
	// so the pool is sized for waiting, not for cores; 64 idle workers cost
	// about 0.5 MB of stack.
	DefaultMaxConcurrent = 64
	// DefaultQueueSize bounds the tasks waiting for a worker.
	DefaultQueueSize = 1024
	// DefaultDrainTimeout is how long Close lets running handlers finish
	// before it cancels them.
	DefaultDrainTimeout = 10 * time.Second
)

// ExecutorOptions configures NewExecutor. Stores is required; every other
// field has a default.
type ExecutorOptions struct {
	// Stores are the stores the executor's tasks work on (task records,
	// events, and the suspensions and receipts of TaskContext.Suspend).
	// Required: every field must be set (memstore.New and redisstore.New
	// return such a bundle).
	Stores contracts.Stores
	// Waiter wakes a suspended handler when another process accepts its
	// action (TASK_ACTION_ACCEPTED is appended). Optional. Default: the
	// waiter given later with UseWaiter (fiberbridge.New gives its
	// streaming hub, so the process keeps one change-feed listener), or
	// else a FeedWaiter on Stores.Events that the executor starts at the
	// first suspension and Close stops.
	Waiter Waiter
	// MaxConcurrent is the number of workers. Optional. Default:
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// QueueSize bounds the tasks waiting for a worker, over all subjects
	// (the queue is shared fairly between them, see Executor); Submit
	// fails with ErrQueueFull beyond it. Optional. Default:
	// DefaultQueueSize.
	QueueSize int
	// Logger receives structured logs. Optional. Default: zap.NewNop().
	Logger *zap.Logger
	// Metrics receives counters. Optional. Default: observe.NopMetrics{}.
	Metrics observe.MetricsSink
	// Clock returns the current time. Optional. Default: time.Now.
	Clock func() time.Time
	// EmitRetry bounds the retries of the events handlers emit (progress,
	// messages, suspensions) when the store fails without a definite
	// answer; see RetryPolicy. A task's terminal event is retried past it,
	// until it is written. Optional. Default: 15s of retries, 5s per
	// attempt.
	EmitRetry RetryPolicy
	// DrainTimeout is how long Close lets running handlers finish (a
	// rolling deploy's grace period) before it cancels their contexts; a
	// handler cancelled this way that returns an error ends TASK_FAILED
	// with the retryable code EXECUTOR_SHUTDOWN. A Close whose context
	// ends sooner shortens the drain (see Close).
	// Optional. Default: DefaultDrainTimeout (10s). Negative: no drain,
	// handlers are cancelled at once.
	DrainTimeout time.Duration
	// LeaseTTL is how long the lease of a task this executor runs lasts
	// without renewal, when Stores.Leases is set (redisstore.New sets it):
	// the executor leases each task it accepts (Submit fails when another
	// instance holds the task's lease) and renews its leases every
	// LeaseRenewInterval while the task is queued, running or suspended.
	// When the instance dies its leases expire, and the services'
	// maintenance on any instance (Options.LeaseSweepInterval) ends its
	// tasks TASK_FAILED EXECUTOR_LOST, retryable, or runs a task that never
	// started again. When another instance took a lease over (this one
	// could not renew it in time), the handler's context is cancelled.
	// Optional. Default: DefaultLeaseTTL (20s).
	LeaseTTL time.Duration
	// LeaseRenewInterval is how often the leases are renewed; keep it well
	// under LeaseTTL so that a slow store call does not lose them.
	// Optional. Default: LeaseTTL/4.
	LeaseRenewInterval time.Duration
	// InstanceID names this executor as the holder of its leases; it must
	// differ between the instances sharing the stores.
	// Optional. Default: a random id.
	InstanceID string
}

// Executor is the in-process contracts.Executor: the host registers a
// Handler per task type with Handle, and a fixed pool of MaxConcurrent
// workers runs submitted tasks from a bounded queue. Each run emits
// TASK_STARTED, calls the handler with a TaskContext, and writes exactly one
// terminal event from its outcome. It also implements ResumeHook (accepted
// actions wake suspended handlers) and TaskTypeRegistry (creation rejects
// unknown types).
//
// The queue is shared fairly between subjects (task owners): each has a
// FIFO of its own, and a free worker takes the oldest task of one subject
// after another, round-robin over the subjects with tasks waiting. However
// many tasks other subjects have queued, a subject's next task starts
// after at most one task of each of them, so heavy users cannot starve a
// light one; a subject's own tasks start in the order submitted. Enqueue
// and dequeue are O(1); no goroutine waits per task.
//
// An Executor is safe for concurrent use. It owns its workers (started by
// NewExecutor) and, when ExecutorOptions.Waiter is nil, a FeedWaiter
// goroutine; Close stops them all. Cancellation of tasks running in other
// processes is out of its reach: Cancel acts on this executor's runs only.
type Executor struct {
	registry    contracts.TaskRegistry
	events      contracts.EventStore
	suspensions contracts.SuspensionStore
	receipts    contracts.ActionReceiptStore
	waiter      *waiterSlot
	emitter     *Emitter
	log         *observe.Logger
	metrics     observe.MetricsSink
	clock       func() time.Time

	handlersMu sync.RWMutex
	handlers   map[string]Handler
	repeatable map[string]int // task type -> attempts in all (HandleRepeatable)

	mu     sync.Mutex // guards runs and closes the Submit/Close race
	runs   map[string]*run
	closed atomic.Bool

	queue       *fairQueue
	stop        chan struct{}
	workers     sync.WaitGroup
	closeOnce   sync.Once
	workersDone chan struct{}

	// drainTimeout is how long Close lets handlers run (0: not at all);
	// drainTimer cancels them when it fires.
	drainTimeout time.Duration
	drainTimer   *time.Timer
	// kill ends when Close's context ends: terminal writes still being
	// retried are abandoned then.
	kill    context.Context
	killNow context.CancelFunc
	// enders tracks the goroutines that end queued tasks (cancelled, or
	// left queued at Close); endersClosed (under mu) is set before Close
	// waits for them, after which Cancel writes its event itself.
	enders       sync.WaitGroup
	endersClosed bool

	// Leases (nil: none). The lease goroutine renews them until
	// renewStop is closed, after the last run has ended.
	leases     contracts.LeaseStore
	holder     string
	leaseTTL   time.Duration
	renewEvery time.Duration
	renewStop  chan struct{}
	renewDone  chan struct{}
	renewMu    sync.Mutex // a renewal and a hand-back exclude each other; taken before mu
}

var (
	_ contracts.Executor = (*Executor)(nil)
	_ ResumeHook         = (*Executor)(nil)
	_ TaskTypeRegistry   = (*Executor)(nil)

	_ observe.ExecutorReadiness = (*Executor)(nil)
)

// runState is where a run is in its life.
type runState int

const (
	runQueued   runState = iota
	runRunning           // the handler is running
	runFinished          // the handler returned; the terminal event is being written
	runEnded             // the terminal event is written (or was never needed)
)

// run is one submitted task.
type run struct {
	task    contracts.TaskRecord
	handler Handler
	ctx     context.Context
	cancel  context.CancelCauseFunc

	// term ends the retries of the run's terminal event: when the lease
	// was lost (another instance ends the task) or Close gave up (kill).
	term     context.Context
	loseTerm context.CancelCauseFunc

	mu              sync.Mutex
	state           runState
	cancelRequested bool
	cancelReason    string
	shutdown        bool
	leaseLost       bool
	resumes         map[string]chan struct{}

	next *run // the next run of the same subject in the queue (fairQueue.mu)
}

// errCancelRequested is the cause of a run's context on Cancel.
var errCancelRequested = errors.New("taskbridge: task cancellation requested")

// NewExecutor returns an Executor with its workers started; call Close to
// stop them. It returns an error when a store of opts.Stores is missing. It
// does no I/O: a default waiter subscribes to the change feed at the first
// suspension.
func NewExecutor(opts ExecutorOptions) (*Executor, error) {
	if missing := opts.Stores.Missing(); len(missing) > 0 {
		return nil, fmt.Errorf("taskbridge: orchestration.NewExecutor: %s must be set", strings.Join(missing, ", "))
	}
	e := &Executor{
		registry:    opts.Stores.Tasks,
		events:      opts.Stores.Events,
		suspensions: opts.Stores.Suspensions,
		receipts:    opts.Stores.Receipts,
		log:         observe.NewLogger(opts.Logger),
		metrics:     opts.Metrics,
		clock:       opts.Clock,
		handlers:    make(map[string]Handler),
		repeatable:  make(map[string]int),
		runs:        make(map[string]*run),
		stop:        make(chan struct{}),
		workersDone: make(chan struct{}),
	}
	switch {
	case opts.DrainTimeout == 0:
		e.drainTimeout = DefaultDrainTimeout
	case opts.DrainTimeout > 0:
		e.drainTimeout = opts.DrainTimeout
	}
	e.kill, e.killNow = context.WithCancel(context.Background())
	if opts.Stores.Leases != nil {
		e.leases, e.holder = opts.Stores.Leases, opts.InstanceID
		if e.holder == "" {
			e.holder = contracts.NewID()
		}
		e.leaseTTL = opts.LeaseTTL
		if e.leaseTTL <= 0 {
			e.leaseTTL = DefaultLeaseTTL
		}
		e.renewEvery = opts.LeaseRenewInterval
		if e.renewEvery <= 0 {
			e.renewEvery = e.leaseTTL / 4
		}
		e.renewStop, e.renewDone = make(chan struct{}), make(chan struct{})
		go func() { // owned by e: Close stops it after the last run ended
			defer close(e.renewDone)
			e.renewLeases(e.renewStop)
		}()
	}
	if e.metrics == nil {
		e.metrics = observe.NopMetrics{}
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	workers := opts.MaxConcurrent
	if workers <= 0 {
		workers = DefaultMaxConcurrent
	}
	size := opts.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	e.queue = newFairQueue(size)
	e.emitter = newEmitter(e.registry, e.events, e.suspensions, e.log, e.clock, opts.EmitRetry)
	e.waiter = newWaiterSlot(e.events, opts.Waiter, func(err error) {
		e.log.Error("executor.waiter.stopped", observe.Entry{
			Transport: observe.TransportInternal, Outcome: "failed", Err: err,
		})
	})
	e.workers.Add(workers)
	for range workers {
		go e.worker() // owned by e: Close stops them
	}
	return e, nil
}

// UseWaiter makes w the waiter of suspended handlers from now on, in place
// of ExecutorOptions.Waiter's default, so the executor shares a waiter the
// process runs anyway (fiberbridge.New calls it with its streaming hub).
// A FeedWaiter the executor had started is stopped; handlers waiting on it
// re-read and wait on w. UseWaiter is a no-op when ExecutorOptions.Waiter
// was set, or after Close.
func (e *Executor) UseWaiter(w Waiter) { e.waiter.use(w) }

// Handle registers h for taskType. Register every handler before the
// executor receives tasks. It panics on an empty type, a nil handler or a
// type registered twice.
func (e *Executor) Handle(taskType string, h Handler) {
	if taskType == "" || h == nil {
		panic("orchestration: Handle needs a task type and a handler")
	}
	e.handlersMu.Lock()
	defer e.handlersMu.Unlock()
	if _, dup := e.handlers[taskType]; dup {
		panic(fmt.Sprintf("orchestration: handler for task type %q registered twice", taskType))
	}
	e.handlers[taskType] = h
}

// HandleRepeatable registers h for taskType, as Handle does, and marks the
// type safe to run again from the start: when the instance running such a
// task dies (its lease expires, see ExecutorOptions.LeaseTTL), the lease
// sweep on a live instance runs it again there instead of ending it
// EXECUTOR_LOST, announcing the new attempt to clients with a TASK_MESSAGE
// ("attempt 2 of 3: ..."), up to maxAttempts attempts in all (at least 2);
// past them the task ends EXECUTOR_LOST. Events of an earlier attempt stay
// in the log. Only for handlers whose work may run twice (idempotent side
// effects). It panics like Handle, and when maxAttempts < 2.
func (e *Executor) HandleRepeatable(taskType string, h Handler, maxAttempts int) {
	if maxAttempts < 2 {
		panic("orchestration: HandleRepeatable needs maxAttempts of 2 or more")
	}
	e.Handle(taskType, h)
	e.handlersMu.Lock()
	e.repeatable[taskType] = maxAttempts
	e.handlersMu.Unlock()
}

// attemptsOf returns how many attempts in all a task of taskType may make
// (1 unless HandleRepeatable registered it).
func (e *Executor) attemptsOf(taskType string) int {
	e.handlersMu.RLock()
	defer e.handlersMu.RUnlock()
	return max(e.repeatable[taskType], 1)
}

// TaskTypes implements TaskTypeRegistry: the registered types, sorted.
func (e *Executor) TaskTypes() []string {
	e.handlersMu.RLock()
	defer e.handlersMu.RUnlock()
	types := make([]string, 0, len(e.handlers))
	for t := range e.handlers {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// HasTaskType reports whether a handler for taskType is registered; the
// creation service asks it instead of listing TaskTypes on every create.
func (e *Executor) HasTaskType(taskType string) bool {
	e.handlersMu.RLock()
	defer e.handlersMu.RUnlock()
	_, ok := e.handlers[taskType]
	return ok
}

// Submit implements contracts.Executor: it queues task for a worker
// without waiting for the task's work. With a lease store it first leases
// the task (one store call). It fails with ErrUnknownTaskType,
// ErrQueueFull when the bounded queue is full, ErrExecutorClosed after
// Close, or a lease error (contracts.ErrLeaseHeld when another instance
// runs the task); the creation service then fails the task with
// TASK_SUBMISSION_ERROR.
func (e *Executor) Submit(ctx context.Context, task contracts.TaskRecord) error {
	e.handlersMu.RLock()
	h := e.handlers[task.TaskType]
	e.handlersMu.RUnlock()
	if h == nil {
		return fmt.Errorf("%w %q", ErrUnknownTaskType, task.TaskType)
	}
	if e.closed.Load() {
		return ErrExecutorClosed
	}
	if err := e.acquire(ctx, task.TaskID); err != nil {
		return fmt.Errorf("taskbridge: lease task %s: %w", task.TaskID, err)
	}
	rctx, cancel := context.WithCancelCause(context.Background())
	term, loseTerm := context.WithCancelCause(e.kill)
	r := &run{task: task, handler: h, ctx: rctx, cancel: cancel, term: term, loseTerm: loseTerm,
		resumes: make(map[string]chan struct{})}

	e.mu.Lock()
	err := e.enqueue(r)
	e.mu.Unlock()
	if err != nil {
		cancel(err)
		loseTerm(err)
		if !errors.Is(err, errDuplicateRun) {
			e.release(r)
		}
	}
	return err
}

// errDuplicateRun: Submit of a task this executor holds already.
var errDuplicateRun = errors.New("taskbridge: task was already submitted")

// enqueue queues r unless the executor is closed, holds the task already or
// its queue is full. e.mu must be held.
func (e *Executor) enqueue(r *run) error {
	if e.closed.Load() {
		return ErrExecutorClosed
	}
	if _, dup := e.runs[r.task.TaskID]; dup {
		return fmt.Errorf("%w: %s", errDuplicateRun, r.task.TaskID)
	}
	if !e.queue.push(r) {
		return ErrQueueFull
	}
	e.runs[r.task.TaskID] = r
	return nil
}

// Ready reports whether the executor accepts work, for readiness probes
// (observe.ExecutorProbe consumes it): nil while it is open and its queue
// has room; ErrExecutorClosed after Close; an error wrapping ErrQueueFull
// while the bounded queue is full (every worker busy and QueueSize tasks
// waiting), so a load balancer drains the instance until workers free up.
// The texts are operator-safe. It never blocks; a ctx that is already done
// returns ctx.Err().
func (e *Executor) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.closed.Load() {
		return ErrExecutorClosed
	}
	if waiting, size := e.queue.len(), e.queue.size; waiting >= size {
		return fmt.Errorf("%w (%d tasks waiting)", ErrQueueFull, waiting)
	}
	return nil
}

// RunningTasks returns the ids of the tasks this executor holds whose
// handler has not returned yet: queued tasks and tasks whose handler is
// running, in no particular order. A task whose handler has returned and
// whose terminal event is being written is not listed. It is a snapshot,
// safe for concurrent use; a cross-instance cancel relay
// (redisstore.CancelRelay) sweeps these tasks after it resubscribes.
func (e *Executor) RunningTasks() []string {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	ids := make([]string, 0, len(runs))
	for _, r := range runs {
		r.mu.Lock()
		live := r.state == runQueued || r.state == runRunning
		r.mu.Unlock()
		if live {
			ids = append(ids, r.task.TaskID)
		}
	}
	return ids
}

// Cancel implements contracts.Executor. A queued task ends CANCELLED at once
// without running; a running task's context is cancelled and it ends
// CANCELLED when its handler returns, whatever the handler returns
// (cancellation wins once requested). The reason is task.CancelReason, or
// DefaultCancelReason. Tasks this executor does not run are ignored.
func (e *Executor) Cancel(ctx context.Context, task contracts.TaskRecord) error {
	r := e.lookup(task.TaskID)
	if r == nil {
		return nil
	}
	reason := task.CancelReason
	if reason == "" {
		reason = DefaultCancelReason
	}
	r.mu.Lock()
	switch r.state {
	case runQueued:
		r.state = runFinished // no worker runs it now
		r.mu.Unlock()
		draft, _ := contracts.Cancelled(reason, "")
		e.mu.Lock()
		inline := e.endersClosed
		if !inline {
			e.enders.Add(1)
		}
		e.mu.Unlock()
		if inline {
			// Close is waiting for the last writes: write it here, within
			// the emit retry budget.
			e.end(context.WithoutCancel(ctx), r, draft, "cancelled", "", false)
			return nil
		}
		go func() { // owned by e: Close waits for enders
			defer e.enders.Done()
			e.end(r.term, r, draft, "cancelled", "", true)
		}()
	case runRunning:
		r.cancelRequested = true
		r.cancelReason = reason
		r.mu.Unlock()
		r.cancel(errCancelRequested)
	default:
		r.mu.Unlock()
	}
	return nil
}

// Resume implements ResumeHook: it wakes the handler suspended on
// s.SuspendID, if it runs here. It never fails, so the handoff is marked
// dispatched; a handler in another process wakes through its own Waiter.
func (e *Executor) Resume(_ context.Context, _ contracts.SubmitActionCommand, s contracts.SuspensionRecord) error {
	r := e.lookup(s.TaskID)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	sig := r.resumes[s.SuspendID]
	r.mu.Unlock()
	if sig != nil {
		select {
		case sig <- struct{}{}:
		default:
		}
	}
	return nil
}

// Close drains the executor, as a rolling deploy needs: it stops taking
// tasks (Submit fails with ErrExecutorClosed), ends the tasks still queued
// FAILED with the retryable code EXECUTOR_SHUTDOWN (they never ran, so a
// client may submit them again), and lets running handlers finish for up
// to ExecutorOptions.DrainTimeout, writing their terminal events as usual.
// When ctx has a deadline the drain ends earlier if need be, leaving a
// quarter of the time left (up to 2s) for the last terminal events.
// Handlers still running then have their contexts cancelled; one that then
// returns an error ends FAILED with EXECUTOR_SHUTDOWN, retryable.
//
// Close returns nil once every handler has returned and every terminal
// event is written, and stops the executor's goroutines. When ctx ends
// first it cancels the handlers still running, abandons terminal events
// still being retried (a store that is down), and returns ctx.Err(); the
// workers then end as soon as their handlers return. Give Close a context
// longer than DrainTimeout. Close is idempotent.
func (e *Executor) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed.Store(true)
		e.mu.Unlock()
		close(e.stop) // idle workers end the queued tasks and exit
		e.enders.Add(1)
		go func() { // owned by e: ends the tasks no worker will take
			defer e.enders.Done()
			e.drain()
		}()
		if d := e.drainFor(ctx); d > 0 {
			e.drainTimer = time.AfterFunc(d, e.interrupt)
		} else {
			e.interrupt()
		}
		go func() { // owned by e: ends once the workers and enders have
			e.workers.Wait()
			e.mu.Lock()
			e.endersClosed = true
			e.mu.Unlock()
			e.enders.Wait()
			if e.renewStop != nil {
				close(e.renewStop)
				<-e.renewDone
			}
			e.waiter.close()
			close(e.workersDone)
		}()
	})
	select {
	case <-e.workersDone:
		if e.drainTimer != nil {
			e.drainTimer.Stop()
		}
		return nil
	case <-ctx.Done():
		if e.drainTimer != nil {
			e.drainTimer.Stop()
		}
		e.interrupt()
		e.killNow()
		return ctx.Err()
	}
}

// maxTerminalReserve caps the part of Close's remaining time kept for the
// terminal events of the handlers cancelled when the drain ends.
const maxTerminalReserve = 2 * time.Second

// drainFor is how long Close lets handlers run: DrainTimeout, shortened
// when ctx has a deadline so that a quarter of the time left (up to
// maxTerminalReserve) remains for the terminal events of the handlers it
// cancels.
func (e *Executor) drainFor(ctx context.Context) time.Duration {
	d := e.drainTimeout
	if dl, ok := ctx.Deadline(); ok && d > 0 {
		left := time.Until(dl)
		d = min(d, left-min(left/4, maxTerminalReserve))
	}
	return d
}

// interrupt ends the drain: every running handler's context is cancelled
// with ErrExecutorClosed, and its run is marked as shut down.
func (e *Executor) interrupt() {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		runs = append(runs, r)
	}
	e.mu.Unlock()
	for _, r := range runs {
		r.mu.Lock()
		running := r.state == runRunning
		if running {
			r.shutdown = true
		}
		r.mu.Unlock()
		if running {
			r.cancel(ErrExecutorClosed)
		}
	}
}

func (e *Executor) lookup(taskID string) *run {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[taskID]
}

func (e *Executor) forget(r *run) {
	r.cancel(nil)
	r.loseTerm(nil)
	e.mu.Lock()
	if e.runs[r.task.TaskID] == r {
		delete(e.runs, r.task.TaskID)
	}
	e.mu.Unlock()
}

func (e *Executor) worker() {
	defer e.workers.Done()
	for {
		select {
		case <-e.stop:
			e.drain()
			return
		case <-e.queue.ready:
			if r := e.queue.pop(); r != nil {
				e.execute(r)
			}
		}
	}
}

// drain ends the tasks still queued at Close: with leases they are handed
// back for another instance to run, otherwise they end FAILED
// EXECUTOR_SHUTDOWN.
func (e *Executor) drain() {
	var queued []*run
	for r := e.queue.pop(); r != nil; r = e.queue.pop() {
		if r.takeQueued() {
			queued = append(queued, r)
		}
	}
	if e.handBack(queued) {
		return
	}
	for _, r := range queued {
		e.shutDown(r)
	}
}

// takeQueued moves a queued run out of the queue's hands (to runFinished)
// and reports whether it was still queued.
func (r *run) takeQueued() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != runQueued {
		return false
	}
	r.state = runFinished
	return true
}

// abort ends a queued run that will never run here because the executor
// closed: handed back with leases, else FAILED EXECUTOR_SHUTDOWN.
func (e *Executor) abort(r *run) {
	if !r.takeQueued() || e.handBack([]*run{r}) {
		return
	}
	e.shutDown(r)
}

// shutDown ends a queued run that never ran FAILED EXECUTOR_SHUTDOWN,
// retryable.
func (e *Executor) shutDown(r *run) {
	draft, _ := contracts.Failed(CodeExecutorShutdown, "the executor shut down before the task ran", true)
	e.end(r.term, r, draft, "shutdown", CodeExecutorShutdown, true)
}

func (e *Executor) execute(r *run) {
	r.mu.Lock()
	if r.state != runQueued {
		r.mu.Unlock()
		return
	}
	if e.closed.Load() {
		r.mu.Unlock()
		e.abort(r)
		return
	}
	r.state = runRunning
	r.mu.Unlock()

	entry := observe.Entry{TaskID: r.task.TaskID, ClientRequestID: r.task.ClientRequestID, UserID: r.task.OwnerID,
		Transport: observe.TransportInternal}
	_, err := e.emitter.Emit(e.kill, r.task.TaskID, contracts.Started(""))
	if errors.Is(err, contracts.ErrTerminal) {
		// Someone (an emitter elsewhere, a failed submission) ended the
		// task before it ran.
		r.mu.Lock()
		r.state = runEnded
		r.mu.Unlock()
		e.forget(r)
		return
	}
	if err != nil {
		entry.Outcome, entry.Err = "failed", err
		e.log.Error("task.run.start_failed", entry)
	}
	entry.Outcome = "started"
	e.log.Info("task.run.started", entry)

	result, panicked, herr := e.call(r)

	r.mu.Lock()
	r.state = runFinished
	cancelled, reason, shutdown, lost := r.cancelRequested, r.cancelReason, r.shutdown, r.leaseLost
	r.mu.Unlock()

	if lost {
		// Another instance took the lease over: it ends the task
		// EXECUTOR_LOST, or runs it again (HandleRepeatable). Nothing
		// is written from here, which would end the new attempt.
		e.log.Warn("task.run.lease_lost", entry)
		r.mu.Lock()
		r.state = runEnded
		r.mu.Unlock()
		e.forget(r)
		return
	}

	var draft contracts.EventDraft
	var outcome, code string
	switch {
	case cancelled:
		draft, _ = contracts.Cancelled(reason, "")
		outcome = "cancelled"
	case panicked:
		code, outcome = CodeTaskPanic, "panic"
		draft, _ = contracts.Failed(code, "the task handler panicked", false)
	case herr == nil:
		if draft, err = contracts.Completed(result); err != nil {
			entry.Outcome, entry.Err = "invalid_result", err
			e.log.Error("task.run.invalid_result", entry)
			code, outcome = CodeInvalidResult, "invalid_result"
			draft, _ = contracts.Failed(code, "the task result could not be encoded as JSON", false)
		} else {
			outcome = "completed"
		}
	case shutdown:
		code, outcome = CodeExecutorShutdown, "shutdown"
		draft, _ = contracts.Failed(code, "the executor shut down before the task finished", true)
	default:
		draft, code = failureDraft(herr)
		outcome = "error"
		entry.Outcome, entry.Err = "error", herr
		e.log.Warn("task.run.handler_error", entry)
	}
	e.end(r.term, r, draft, outcome, code, true)
}

// failureDraft turns a handler error into TASK_FAILED: a *TaskError keeps
// its code, message and retryability; an emit the store kept failing is
// STORE_UNAVAILABLE, retryable; anything else is TASK_FAILED with a generic
// message.
func failureDraft(err error) (contracts.EventDraft, string) {
	var te *TaskError
	var se *storeError
	if errors.As(err, &se) && !errors.As(err, &te) {
		d, _ := contracts.Failed(CodeStoreUnavailable, "the task's events could not be stored; the task may be submitted again", true)
		return d, CodeStoreUnavailable
	}
	if errors.As(err, &te) && te.Code != "" {
		msg := te.Message
		if msg == "" {
			msg = "the task failed"
		}
		if d, err := contracts.Failed(te.Code, msg, te.Retryable); err == nil {
			return d, te.Code
		}
	}
	d, _ := contracts.Failed(CodeTaskFailed, "the task failed", false)
	return d, CodeTaskFailed
}

// call runs the handler, turning a panic into panicked (logged with its
// stack, never rethrown).
func (e *Executor) call(r *run) (result any, panicked bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			e.log.Error("task.run.panic", observe.Entry{
				TaskID: r.task.TaskID, UserID: r.task.OwnerID, Transport: observe.TransportInternal, Outcome: "panic",
				Details: map[string]any{"panic": fmt.Sprint(v), "stack": string(debug.Stack())},
			})
		}
	}()
	result, err = r.handler(r.ctx, &TaskContext{e: e, r: r})
	return result, false, err
}

// end writes the run's terminal event and forgets the run; failCode is the
// TASK_FAILED code, counted as the failure reason. With untilWritten the
// write is retried until it lands or ctx ends (e.kill: Close gave up),
// else within the emit retry budget. The event's idempotency key is drawn
// once, so retries never store it twice.
func (e *Executor) end(ctx context.Context, r *run, draft contracts.EventDraft, outcome, failCode string, untilWritten bool) {
	entry := observe.Entry{TaskID: r.task.TaskID, ClientRequestID: r.task.ClientRequestID, UserID: r.task.OwnerID,
		Transport: observe.TransportInternal, Outcome: outcome}
	if failCode != "" {
		// Counted before the event is written, so that whoever sees the
		// event sees the count.
		e.metrics.IncCounter(observe.MetricTaskFailures, 1, observe.Tag{Key: observe.TagReason, Value: failCode})
	}
	if ev, err := e.emitter.emit(ctx, r.task.TaskID, draft, untilWritten); err != nil && ev.EventID.IsZero() {
		entry.Err = err
		if errors.Is(err, contracts.ErrTerminal) {
			e.log.Info("task.run.already_terminal", entry)
		} else {
			e.log.Error("task.run.end_failed", entry)
		}
	} else {
		entry.EventID = ev.EventID.String()
		e.log.Info("task.run.ended", entry)
	}
	r.mu.Lock()
	r.state = runEnded
	r.mu.Unlock()
	e.release(r)
	e.forget(r)
}
