package tbtemporal

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// WorkerOptions configures NewWorker.
type WorkerOptions struct {
	// Stores are the stores the bridges use (shared, for example Redis):
	// the worker appends the tasks' events, moves their status and opens
	// and resolves their suspensions there. Tasks, Events and Suspensions
	// are required; the others are not used.
	Stores contracts.Stores
	// TaskQueue is the Temporal task queue to poll; the bridges' executors
	// submit to it. Optional. Default: DefaultTaskQueue.
	TaskQueue string
	// WorkflowIDPrefix must be the bridges' ExecutorOptions.WorkflowIDPrefix.
	// Optional. Default: DefaultWorkflowIDPrefix.
	WorkflowIDPrefix string
	// Worker are Temporal's worker options (concurrency, sticky cache,
	// ...); the adapter adds its interceptor to Interceptors.
	// Optional. Default: Temporal's defaults.
	Worker worker.Options
	// Logger receives the worker's structured logs.
	// Optional. Default: zap.NewNop().
	Logger *zap.Logger
	// Clock stamps suspension resolutions. Optional. Default: time.Now.
	Clock func() time.Time
}

// Worker is the workers' side of the adapter: a Temporal worker that runs
// the tasks the bridges' Executors submit. The host registers a Handler per
// task type (Handle) and the step activities its handlers call
// (RegisterStep), then calls Start; any number of Workers in any number of
// processes may poll the same task queue, and Temporal hands each task's
// workflow and steps to live ones.
//
// A Worker is safe for concurrent use once started. It owns the Temporal
// worker (its pollers and the goroutines of running steps, including the
// step heartbeats) and stops them in Stop; it does not own the Temporal
// client or the stores.
type Worker struct {
	w      worker.Worker
	acts   *activities
	prefix string
	log    *zap.Logger

	mu       sync.RWMutex
	handlers map[string]registered
	started  bool
}

// registered is one task type's handler and options.
type registered struct {
	h    Handler
	opts TypeOptions
}

