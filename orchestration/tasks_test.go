package orchestration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// readFixture is the memory stores, services on them and an emitter that
// drives tasks through every state.
type readFixture struct {
	stores contracts.Stores
	svc    *orchestration.Services
	em     *orchestration.Emitter
}

func newReadFixture(t *testing.T, mutate func(*orchestration.Options)) *readFixture {
	t.Helper()
	stores := memstore.New(memstore.Options{})
	opts := orchestration.Options{Stores: stores, Executor: &recordingExecutor{}}
	if mutate != nil {
		mutate(&opts)
	}
	svc, err := orchestration.NewServices(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close(context.Background())) })
	em, err := orchestration.NewEmitter(orchestration.EmitterOptions{Stores: stores})
	require.NoError(t, err)
	return &readFixture{stores: stores, svc: svc, em: em}
}

func (f *readFixture) create(t *testing.T, owner, taskType string) string {
	t.Helper()
	created, err := f.svc.Creation.Create(context.Background(), createCmd(owner, contracts.NewID(), taskType, ""))
	require.NoError(t, err)
	return created.TaskID
}

func (f *readFixture) snapshot(t *testing.T, owner, taskID string) contracts.TaskSnapshot {
	t.Helper()
	snap, err := f.svc.Tasks.Snapshot(context.Background(), contracts.AuthContext{Subject: owner}, taskID)
	require.NoError(t, err)
	return snap
}

func TestSnapshotFollowsTheTask(t *testing.T) {
	ctx := context.Background()
	f := newReadFixture(t, nil)
	id := f.create(t, "alice", "report")

	snap := f.snapshot(t, "alice", id)
	assert.Equal(t, contracts.StatusAccepted, snap.Status)
	assert.Equal(t, "report", snap.TaskType)
	assert.Nil(t, snap.LastEventID, "no event yet")
	assert.Nil(t, snap.Progress)

	_, err := f.em.Started(ctx, id, "")
	require.NoError(t, err)
	ev, err := f.em.Progress(ctx, id, 40, "render", "Rendering")
	require.NoError(t, err)
	snap = f.snapshot(t, "alice", id)
	assert.Equal(t, contracts.StatusRunning, snap.Status)
	require.NotNil(t, snap.LastEventID)
	assert.Equal(t, ev.EventID, *snap.LastEventID)
	assert.Equal(t, &contracts.ProgressSnapshot{Percent: 40, Stage: "render", Message: "Rendering"}, snap.Progress)
	assert.False(t, snap.UpdatedAt.Before(ev.CreatedAt), "updatedAt follows the latest event")

	rec, err := f.em.Suspend(ctx, id, orchestration.SuspendSpec{ReasonCode: "approval_required",
		AllowedActions: []string{"approve"}, Timeout: time.Hour, UIHints: map[string]any{"title": "OK?"}})
	require.NoError(t, err)
	snap = f.snapshot(t, "alice", id)
	require.NotNil(t, snap.Suspension)
	assert.Equal(t, rec.SuspendID, snap.Suspension.SuspendID)
	assert.Equal(t, contracts.KindUserActionRequired, snap.Suspension.Kind)
	assert.Equal(t, []string{"approve"}, snap.Suspension.AllowedActions)
	require.NotNil(t, snap.Suspension.ExpiresAt)
	assert.True(t, rec.ExpiresAt.Equal(*snap.Suspension.ExpiresAt))
	assert.Equal(t, "OK?", snap.Suspension.UIHints["title"])
	assert.NotNil(t, snap.Progress, "the latest progress stays")

	res, err := f.svc.Actions.Submit(ctx, actionCmd("alice", rec, "a1", "approve", ""))
	require.NoError(t, err)
	require.Equal(t, contracts.ActionStatusAccepted, res.Status)
	assert.Nil(t, f.snapshot(t, "alice", id).Suspension, "the accepted action closes it")

	_, err = f.em.Complete(ctx, id, map[string]int{"pages": 3})
	require.NoError(t, err)
	snap = f.snapshot(t, "alice", id)
	assert.Equal(t, contracts.StatusCompleted, snap.Status)
	assert.JSONEq(t, `{"pages":3}`, string(snap.Result))
	assert.Nil(t, snap.Failure)
	assert.Nil(t, snap.Cancellation)

	_, err = f.svc.Tasks.Snapshot(ctx, contracts.AuthContext{Subject: "bob"}, id)
	requireCode(t, err, bridgeerr.CodeTaskNotFound)
	_, err = f.svc.Tasks.Snapshot(ctx, contracts.AuthContext{Subject: "alice"}, "missing")
	requireCode(t, err, bridgeerr.CodeTaskNotFound)
}

