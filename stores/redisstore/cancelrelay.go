package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// relayCallTimeout bounds one check of the cancel relay: a registry read
// and a local cancel.
const relayCallTimeout = 5 * time.Second

// ErrCancelRelayClosed is what CancelRelay.Ready reports after Close when
// the local executor has no readiness of its own.
var ErrCancelRelayClosed = errors.New("redisstore: cancel relay is closed")

// LocalExecutor is the executor a CancelRelay wraps: it runs task handlers
// in this process (orchestration.Executor is one). TaskTypes is required
// because creation rejects task types the executor does not list, and the
// relay, which always offers TaskTypes to creation, has no way to say
// "every type" on behalf of an executor that lacks it.
type LocalExecutor interface {
	contracts.Executor
	// TaskTypes returns the task types the executor runs, sorted.
	TaskTypes() []string
}

// RunningTaskLister is implemented by local executors that can list the
// tasks they hold (orchestration.Executor.RunningTasks). A CancelRelay
// whose local executor implements it sweeps those tasks after every
// (re)subscription and reads the registry only for notices about them.
type RunningTaskLister interface {
	// RunningTasks returns the ids of the tasks whose handler has not
	// returned yet (queued or running).
	RunningTasks() []string
}

// Optional roles of the local executor that the relay forwards. They mirror
// interfaces declared by their consumers (orchestration.ResumeHook,
// observe.ExecutorReadiness, the executor's Close), which redisstore may not
// import.
type (
	resumer interface {
		Resume(ctx context.Context, cmd contracts.SubmitActionCommand, s contracts.SuspensionRecord) error
	}
	closer interface {
		Close(ctx context.Context) error
	}
)

// CancelRelay carries cancel requests across instances that share Redis.
// An in-process executor can cancel only the tasks whose handlers it runs,
// but a cancel request may reach any instance. The relay wraps the local
// executor and is passed wherever that executor goes (for example
// fiberbridge.Config.Executor): Submit is the local executor's, and Cancel
// cancels locally and also PUBLISHes the task id on the channel
// Options.KeyPrefix + "cancel". Every relay subscribes to that channel and,
// on a notice, reads the task record and asks its local executor to cancel
// the task when cancellation was requested and the task has not ended.
//
// A notice published while a relay's subscription is down is not lost when
// the local executor implements RunningTaskLister: after every
// (re)subscription the relay checks the record of every task its executor
// holds. Without RunningTaskLister the relay acts on notices only, and a
// cancel published while the subscription was down does not reach this
// instance's handler.
//
// The relay forwards the local executor's other roles: TaskTypes (creation
// rejects unknown types), Resume (accepted actions wake suspended
// handlers), Ready (observe.ExecutorProbe) and Close.
//
// A CancelRelay is safe for concurrent use. NewCancelRelay starts its one
// goroutine, which holds one subscription connection (pinged when silent,
// reopened with backoff when lost) and ends with Close, or on its own once
// the Redis client is closed (Done, Err). It does not own the Redis client
// or the registry; Close also closes the local executor.
type CancelRelay struct {
	client  redis.UniversalClient
	channel string
	tasks   contracts.TaskRegistry
	local   LocalExecutor
	lister  RunningTaskLister // nil: notices only, no sweep
	ping    time.Duration
	log     *observe.Logger

	stop context.CancelFunc
	done chan struct{}

	mu     sync.Mutex
	err    error // why the subscription gave up; set before done is closed
	closed bool
}

var (
	_ contracts.Executor        = (*CancelRelay)(nil)
	_ LocalExecutor             = (*CancelRelay)(nil)
	_ observe.ExecutorReadiness = (*CancelRelay)(nil)
	_ resumer                   = (*CancelRelay)(nil)
	_ closer                    = (*CancelRelay)(nil)
)

