package fiberbridge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
)

// snapshot reads GET /api/v1/tasks/:taskId and checks it against the
// TaskSnapshot schemas (the served OpenAPI document checks it too).
func (h *harness) snapshot(token, taskID string) contracts.TaskSnapshot {
	h.t.Helper()
	r := h.request(http.MethodGet, "/api/v1/tasks/"+url.PathEscape(taskID), token, "", nil)
	require.Equal(h.t, http.StatusOK, r.status, string(r.body))
	conformance.CheckBody(h.t, conformance.TaskSnapshot, r.body)
	var snap contracts.TaskSnapshot
	require.NoError(h.t, json.Unmarshal(r.body, &snap))
	return snap
}

// list reads one page of GET /api/v1/tasks with query.
func (h *harness) list(token string, query url.Values) contracts.TaskList {
	h.t.Helper()
	r := h.request(http.MethodGet, "/api/v1/tasks?"+query.Encode(), token, "", nil)
	require.Equal(h.t, http.StatusOK, r.status, string(r.body))
	conformance.CheckBody(h.t, conformance.TaskList, r.body)
	var page contracts.TaskList
	require.NoError(h.t, json.Unmarshal(r.body, &page))
	return page
}

// listAll follows the listing's cursors to the end and returns the task
// ids in order.
func (h *harness) listAll(token string, query url.Values) []string {
	h.t.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	var ids []string
	for range 100 {
		page := h.list(token, q)
		for _, s := range page.Tasks {
			ids = append(ids, s.TaskID)
		}
		if page.NextCursor == nil {
			return ids
		}
		q.Set("cursor", *page.NextCursor)
	}
	h.t.Fatal("the listing does not end")
	return nil
}

// lastEventID long-polls the whole log and returns its last event.
func (h *harness) lastEvent(token, taskID string) contracts.TaskEvent {
	h.t.Helper()
	res, r := h.poll(token, taskID, "?maxEvents=500")
	require.Equal(h.t, http.StatusOK, r.status)
	require.NotEmpty(h.t, res.Events)
	return res.Events[len(res.Events)-1]
}

// tasksInEveryStatus creates, for owner, one task in each state the read
// API reports: running, suspended, completed, failed and cancelled.
func tasksInEveryStatus(t *testing.T, h *harness, owner string) map[string]string {
	t.Helper()
	ids := map[string]string{
		"running":   h.create(owner, "test.gated", nil),
		"suspended": h.create(owner, "test.approval", nil),
		"completed": h.create(owner, "test.steps", map[string]int{"steps": 2}),
		"failed":    h.create(owner, "test.steps", map[string]string{"steps": "many"}), // input that does not decode
		"cancelled": h.create(owner, "test.block", nil),
	}
	t.Cleanup(func() { close(h.gates.get(ids["running"])) })
	h.gates.get(ids["running"]) <- "working"
	h.awaitEvent(owner, ids["running"], contracts.EventMessage)
	h.waitSuspended(owner, ids["suspended"])
	h.pollUntilTerminal(owner, ids["completed"])
	h.pollUntilTerminal(owner, ids["failed"])
	h.awaitEvent(owner, ids["cancelled"], contracts.EventStarted)
	r := h.postJSON("/api/v1/tasks/"+ids["cancelled"]+"/cancel", owner, map[string]string{"reason": "user"})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	h.pollUntilTerminal(owner, ids["cancelled"])
	return ids
}

