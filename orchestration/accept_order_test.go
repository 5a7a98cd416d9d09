package orchestration_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// pausingReceipts holds the first Save after it stored the receipt, until
// release is closed: the moment between an accepted action's receipt and
// its TASK_ACTION_ACCEPTED event.
type pausingReceipts struct {
	contracts.ActionReceiptStore
	saved   chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func (p *pausingReceipts) Save(ctx context.Context, r contracts.ActionReceipt) (contracts.ActionReceipt, bool, error) {
	stored, ok, err := p.ActionReceiptStore.Save(ctx, r)
	if p.once.CompareAndSwap(false, true) {
		close(p.saved)
		<-p.release
	}
	return stored, ok, err
}

// countingSuspensions counts Get calls: each is one check of a suspended
// handler.
type countingSuspensions struct {
	contracts.SuspensionStore
	gets atomic.Int64
}

func (c *countingSuspensions) Get(ctx context.Context, taskID, suspendID string) (contracts.SuspensionRecord, error) {
	c.gets.Add(1)
	return c.SuspensionStore.Get(ctx, taskID, suspendID)
}

// TestSuspendedHandlerResumesOnlyAfterTheAcceptEvent: a handler woken
// between the receipt of an accepted action and its TASK_ACTION_ACCEPTED
// event must keep waiting. Resumed early, it ended the task first and the
// accept event was refused on the terminal task: the client got
// TASK_ALREADY_TERMINAL for an action the handler had consumed, and the log
// had no TASK_ACTION_ACCEPTED.
func TestSuspendedHandlerResumesOnlyAfterTheAcceptEvent(t *testing.T) {
	stores := memstore.New(memstore.Options{})
	fw := orchestration.NewFeedWaiter(stores.Events)
	ctx, stop := context.WithCancel(context.Background())
	waiterDone := make(chan struct{})
	go func() {
		defer close(waiterDone)
		_ = fw.Run(ctx)
	}()
	defer func() {
		stop()
		recv(t, (<-chan struct{})(waiterDone), "the waiter to stop")
	}()
	barrier(t, fw, stores.Events)

	susp := &countingSuspensions{SuspensionStore: stores.Suspensions}
	exec := must(orchestration.NewExecutor(orchestration.ExecutorOptions{
		Stores: contracts.Stores{Tasks: stores.Tasks, Events: stores.Events, Suspensions: susp, Receipts: stores.Receipts},
		Waiter: fw,
	}))(t)
	defer func() { require.NoError(t, exec.Close(context.Background())) }()
	exec.Handle("ask", func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
		act, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"ok"}})
		if err != nil {
			return nil, err
		}
		return act.ClientActionID, nil
	})
	receipts := &pausingReceipts{ActionReceiptStore: stores.Receipts, saved: make(chan struct{}), release: make(chan struct{})}
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   contracts.Stores{Tasks: stores.Tasks, Events: stores.Events, Suspensions: stores.Suspensions, Receipts: receipts},
		Executor: exec,
	})
	require.NoError(t, err)
	defer func() { require.NoError(t, svc.Close(context.Background())) }()

	res, err := svc.Creation.Create(context.Background(), createCmd("alice", "r", "ask", ""))
	require.NoError(t, err)
	h := &execHarness{stores: stores, exec: exec, svc: svc}
	ev := h.waitFor(t, res.TaskID, contracts.EventSuspended)
	s := contracts.SuspensionRecord{TaskID: res.TaskID, SuspendID: payloadOf(t, ev)["suspendId"].(string)}

	type submitted struct {
		res contracts.ActionResult
		err error
	}
	done := make(chan submitted, 1)
	go func() {
		r, err := svc.Actions.Submit(context.Background(), actionCmd("alice", s, "a-1", "ok", ""))
		done <- submitted{r, err}
	}()
	recv(t, receipts.saved, "the receipt saved") // resolved and receipt saved; the accept event is not written yet

	// Wake the handler twice: another worker's messages change the task. A
	// second check can only happen if the first left it suspended.
	for i := range 2 {
		checks := susp.gets.Load()
		msg, err := contracts.Message("from another worker", contracts.LevelInfo)
		require.NoError(t, err)
		_, err = stores.Events.Append(context.Background(), res.TaskID, msg)
		require.NoError(t, err)
		require.Eventually(t, func() bool { return susp.gets.Load() > checks }, 10*time.Second, time.Millisecond,
			"wake %d: the handler checked its suspension (it is still suspended)", i+1)
	}
	page, err := stores.Events.Read(context.Background(), res.TaskID, ev.EventID, 100)
	require.NoError(t, err)
	for _, e := range page.Events {
		require.False(t, e.Type.IsTerminal(), "the task ended before its action was accepted")
	}

	close(receipts.release)
	got := recv(t, done, "the action's answer")
	require.NoError(t, got.err)
	assert.Equal(t, contracts.ActionStatusAccepted, got.res.Status)
	evs := h.finish(t, res.TaskID)
	var order []contracts.EventType
	for _, e := range evs {
		order = append(order, e.Type)
	}
	assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended, contracts.EventMessage,
		contracts.EventMessage, contracts.EventActionAccepted, contracts.EventCompleted}, order)
	assert.Equal(t, "a-1", lastPayload(t, evs)["result"])
}