// NewCancelRelay returns the relay for local and starts its subscription.
// client is the Redis client shared with the stores (the host owns it and
// closes it after Close); opts are the stores' Options: the channel is
// derived from KeyPrefix, silence on the subscription is pinged after
// FeedPingInterval, and the relay logs through Logger. tasks is the shared
// task registry. It returns an error when client, tasks or local is nil or
// opts.KeyPrefix contains '{' or '}'; it does no I/O itself (the
// subscription is made by the goroutine it starts, which Close stops).
func NewCancelRelay(client redis.UniversalClient, opts Options, tasks contracts.TaskRegistry, local LocalExecutor) (*CancelRelay, error) {
	if client == nil || tasks == nil || local == nil {
		return nil, errors.New("taskbridge: redisstore.NewCancelRelay needs a client, a task registry and a local executor")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &CancelRelay{
		client:  client,
		channel: keys{prefix: cfg.prefix}.cancelChannel(),
		tasks:   tasks,
		local:   local,
		ping:    cfg.pingEvery,
		log:     cfg.log,
		stop:    stop,
		done:    make(chan struct{}),
	}
	r.lister, _ = local.(RunningTaskLister)
	go r.run(ctx) // owned by r: Close stops it
	return r, nil
}

// Unwrap returns the local executor the relay wraps (fiberbridge.New
// reaches it through Unwrap to share its streaming hub as the executor's
// waiter).
func (r *CancelRelay) Unwrap() contracts.Executor { return r.local }

// Channel returns the name of the channel the relay publishes on and
// subscribes to.
func (r *CancelRelay) Channel() string { return r.channel }

// Submit implements contracts.Executor: the local executor's Submit.
func (r *CancelRelay) Submit(ctx context.Context, task contracts.TaskRecord) error {
	return r.local.Submit(ctx, task)
}

// Cancel implements contracts.Executor: the local executor cancels task if
// it holds it, then the task id is published so that the instance running
// it cancels it too. The registry must already record the request (the
// cancellation service writes it before calling Cancel), because receivers
// act on the record, not on the notice. It returns the local executor's
// error, or the PUBLISH error wrapped.
func (r *CancelRelay) Cancel(ctx context.Context, task contracts.TaskRecord) error {
	if err := r.local.Cancel(ctx, task); err != nil {
		return err
	}
	if err := r.client.Publish(ctx, r.channel, task.TaskID).Err(); err != nil {
		return fmt.Errorf("redisstore: cancel relay: publish the cancellation of %q: %w", task.TaskID, err)
	}
	return nil
}

// TaskTypes returns the local executor's task types (for creation's
// unknown-type check, orchestration.TaskTypeRegistry).
func (r *CancelRelay) TaskTypes() []string { return r.local.TaskTypes() }

// Resume implements orchestration.ResumeHook by forwarding to the local
// executor when it is one; otherwise it does nothing and returns nil.
func (r *CancelRelay) Resume(ctx context.Context, cmd contracts.SubmitActionCommand, s contracts.SuspensionRecord) error {
	if h, ok := r.local.(resumer); ok {
		return h.Resume(ctx, cmd, s)
	}
	return nil
}

// Ready implements observe.ExecutorReadiness: ctx's error when ctx is done;
// the reason the relay gave up once the Redis client was closed; otherwise
// the local executor's readiness when it has one (observe.ExecutorReadiness),
// else ErrCancelRelayClosed after Close and nil before. A subscription that
// is reconnecting does not make the instance unready: the sweep after it
// returns recovers the notices it missed.
func (r *CancelRelay) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	err, closed := r.err, r.closed
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if x, ok := r.local.(observe.ExecutorReadiness); ok {
		return x.Ready(ctx)
	}
	if closed {
		return ErrCancelRelayClosed
	}
	return nil
}

// Done returns a channel that is closed when the relay's goroutine has
// ended: after Close, or on its own once the Redis client is closed.
func (r *CancelRelay) Done() <-chan struct{} { return r.done }

