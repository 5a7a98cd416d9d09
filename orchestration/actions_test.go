package orchestration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// openSuspension stores an OPEN suspension of task.
func (h *harness) openSuspension(t testing.TB, task contracts.TaskRecord, expiresAt time.Time, allowed ...string) contracts.SuspensionRecord {
	t.Helper()
	if len(allowed) == 0 {
		allowed = []string{"approve", "reject"}
	}
	rec := contracts.SuspensionRecord{
		TaskID: task.TaskID, SuspendID: contracts.NewID(), OwnerID: task.OwnerID, Status: contracts.SuspensionOpen,
		Kind: contracts.KindUserActionRequired, ReasonCode: "REVIEW", AllowedActions: allowed, SchemaVersion: 1,
		Handoff: contracts.HandoffNone, CreatedAt: time.Now(), ExpiresAt: expiresAt,
	}
	require.NoError(t, suspensionStore{h.store}.Create(context.Background(), rec))
	return rec
}

func actionCmd(subject string, s contracts.SuspensionRecord, id, typ, payload string) contracts.SubmitActionCommand {
	cmd := contracts.SubmitActionCommand{Auth: auth(subject), TaskID: s.TaskID, SuspendID: s.SuspendID, ClientActionID: id, ActionType: typ}
	if payload != "" {
		cmd.Payload = json.RawMessage(payload)
	}
	return cmd
}

// recordingHook is a ResumeHook that records calls and fails on demand.
type recordingHook struct {
	mu    sync.Mutex
	calls []contracts.SubmitActionCommand
	fail  atomic.Bool
}

func (h *recordingHook) Resume(_ context.Context, cmd contracts.SubmitActionCommand, _ contracts.SuspensionRecord) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, cmd)
	if h.fail.Load() {
		return errors.New("worker unreachable")
	}
	return nil
}

func (h *recordingHook) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

func countType(evs []contracts.TaskEvent, typ contracts.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func TestActionAccepted(t *testing.T) {
	hook := &recordingHook{}
	h := newHarness(t, orchestration.Options{Resume: hook})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	susp := h.openSuspension(t, task, time.Time{})

	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", `{"b":2,"a":1}`))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionResult{TaskID: task.TaskID, SuspendID: susp.SuspendID, ClientActionID: "a1",
		Status: contracts.ActionStatusAccepted}, res)

	cur := h.store.suspension(task.TaskID, susp.SuspendID)
	assert.Equal(t, contracts.SuspensionResolved, cur.Status)
	assert.Equal(t, "a1", cur.SuccessfulActionID)
	assert.Equal(t, contracts.HandoffDispatched, cur.Handoff)

	rc, err := receiptStore{h.store}.Get(context.Background(), task.TaskID, "a1")
	require.NoError(t, err)
	assert.Equal(t, `{"a":1,"b":2}`, string(rc.Payload), "receipts keep the canonical payload")
	assert.Equal(t, "alice", rc.ActorID)
	assert.Equal(t, orchestration.DefaultReceiptTTL, rc.ExpiresAt.Sub(rc.CreatedAt))

	evs := h.store.all(task.TaskID)
	require.Len(t, evs, 1)
	assert.Equal(t, contracts.EventActionAccepted, evs[0].Type)
	p := payloadOf(t, evs[0])
	assert.Equal(t, susp.SuspendID, p["suspendId"])
	assert.Equal(t, "a1", p["clientActionId"])
	assert.Equal(t, "approve", p["actionType"])

	require.Equal(t, 1, hook.count())
	assert.Equal(t, `{"a":1,"b":2}`, string(hook.calls[0].Payload))
	assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricActions, observe.Tag{Key: observe.TagStatus, Value: "ACCEPTED"}))
}

