package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// The in-process executor cancels only the tasks it runs itself, but with
// several instances a cancel request may arrive at any of them. The relay
// closes that gap: Cancel also PUBLISHes the task id on a Redis channel, and
// every instance asks its own executor to cancel the task when the
// registry says cancellation was requested (the executor ignores tasks it
// does not run). A notice published while an instance's subscription was
// down is not lost: after every (re)subscription the instance checks the
// records of the tasks its handlers are running.

// Relay timings.
const (
	relayPing       = 5 * time.Second // a silent subscription is pinged after this long
	relayMinBackoff = 50 * time.Millisecond
	relayMaxBackoff = 2 * time.Second
	relayCallTime   = 5 * time.Second // bounds one registry read or cancel
)

// relayExecutor is the in-process executor of one instance plus the cancel
// relay. It keeps the executor's other roles (ResumeHook, TaskTypeRegistry)
// by embedding it. It starts one goroutine, the subscription, which Close
// stops; it is safe for concurrent use.
type relayExecutor struct {
	*orchestration.Executor
	client  redis.UniversalClient
	channel string
	tasks   contracts.TaskRegistry
	log     *observe.Logger

	mu      sync.Mutex
	running map[string]int // tasks whose handler runs here (count of runs)

	stop context.CancelFunc
	done chan struct{}
}

// newRelayExecutor returns the executor built from opts with the relay
// listening on channel.
func newRelayExecutor(client redis.UniversalClient, channel string, tasks contracts.TaskRegistry,
	opts orchestration.ExecutorOptions) *relayExecutor {
	r := &relayExecutor{
		Executor: orchestration.NewExecutor(opts),
		client:   client,
		channel:  channel,
		tasks:    tasks,
		log:      opts.Logger,
		running:  make(map[string]int),
		done:     make(chan struct{}),
	}
	if r.log == nil {
		r.log = observe.NopLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.run(ctx)
	return r
}

// Handle registers h wrapped so that the relay knows which tasks run here.
func (r *relayExecutor) Handle(taskType string, h orchestration.Handler) {
	r.Executor.Handle(taskType, func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
		id := task.Task().TaskID
		r.mu.Lock()
		r.running[id]++
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			if r.running[id]--; r.running[id] <= 0 {
				delete(r.running, id)
			}
			r.mu.Unlock()
		}()
		return h(ctx, task)
	})
}

// Cancel implements contracts.Executor: the local executor cancels the
// task if it runs it, and the request is published for the other
// instances. The registry already records the request (the cancellation
// service wrote it before calling Cancel).
func (r *relayExecutor) Cancel(ctx context.Context, task contracts.TaskRecord) error {
	if err := r.Executor.Cancel(ctx, task); err != nil {
		return err
	}
	if err := r.client.Publish(ctx, r.channel, task.TaskID).Err(); err != nil {
		return fmt.Errorf("cancel relay: publish: %w", err)
	}
	return nil
}

// Close stops the relay and then the executor (see
// orchestration.Executor.Close).
func (r *relayExecutor) Close(ctx context.Context) error {
	r.stop()
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.Executor.Close(ctx)
}

// run keeps the subscription open until ctx ends, reconnecting with
// backoff.
func (r *relayExecutor) run(ctx context.Context) {
	defer close(r.done)
	backoff := relayMinBackoff
	for {
		confirmed, err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, redis.ErrClosed) {
			r.log.Error("cancel relay stopped: the Redis client is closed", observe.Entry{
				Transport: observe.TransportInternal, Err: err})
			return
		}
		if confirmed {
			backoff = relayMinBackoff
		}
		r.log.Warn("cancel relay subscription lost; reconnecting", observe.Entry{
			Transport: observe.TransportInternal, Outcome: "reconnect", Err: err,
			Details: map[string]any{"channel": r.channel, "backoff": backoff.String()}})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, relayMaxBackoff)
	}
}

// session runs one subscription until it fails or ctx ends.
func (r *relayExecutor) session(ctx context.Context) (confirmed bool, err error) {
	ps := r.client.Subscribe(ctx, r.channel)
	unwatch := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		unwatch()
		_ = ps.Close()
	}()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, relayPing)
		if err != nil {
			var ne net.Error
			if ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
				return confirmed, err
			}
			if pinged {
				return confirmed, errors.New("cancel relay: no reply to ping")
			}
			pctx, cancel := context.WithTimeout(ctx, relayPing)
			err = ps.Ping(pctx)
			cancel()
			if err != nil {
				return confirmed, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				confirmed = true
				r.sweep(ctx) // notices may have been missed while unsubscribed
			}
		case *redis.Message:
			r.check(ctx, m.Payload)
		}
	}
}

// sweep checks every task whose handler runs here.
func (r *relayExecutor) sweep(ctx context.Context) {
	r.mu.Lock()
	ids := make([]string, 0, len(r.running))
	for id := range r.running {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.check(ctx, id)
	}
}

// check cancels taskID on the local executor when the registry records a
// cancellation request; a task that does not run here is ignored by the
// executor.
func (r *relayExecutor) check(ctx context.Context, taskID string) {
	ctx, cancel := context.WithTimeout(ctx, relayCallTime)
	defer cancel()
	rec, err := r.tasks.Get(ctx, taskID)
	if err != nil {
		if !errors.Is(err, contracts.ErrNotFound) && ctx.Err() == nil {
			r.log.Warn("cancel relay: task lookup failed", observe.Entry{
				TaskID: taskID, Transport: observe.TransportInternal, Err: err})
		}
		return
	}
	if !rec.CancelRequested || rec.Status.IsTerminal() {
		return
	}
	if err := r.Executor.Cancel(ctx, rec); err != nil {
		r.log.Warn("cancel relay: cancel failed", observe.Entry{
			TaskID: taskID, Transport: observe.TransportInternal, Err: err})
	}
}
