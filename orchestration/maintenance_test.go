package orchestration_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func TestRetentionPrune(t *testing.T) {
	now := time.Now()
	h := newHarness(t, orchestration.Options{Clock: func() time.Time { return now }})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	h.openSuspension(t, task, now.Add(-time.Second))
	h.openSuspension(t, task, now.Add(time.Hour))
	h.openSuspension(t, task, time.Time{})
	rs := receiptStore{h.store}
	for i, exp := range []time.Time{now.Add(-time.Minute), now, now.Add(time.Minute)} {
		_, _, err := rs.Save(context.Background(), contracts.ActionReceipt{TaskID: task.TaskID, ClientActionID: string(rune('a' + i)), ExpiresAt: exp})
		require.NoError(t, err)
	}
	counts, err := h.svc.Retention.Prune(context.Background())
	require.NoError(t, err)
	assert.Equal(t, orchestration.RetentionCounts{ExpiredReceipts: 2, ExpiredSuspensions: 1}, counts)
	require.Len(t, h.logged("task.retention.pruned"), 1)
}

// plainSuspensions hides SuspensionMaintenance.
type plainSuspensions struct{ contracts.SuspensionStore }

func TestMaintenanceWithoutSuspensionMaintenance(t *testing.T) {
	store := newFakeStore()
	h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Suspensions: plainSuspensions{suspensionStore{store}}}})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	h.openSuspension(t, task, time.Now().Add(-time.Second))
	counts, err := h.svc.Retention.Prune(context.Background())
	require.NoError(t, err)
	assert.Zero(t, counts.ExpiredSuspensions)
	n, err := h.svc.Reconciliation.ReconcilePending(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
	notes := h.logged("orchestration.maintenance.unsupported")
	require.Len(t, notes, 1, "noted once")
	assert.Equal(t, zapcore.InfoLevel, notes[0].Level)
}

func TestReconcileSkipsMissingReceipt(t *testing.T) {
	h := newHarness(t, orchestration.Options{Resume: &recordingHook{}})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	s := h.openSuspension(t, task, time.Time{})
	_, _, err := suspensionStore{h.store}.Resolve(context.Background(), task.TaskID, s.SuspendID,
		contracts.Resolution{Status: contracts.SuspensionResolved, ClientActionID: "lost", At: time.Now()})
	require.NoError(t, err)
	n, err := h.svc.Reconciliation.ReconcilePending(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.NotEmpty(t, h.logged("task.resume.reconcile_skipped"))
}

// countingReceipts signals every DeleteExpired call.
type countingReceipts struct {
	receiptStore
	once  sync.Once
	swept chan struct{}
}

func (c *countingReceipts) DeleteExpired(ctx context.Context, before time.Time) (int, error) {
	c.once.Do(func() { close(c.swept) })
	return c.receiptStore.DeleteExpired(ctx, before)
}

func TestRunMaintenance(t *testing.T) {
	store := newFakeStore()
	rc := &countingReceipts{receiptStore: receiptStore{store}, swept: make(chan struct{})}
	hook := &recordingHook{}
	h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Receipts: rc}, Resume: hook})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	s := h.openSuspension(t, task, time.Time{})
	hook.fail.Store(true)
	_, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", s, "a1", "approve", ""))
	require.NoError(t, err)
	hook.fail.Store(false)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.RunMaintenance(ctx, time.Hour) }()
	recv(t, rc.swept, "first retention sweep")
	require.Eventually(t, func() bool {
		return store.suspension(task.TaskID, s.SuspendID).Handoff == contracts.HandoffDispatched
	}, 10*time.Second, time.Millisecond, "the first maintenance round reconciles at start")
	cancel()
	assert.ErrorIs(t, recv(t, done, "maintenance stop"), context.Canceled)
}

func TestNewServicesRequiresStores(t *testing.T) {
	_, err := orchestration.NewServices(orchestration.Options{})
	require.ErrorContains(t, err, "Stores.Tasks, Stores.Events, Stores.Suspensions, Stores.Receipts, Executor must be set")
	store := newFakeStore()
	_, err = orchestration.NewServices(orchestration.Options{Stores: contracts.Stores{Tasks: store, Events: store}})
	require.ErrorContains(t, err, "Stores.Suspensions, Stores.Receipts, Executor must be set")
}

func TestServicesCloseIsIdempotent(t *testing.T) {
	store := newFakeStore()
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   contracts.Stores{Tasks: store, Events: store, Suspensions: suspensionStore{store}, Receipts: receiptStore{store}},
		Executor: &recordingExecutor{},
	})
	require.NoError(t, err)
	require.NoError(t, svc.Close(context.Background()))
	require.NoError(t, svc.Close(context.Background()))
}
