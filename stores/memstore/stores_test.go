package memstore_test

import (
	"context"
	"encoding/json"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

func TestTaskRegistryCreateDefaultsAndCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	reg := memstore.NewTaskRegistry(memstore.Options{Clock: func() time.Time { return now }})
	input := json.RawMessage(`{"n":1}`)
	rec, created, err := reg.Create(ctx, contracts.TaskRecord{TaskID: "t", OwnerID: "o", ClientRequestID: "r", Input: input})
	require.NoError(t, err)
	require.True(t, created)
	assert.Equal(t, contracts.StatusAccepted, rec.Status, "an empty status becomes ACCEPTED")
	assert.Equal(t, now, rec.CreatedAt)
	assert.Equal(t, now, rec.UpdatedAt)

	input[2] = 'm'
	got, err := reg.Get(ctx, "t")
	require.NoError(t, err)
	assert.JSONEq(t, `{"n":1}`, string(got.Input), "Create copies the input")

	_, _, err = reg.Create(ctx, contracts.TaskRecord{OwnerID: "o", ClientRequestID: "x"})
	require.Error(t, err, "a task id is required")

	_, _, err = reg.Create(ctx, contracts.TaskRecord{TaskID: "t", OwnerID: "o", ClientRequestID: "other"})
	require.ErrorIs(t, err, contracts.ErrAlreadyExists, "a task id taken under another key")

	a, created, err := reg.Create(ctx, contracts.TaskRecord{TaskID: "n1", OwnerID: "o"})
	require.NoError(t, err)
	require.True(t, created)
	b, created, err := reg.Create(ctx, contracts.TaskRecord{TaskID: "n2", OwnerID: "o"})
	require.NoError(t, err)
	assert.True(t, created, "records without a clientRequestId have no idempotency key")
	assert.NotEqual(t, a.TaskID, b.TaskID)
}

func TestTaskRegistryUpdatedAtAndCancelReason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clock := func() time.Time { return now }
	reg := memstore.NewTaskRegistry(memstore.Options{Clock: clock})
	_, _, err := reg.Create(ctx, contracts.TaskRecord{TaskID: "t", OwnerID: "o", ClientRequestID: "r"})
	require.NoError(t, err)

	now = now.Add(time.Second)
	rec, err := reg.UpdateStatus(ctx, "t", contracts.StatusRunning)
	require.NoError(t, err)
	assert.Equal(t, now, rec.UpdatedAt)

	now = now.Add(time.Second)
	rec, err = reg.UpdateStatus(ctx, "t", contracts.StatusRunning)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-time.Second), rec.UpdatedAt, "a no-op does not touch UpdatedAt")

	_, err = reg.UpdateStatus(ctx, "t", "BOGUS")
	require.ErrorIs(t, err, contracts.ErrInvalidTransition)

	rec, err = reg.RequestCancellation(ctx, "t", "first")
	require.NoError(t, err)
	assert.Equal(t, now, rec.UpdatedAt)
	rec, err = reg.RequestCancellation(ctx, "t", "second")
	require.NoError(t, err)
	assert.Equal(t, "first", rec.CancelReason, "the first reason is kept")
}

func TestSuspensionStoreSpecifics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s := memstore.NewSuspensionStore(memstore.Options{Clock: func() time.Time { return now }})

	require.NoError(t, s.Create(ctx, contracts.SuspensionRecord{TaskID: "t", SuspendID: "s", Status: contracts.SuspensionResolved}))
	rec, err := s.Get(ctx, "t", "s")
	require.NoError(t, err)
	assert.Equal(t, contracts.SuspensionOpen, rec.Status, "Create always stores an OPEN suspension")
	assert.Equal(t, contracts.HandoffNone, rec.Handoff)
	assert.Equal(t, now, rec.CreatedAt)

	_, err = s.MarkResumeDispatched(ctx, "t", "s")
	require.ErrorIs(t, err, contracts.ErrInvalidTransition, "only a RESOLVED suspension can be dispatched")
	_, _, err = s.Resolve(ctx, "t", "s", contracts.Resolution{Status: contracts.SuspensionOpen})
	require.ErrorIs(t, err, contracts.ErrInvalidTransition)

	rec, won, err := s.Resolve(ctx, "t", "s", contracts.Resolution{Status: contracts.SuspensionResolved, ClientActionID: "a"})
	require.NoError(t, err)
	require.True(t, won)
	assert.Equal(t, now, rec.ResolvedAt, "a zero Resolution.At is the clock's time")

	for i, id := range []string{"s3", "s2", "s1"} {
		require.NoError(t, s.Create(ctx, contracts.SuspensionRecord{TaskID: "t", SuspendID: id}))
		_, _, err := s.Resolve(ctx, "t", id, contracts.Resolution{Status: contracts.SuspensionResolved, ClientActionID: id,
			At: now.Add(-time.Duration(i+1) * time.Minute)})
		require.NoError(t, err)
	}
	pending, err := s.PendingHandoffs(ctx, 0)
	require.NoError(t, err)
	var order []string
	for _, p := range pending {
		order = append(order, p.SuspendID)
	}
	assert.Equal(t, []string{"s1", "s2", "s3", "s"}, order, "oldest ResolvedAt first; limit 0 lists all")

	rec, err = s.MarkResumeDispatched(ctx, "t", "s")
	require.NoError(t, err)
	rec, err = s.MarkResumeDispatched(ctx, "t", "s")
	require.NoError(t, err, "dispatching twice is a no-op")
	assert.Equal(t, contracts.HandoffDispatched, rec.Handoff)
}

func TestListenSpecifics(t *testing.T) {
	t.Parallel()
	s := memstore.NewEventStore(memstore.Options{})
	require.Error(t, s.Listen(context.Background(), nil), "a nil callback is refused")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, s.Listen(ctx, func(contracts.Change) {}), context.Canceled, "a done context returns at once")

	// After Listen returns, fn is never called again.
	var calls atomic.Int64
	lctx, lcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	registered := make(chan struct{})
	go func() {
		done <- s.Listen(lctx, func(c contracts.Change) {
			if calls.Add(1) == 1 {
				close(registered)
			}
		})
	}()
	// Appending until the first call arrives proves registration.
	giveUp := time.Now().Add(10 * time.Second)
	for registeredYet := false; !registeredYet; {
		require.True(t, time.Now().Before(giveUp), "Listen never called fn")
		_, err := s.Append(context.Background(), "probe", contracts.Started(""))
		require.NoError(t, err)
		select {
		case <-registered:
			registeredYet = true
		default:
			runtime.Gosched()
		}
	}
	lcancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after its context was cancelled")
	}
	before := calls.Load()
	_, err := s.Append(context.Background(), "t", contracts.Started(""))
	require.NoError(t, err)
	assert.Equal(t, before, calls.Load())
}
