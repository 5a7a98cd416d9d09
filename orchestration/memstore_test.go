package orchestration_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// The concurrency rules again, over the real in-memory stores.

func memServices(t testing.TB, stores contracts.Stores, exec contracts.Executor, hook orchestration.ResumeHook) *orchestration.Services {
	t.Helper()
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: exec, Resume: hook,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close(context.Background())) })
	return svc
}

func TestMemstoreConcurrentCreates(t *testing.T) {
	stores := memstore.New(memstore.Options{})
	exec := &recordingExecutor{}
	svc := memServices(t, stores, exec, nil)
	const n = 50
	results := make([]contracts.TaskCreated, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = svc.Creation.Create(context.Background(), createCmd("alice", "same", "t", `{"a":1}`))
		})
	}
	close(start)
	wg.Wait()
	dedup := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, results[0].TaskID, results[i].TaskID)
		if results[i].Deduplicated {
			dedup++
		}
	}
	assert.Equal(t, n-1, dedup)
	submits, _ := exec.calls()
	assert.Equal(t, 1, submits)
}

func TestMemstoreConcurrentActions(t *testing.T) {
	stores := memstore.New(memstore.Options{})
	hook := &recordingHook{}
	svc := memServices(t, stores, &recordingExecutor{}, hook)
	created, err := svc.Creation.Create(context.Background(), createCmd("alice", "r", "t", ""))
	require.NoError(t, err)
	em := newEmitter(t, stores.Tasks, stores.Events, stores.Suspensions, nil)
	susp, err := em.Suspend(context.Background(), created.TaskID, orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"go"}})
	require.NoError(t, err)

	const n = 20
	results := make([]contracts.ActionResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = svc.Actions.Submit(context.Background(), actionCmd("alice", susp, fmt.Sprintf("c%d", i), "go", ""))
		})
	}
	close(start)
	wg.Wait()
	accepted := 0
	for i := range n {
		require.NoError(t, errs[i])
		if results[i].Status == contracts.ActionStatusAccepted {
			accepted++
		} else {
			assert.Equal(t, contracts.ActionStatusRejectedAlreadyResolved, results[i].Status)
		}
	}
	assert.Equal(t, 1, accepted)
	page, err := stores.Events.Read(context.Background(), created.TaskID, contracts.EventID{}, 100)
	require.NoError(t, err)
	assert.Equal(t, 1, countType(page.Events, contracts.EventActionAccepted))
	assert.Equal(t, 1, hook.count())
}

func TestPollReportsRetentionGap(t *testing.T) {
	stores := memstore.New(memstore.Options{MaxEventsPerTask: 3})
	svc := memServices(t, stores, &recordingExecutor{}, nil)
	created, err := svc.Creation.Create(context.Background(), createCmd("alice", "r", "t", ""))
	require.NoError(t, err)
	evs := appendN(t, stores.Events, created.TaskID, 6)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := svc.Polling.Poll(ctx, contracts.PollQuery{
		Auth: auth("alice"), TaskID: created.TaskID, After: evs[0].EventID, Limit: 10, Wait: time.Hour,
	})
	require.NoError(t, err)
	assert.True(t, res.RetentionGap, "a cursor behind retention is reported")
	assert.Equal(t, ids(evs[3:]), ids(res.Events))

	res, err = svc.Polling.Poll(ctx, contracts.PollQuery{Auth: auth("alice"), TaskID: created.TaskID, After: evs[4].EventID, Limit: 10})
	require.NoError(t, err)
	assert.False(t, res.RetentionGap)
	assert.Equal(t, ids(evs[5:]), ids(res.Events))
}
