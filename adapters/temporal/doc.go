// Package tbtemporal runs TaskBridge tasks on Temporal (https://temporal.io),
// so that they survive deploys, crashes and scale-out: a task created
// through any bridge instance runs on any worker process and streams to its
// clients through any bridge instance, and nothing is lost when a bridge, a
// worker or a whole machine goes away.
//
// It lives in a Go module of its own
// (github.com/taskbridge/taskbridge-fiber/adapters/temporal), so hosts that
// do not use Temporal never download the Temporal SDK.
//
// # Two sides
//
// A bridge instance uses an Executor as its contracts.Executor
// (fiberbridge.Config.Executor): creating a task starts a Temporal workflow
// whose id is derived from the task id (WorkflowID), cancelling it cancels
// the workflow, and an accepted client action is signalled to it
// (ActionSignal). Worker processes run a Worker: the host registers a
// Handler per task type and the steps its handlers call, and the worker
// writes every event to the same stores the bridges read (Redis for several
// instances). Bridges and workers share the stores, a Temporal namespace, a
// task queue and a workflow id prefix, nothing else.
//
//	// bridge
//	x, err := tbtemporal.NewExecutor(temporalClient, tbtemporal.ExecutorOptions{TaskTypes: []string{"report"}})
//	bridge, err := fiberbridge.New(fiberbridge.Config{Stores: stores, Executor: x, ...})
//
//	// worker
//	w, err := tbtemporal.NewWorker(temporalClient, tbtemporal.WorkerOptions{Stores: stores})
//	w.Handle("report", buildReport, tbtemporal.TypeOptions{StartToCloseTimeout: 5 * time.Minute})
//	w.RegisterStep(renderPage, "report.render")
//	err = w.Start()
//
// # The shape of a task: a workflow with steps
//
// A Handler is Temporal workflow code with the in-process executor's
// experience (package orchestration): it receives a *Task to report
// progress and messages (Task.Progress, Task.Message), to suspend for a
// client action and get the accepted action back (Task.Suspend), and its
// result or error ends the task. Real work (I/O, computation) runs in steps:
// ordinary Go functions run as Temporal activities with the task type's
// timeouts and retry policy (Task.ExecuteStep, TypeOptions), which report
// progress from inside through StepFrom.
//
// The workflow shape was chosen because it is the only one in which every
// promise below holds: the handler's position (which steps are done, what
// it is waiting for) is Temporal's durable state, so a worker that dies is
// replaced by replaying the handler on another one, without redoing done
// steps and without asking the task author to write checkpoints; a
// suspension is a wait on a signal and a durable timer, which costs no
// worker and survives any restart. Running a whole handler as one
// heartbeating activity would be closer to a plain function but would run
// it again from the start after every crash and could not keep a
// suspension alive across one. Both shapes meet in steps: a step is a
// heartbeating activity, retried on a live worker when its worker dies.
//
// # Exactly one copy of every event
//
// Temporal runs an activity at least once: a step may run again after its
// worker died, and the adapter's own store writes (local activities) may
// run again after a store error or a crash before their result was
// recorded. Every write therefore carries an idempotency key derived from
// the task, never random: "temporal/<n>" for the workflow's n-th write
// (deterministic on replay), "temporal/terminal" for the terminal event,
// "temporal/step/<activity id>/<n>" for a step's n-th event (the same on
// every attempt of that step) and "temporal/step/<activity id>/retry/<attempt>"
// for a retry notice. The stores store an append whose key the task
// already holds once and answer the repeat with the stored event
// (contracts.EventDraft.WithIdempotencyKey), so clients see each event
// once. A step attempt that reports a different sequence than the attempt
// before it (for example it skips work it checkpointed) must keep that
// rule in mind: the n-th event of every attempt is taken to be the same
// event. Suspend ids are derived the same way (a hash of the task id and
// the suspension's write key), and the suspension's deadline is the one
// stored by its first open: a worker that dies after opening a suspension
// but before Temporal recorded it leaves the next worker waiting on the
// very suspension, and deadline, its clients were shown.
//
// # How a task ends
//
// One terminal event per task, as with the in-process executor:
//
//   - the handler returns a result: TASK_COMPLETED (TASK_FAILED
//     TASK_RESULT_INVALID when it is not JSON);
//   - cancellation requested through any bridge: TASK_CANCELLED with the
//     request's reason, whatever the handler returns;
//   - the handler returns an *orchestration.TaskError, or a step does:
//     TASK_FAILED with its code, message and retryable flag (a step's
//     TaskError is never retried: it is a verdict);
//   - a step runs past its start-to-close timeout (or stops heartbeating,
//     or passes its schedule-to-close timeout) on its last attempt:
//     TASK_FAILED TASK_TIMEOUT, retryable;
//   - a step fails on every attempt with an ordinary error: TASK_FAILED
//     TASK_FAILED, retryable (the failure was one worth retrying); a step
//     error marked non-retryable (temporal.NewNonRetryableApplicationError):
//     not retryable;
//   - Suspend's deadline passes: TASK_FAILED SUSPENSION_EXPIRED (when the
//     handler returns the error, as the in-process executor's handlers do);
//   - the handler panics: TASK_FAILED TASK_PANIC;
//   - no worker has a handler for the type: TASK_FAILED UNKNOWN_TASK_TYPE.
//
// Every attempt of a step after the first appends a TASK_MESSAGE (level
// warning) "retrying step <name>: attempt n of m" before the step runs
// again. Messages of TASK_FAILED are fixed texts: an error's own text never
// reaches clients.
//
// # What survives what
//
// Nothing is lost, and the task goes on, when:
//
//   - a bridge instance stops or dies: tasks do not run there; its
//     clients resume on another instance with their cursor;
//   - a worker stops or dies (kill -9, machine loss) during a task: its
//     step attempts are retried on a live worker once their heartbeat
//     timeout passes (clients see a retry notice), and its workflows are
//     replayed there; events already written are not written again;
//   - a worker dies while a task is suspended: the suspension is workflow
//     state; an action accepted meanwhile is kept by Temporal as a signal
//     and the handler resumes with it on the next worker, and the
//     deadline's timer fires there;
//   - the store does not answer for a while (a Redis restart): event
//     writes are retried with backoff, for up to 10 minutes (the terminal
//     event for up to a day), and the handler waits meanwhile;
//   - Temporal does not answer: running steps go on; creates fail with
//     TASK_SUBMISSION_ERROR (the task ends FAILED); cancels answer 500
//     INTERNAL_ERROR and can be repeated; actions are accepted and their
//     handoff stays PENDING until the bridge's reconciliation
//     (Services.RunMaintenance) signals them; Executor.Ready reports the
//     frontend unavailable for GET /ready.
//
// A task ends (TASK_FAILED) rather than waits forever when its steps time
// out or fail on every attempt as above, or when its event writes fail for
// longer than the limits above. With no worker alive at all, tasks wait,
// and go on when one starts.
//
// A task's workflow history grows with its work: about one history event
// per TASK_* event it appends (a local activity marker) and three per step.
// Temporal caps a history at 50,000 events, so a single task should stay
// well below about ten thousand steps and events; split longer work into
// several tasks.
//
// Attachments are handed to workflows without their content (Temporal
// history is no place for files): handlers see each attachment's name,
// type, size and SHA-256, and read large inputs from where the host keeps
// them.
package tbtemporal