// NewWorker returns a Worker for c with the adapter's workflow and
// activities registered; register handlers and steps, then Start it. It
// fails when c or a required store is missing.
func NewWorker(c client.Client, opts WorkerOptions) (*Worker, error) {
	var missing []string
	if c == nil {
		missing = append(missing, "a Temporal client")
	}
	for _, f := range [...]struct {
		name string
		set  bool
	}{
		{"Stores.Tasks", opts.Stores.Tasks != nil},
		{"Stores.Events", opts.Stores.Events != nil},
		{"Stores.Suspensions", opts.Stores.Suspensions != nil},
	} {
		if !f.set {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("tbtemporal: NewWorker needs %s", strings.Join(missing, ", "))
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	emitter, err := orchestration.NewEmitter(orchestration.EmitterOptions{Stores: opts.Stores, Logger: log, Clock: clock})
	if err != nil {
		return nil, err
	}
	w := &Worker{
		prefix:   opts.WorkflowIDPrefix,
		log:      log,
		handlers: make(map[string]registered),
		acts: &activities{emitter: emitter, tasks: opts.Stores.Tasks, suspensions: opts.Stores.Suspensions,
			log: observe.NewLogger(log), clock: clock},
	}
	if w.prefix == "" {
		w.prefix = DefaultWorkflowIDPrefix
	}
	queue := opts.TaskQueue
	if queue == "" {
		queue = DefaultTaskQueue
	}
	wo := opts.Worker
	wo.Interceptors = append(slices.Clone(wo.Interceptors), &stepInterceptor{w: w})
	w.w = worker.New(c, queue, wo)
	w.w.RegisterWorkflowWithOptions(w.run, workflow.RegisterOptions{Name: WorkflowName})
	return w, nil
}

// Handle registers h for taskType with its step settings (at most one
// TypeOptions; none means the defaults). Register every handler before
// Start. It panics on an empty type, a nil handler, a type registered
// twice, or a call after Start (wiring errors).
func (w *Worker) Handle(taskType string, h Handler, opts ...TypeOptions) {
	if taskType == "" || h == nil {
		panic("tbtemporal: Handle needs a task type and a handler")
	}
	if len(opts) > 1 {
		panic("tbtemporal: Handle takes at most one TypeOptions")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("tbtemporal: Handle after Start")
	}
	if _, dup := w.handlers[taskType]; dup {
		panic(fmt.Sprintf("tbtemporal: handler for task type %q registered twice", taskType))
	}
	var o TypeOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	w.handlers[taskType] = registered{h: h, opts: o}
}

// RegisterStep registers an activity function that handlers run with
// Task.ExecuteStep, under name (empty: the function's name). Its first
// parameter is a context.Context, in which StepFrom finds the step's
// handle. Register every step before Start.
func (w *Worker) RegisterStep(step any, name string) {
	w.w.RegisterActivityWithOptions(step, activity.RegisterOptions{Name: name})
}

// TaskTypes returns the registered task types, sorted; a bridge's
// ExecutorOptions.TaskTypes lists the same.
func (w *Worker) TaskTypes() []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	types := make([]string, 0, len(w.handlers))
	for t := range w.handlers {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// Start starts polling the task queue; it returns an error when the worker
// cannot start (for example Temporal does not answer). Call Stop to end it.
func (w *Worker) Start() error {
	w.mu.Lock()
	w.started = true
	w.mu.Unlock()
	if err := w.w.Start(); err != nil {
		return fmt.Errorf("tbtemporal: start worker: %w", err)
	}
	return nil
}

// Stop stops polling and waits for running step attempts to return (up to
// worker.Options.WorkerStopTimeout; steps see their context cancelled). A
// task whose workflow or step was running here goes on on another worker:
// Temporal retries the step there and replays the workflow, and no event is
// appended twice. Stop is for shutdown; a killed worker loses nothing
// either, it is only noticed later (at the step's heartbeat timeout).
func (w *Worker) Stop() { w.w.Stop() }

// handler returns the registration of taskType.
func (w *Worker) handler(taskType string) (registered, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	r, ok := w.handlers[taskType]
	return r, ok
}

// terminalKey is the idempotency key of a task's terminal event: one per
// task whatever path writes it.
const terminalKey = "temporal/terminal"

// run is the workflow of every task: TASK_STARTED, the handler, and one
// terminal event from its outcome. It returns the outcome ("completed",
// "failed", "cancelled", "already_terminal") as the workflow's result.
func (w *Worker) run(ctx workflow.Context, rec contracts.TaskRecord) (string, error) {
	log := workflow.GetLogger(ctx)
	reg, ok := w.handler(rec.TaskType)
	t := &Task{rec: rec, opts: reg.opts, acts: w.acts, actions: workflow.GetSignalChannel(ctx, ActionSignal)}
	if !ok {
		draft, _ := contracts.Failed(CodeUnknownTaskType, "no worker runs this task type", false)
		return w.end(ctx, t, terminal{draft: draft, outcome: "failed"})
	}
	_, err := t.emit(ctx, emitRequest{TaskID: rec.TaskID, Type: contracts.EventStarted,
		Payload: contracts.Started("").Payload()}, emitOptions)
	switch {
	case errors.Is(err, contracts.ErrTerminal):
		// Someone ended the task before it ran (a failed submission).
		t.finished = true
		return "already_terminal", nil
	case err != nil && !isCancel(err):
		log.Error("task start event failed", "taskId", rec.TaskID, "error", err)
	}

	var result any
	var panicked bool
	var herr error
	if err == nil || !isCancel(err) {
		result, panicked, herr = call(ctx, reg.h, t, log)
	}
	t.finished = true
	return w.end(ctx, t, outcomeOf(ctx, result, panicked, herr))
}

// call runs the handler, turning a panic into panicked (logged with its
// stack, never rethrown, so the workflow ends instead of retrying its
// workflow task forever).
func call(ctx workflow.Context, h Handler, t *Task, log interface{ Error(string, ...any) }) (result any, panicked bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			log.Error("task handler panicked", "taskId", t.rec.TaskID, "panic", fmt.Sprint(v))
		}
	}()
	result, err = h(ctx, t)
	return result, false, err
}

// terminal is how a run ends: the event to append (or a cancellation,
// whose reason the activity reads) and the outcome to report.
type terminal struct {
	draft   contracts.EventDraft
	cancel  bool
	outcome string
}

// end appends the terminal event on a context that the task's
// cancellation does not reach, and returns the outcome.
func (w *Worker) end(ctx workflow.Context, t *Task, end terminal) (string, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	req := emitRequest{TaskID: t.rec.TaskID, Key: terminalKey, Cancel: end.cancel}
	if !end.cancel {
		req.Type, req.Payload = end.draft.Type(), end.draft.Payload()
	}
	lctx := workflow.WithLocalActivityOptions(dctx, terminalOptions)
	err := fromActivityError(workflow.ExecuteLocalActivity(lctx, t.acts.Emit, req).Get(dctx, nil))
	switch {
	case errors.Is(err, contracts.ErrTerminal):
		return "already_terminal", nil
	case err != nil:
		return "", fmt.Errorf("tbtemporal: terminal event of task %s: %w", t.rec.TaskID, err)
	}
	return end.outcome, nil
}