func TestActionRepeats(t *testing.T) {
	tests := []struct {
		name    string
		repeat  func(contracts.SuspensionRecord) contracts.SubmitActionCommand
		want    contracts.ActionStatus
		errCode bridgeerr.Code
	}{
		{"same action", func(s contracts.SuspensionRecord) contracts.SubmitActionCommand {
			return actionCmd("alice", s, "a1", "approve", `{"a":1,"b":2}`)
		}, contracts.ActionStatusDeduplicated, ""},
		{"same payload in another key order", func(s contracts.SuspensionRecord) contracts.SubmitActionCommand {
			return actionCmd("alice", s, "a1", "approve", `{ "b":2, "a":1 }`)
		}, contracts.ActionStatusDeduplicated, ""},
		{"different payload", func(s contracts.SuspensionRecord) contracts.SubmitActionCommand {
			return actionCmd("alice", s, "a1", "approve", `{"a":2}`)
		}, "", bridgeerr.CodeIdempotencyConflict},
		{"different type", func(s contracts.SuspensionRecord) contracts.SubmitActionCommand {
			return actionCmd("alice", s, "a1", "reject", `{"a":1,"b":2}`)
		}, "", bridgeerr.CodeIdempotencyConflict},
		{"another action id after resolution", func(s contracts.SuspensionRecord) contracts.SubmitActionCommand {
			return actionCmd("alice", s, "a2", "approve", `{"a":1,"b":2}`)
		}, contracts.ActionStatusRejectedAlreadyResolved, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := &recordingHook{}
			h := newHarness(t, orchestration.Options{Resume: hook})
			task := h.seedTask(t, "alice", contracts.StatusRunning)
			susp := h.openSuspension(t, task, time.Time{})
			_, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", `{"a":1,"b":2}`))
			require.NoError(t, err)

			res, err := h.svc.Actions.Submit(context.Background(), tt.repeat(susp))
			if tt.errCode != "" {
				be := requireCode(t, err, tt.errCode)
				assert.Equal(t, 409, be.HTTPStatus())
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.want, res.Status)
			}
			assert.Equal(t, 1, countType(h.store.all(task.TaskID), contracts.EventActionAccepted))
			assert.Equal(t, 1, hook.count())
		})
	}
}

func TestActionNoPayloadEqualsEmptyObject(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	susp := h.openSuspension(t, task, time.Time{})
	_, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", ""))
	require.NoError(t, err)
	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", `{}`))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusDeduplicated, res.Status)
}

func TestActionRejectedAndInvalid(t *testing.T) {
	past := time.Now().Add(-time.Minute)
	tests := []struct {
		name    string
		setup   func(t *testing.T, h *harness) contracts.SubmitActionCommand
		want    contracts.ActionStatus
		errCode bridgeerr.Code
		check   func(t *testing.T, h *harness, cmd contracts.SubmitActionCommand, err error)
	}{
		{name: "type not allowed", errCode: bridgeerr.CodeInvalidRequest,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), time.Time{})
				return actionCmd("alice", s, "a1", "delete", "")
			},
			check: func(t *testing.T, _ *harness, _ contracts.SubmitActionCommand, err error) {
				var be *bridgeerr.Error
				require.ErrorAs(t, err, &be)
				assert.Equal(t, []string{"approve", "reject"}, be.Details["allowedActions"])
			}},
		{name: "payload not an object", errCode: bridgeerr.CodeInvalidRequest,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), time.Time{})
				return actionCmd("alice", s, "a1", "approve", `[1]`)
			}},
		{name: "missing clientActionId", errCode: bridgeerr.CodeInvalidRequest,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), time.Time{})
				return actionCmd("alice", s, "", "approve", "")
			}},
		{name: "missing suspension", errCode: bridgeerr.CodeTaskNotFound,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				task := h.seedTask(t, "alice", contracts.StatusRunning)
				return actionCmd("alice", contracts.SuspensionRecord{TaskID: task.TaskID, SuspendID: "nope"}, "a1", "approve", "")
			}},
		{name: "suspension of another task", errCode: bridgeerr.CodeTaskNotFound,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				other := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), time.Time{})
				mine := h.seedTask(t, "alice", contracts.StatusRunning)
				return actionCmd("alice", contracts.SuspensionRecord{TaskID: mine.TaskID, SuspendID: other.SuspendID}, "a1", "approve", "")
			}},
		{name: "foreign task", errCode: bridgeerr.CodeTaskNotFound,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), time.Time{})
				return actionCmd("mallory", s, "a1", "approve", "")
			}},
		{name: "expired status", want: contracts.ActionStatusRejectedExpired,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), time.Time{})
				_, _, err := suspensionStore{h.store}.Resolve(context.Background(), s.TaskID, s.SuspendID,
					contracts.Resolution{Status: contracts.SuspensionExpired, At: time.Now()})
				require.NoError(t, err)
				return actionCmd("alice", s, "a1", "approve", "")
			}},
		{name: "open past its deadline", want: contracts.ActionStatusRejectedExpired,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), past)
				return actionCmd("alice", s, "a1", "approve", "")
			},
			check: func(t *testing.T, h *harness, cmd contracts.SubmitActionCommand, _ error) {
				assert.Equal(t, contracts.SuspensionExpired, h.store.suspension(cmd.TaskID, cmd.SuspendID).Status)
			}},
		{name: "cancelled suspension", want: contracts.ActionStatusRejectedAlreadyResolved,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusRunning), time.Time{})
				_, _, err := suspensionStore{h.store}.Resolve(context.Background(), s.TaskID, s.SuspendID,
					contracts.Resolution{Status: contracts.SuspensionCancelled, At: time.Now()})
				require.NoError(t, err)
				return actionCmd("alice", s, "a1", "approve", "")
			}},
		{name: "terminal task", want: contracts.ActionStatusRejectedAlreadyResolved,
			setup: func(t *testing.T, h *harness) contracts.SubmitActionCommand {
				s := h.openSuspension(t, h.seedTask(t, "alice", contracts.StatusCancelled), time.Time{})
				return actionCmd("alice", s, "a1", "approve", "")
			},
			check: func(t *testing.T, h *harness, cmd contracts.SubmitActionCommand, _ error) {
				assert.Equal(t, contracts.SuspensionCancelled, h.store.suspension(cmd.TaskID, cmd.SuspendID).Status)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := &recordingHook{}
			h := newHarness(t, orchestration.Options{Resume: hook})
			cmd := tt.setup(t, h)
			res, err := h.svc.Actions.Submit(context.Background(), cmd)
			if tt.errCode != "" {
				requireCode(t, err, tt.errCode)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.want, res.Status)
			}
			if tt.check != nil {
				tt.check(t, h, cmd, err)
			}
			assert.Zero(t, hook.count())
			assert.Zero(t, countType(h.store.all(cmd.TaskID), contracts.EventActionAccepted))
		})
	}
}