// Err returns why the relay's subscription gave up (the Redis client was
// closed), or nil while it runs and after Close.
func (r *CancelRelay) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close closes the local executor first, when it has Close(ctx) error,
// and then stops the subscription and waits for the relay's goroutine, so
// a host that passes the relay around shuts both down with one call. The
// subscription stays up while the executor drains (orchestration.Executor
// lets running handlers finish), so a cancel request made on another
// instance during the drain still stops the handler here. It returns the
// local executor's error, or ctx.Err() when ctx ends first. Close is
// idempotent when the local executor's Close is (orchestration.Executor's
// is).
func (r *CancelRelay) Close(ctx context.Context) error {
	var err error
	if c, ok := r.local.(closer); ok {
		err = c.Close(ctx)
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	select {
	case <-r.done:
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
	return err
}

// Sweep checks the record of every task the local executor holds and asks
// the executor to cancel those whose cancellation was requested. The relay
// sweeps after every (re)subscription; a host may call Sweep as well, for
// example on a timer as a backstop. It stops at the first failed check and
// returns its error. Without RunningTaskLister on the local executor it
// does nothing.
func (r *CancelRelay) Sweep(ctx context.Context) error {
	if r.lister == nil {
		return nil
	}
	for _, id := range r.lister.RunningTasks() {
		if err := r.check(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// run keeps the subscription open until ctx ends. Once it is confirmed it
// sweeps (notices may have been published while unsubscribed); a failed
// sweep, or a failed check of a notice about a task the local executor
// holds, reopens the subscription so that the next one sweeps again. It
// gives up only when the client is closed, recording why.
func (r *CancelRelay) run(ctx context.Context) {
	defer close(r.done)
	sub := subscription{
		client: r.client, channel: r.channel, ping: r.ping, log: r.log, name: "cancel relay",
		subscribed: func(ctx context.Context) error {
			if err := r.Sweep(ctx); err != nil {
				return fmt.Errorf("redisstore: cancel relay: sweep: %w", err)
			}
			return nil
		},
		message: r.notice,
	}
	if err := sub.run(ctx); err != nil {
		r.mu.Lock()
		r.err = fmt.Errorf("redisstore: cancel relay stopped: the Redis client is closed: %w", err)
		r.mu.Unlock()
		r.log.Error("redisstore: cancel relay stopped: the Redis client is closed", observe.Entry{
			Transport: observe.TransportInternal, Outcome: "failed", Err: err,
			Details: map[string]any{"channel": r.channel}})
	}
}

// notice handles one published task id. With a RunningTaskLister it skips
// tasks the local executor does not hold (no registry read), and a failed
// check ends the session so that the sweep after resubscribing retries it;
// without one, a failed check is logged and the notice is dropped.
func (r *CancelRelay) notice(ctx context.Context, taskID string) error {
	if r.lister != nil && !slices.Contains(r.lister.RunningTasks(), taskID) {
		return nil
	}
	err := r.check(ctx, taskID)
	if err == nil || r.lister != nil {
		return err
	}
	if ctx.Err() == nil {
		r.log.Warn("redisstore: cancel relay: notice dropped", observe.Entry{
			TaskID: taskID, Transport: observe.TransportInternal, Outcome: "dropped", Err: err})
	}
	return nil
}

// check reads taskID's record and asks the local executor to cancel the
// task when cancellation was requested and the task has not ended (the
// executor ignores tasks it does not hold). A task missing from the
// registry is no error.
func (r *CancelRelay) check(ctx context.Context, taskID string) error {
	ctx, cancel := context.WithTimeout(ctx, relayCallTimeout)
	defer cancel()
	rec, err := r.tasks.Get(ctx, taskID)
	if errors.Is(err, contracts.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("redisstore: cancel relay: read task %q: %w", taskID, err)
	}
	if !rec.CancelRequested || rec.Status.IsTerminal() {
		return nil
	}
	if err := r.local.Cancel(ctx, rec); err != nil {
		return fmt.Errorf("redisstore: cancel relay: cancel task %q locally: %w", taskID, err)
	}
	r.log.Debug("redisstore: cancel relay: cancellation applied", observe.Entry{
		TaskID: taskID, Transport: observe.TransportInternal, Outcome: "cancelled"})
	return nil
}
