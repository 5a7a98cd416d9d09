package orchestration_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func TestEmitterStatusFollowsEvents(t *testing.T) {
	completed, err := contracts.Completed("ok")
	require.NoError(t, err)
	failed, err := contracts.Failed("X", "bad", false)
	require.NoError(t, err)
	cancelled, err := contracts.Cancelled("user", "")
	require.NoError(t, err)
	progress, err := contracts.Progress(10, "", "")
	require.NoError(t, err)
	tests := []struct {
		name   string
		drafts []contracts.EventDraft
		want   []contracts.TaskStatus // status after each draft
	}{
		{"started then completed", []contracts.EventDraft{contracts.Started(""), progress, completed},
			[]contracts.TaskStatus{contracts.StatusRunning, contracts.StatusRunning, contracts.StatusCompleted}},
		{"completed without started goes through RUNNING", []contracts.EventDraft{completed},
			[]contracts.TaskStatus{contracts.StatusCompleted}},
		{"progress alone leaves ACCEPTED", []contracts.EventDraft{progress},
			[]contracts.TaskStatus{contracts.StatusAccepted}},
		{"failed straight from ACCEPTED", []contracts.EventDraft{failed}, []contracts.TaskStatus{contracts.StatusFailed}},
		{"cancelled while running", []contracts.EventDraft{contracts.Started(""), cancelled},
			[]contracts.TaskStatus{contracts.StatusRunning, contracts.StatusCancelled}},
		{"a second STARTED is harmless", []contracts.EventDraft{contracts.Started(""), contracts.Started("again")},
			[]contracts.TaskStatus{contracts.StatusRunning, contracts.StatusRunning}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, orchestration.Options{})
			task := h.seedTask(t, "alice", contracts.StatusAccepted)
			em := newEmitter(t, h.store, h.store, nil, nil)
			for i, d := range tt.drafts {
				ev, err := em.Emit(context.Background(), task.TaskID, d)
				require.NoError(t, err)
				assert.Equal(t, d.Type(), ev.Type)
				rec, err := h.store.Get(context.Background(), task.TaskID)
				require.NoError(t, err)
				assert.Equal(t, tt.want[i], rec.Status, "after %s", d.Type())
			}
		})
	}
}

func TestEmitterAfterTerminal(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusAccepted)
	em := newEmitter(t, h.store, h.store, nil, nil)
	_, err := em.Complete(context.Background(), task.TaskID, map[string]any{"n": 1})
	require.NoError(t, err)
	_, err = em.Progress(context.Background(), task.TaskID, 50, "", "")
	requireCode(t, err, bridgeerr.CodeTaskAlreadyTerminal)
	assert.ErrorIs(t, err, contracts.ErrTerminal)
	_, err = em.Fail(context.Background(), task.TaskID, "X", "late", false)
	requireCode(t, err, bridgeerr.CodeTaskAlreadyTerminal)
	rec, err := h.store.Get(context.Background(), task.TaskID)
	require.NoError(t, err)
	assert.Equal(t, contracts.StatusCompleted, rec.Status, "the loser does not move the status")
	assert.Len(t, h.store.all(task.TaskID), 1)
}

func TestEmitterRejectsInvalidDrafts(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusAccepted)
	em := newEmitter(t, h.store, h.store, nil, nil)
	_, err := em.Emit(context.Background(), task.TaskID, contracts.EventDraft{})
	requireCode(t, err, bridgeerr.CodeInvalidRequest)
	_, err = em.Progress(context.Background(), task.TaskID, 101, "", "")
	requireCode(t, err, bridgeerr.CodeInvalidRequest)
	_, err = em.Fail(context.Background(), task.TaskID, "", "no code", false)
	requireCode(t, err, bridgeerr.CodeInvalidRequest)
	_, err = em.Cancelled(context.Background(), task.TaskID, "", "")
	requireCode(t, err, bridgeerr.CodeInvalidRequest)
	_, err = em.Message(context.Background(), task.TaskID, "hi", "loud")
	requireCode(t, err, bridgeerr.CodeInvalidRequest)
	assert.Empty(t, h.store.all(task.TaskID))
}