func TestActionResumeFailureLeavesPendingHandoff(t *testing.T) {
	hook := &recordingHook{}
	hook.fail.Store(true)
	h := newHarness(t, orchestration.Options{Resume: hook})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	susp := h.openSuspension(t, task, time.Time{})
	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", `{"x":1}`))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusAccepted, res.Status, "the action stands though the hook failed")
	assert.Equal(t, contracts.HandoffPending, h.store.suspension(task.TaskID, susp.SuspendID).Handoff)
	assert.Equal(t, 1.0, h.metrics.Counter(observe.MetricResumePending))

	// Reconciliation retries: still failing, nothing dispatched.
	n, err := h.svc.Reconciliation.ReconcilePending(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, contracts.HandoffPending, h.store.suspension(task.TaskID, susp.SuspendID).Handoff)

	hook.fail.Store(false)
	n, err = h.svc.Reconciliation.ReconcilePending(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, contracts.HandoffDispatched, h.store.suspension(task.TaskID, susp.SuspendID).Handoff)
	require.Equal(t, 3, hook.count())
	rebuilt := hook.calls[2]
	assert.Equal(t, "a1", rebuilt.ClientActionID)
	assert.Equal(t, "approve", rebuilt.ActionType)
	assert.Equal(t, `{"x":1}`, string(rebuilt.Payload))
	assert.Equal(t, "alice", rebuilt.Auth.Subject)

	n, err = h.svc.Reconciliation.ReconcilePending(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to reconcile")
}

func TestActionConcurrentDifferentActionsAcceptOne(t *testing.T) {
	hook := &recordingHook{}
	h := newHarness(t, orchestration.Options{Resume: hook})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	susp := h.openSuspension(t, task, time.Time{})
	const n = 20
	results := make([]contracts.ActionResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = h.svc.Actions.Submit(context.Background(),
				actionCmd("alice", susp, fmt.Sprintf("a%d", i), "approve", fmt.Sprintf(`{"i":%d}`, i)))
		})
	}
	close(start)
	wg.Wait()
	accepted := 0
	for i := range n {
		require.NoError(t, errs[i])
		switch results[i].Status {
		case contracts.ActionStatusAccepted:
			accepted++
		case contracts.ActionStatusRejectedAlreadyResolved:
		default:
			t.Errorf("unexpected status %s", results[i].Status)
		}
	}
	assert.Equal(t, 1, accepted)
	assert.Equal(t, 1, countType(h.store.all(task.TaskID), contracts.EventActionAccepted))
	assert.Equal(t, 1, hook.count())
}

