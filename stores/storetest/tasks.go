package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// RunTaskRegistry checks a contracts.TaskRegistry: create and get, atomic
// idempotent create (one of 50 concurrent creates wins and every caller
// sees the winner), status transitions with ErrTerminal and
// ErrInvalidTransition, and cancellation requests. newRegistry must return a
// fresh, empty registry on each call.
func RunTaskRegistry(t *testing.T, newRegistry func(t *testing.T) contracts.TaskRegistry) {
	t.Helper()

	t.Run("CreateAndGet", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		want := newTask("task-1", "owner-1", "req-1")
		want.Metadata = json.RawMessage(`{"source":"test"}`)
		want.Attachments = []contracts.Attachment{{Filename: "a.txt", ContentType: "text/plain", Size: 3, SHA256: "abc"}}

		got, created, err := reg.Create(ctx, want)
		require.NoError(t, err)
		require.True(t, created)
		requireSameTask(t, want, got)

		got, err = reg.Get(ctx, "task-1")
		require.NoError(t, err)
		requireSameTask(t, want, got)
	})

	t.Run("GetUnknown", func(t *testing.T) {
		t.Parallel()
		_, err := newRegistry(t).Get(testContext(t), "missing")
		require.ErrorIs(t, err, contracts.ErrNotFound)
	})

	t.Run("IdempotentCreate", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		first := newTask("task-1", "owner-1", "req-1")
		_, created, err := reg.Create(ctx, first)
		require.NoError(t, err)
		require.True(t, created)

		repeat := newTask("task-2", "owner-1", "req-1")
		repeat.Input = json.RawMessage(`{"n":2}`)
		repeat.Fingerprint = "other"
		got, created, err := reg.Create(ctx, repeat)
		require.NoError(t, err)
		assert.False(t, created, "same (owner, clientRequestId) must not create")
		requireSameTask(t, first, got)
		_, err = reg.Get(ctx, "task-2")
		require.ErrorIs(t, err, contracts.ErrNotFound, "the losing record must not be stored")

		for _, other := range []contracts.TaskRecord{
			newTask("task-3", "owner-2", "req-1"), // other owner, same request id
			newTask("task-4", "owner-1", "req-2"), // same owner, other request id
		} {
			got, created, err := reg.Create(ctx, other)
			require.NoError(t, err)
			assert.True(t, created, "%s/%s is a different key", other.OwnerID, other.ClientRequestID)
			assert.Equal(t, other.TaskID, got.TaskID)
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		const n = 50
		recs := make([]contracts.TaskRecord, n)
		created := make([]bool, n)
		errs := make([]error, n)
		together(n, func(i int) {
			recs[i], created[i], errs[i] = reg.Create(ctx, newTask(fmt.Sprintf("task-%d", i), "owner-1", "same-request"))
		})
		winners := 0
		for i := range n {
			require.NoError(t, errs[i])
			if created[i] {
				winners++
			}
		}
		require.Equal(t, 1, winners, "exactly one of %d concurrent creates must create", n)
		winner := recs[0].TaskID
		for i := range n {
			assert.Equal(t, winner, recs[i].TaskID, "caller %d must see the winning task", i)
		}
		for i := range n {
			id := fmt.Sprintf("task-%d", i)
			_, err := reg.Get(ctx, id)
			if id == winner {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, contracts.ErrNotFound, "loser %s must not be stored", id)
			}
		}
	})

	t.Run("Transitions", func(t *testing.T) {
		t.Parallel()
		s := func(v ...contracts.TaskStatus) []contracts.TaskStatus { return v }
		cases := []struct {
			name    string
			path    []contracts.TaskStatus // moves applied in order from ACCEPTED
			wantErr error                  // of the last move
		}{
			{"accepted to running", s(contracts.StatusRunning), nil},
			{"running to completed", s(contracts.StatusRunning, contracts.StatusCompleted), nil},
			{"running to failed", s(contracts.StatusRunning, contracts.StatusFailed), nil},
			{"running to cancelled", s(contracts.StatusRunning, contracts.StatusCancelled), nil},
			{"accepted to cancelled", s(contracts.StatusCancelled), nil},
			{"accepted to failed", s(contracts.StatusFailed), nil},
			{"accepted to accepted is a no-op", s(contracts.StatusAccepted), nil},
			{"running to running is a no-op", s(contracts.StatusRunning, contracts.StatusRunning), nil},
			{"completed to completed is a no-op", s(contracts.StatusRunning, contracts.StatusCompleted, contracts.StatusCompleted), nil},
			{"accepted to completed", s(contracts.StatusCompleted), contracts.ErrInvalidTransition},
			{"running to accepted", s(contracts.StatusRunning, contracts.StatusAccepted), contracts.ErrInvalidTransition},
			{"completed to running", s(contracts.StatusRunning, contracts.StatusCompleted, contracts.StatusRunning), contracts.ErrTerminal},
			{"cancelled to failed", s(contracts.StatusCancelled, contracts.StatusFailed), contracts.ErrTerminal},
			{"failed to accepted", s(contracts.StatusFailed, contracts.StatusAccepted), contracts.ErrTerminal},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx := testContext(t)
				reg := newRegistry(t)
				task := newTask("task-1", "owner-1", "req-1")
				_, _, err := reg.Create(ctx, task)
				require.NoError(t, err)
				want := contracts.StatusAccepted
				for i, next := range tc.path {
					got, err := reg.UpdateStatus(ctx, "task-1", next)
					if i < len(tc.path)-1 || tc.wantErr == nil {
						require.NoError(t, err, "move %d to %s", i, next)
						want = next
						assert.Equal(t, next, got.Status)
						assert.Equal(t, "task-1", got.TaskID)
						assert.False(t, got.UpdatedAt.Before(task.CreatedAt), "UpdatedAt must not precede CreatedAt")
						continue
					}
					require.ErrorIs(t, err, tc.wantErr, "move %d to %s", i, next)
				}
				stored, err := reg.Get(ctx, "task-1")
				require.NoError(t, err)
				assert.Equal(t, want, stored.Status, "a refused move must leave the status alone")
			})
		}
	})

	t.Run("UpdateUnknown", func(t *testing.T) {
		t.Parallel()
		_, err := newRegistry(t).UpdateStatus(testContext(t), "missing", contracts.StatusRunning)
		require.ErrorIs(t, err, contracts.ErrNotFound)
	})

	t.Run("RequestCancellation", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		reg := newRegistry(t)
		_, _, err := reg.Create(ctx, newTask("task-1", "owner-1", "req-1"))
		require.NoError(t, err)
		_, err = reg.UpdateStatus(ctx, "task-1", contracts.StatusRunning)
		require.NoError(t, err)

		got, err := reg.RequestCancellation(ctx, "task-1", "user asked")
		require.NoError(t, err)
		assert.True(t, got.CancelRequested)
		assert.Equal(t, "user asked", got.CancelReason)
		assert.Equal(t, contracts.StatusRunning, got.Status, "requesting cancellation does not change the status")

		stored, err := reg.Get(ctx, "task-1")
		require.NoError(t, err)
		assert.True(t, stored.CancelRequested)
		assert.Equal(t, "user asked", stored.CancelReason)

		_, err = reg.UpdateStatus(ctx, "task-1", contracts.StatusCancelled)
		require.NoError(t, err)
		_, err = reg.RequestCancellation(ctx, "task-1", "again")
		require.ErrorIs(t, err, contracts.ErrTerminal)

		_, err = reg.RequestCancellation(ctx, "missing", "x")
		require.ErrorIs(t, err, contracts.ErrNotFound)
	})
	runTaskLister(t, newRegistry)
	runTaskFinder(t, newRegistry)
}