func TestTaskSnapshotEachStatus(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	ids := tasksInEveryStatus(t, h, "alice")

	running := h.snapshot("alice", ids["running"])
	assert.Equal(t, contracts.StatusRunning, running.Status)
	assert.Equal(t, "test.gated", running.TaskType)
	assert.Nil(t, running.Suspension)
	assert.Nil(t, running.Result)
	require.NotNil(t, running.LastEventID)
	assert.Equal(t, h.lastEvent("alice", ids["running"]).EventID, *running.LastEventID)
	assert.False(t, running.UpdatedAt.Before(running.CreatedAt))

	suspended := h.snapshot("alice", ids["suspended"])
	assert.Equal(t, contracts.StatusRunning, suspended.Status)
	require.NotNil(t, suspended.Suspension)
	assert.Equal(t, h.waitSuspended("alice", ids["suspended"]).SuspendID, suspended.Suspension.SuspendID)
	assert.Equal(t, contracts.KindUserActionRequired, suspended.Suspension.Kind)
	assert.Equal(t, "approval_required", suspended.Suspension.ReasonCode)
	assert.Equal(t, []string{"approve", "reject"}, suspended.Suspension.AllowedActions)

	completed := h.snapshot("alice", ids["completed"])
	assert.Equal(t, contracts.StatusCompleted, completed.Status)
	assert.JSONEq(t, `{"steps":2}`, string(completed.Result))
	assert.Equal(t, &contracts.ProgressSnapshot{Percent: 100, Stage: "step"}, completed.Progress)
	assert.Equal(t, h.lastEvent("alice", ids["completed"]).EventID, *completed.LastEventID)

	failed := h.snapshot("alice", ids["failed"])
	assert.Equal(t, contracts.StatusFailed, failed.Status)
	require.NotNil(t, failed.Failure)
	assert.NotEmpty(t, failed.Failure.Code)
	assert.NotEmpty(t, failed.Failure.Message)
	assert.Nil(t, failed.Result)

	cancelled := h.snapshot("alice", ids["cancelled"])
	assert.Equal(t, contracts.StatusCancelled, cancelled.Status)
	assert.True(t, cancelled.CancelRequested)
	require.NotNil(t, cancelled.Cancellation)
	assert.NotEmpty(t, cancelled.Cancellation.Reason)

	// The snapshot's lastEventId is a cursor: SSE from it delivers what
	// follows, and nothing for an ended task (204).
	s, r := h.openSSE("alice", ids["running"], "?lastEventId="+running.LastEventID.String(), nil)
	require.NotNil(t, s, "%d %s", r.status, r.body)
	h.gates.get(ids["running"]) <- "after the snapshot"
	ev := s.nextEvent(wait)
	assert.Equal(t, contracts.EventMessage, ev.Type)
	assert.True(t, running.LastEventID.Less(ev.EventID))
	_, r = h.openSSE("alice", ids["completed"], "?lastEventId="+completed.LastEventID.String(), nil)
	assert.Equal(t, http.StatusNoContent, r.status)

	// An accepted action closes the suspension, and the task goes on.
	r = h.postJSON("/api/v1/tasks/"+ids["suspended"]+"/actions", "alice", map[string]any{
		"clientActionId": "a1", "suspendId": suspended.Suspension.SuspendID, "actionType": "approve"})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	h.pollUntilTerminal("alice", ids["suspended"])
	done := h.snapshot("alice", ids["suspended"])
	assert.Equal(t, contracts.StatusCompleted, done.Status)
	assert.Nil(t, done.Suspension)
	assert.JSONEq(t, `{"decision":"approve"}`, string(done.Result))
}

func TestTaskSnapshotNotFound(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	id := h.create("alice", "test.steps", map[string]int{"steps": 1})
	for _, tc := range []struct{ token, id string }{{"bob", id}, {"alice", "no-such-task"}} {
		r := h.request(http.MethodGet, "/api/v1/tasks/"+tc.id, tc.token, "", nil)
		checkEnvelope(t, r, http.StatusNotFound, bridgeerr.CodeTaskNotFound)
	}
	checkEnvelope(t, h.request(http.MethodGet, "/api/v1/tasks/"+id, "", "", nil), http.StatusUnauthorized, bridgeerr.CodeAuthentication)
	// The WebSocket's fixed path still wins over :taskId.
	r := h.request(http.MethodGet, "/api/v1/tasks/ws", "alice", "", nil)
	assert.NotEqual(t, http.StatusNotFound, r.status, string(r.body))
	// An unknown route under the bridge is a not-found envelope.
	for _, path := range []string{"/api/v1/tasks/" + id + "/nope", "/api/v1/nope", "/api/v2/tasks"} {
		env := checkEnvelope(t, h.request(http.MethodGet, path, "alice", "", nil), http.StatusNotFound, bridgeerr.CodeRouteNotFound)
		assert.Equal(t, "route not found", env.Message)
	}
}

