package orchestration_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// flakyEvents fails appends while fail is set.
type flakyEvents struct {
	*fakeStore
	fail atomic.Bool
}

func (f *flakyEvents) Append(ctx context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	if f.fail.Load() {
		return contracts.TaskEvent{}, errors.New("io")
	}
	return f.fakeStore.Append(ctx, taskID, d)
}

// TestReconcileRestoresLostActionAccepted: when the TASK_ACTION_ACCEPTED
// append of a winning action fails (the client got a 500; its retry is
// DEDUPLICATED), reconciliation leaves the event to a possibly still
// running accept for HandoffGrace, then appends it once and only then
// resumes the handler, so the log never lacks the action.
func TestReconcileRestoresLostActionAccepted(t *testing.T) {
	store := newFakeStore()
	events := &flakyEvents{fakeStore: store}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	hook := &recordingHook{}
	h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Events: events}, Resume: hook, Clock: clock})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	susp := h.openSuspension(t, task, time.Time{})
	ctx := context.Background()

	events.fail.Store(true)
	_, err := h.svc.Actions.Submit(ctx, actionCmd("alice", susp, "a1", "approve", ""))
	requireCode(t, err, bridgeerr.CodeInternal)
	events.fail.Store(false)
	res, err := h.svc.Actions.Submit(ctx, actionCmd("alice", susp, "a1", "approve", ""))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusDeduplicated, res.Status)
	assert.Zero(t, countType(store.all(task.TaskID), contracts.EventActionAccepted))

	// Within the grace period: nothing appended, nothing resumed.
	n, err := h.svc.Reconciliation.ReconcilePending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Zero(t, hook.count())
	assert.Zero(t, countType(store.all(task.TaskID), contracts.EventActionAccepted))

	// Past it: the event is restored, then the handler resumed.
	now.Add(int64(orchestration.HandoffGrace + time.Second))
	n, err = h.svc.Reconciliation.ReconcilePending(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 1, hook.count())
	evs := store.all(task.TaskID)
	require.Equal(t, 1, countType(evs, contracts.EventActionAccepted))
	p, err := contracts.DecodePayload(&evs[len(evs)-1])
	require.NoError(t, err)
	accepted := p.(contracts.ActionAcceptedPayload)
	assert.Equal(t, susp.SuspendID, accepted.SuspendID)
	assert.Equal(t, "a1", accepted.ClientActionID)
	assert.Equal(t, "approve", accepted.ActionType)
	assert.Equal(t, contracts.HandoffDispatched, store.suspension(task.TaskID, susp.SuspendID).Handoff)
	assert.NotEmpty(t, h.logged("task.resume.accepted_event_restored"))

	// Nothing is appended twice.
	n, err = h.svc.Reconciliation.ReconcilePending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, 1, countType(store.all(task.TaskID), contracts.EventActionAccepted))
}

// TestReconcileKeepsLoggedActionAccepted: a handoff whose event is in the
// log (only the hook failed) is resumed without a second event, at once.
func TestReconcileKeepsLoggedActionAccepted(t *testing.T) {
	hook := &recordingHook{}
	hook.fail.Store(true)
	h := newHarness(t, orchestration.Options{Resume: hook})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	susp := h.openSuspension(t, task, time.Time{})
	_, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", ""))
	require.NoError(t, err)
	hook.fail.Store(false)
	n, err := h.svc.Reconciliation.ReconcilePending(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 1, countType(h.store.all(task.TaskID), contracts.EventActionAccepted))
}
