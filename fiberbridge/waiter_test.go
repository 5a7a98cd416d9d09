package fiberbridge_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// listenCounter counts the change-feed listeners of an event store.
type listenCounter struct {
	contracts.EventStore
	listens  atomic.Int32
	listened chan struct{} // a value per Listen call (buffered; extra calls only count)
}

func newListenCounter(events contracts.EventStore) *listenCounter {
	return &listenCounter{EventStore: events, listened: make(chan struct{}, 8)}
}

func (l *listenCounter) Listen(ctx context.Context, fn func(contracts.Change)) error {
	l.listens.Add(1)
	select {
	case l.listened <- struct{}{}:
	default:
	}
	return l.EventStore.Listen(ctx, fn)
}

// awaitListens waits for n more Listen calls. A waiter calls Listen from
// the goroutine it starts at its first Watch, so the call can come after
// the wait that started it is over.
func (l *listenCounter) awaitListens(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-l.listened:
		case <-time.After(hwait):
			t.Fatalf("%d of %d expected Listen calls came (%d in all)", i, n, l.listens.Load())
		}
	}
}

// TestOneWaiterPerProcess: the bridge's streaming hub is the one change-feed
// listener of a process. Long-polls and a suspended handler of the executor
// the bridge was given wait on it: a task that suspends, is approved and
// completes leaves exactly one Listen call behind. After the bridge shut
// down, a handler that suspends again falls back to a waiter of its own and
// still resumes.
func TestOneWaiterPerProcess(t *testing.T) {
	t.Parallel()
	stores := memstore.New(memstore.Options{})
	counter := newListenCounter(stores.Events)
	stores.Events = counter
	exec := check(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores}))(t)
	t.Cleanup(func() { require.NoError(t, exec.Close(context.Background())) })
	exec.Handle("ask", func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
		act, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"ok"}})
		if err != nil {
			return nil, err
		}
		return act.ActionType, nil
	})
	bridge := check(fiberbridge.New(fiberbridge.Config{Stores: stores, Executor: exec, AuthResolver: bearerAuth,
		MaintenanceInterval: -1}))(t)
	svc := bridge.Services()
	// A second services value (a host's per-tenant services) shares the hub too.
	host := check(orchestration.NewServices(orchestration.Options{Stores: stores, Executor: exec}))(t)
	t.Cleanup(func() { require.NoError(t, host.Close(context.Background())) })
	host.UseWaiter(bridgeWaiter(t, bridge))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := contracts.AuthContext{Subject: "alice"}
	run := func(services *orchestration.Services, req string) contracts.PollResult {
		res, err := services.Creation.Create(ctx, contracts.CreateTaskCommand{Auth: alice, ClientRequestID: req, TaskType: "ask"})
		require.NoError(t, err)
		var after contracts.EventID
		var suspendID string
		for suspendID == "" {
			page, err := services.Polling.Poll(ctx, contracts.PollQuery{Auth: alice, TaskID: res.TaskID, After: after, Limit: 100, Wait: 5 * time.Second})
			require.NoError(t, err)
			for _, ev := range page.Events {
				if ev.Type == contracts.EventSuspended {
					p, err := contracts.DecodePayload(&ev)
					require.NoError(t, err)
					suspendID = p.(contracts.SuspendedPayload).SuspendID
				}
				after = ev.EventID
			}
		}
		_, err = services.Actions.Submit(ctx, contracts.SubmitActionCommand{Auth: alice, TaskID: res.TaskID,
			ClientActionID: req + "-a", SuspendID: suspendID, ActionType: "ok"})
		require.NoError(t, err)
		for {
			page, err := services.Polling.Poll(ctx, contracts.PollQuery{Auth: alice, TaskID: res.TaskID, After: after, Limit: 100, Wait: 5 * time.Second})
			require.NoError(t, err)
			for _, ev := range page.Events {
				if ev.Type.IsTerminal() {
					require.Equal(t, contracts.EventCompleted, ev.Type)
					return page
				}
				after = ev.EventID
			}
		}
	}
	run(svc, "r1")
	run(host, "r2")
	counter.awaitListens(t, 1)
	assert.EqualValues(t, 1, counter.listens.Load(), "the hub is the only listener")

	require.NoError(t, bridge.Shutdown(context.Background()))
	run(host, "r3") // the hub is gone: the executor and host fall back to their own feeds
	counter.awaitListens(t, 2)
	assert.EqualValues(t, 3, counter.listens.Load(), "the executor and the host's services listen on their own")
}

// bridgeWaiter is the bridge's hub as a waiter: the waiter the bridge gives
// its executor, for services the host builds.
func bridgeWaiter(t *testing.T, b *fiberbridge.Bridge) orchestration.Waiter {
	t.Helper()
	w := b.Waiter()
	require.NotNil(t, w)
	return w
}