func TestListTasksEachStatusAndFilters(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	ids := tasksInEveryStatus(t, h, "alice")
	other := h.create("bob", "test.steps", map[string]int{"steps": 1})

	page := h.list("alice", nil)
	require.Len(t, page.Tasks, 5)
	assert.Nil(t, page.NextCursor)
	byID := map[string]contracts.TaskSnapshot{}
	var order []string
	for i, s := range page.Tasks {
		byID[s.TaskID] = s
		order = append(order, s.TaskID)
		if i > 0 {
			prev := page.Tasks[i-1]
			assert.True(t, s.CreatedAt.Before(prev.CreatedAt) || (s.CreatedAt.Equal(prev.CreatedAt) && s.TaskID < prev.TaskID),
				"newest first, then by task id")
		}
		assert.NotEqual(t, other, s.TaskID, "bob's task is not alice's")
	}
	// The list items are the snapshots.
	for state, id := range ids {
		assert.Equal(t, h.snapshot("alice", id), byID[id], state)
	}
	assert.NotNil(t, byID[ids["suspended"]].Suspension)
	assert.Equal(t, contracts.StatusFailed, byID[ids["failed"]].Status)

	// in lists the given states' tasks in listing order.
	in := func(states ...string) []string {
		keep := map[string]bool{}
		for _, st := range states {
			keep[ids[st]] = true
		}
		var out []string
		for _, id := range order {
			if keep[id] {
				out = append(out, id)
			}
		}
		return out
	}
	for _, tc := range []struct {
		query url.Values
		want  []string
	}{
		{url.Values{"limit": {"2"}}, order},
		{url.Values{"status": {"RUNNING"}}, in("suspended", "running")},
		{url.Values{"status": {"COMPLETED"}}, in("completed")},
		{url.Values{"status": {"FAILED"}}, in("failed")},
		{url.Values{"status": {"CANCELLED"}}, in("cancelled")},
		{url.Values{"status": {"FAILED,CANCELLED"}}, in("cancelled", "failed")},
		{url.Values{"status": {"FAILED", "COMPLETED"}}, in("failed", "completed")},
		{url.Values{"status": {"ACCEPTED"}}, nil},
		{url.Values{"taskType": {"test.steps"}}, in("failed", "completed")},
		{url.Values{"taskType": {"test.steps"}, "status": {"COMPLETED"}}, in("completed")},
		{url.Values{"taskType": {"test.gated,test.block"}, "limit": {"1"}}, in("cancelled", "running")},
	} {
		assert.Equal(t, tc.want, h.listAll("alice", tc.query), tc.query.Encode())
	}
	assert.Equal(t, []string{other}, h.listAll("bob", nil))
	assert.Empty(t, h.listAll("carol", nil))

	for _, tc := range []struct {
		query  string
		status int
		code   bridgeerr.Code
	}{
		{"limit=0", http.StatusUnprocessableEntity, bridgeerr.CodeRequestValidation},
		{"limit=101", http.StatusUnprocessableEntity, bridgeerr.CodeRequestValidation},
		{"limit=x", http.StatusUnprocessableEntity, bridgeerr.CodeRequestValidation},
		{"status=DONE", http.StatusUnprocessableEntity, bridgeerr.CodeRequestValidation},
		{"cursor=not-a-cursor", http.StatusBadRequest, bridgeerr.CodeInvalidRequest},
	} {
		checkEnvelope(t, h.request(http.MethodGet, "/api/v1/tasks?"+tc.query, "alice", "", nil), tc.status, tc.code)
	}
	checkEnvelope(t, h.request(http.MethodGet, "/api/v1/tasks", "", "", nil), http.StatusUnauthorized, bridgeerr.CodeAuthentication)
}

// Pages follow each other without a gap or a repeat while tasks are being
// created, on another goroutine, all along.
func TestListTasksPaginationWhileCreating(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil)
	const n = 30
	var before []string
	for range n {
		before = append(before, h.create("alice", "test.steps", map[string]int{"steps": 0}))
	}
	// A creator on its own goroutine makes one task after every page.
	turn := make(chan struct{}, 1) // buffered: a creator that failed cannot block the pages
	next := make(chan string)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(next)
		for range turn {
			body := fmt.Sprintf(`{"clientRequestId":%q,"taskType":"test.steps","input":{"steps":0}}`, contracts.NewID())
			req, err := http.NewRequest(http.MethodPost, h.base+"/api/v1/tasks", strings.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Authorization", "Bearer alice")
			req.Header.Set("Content-Type", "application/json")
			r, err := h.client.Do(req)
			if err != nil {
				return
			}
			var res contracts.TaskCreated
			err = json.NewDecoder(r.Body).Decode(&res)
			r.Body.Close()
			if err != nil || r.StatusCode != http.StatusCreated {
				return
			}
			next <- res.TaskID
		}
	})
	var listed []contracts.TaskSnapshot
	var created []string
	q := url.Values{"limit": {"4"}}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100)
		page := h.list("alice", q)
		assert.LessOrEqual(t, len(page.Tasks), 4)
		listed = append(listed, page.Tasks...)
		turn <- struct{}{}
		select {
		case id, ok := <-next:
			require.True(t, ok, "the creator failed")
			created = append(created, id)
		case <-time.After(wait):
			t.Fatal("no task created")
		}
		if page.NextCursor == nil {
			break
		}
		q.Set("cursor", *page.NextCursor)
	}
	close(turn)
	wg.Wait()
	require.Len(t, created, (n+3)/4, "one task was created after every page")

	seen := map[string]bool{}
	for i, s := range listed {
		require.False(t, seen[s.TaskID], "task %s listed twice", s.TaskID)
		seen[s.TaskID] = true
		if i > 0 {
			prev := listed[i-1]
			require.True(t, s.CreatedAt.Before(prev.CreatedAt) || (s.CreatedAt.Equal(prev.CreatedAt) && s.TaskID < prev.TaskID),
				"listing order broken at %d", i)
		}
	}
	for _, id := range before {
		assert.True(t, seen[id], "task %s, there before the first page, is missing", id)
	}
	for _, id := range created {
		assert.False(t, seen[id], "task %s, created after the first page, sorts before every cursor", id)
	}
	assert.Len(t, listed, n)
}