func TestActionConcurrentSameActionDeduplicates(t *testing.T) {
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	susp := h.openSuspension(t, task, time.Time{})
	const n = 20
	results := make([]contracts.ActionResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "same", "approve", `{"ok":true}`))
		})
	}
	close(start)
	wg.Wait()
	counts := map[contracts.ActionStatus]int{}
	for i := range n {
		require.NoError(t, errs[i])
		counts[results[i].Status]++
	}
	assert.Equal(t, map[contracts.ActionStatus]int{
		contracts.ActionStatusAccepted: 1, contracts.ActionStatusDeduplicated: n - 1,
	}, counts)
	assert.Equal(t, 1, countType(h.store.all(task.TaskID), contracts.EventActionAccepted))
}

// failingEvents makes Append fail.
type failingEvents struct {
	*fakeStore
	appendErr error
}

func (f failingEvents) Append(context.Context, string, contracts.EventDraft) (contracts.TaskEvent, error) {
	return contracts.TaskEvent{}, f.appendErr
}

func TestActionAppendFailure(t *testing.T) {
	t.Run("task ended meanwhile", func(t *testing.T) {
		store := newFakeStore()
		hook := &recordingHook{}
		h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Events: failingEvents{store, contracts.ErrTerminal}}, Resume: hook})
		task := h.seedTask(t, "alice", contracts.StatusRunning)
		susp := h.openSuspension(t, task, time.Time{})
		_, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", ""))
		requireCode(t, err, bridgeerr.CodeTaskAlreadyTerminal)
		assert.Zero(t, hook.count())
		assert.Equal(t, contracts.HandoffDispatched, store.suspension(task.TaskID, susp.SuspendID).Handoff,
			"nothing is left for reconciliation")
	})
	t.Run("store failure", func(t *testing.T) {
		store := newFakeStore()
		h := newHarnessOn(t, store, orchestration.Options{Stores: contracts.Stores{Events: failingEvents{store, errors.New("io")}}})
		task := h.seedTask(t, "alice", contracts.StatusRunning)
		susp := h.openSuspension(t, task, time.Time{})
		_, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", susp, "a1", "approve", ""))
		requireCode(t, err, bridgeerr.CodeInternal)
	})
}

func TestActionWinnerBeforeItsReceiptIsDeduplicated(t *testing.T) {
	// The winner of the compare-and-set has not saved its receipt yet when
	// its own retry arrives: the retry is the same action.
	h := newHarness(t, orchestration.Options{})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	s := h.openSuspension(t, task, time.Time{})
	_, _, err := suspensionStore{h.store}.Resolve(context.Background(), task.TaskID, s.SuspendID,
		contracts.Resolution{Status: contracts.SuspensionResolved, ClientActionID: "a1", At: time.Now()})
	require.NoError(t, err)
	res, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", s, "a1", "approve", ""))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusDeduplicated, res.Status)
	res, err = h.svc.Actions.Submit(context.Background(), actionCmd("alice", s, "a2", "approve", ""))
	require.NoError(t, err)
	assert.Equal(t, contracts.ActionStatusRejectedAlreadyResolved, res.Status)
}

func TestResumeFuncAdapter(t *testing.T) {
	called := make(chan string, 1)
	hook := orchestration.ResumeFunc(func(_ context.Context, cmd contracts.SubmitActionCommand, _ contracts.SuspensionRecord) error {
		called <- cmd.ClientActionID
		return nil
	})
	h := newHarness(t, orchestration.Options{Resume: hook})
	task := h.seedTask(t, "alice", contracts.StatusRunning)
	s := h.openSuspension(t, task, time.Time{})
	_, err := h.svc.Actions.Submit(context.Background(), actionCmd("alice", s, "a1", "approve", ""))
	require.NoError(t, err)
	assert.Equal(t, "a1", recv(t, called, "hook"))
}