func TestEmitterSuspend(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	em := newEmitter(t, h.store, h.store, suspensionStore{h.store}, nil)
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	rec, err := em.Suspend(context.Background(), task.TaskID, orchestration.SuspendSpec{
		ReasonCode: "NEEDS_REVIEW", AllowedActions: []string{"approve"}, ExpiresAt: expires,
		UIHints: map[string]any{"title": "Review"},
	})
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionOpen, rec.Status)
	assert.Equal(t, "alice", rec.OwnerID)
	assert.Equal(t, contracts.KindUserActionRequired, rec.Kind)
	assert.Equal(t, 1, rec.SchemaVersion)
	stored := h.store.suspension(task.TaskID, rec.SuspendID)
	assert.Equal(t, rec.SuspendID, stored.SuspendID)

	evs := h.store.all(task.TaskID)
	require.Len(t, evs, 1)
	p := payloadOf(t, evs[0])
	assert.Equal(t, rec.SuspendID, p["suspendId"])
	assert.Equal(t, "NEEDS_REVIEW", p["reasonCode"])
	assert.Equal(t, []any{"approve"}, p["allowedActions"])
	assert.Equal(t, 1.0, p["schemaVersion"])
	assert.Contains(t, p, "expiresAt")

	// An action submitted through the services resolves it.
	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", rec, "a1", "approve", ""))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusAccepted, res.Status)
}

func TestEmitterSuspendRefusals(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	spec := orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"go"}}

	t.Run("without a suspension store", func(t *testing.T) {
		task := h.seedTask(t, "alice", contracts.StatusRunning)
		_, err := newEmitter(t, h.store, h.store, nil, nil).Suspend(context.Background(), task.TaskID, spec)
		require.Error(t, err)
	})
	em := newEmitter(t, h.store, h.store, suspensionStore{h.store}, nil)
	t.Run("invalid spec", func(t *testing.T) {
		task := h.seedTask(t, "alice", contracts.StatusRunning)
		_, err := em.Suspend(context.Background(), task.TaskID, orchestration.SuspendSpec{ReasonCode: "R"})
		requireCode(t, err, bridgeerr.CodeInvalidRequest)
		_, err = em.Suspend(context.Background(), task.TaskID, orchestration.SuspendSpec{AllowedActions: []string{"x"}})
		requireCode(t, err, bridgeerr.CodeInvalidRequest)
	})
	t.Run("terminal task", func(t *testing.T) {
		task := h.seedTask(t, "alice", contracts.StatusCompleted)
		_, err := em.Suspend(context.Background(), task.TaskID, spec)
		requireCode(t, err, bridgeerr.CodeTaskAlreadyTerminal)
	})
	t.Run("missing task", func(t *testing.T) {
		_, err := em.Suspend(context.Background(), "nope", spec)
		requireCode(t, err, bridgeerr.CodeTaskNotFound)
	})
	t.Run("append fails: suspension cancelled", func(t *testing.T) {
		task := h.seedTask(t, "alice", contracts.StatusRunning)
		// The registry still says RUNNING but the log has ended.
		done, err := contracts.Completed(nil)
		require.NoError(t, err)
		_, err = h.store.Append(context.Background(), task.TaskID, done)
		require.NoError(t, err)
		_, err = em.Suspend(context.Background(), task.TaskID, spec)
		requireCode(t, err, bridgeerr.CodeTaskAlreadyTerminal)
		h.store.mu.Lock()
		defer h.store.mu.Unlock()
		for _, s := range h.store.susp {
			if s.TaskID == task.TaskID {
				assert.Equal(t, contracts.SuspensionCancelled, s.Status)
			}
		}
	})
}

func TestNewEmitterNeedsStores(t *testing.T) {
	_, err := orchestration.NewEmitter(orchestration.EmitterOptions{Stores: contracts.Stores{Events: newFakeStore()}})
	require.ErrorContains(t, err, "Stores.Tasks must be set")
	_, err = orchestration.NewEmitter(orchestration.EmitterOptions{Stores: contracts.Stores{Tasks: newFakeStore()}})
	require.ErrorContains(t, err, "Stores.Events must be set")
}

// failingStatus makes UpdateStatus fail.
type failingStatus struct{ *fakeStore }

func (failingStatus) UpdateStatus(context.Context, string, contracts.TaskStatus) (contracts.TaskRecord, error) {
	return contracts.TaskRecord{}, errors.New("registry down")
}

func TestEmitterRegistryFailureKeepsTheEvent(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusAccepted)
	em := must(orchestration.NewEmitter(orchestration.EmitterOptions{
		Stores: contracts.Stores{Tasks: failingStatus{h.store}, Events: h.store}, Logger: h.log,
		Retry: orchestration.RetryPolicy{Budget: 100 * time.Millisecond},
	}))(t)
	ev, err := em.Started(context.Background(), task.TaskID, "go")
	requireCode(t, err, bridgeerr.CodeInternal)
	assert.Equal(t, contracts.EventStarted, ev.Type, "the appended event is returned with the error")
	assert.Len(t, h.store.all(task.TaskID), 1)
	assert.NotEmpty(t, h.logged("task.status.update_failed"))
	assert.NotEmpty(t, h.logged("task.emit.retrying"), "the status update was retried before the failure was reported")
}

