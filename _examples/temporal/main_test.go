package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// checkOnce asserts what a client relies on for a demo.progress task of
// steps steps: ids strictly increasing, one TASK_STARTED first, each step's
// TASK_PROGRESS exactly once and in order, one TASK_COMPLETED last; a
// retry notice (TASK_MESSAGE) may appear in between.
func checkOnce(t *testing.T, evs []contracts.TaskEvent, steps int) {
	t.Helper()
	require.NotEmpty(t, evs)
	for i := 1; i < len(evs); i++ {
		require.Equal(t, 1, evs[i].EventID.Compare(evs[i-1].EventID), "ids must increase: %s after %s",
			evs[i].EventID, evs[i-1].EventID)
	}
	require.Equal(t, contracts.EventStarted, evs[0].Type)
	require.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type, "events: %v", types(evs))
	var progress []string
	for _, ev := range evs[1 : len(evs)-1] {
		switch ev.Type {
		case contracts.EventProgress:
			progress = append(progress, decode[contracts.ProgressPayload](t, ev).Message)
		case contracts.EventMessage:
			assert.Contains(t, decode[contracts.MessagePayload](t, ev).Message, "retrying step demo.work")
		default:
			t.Fatalf("unexpected %s in %v", ev.Type, types(evs))
		}
	}
	want := make([]string, steps)
	for i := range want {
		want[i] = fmt.Sprintf("step %d of %d", i+1, steps)
	}
	require.Equal(t, want, progress)
}

func TestCreatedOnAStreamedFromB(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.worker("w1")
	c.worker("w2")
	a, b := c.bridge("a"), c.bridge("b")

	var ready struct {
		Status  string
		Details map[string]struct{ Status string }
	}
	require.Equal(t, http.StatusOK, c.do(b, "GET", "/ready", "", &ready))
	assert.Equal(t, "ok", ready.Details["temporal"].Status, "ready: %+v", ready)
	assert.Equal(t, "ok", ready.Details["redis"].Status, "ready: %+v", ready)

	id := c.create(a, TypeProgress, `{"steps":5,"delayMs":50}`)
	got := c.stream(b, id, "").until(t, terminal)
	checkOnce(t, got, 5)
	assert.Equal(t, got, c.log(a, id), "the stream carries the log, no more, no less")
	for _, ev := range got {
		assert.NotEqual(t, contracts.EventMessage, ev.Type, "nothing was retried")
	}
	assert.JSONEq(t, `{"steps":5}`, string(decode[contracts.CompletedPayload](t, got[len(got)-1]).Result))
}

func TestWorkerKilledMidTask(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	w1 := c.worker("w1")
	a, b := c.bridge("a"), c.bridge("b")

	id := c.create(a, TypeProgress, `{"steps":8,"delayMs":400}`)
	s := c.stream(b, id, "")
	got := s.until(t, isType(contracts.EventProgress))
	got = append(got, s.until(t, isType(contracts.EventProgress))...)
	w1.kill9() // mid-step: its heartbeat stops, its workflow's sticky queue is dead
	c.worker("w2")
	got = append(got, s.until(t, terminal)...)

	checkOnce(t, got, 8)
	assert.Equal(t, got, c.log(b, id), "the stream carries the log, no gap, no duplicate")
}

func TestBridgeKilledClientResumesOnOther(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.worker("w1")
	a, b := c.bridge("a"), c.bridge("b")

	id := c.create(a, TypeProgress, `{"steps":6,"delayMs":300}`)
	got := c.stream(a, id, "").until(t, isType(contracts.EventProgress))
	a.kill9()
	got = append(got, c.stream(b, id, got[len(got)-1].EventID.String()).until(t, terminal)...)

	checkOnce(t, got, 6)
	assert.Equal(t, got, c.log(b, id))
}

func TestSuspensionSurvivesWorkerRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	w1 := c.worker("w1")
	a, b := c.bridge("a"), c.bridge("b")

	// Three suspended tasks: approved through B, approved through A, and
	// one whose deadline passes while no worker runs.
	viaB := c.create(a, TypeApproval, `{}`)
	viaA := c.create(b, TypeApproval, `{}`)
	expiring := c.create(a, TypeApproval, `{"timeoutMs":3000}`)
	suspended := map[string]string{}
	for _, id := range []string{viaB, viaA, expiring} {
		evs := c.stream(b, id, "").until(t, isType(contracts.EventSuspended))
		suspended[id] = decode[contracts.SuspendedPayload](t, evs[len(evs)-1]).SuspendID
	}
	w1.kill9()

	assert.Equal(t, contracts.ActionStatusAccepted, c.act(b, viaB, suspended[viaB], "approve").Status)
	assert.Equal(t, contracts.ActionStatusAccepted, c.act(a, viaA, suspended[viaA], "reject").Status)
	c.worker("w2")

	for id, decision := range map[string]string{viaB: "approve", viaA: "reject"} {
		evs := c.stream(a, id, "").until(t, terminal)
		require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended,
			contracts.EventActionAccepted, contracts.EventCompleted}, types(evs))
		assert.JSONEq(t, fmt.Sprintf(`{"decision":%q}`, decision),
			string(decode[contracts.CompletedPayload](t, evs[3]).Result))
	}
	evs := c.stream(b, expiring, "").until(t, terminal)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended, contracts.EventFailed}, types(evs))
	f := decode[contracts.FailedPayload](t, evs[2])
	assert.Equal(t, orchestration.CodeSuspensionExpired, f.Code)
	assert.False(t, f.Retryable)
	assert.Equal(t, contracts.ActionStatusRejectedExpired, c.act(a, expiring, suspended[expiring], "approve").Status)
}

func TestCancelThroughEitherBridge(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.worker("w1")
	a, b := c.bridge("a"), c.bridge("b")

	for _, pair := range [][2]*proc{{a, b}, {b, a}} {
		created, cancelledBy := pair[0], pair[1]
		id := c.create(created, TypeSleep, `{"delayMs":100}`)
		s := c.stream(created, id, "")
		s.until(t, isType(contracts.EventProgress))
		assert.Equal(t, contracts.CancelRequested, c.cancel(cancelledBy, id).Status)
		evs := s.until(t, terminal)
		last := evs[len(evs)-1]
		require.Equal(t, contracts.EventCancelled, last.Type)
		assert.Equal(t, "test_cancel", decode[contracts.CancelledPayload](t, last).Reason)
	}
}

func TestStartToCloseTimeoutFailsTask(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.worker("w1")
	a := c.bridge("a")

	id := c.create(a, TypeDeadline, `{"workMs":5000}`)
	evs := c.stream(a, id, "").until(t, terminal)
	require.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventMessage, contracts.EventFailed}, types(evs))
	assert.Equal(t, "retrying step demo.work: attempt 2 of 2", decode[contracts.MessagePayload](t, evs[1]).Message)
	f := decode[contracts.FailedPayload](t, evs[2])
	assert.Equal(t, tbtemporal.CodeTaskTimeout, f.Code)
	assert.True(t, f.Retryable)
}

func TestInvalidInputRejectedBeforeWorkflow(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.bridge("a")
	var env map[string]any
	code := c.do(a, "POST", "/api/v1/tasks", `{"clientRequestId":"r1","taskType":"demo.deadline","input":{"workMs":-1}}`, &env)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "INVALID_REQUEST", env["code"])
	code = c.do(a, "POST", "/api/v1/tasks", `{"clientRequestId":"r2","taskType":"demo.unknown","input":{}}`, &env)
	assert.Equal(t, http.StatusBadRequest, code)
}