// newTask returns an ACCEPTED task record with every idempotency field set.
func newTask(taskID, owner, request string) contracts.TaskRecord {
	now := ms(time.Now())
	return contracts.TaskRecord{
		TaskID:          taskID,
		OwnerID:         owner,
		ClientRequestID: request,
		TaskType:        "demo",
		Input:           json.RawMessage(`{"n":1}`),
		Fingerprint:     "fp-" + request,
		Status:          contracts.StatusAccepted,
		CreatedAt:       now,
		UpdatedAt:       now,
	}
}

// requireSameTask fails unless got stores the fields of want.
func requireSameTask(tb testing.TB, want, got contracts.TaskRecord) {
	tb.Helper()
	require.Equal(tb, want.TaskID, got.TaskID)
	assert.Equal(tb, want.OwnerID, got.OwnerID)
	assert.Equal(tb, want.ClientRequestID, got.ClientRequestID)
	assert.Equal(tb, want.TaskType, got.TaskType)
	assert.JSONEq(tb, string(want.Input), string(got.Input))
	if len(want.Metadata) > 0 {
		assert.JSONEq(tb, string(want.Metadata), string(got.Metadata))
	}
	assert.Equal(tb, want.Fingerprint, got.Fingerprint)
	assert.Equal(tb, want.Status, got.Status)
	assert.Equal(tb, want.CancelRequested, got.CancelRequested)
	assert.Equal(tb, want.CancelReason, got.CancelReason)
	require.Len(tb, got.Attachments, len(want.Attachments))
	for i := range want.Attachments {
		w, g := want.Attachments[i], got.Attachments[i]
		assert.Equal(tb, w.Filename, g.Filename)
		assert.Equal(tb, w.ContentType, g.ContentType)
		assert.Equal(tb, w.Size, g.Size)
		assert.Equal(tb, w.SHA256, g.SHA256)
	}
	requireSameTime(tb, want.CreatedAt, got.CreatedAt, "CreatedAt")
}
