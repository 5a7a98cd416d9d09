// Package orchestration is the service layer of TaskBridge for Fiber: the
// use cases behind every route and transport, the in-process executor that
// runs task handlers, and the Emitter that drives a task's stream from any
// process sharing the stores.
//
// # Services
//
// NewServices wires the stores (contracts.TaskRegistry, EventStore,
// SuspensionStore, ActionReceiptStore), an Executor and optional policies
// and sinks into one Services value with a service per use case:
//
//   - CreationService.Create: ownership check, validation, idempotent create
//     by (owner, clientRequestId). The registry's atomic Create is the only
//     idempotency point, so N concurrent identical requests create one task
//     and submit it once; the same payload (task type, canonical input,
//     attachments; not metadata) answers the existing task as
//     deduplicated, a different one IDEMPOTENCY_CONFLICT. When the executor
//     refuses the task it is FAILED with a TASK_FAILED event (code
//     TASK_SUBMISSION_ERROR, retryable) so that open streams end too.
//   - PollingService.Poll: events strictly after a cursor, with an optional
//     wait that a Waiter wakes as soon as an event is appended. The watch is
//     registered before the store is read, so no append is missed. A
//     timeout or server shutdown answers an empty page, never an error; a
//     task whose stream has ended, or a cursor behind retention, answers at
//     once.
//   - CancellationService.Cancel: ALREADY_TERMINAL without touching the
//     executor, else the request is recorded and the executor asked.
//   - ActionService.Submit: allowed-action check, receipts for idempotency
//     (DEDUPLICATED or IDEMPOTENCY_CONFLICT), REJECTED_EXPIRED,
//     REJECTED_ALREADY_RESOLVED, and a compare-and-set on the suspension so
//     exactly one of N concurrent actions is ACCEPTED and appends
//     TASK_ACTION_ACCEPTED. The winner calls the ResumeHook; when it fails
//     (or the append of TASK_ACTION_ACCEPTED failed) the handoff stays
//     PENDING for ReconciliationService, which appends a missing
//     TASK_ACTION_ACCEPTED (after HandoffGrace) before resuming.
//   - SubscriptionService: ownership and replay batches for SSE/WebSocket.
//   - ReconciliationService and RetentionService: periodic upkeep, run by
//     Services.RunMaintenance in a goroutine the host owns.
//
// Every service error is a *bridgeerr.Error with a stable code. A task of
// another owner is TASK_NOT_FOUND, the very same error as a missing task, on
// every service.
//
// # Executor
//
// Executor is the in-process contracts.Executor. The host registers a
// Handler per task type (Handle) and a fixed pool of workers runs submitted
// tasks from a bounded queue; Submit fails when the queue is full, and the
// task is then FAILED with TASK_SUBMISSION_ERROR (the creation service asks
// Ready first, so a create is normally refused before its task is stored).
// The queue is shared fairly between subjects (task owners): each has a
// FIFO of its own and free workers take the oldest task of one subject
// after another, round-robin, so a subject's next task starts after at
// most one task of each other subject waiting, however long their
// backlogs; enqueue and dequeue are O(1). Each run emits
// TASK_STARTED, then calls the handler with a context that is cancelled on
// a cancel request or on Close and a TaskContext to emit progress and
// messages and to Suspend until a client action is accepted. The handler's
// return decides the one terminal event: its result is TASK_COMPLETED, an
// error TASK_FAILED (a *TaskError chooses code, message and retryability;
// other errors get a generic message so internal text never reaches
// clients), a panic TASK_FAILED with code TASK_PANIC. Once cancellation is
// requested the task ends TASK_CANCELLED whatever the handler returns.
//
// Close drains: it stops taking tasks, lets running handlers finish for up
// to ExecutorOptions.DrainTimeout (10s by default), then cancels the rest
// (TASK_FAILED EXECUTOR_SHUTDOWN, retryable). Tasks still queued are handed
// back to a shared lease store for another instance to run (Redis), or
// end FAILED EXECUTOR_SHUTDOWN without one (memory: no other instance
// could run them).
//
// # Leases: no stranded task
//
// With Stores.Leases (redisstore.New sets it) the executor leases every
// task it accepts and renews the leases while the tasks are queued,
// running or suspended (ExecutorOptions.LeaseTTL, 20s; renewed every
// TTL/4). An instance that dies stops renewing; Services.RunMaintenance on
// any instance sweeps expired leases every Options.LeaseSweepInterval (5s)
// with LeaseService: a task that never started runs again on the sweeping
// instance, and so does a started task of a type registered with
// HandleRepeatable (announced by a TASK_MESSAGE, up to its attempts); any
// other ends TASK_FAILED EXECUTOR_LOST, retryable, with a message that it
// may be submitted again, within about TTL plus the sweep interval. A runner that was only late (the store was down longer than
// the TTL) and finds its lease taken over has its handler's context
// cancelled and writes nothing more: the instance that took the lease
// settles the task.
//
// # Store faults
//
// Every append carries an idempotency key shared by its retries, and the
// stores store an event once per key, so a retry after an ambiguous
// failure never repeats an event. The Emitter retries appends and status
// updates that failed without a definite answer within RetryPolicy (15s);
// the executor retries a task's terminal event until it is written, its
// lease is lost, or Close gives up.
//
// # Emitter
//
// Emitter appends events and keeps the registry status following them
// (STARTED moves to RUNNING, a terminal event to its status). It needs only
// the stores, so workers in other processes can drive tasks created here.
// The event is appended before the registry is updated: the log is the
// source of truth and the store admits exactly one terminal event, so only
// the winner of a race moves the status.
//
// # Waiting without polling
//
// Long-polls and suspended handlers wait on a Waiter: Watch(taskID) returns a
// channel closed at the task's next change. It is registered before the
// store is read, so an append between the read and the wait still wakes the
// waiter. FeedWaiter implements it over the event store's change feed with
// one listener per process (the streaming hub implements it too).
// fiberbridge.New hands its hub to the Executor and to host-given Services
// (UseWaiter), so a process keeps one listener; without one they start a
// FeedWaiter of their own at their first wait and stop it in Close.
//
// # Behaviour worth knowing
//
//   - An ownership policy may return its own *bridgeerr.Error from
//     CanCreate (say AUTHENTICATION_ERROR); any other denial is
//     TASK_OWNERSHIP_ERROR.
//   - Poll and Replay clamp limits to 1..500 and treat 0 as 100, the
//     protocol's default maxEvents.
//   - An action on a terminal task is REJECTED_ALREADY_RESOLVED (its open
//     suspension is cancelled); an action payload is canonicalised, so an
//     absent payload and {} are the same action.
//   - The executor defaults to 64 workers because handlers mostly wait (a
//     suspended handler keeps its worker while a user decides), and to a
//     queue of 1024. Close drains for 10s by default; handlers it then
//     cancels that return an error, and queued tasks without a lease store,
//     end TASK_FAILED code EXECUTOR_SHUTDOWN, retryable, so their streams
//     end.
//   - A cancel request for a queued task writes TASK_CANCELLED at once; for a
//     running task, when its handler returns. A handler that never returns
//     keeps its worker and its task open: handlers must honour ctx.
//   - A change feed delivers only changes made after it subscribed and then
//     announces itself with a Resync, which wakes every watch made before:
//     a waiter started at the first wait misses nothing. Every wait still
//     has a deadline (the long-poll's, the suspension's expiry), and Suspend
//     is also woken directly by the in-process Resume.
//   - Per-poll log lines are at Debug and built only when Debug is enabled,
//     and the details of action lines only when their levels are,
//     checked with observe.Logger.Enabled (the one use of zapcore here).
//   - The executor's Resume wakes an in-process Suspend directly and always
//     succeeds (marking the handoff dispatched); a handler in another
//     process wakes on the TASK_ACTION_ACCEPTED event through its Waiter.
package orchestration