// ambiguousEvents fails appends: each of the first fail appends fails after
// it was applied (the store wrote the event, the caller got an error), as
// a timed-out Redis call that ran once Redis woke up.
type ambiguousEvents struct {
	*fakeStore
	mu       sync.Mutex
	fail     int
	attempts int
	applied  bool // the failing attempts are applied first
}

func (f *ambiguousEvents) Append(ctx context.Context, taskID string, d contracts.EventDraft) (contracts.TaskEvent, error) {
	f.mu.Lock()
	f.attempts++
	failing := f.attempts <= f.fail
	f.mu.Unlock()
	if !failing {
		return f.fakeStore.Append(ctx, taskID, d)
	}
	if f.applied {
		if _, err := f.fakeStore.Append(ctx, taskID, d); err != nil {
			return contracts.TaskEvent{}, err
		}
	}
	return contracts.TaskEvent{}, errors.New("i/o timeout")
}

// TestEmitterRetriesAmbiguousAppends: an append that failed without a
// definite answer is retried with the same key, so the event is stored
// exactly once whether the failed attempts were applied or not; once the
// budget is spent the failure is reported.
func TestEmitterRetriesAmbiguousAppends(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			h := newHarness(t, orchestration.Options{})
			task := h.seedTask(t, "alice", contracts.StatusAccepted)
			events := &ambiguousEvents{fakeStore: h.store, fail: 3, applied: applied}
			em := must(orchestration.NewEmitter(orchestration.EmitterOptions{
				Stores: contracts.Stores{Tasks: h.store, Events: events}, Logger: h.log,
			}))(t)
			ev, err := em.Progress(context.Background(), task.TaskID, 40, "", "")
			require.NoError(t, err)
			all := h.store.all(task.TaskID)
			require.Len(t, all, 1, "the event is stored once")
			assert.Equal(t, all[0].EventID, ev.EventID)
			assert.Equal(t, 4, events.attempts)
		})
	}
	t.Run("budget spent", func(t *testing.T) {
		h := newHarness(t, orchestration.Options{})
		task := h.seedTask(t, "alice", contracts.StatusAccepted)
		events := &ambiguousEvents{fakeStore: h.store, fail: 1 << 30}
		em := must(orchestration.NewEmitter(orchestration.EmitterOptions{
			Stores: contracts.Stores{Tasks: h.store, Events: events}, Logger: h.log,
			Retry: orchestration.RetryPolicy{Budget: 200 * time.Millisecond},
		}))(t)
		_, err := em.Progress(context.Background(), task.TaskID, 40, "", "")
		requireCode(t, err, bridgeerr.CodeInternal)
		assert.Greater(t, events.attempts, 2, "retried before giving up")
		assert.NotEmpty(t, h.logged("task.emit.failed"))
	})
	t.Run("definite answers are not retried", func(t *testing.T) {
		h := newHarness(t, orchestration.Options{})
		task := h.seedTask(t, "alice", contracts.StatusAccepted)
		em := newEmitter(t, h.store, h.store, nil, nil)
		_, err := em.Complete(context.Background(), task.TaskID, nil)
		require.NoError(t, err)
		start := time.Now()
		_, err = em.Progress(context.Background(), task.TaskID, 40, "", "")
		requireCode(t, err, bridgeerr.CodeTaskAlreadyTerminal)
		assert.Less(t, time.Since(start), time.Second)
	})
}

// TestEmitterIdempotencyKeys: an Emit without a key of its own stores a new
// event each time (the Emitter draws a key per call); a caller that retries
// with its own key stores the event once and gets the first event back.
func TestEmitterIdempotencyKeys(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusAccepted)
	em := newEmitter(t, h.store, h.store, nil, nil)
	ctx := context.Background()
	msg, err := contracts.Message("twice", contracts.LevelInfo)
	require.NoError(t, err)
	_, err = em.Emit(ctx, task.TaskID, msg)
	require.NoError(t, err)
	_, err = em.Emit(ctx, task.TaskID, msg)
	require.NoError(t, err)
	assert.Len(t, h.store.all(task.TaskID), 2, "two emits without a key are two events")

	keyed := msg.WithIdempotencyKey("step-7")
	first, err := em.Emit(ctx, task.TaskID, keyed)
	require.NoError(t, err)
	again, err := em.Emit(ctx, task.TaskID, keyed)
	require.NoError(t, err)
	assert.Equal(t, first.EventID, again.EventID, "a retry with the caller's key answers the first event")
	assert.Len(t, h.store.all(task.TaskID), 3)
}
