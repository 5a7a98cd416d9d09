package orchestration_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func TestSubscriptionAuthorize(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	got, err := h.svc.Subscription.Authorize(context.Background(), auth("alice"), task.TaskID)
	require.NoError(t, err)
	assert.Equal(t, task.TaskID, got.TaskID)

	_, foreign := h.svc.Subscription.Authorize(context.Background(), auth("bob"), task.TaskID)
	_, missing := h.svc.Subscription.Authorize(context.Background(), auth("bob"), "missing")
	_, empty := h.svc.Subscription.Authorize(context.Background(), auth("bob"), "")
	for _, err := range []error{foreign, missing, empty} {
		be := requireCode(t, err, bridgeerr.CodeTaskNotFound)
		assert.Equal(t, "task not found", be.Message)
		assert.ErrorIs(t, err, contracts.ErrNotFound)
	}
	assert.Equal(t, missing.Error(), foreign.Error())
}

func TestSubscriptionAuthorizeStoreFailureIsInternal(t *testing.T) {
	store := newFakeStore()
	h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Tasks: failingRegistry{fakeStore: store, getErr: errors.New("conn reset")}}})
	_, err := h.svc.Subscription.Authorize(context.Background(), auth("alice"), "x")
	requireCode(t, err, bridgeerr.CodeInternal)
}

func TestSubscriptionReplay(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	evs := appendN(t, h.store, task.TaskID, 4)
	rec, page, err := h.svc.Subscription.Replay(context.Background(), auth("alice"), task.TaskID, evs[0].EventID, 2)
	require.NoError(t, err)
	assert.Equal(t, task.TaskID, rec.TaskID)
	assert.Equal(t, ids(evs[1:3]), ids(page.Events))
	assert.False(t, page.Ended)

	_, _, err = h.svc.Subscription.Replay(context.Background(), auth("bob"), task.TaskID, contracts.EventID{}, 10)
	requireCode(t, err, bridgeerr.CodeTaskNotFound)
}