func TestSnapshotTerminalStates(t *testing.T) {
	ctx := context.Background()
	f := newReadFixture(t, nil)

	failed := f.create(t, "alice", "t")
	_, err := f.em.Fail(ctx, failed, "BOOM", "it broke", true)
	require.NoError(t, err)
	snap := f.snapshot(t, "alice", failed)
	assert.Equal(t, contracts.StatusFailed, snap.Status)
	assert.Equal(t, &contracts.FailedPayload{Code: "BOOM", Message: "it broke", Retryable: true}, snap.Failure)
	assert.Nil(t, snap.Result)

	cancelled := f.create(t, "alice", "t")
	_, err = f.em.Started(ctx, cancelled, "")
	require.NoError(t, err)
	_, err = f.em.Suspend(ctx, cancelled, orchestration.SuspendSpec{ReasonCode: "r", AllowedActions: []string{"go"}})
	require.NoError(t, err)
	_, err = f.svc.Cancellation.Cancel(ctx, contracts.CancelTaskCommand{Auth: contracts.AuthContext{Subject: "alice"}, TaskID: cancelled, Reason: "user"})
	require.NoError(t, err)
	assert.True(t, f.snapshot(t, "alice", cancelled).CancelRequested)
	_, err = f.em.Cancelled(ctx, cancelled, "user", "stopped")
	require.NoError(t, err)
	snap = f.snapshot(t, "alice", cancelled)
	assert.Equal(t, contracts.StatusCancelled, snap.Status)
	assert.Equal(t, &contracts.CancelledPayload{Reason: "user", Message: "stopped"}, snap.Cancellation)
	assert.Nil(t, snap.Suspension, "the end closes the suspension")

	null := f.create(t, "alice", "t")
	_, err = f.em.Complete(ctx, null, nil)
	require.NoError(t, err)
	snap = f.snapshot(t, "alice", null)
	assert.Equal(t, "null", string(snap.Result), "a null result is still a result")
	raw, err := json.Marshal(snap)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"result":null`)
}

// The log is the source of truth for the end: a terminal event the
// registry has not caught up with sets the status.
func TestSnapshotLogWinsOverALaggingRegistry(t *testing.T) {
	ctx := context.Background()
	f := newReadFixture(t, nil)
	id := f.create(t, "alice", "t")
	d, err := contracts.Failed("EXECUTOR_LOST", "gone", true)
	require.NoError(t, err)
	_, err = f.stores.Events.Append(ctx, id, d) // no registry update, as after a crash between the two
	require.NoError(t, err)
	snap := f.snapshot(t, "alice", id)
	assert.Equal(t, contracts.StatusFailed, snap.Status)
	require.NotNil(t, snap.Failure)
	assert.Equal(t, "EXECUTOR_LOST", snap.Failure.Code)
}

// An open suspension past its deadline is not reported.
func TestSnapshotHidesAnExpiredSuspension(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newReadFixture(t, func(o *orchestration.Options) { o.Clock = clock })
	id := f.create(t, "alice", "t")
	_, err := f.em.Suspend(ctx, id, orchestration.SuspendSpec{ReasonCode: "r", AllowedActions: []string{"go"},
		ExpiresAt: now.Add(time.Minute)})
	require.NoError(t, err)
	assert.NotNil(t, f.snapshot(t, "alice", id).Suspension)
	now = now.Add(time.Minute)
	assert.Nil(t, f.snapshot(t, "alice", id).Suspension)
}

// summarylessEvents hides the store's SummaryReader.
type summarylessEvents struct{ contracts.EventStore }

// Without summaries the snapshot folds the retained log: the same answer.
func TestSnapshotWithoutSummaries(t *testing.T) {
	ctx := context.Background()
	f := newReadFixture(t, nil)
	plain := newReadFixture(t, func(o *orchestration.Options) {
		o.Stores = f.stores
		o.Stores.Events = summarylessEvents{f.stores.Events}
	})
	id := f.create(t, "alice", "t")
	_, err := f.em.Started(ctx, id, "")
	require.NoError(t, err)
	for i := range 2*orchestration.MaxPageLimit + 3 {
		_, err = f.em.Progress(ctx, id, float64(i%100), "", fmt.Sprint(i))
		require.NoError(t, err)
	}
	_, err = f.em.Fail(ctx, id, "X", "y", false)
	require.NoError(t, err)
	assert.Equal(t, f.snapshot(t, "alice", id), plain.snapshot(t, "alice", id))
}

func TestListTasks(t *testing.T) {
	ctx := context.Background()
	f := newReadFixture(t, nil)
	var ids []string
	for i := range 5 {
		ids = append(ids, f.create(t, "alice", []string{"a", "b"}[i%2]))
	}
	f.create(t, "bob", "a")
	_, err := f.em.Started(ctx, ids[1], "")
	require.NoError(t, err)
	_, err = f.em.Complete(ctx, ids[3], "ok")
	require.NoError(t, err)

	list := func(q contracts.ListTasksQuery) []string {
		t.Helper()
		q.Auth = contracts.AuthContext{Subject: "alice"}
		var got []string
		for {
			page, err := f.svc.Tasks.List(ctx, q)
			require.NoError(t, err)
			for _, s := range page.Tasks {
				got = append(got, s.TaskID)
			}
			if page.NextCursor == nil {
				return got
			}
			q.Cursor, err = contracts.ParseTaskCursor(*page.NextCursor)
			require.NoError(t, err)
		}
	}
	assert.ElementsMatch(t, ids, list(contracts.ListTasksQuery{Limit: 2}))
	assert.Equal(t, []string{ids[3]}, list(contracts.ListTasksQuery{Statuses: []contracts.TaskStatus{contracts.StatusCompleted}}))
	assert.ElementsMatch(t, []string{ids[1], ids[3]}, list(contracts.ListTasksQuery{TaskTypes: []string{"b"}}))

	page, err := f.svc.Tasks.List(ctx, contracts.ListTasksQuery{Auth: contracts.AuthContext{Subject: "alice"}})
	require.NoError(t, err)
	require.Len(t, page.Tasks, 5)
	for _, s := range page.Tasks {
		if s.TaskID == ids[3] {
			assert.Equal(t, contracts.StatusCompleted, s.Status)
			assert.JSONEq(t, `"ok"`, string(s.Result), "list items are snapshots")
		}
	}
	page, err = f.svc.Tasks.List(ctx, contracts.ListTasksQuery{})
	require.NoError(t, err)
	assert.Empty(t, page.Tasks, "an empty subject owns nothing")
	assert.True(t, f.svc.Tasks.CanList())
}

// hideType is an ownership policy that hides one task type from everyone.
type hideType struct{ typ string }

func (hideType) CanCreate(context.Context, contracts.AuthContext) error { return nil }

func (h hideType) CanAccess(ctx context.Context, a contracts.AuthContext, task contracts.TaskRecord) error {
	if task.TaskType == h.typ {
		return fmt.Errorf("hidden")
	}
	return orchestration.SubjectOwnership{}.CanAccess(ctx, a, task)
}

// A custom ownership policy is applied to every listed task.
func TestListTasksAppliesCustomOwnership(t *testing.T) {
	ctx := context.Background()
	f := newReadFixture(t, func(o *orchestration.Options) {
		o.Ownership = hideType{"secret"}
	})
	visible := f.create(t, "alice", "open")
	f.create(t, "alice", "secret")
	page, err := f.svc.Tasks.List(ctx, contracts.ListTasksQuery{Auth: contracts.AuthContext{Subject: "alice"}})
	require.NoError(t, err)
	require.Len(t, page.Tasks, 1)
	assert.Equal(t, visible, page.Tasks[0].TaskID)
}

// registryOnly hides the registry's TaskLister.
type registryOnly struct{ contracts.TaskRegistry }

func TestListTasksNeedsALister(t *testing.T) {
	f := newReadFixture(t, nil)
	plain := newReadFixture(t, func(o *orchestration.Options) {
		o.Stores = f.stores
		o.Stores.Tasks = registryOnly{f.stores.Tasks}
	})
	assert.False(t, plain.svc.Tasks.CanList())
	_, err := plain.svc.Tasks.List(context.Background(), contracts.ListTasksQuery{Auth: contracts.AuthContext{Subject: "a"}})
	requireCode(t, err, bridgeerr.CodeInternal)
}
