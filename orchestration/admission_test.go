package orchestration_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// TestSubjectLimits: a subject's creates past MaxActiveTasks or its create
// rate are refused with QUOTA_EXCEEDED before anything is stored, other
// subjects go on, a deduplicated retry costs no token, and a slot comes
// back once a task ends.
func TestSubjectLimits(t *testing.T) {
	t.Parallel()
	svc, stores, exec, now := limitedServices(t, orchestration.SubjectLimits{MaxActiveTasks: 2, CreatesPerSecond: 1, CreateBurst: 4})
	clock := func() time.Time { return *now }
	ctx := context.Background()
	create := func(subject, request string) (contracts.TaskCreated, error) {
		return svc.Creation.Create(ctx, contracts.CreateTaskCommand{Auth: contracts.AuthContext{Subject: subject},
			ClientRequestID: request, TaskType: "block"})
	}
	quota := func(err error, limit string) {
		t.Helper()
		var be *bridgeerr.Error
		require.ErrorAs(t, err, &be)
		assert.Equal(t, bridgeerr.CodeQuotaExceeded, be.Code)
		assert.Equal(t, limit, be.Details["limit"])
	}

	a1, err := create("alice", "a1")
	require.NoError(t, err)
	_, err = create("alice", "a2")
	require.NoError(t, err)
	_, err = create("alice", "a3")
	quota(err, "MaxActiveTasks")
	_, err = create("bob", "b1")
	require.NoError(t, err, "another subject is not held back")

	// a1 ends: its slot comes back (after the look-up throttle), and a3,
	// refused before, creates its task now (nothing was stored for it).
	_, err = svc.Cancellation.Cancel(ctx, contracts.CancelTaskCommand{Auth: contracts.AuthContext{Subject: "alice"}, TaskID: a1.TaskID})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		rec, err := stores.Tasks.Get(ctx, a1.TaskID)
		return err == nil && rec.Status.IsTerminal()
	}, 10*time.Second, time.Millisecond)
	*now = now.Add(time.Second)
	a3, err := create("alice", "a3")
	require.NoError(t, err)
	assert.False(t, a3.Deduplicated)

	// The rate, for a subject with room for tasks: a burst of 4, then one
	// per second; a deduplicated retry costs nothing.
	rated := must(orchestration.NewServices(orchestration.Options{Stores: stores, Executor: exec, Clock: clock,
		SubjectLimits: orchestration.SubjectLimits{MaxActiveTasks: -1, CreatesPerSecond: 1, CreateBurst: 4}}))(t)
	t.Cleanup(func() { require.NoError(t, rated.Close(context.Background())) })
	createRated := func(request string) (contracts.TaskCreated, error) {
		return rated.Creation.Create(ctx, contracts.CreateTaskCommand{Auth: contracts.AuthContext{Subject: "carol"},
			ClientRequestID: request, TaskType: "block"})
	}
	for _, r := range []string{"c1", "c2", "c3", "c4"} {
		_, err := createRated(r)
		require.NoError(t, err, r)
	}
	_, err = createRated("c5")
	quota(err, "CreatesPerSecond")
	*now = now.Add(time.Second)
	_, err = createRated("c1")
	require.NoError(t, err, "a deduplicated retry")
	_, err = createRated("c5")
	require.NoError(t, err, "the token refilled in a second is still there")
}

// TestRefusedRetryAnswersItsTask: a retry of a create that did succeed,
// arriving while its subject is at MaxActiveTasks, answers the task
// (deduplicated) and gets its create token back; refused new creates
// cost a token each, so a subject at its limit cannot make registry
// look-ups faster than its create rate: once the tokens are spent its
// creates are refused by CreatesPerSecond, before any look-up, and a
// retry then waits for a token like any create.
func TestRefusedRetryAnswersItsTask(t *testing.T) {
	t.Parallel()
	svc, _, _, now := limitedServices(t, orchestration.SubjectLimits{MaxActiveTasks: 1, CreatesPerSecond: 1, CreateBurst: 4})
	ctx := context.Background()
	create := func(request string) (contracts.TaskCreated, error) {
		return svc.Creation.Create(ctx, contracts.CreateTaskCommand{Auth: contracts.AuthContext{Subject: "alice"},
			ClientRequestID: request, TaskType: "block"})
	}
	limit := func(err error) string {
		t.Helper()
		var be *bridgeerr.Error
		require.ErrorAs(t, err, &be)
		require.Equal(t, bridgeerr.CodeQuotaExceeded, be.Code)
		return be.Details["limit"].(string)
	}

	a1, err := create("a1") // token 1 of 4
	require.NoError(t, err)
	for range 5 {
		again, err := create("a1") // at the limit, answered: tokens back
		require.NoError(t, err)
		assert.Equal(t, a1.TaskID, again.TaskID)
		assert.True(t, again.Deduplicated)
	}
	_, err = create("a2") // refused by the active limit: token 2
	assert.Equal(t, "MaxActiveTasks", limit(err))
	_, err = create("a3") // token 3
	assert.Equal(t, "MaxActiveTasks", limit(err))
	_, err = create("a4") // token 4
	assert.Equal(t, "MaxActiveTasks", limit(err))
	_, err = create("a5")
	assert.Equal(t, "CreatesPerSecond", limit(err), "no token left: refused before a look-up")
	_, err = create("a1")
	assert.Equal(t, "CreatesPerSecond", limit(err), "a retry too waits for a token")
	*now = now.Add(time.Second)
	again, err := create("a1")
	require.NoError(t, err, "with a token, the retry answers its task")
	assert.Equal(t, a1.TaskID, again.TaskID)
}

// limitedServices builds services with limits over memory stores, an
// executor whose "block" tasks run until Close, and a clock the test sets
// through the returned time (it starts at 2026-01-01). Both are closed at
// cleanup.
func limitedServices(t *testing.T, limits orchestration.SubjectLimits) (*orchestration.Services, contracts.Stores, *orchestration.Executor, *time.Time) {
	t.Helper()
	stores := memstore.New(memstore.Options{})
	// No drain: Close cancels the blocked tasks at once.
	exec := must(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, DrainTimeout: -1}))(t)
	exec.Handle("block", func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
		<-ctx.Done()
		return nil, nil
	})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := must(orchestration.NewServices(orchestration.Options{Stores: stores, Executor: exec,
		Clock: func() time.Time { return now }, SubjectLimits: limits}))(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, exec.Close(ctx))
		require.NoError(t, svc.Close(ctx))
	})
	return svc, stores, exec, &now
}
