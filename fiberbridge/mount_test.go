package fiberbridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// approvers lets "bob" read and act on alice's tasks; nobody else.
type approvers struct{}

func (approvers) CanRead(_ context.Context, auth contracts.AuthContext, _ contracts.TaskRecord) error {
	if auth.Subject == "bob" {
		return nil
	}
	return errors.New("not an approver")
}

func (approvers) CanAct(_ context.Context, auth contracts.AuthContext, task contracts.TaskRecord, _ contracts.SuspensionRecord, _ string) error {
	if auth.Subject == "bob" || auth.Subject == task.OwnerID {
		return nil
	}
	return errors.New("not an approver")
}

// TestHostMounting: task routes under a base path on a group behind the
// host's own authentication (SetAuth, no AuthResolver), probes outside it,
// the host's error format kept for its own routes, the envelope for the
// bridge's, and an approver who may read and act but not cancel.
func TestHostMounting(t *testing.T) {
	t.Parallel()
	cfg := memConfig(t)
	cfg.AuthResolver = nil
	cfg.BasePath = "/jobs"
	cfg.Actions = approvers{}
	cfg.Executor.(*orchestration.Executor).Handle("ask", func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
		act, err := tc.Suspend(ctx, orchestration.SuspendSpec{ReasonCode: "R", AllowedActions: []string{"approve"}})
		if err != nil {
			return nil, err
		}
		return act.ActionType, nil
	})
	b := newBridge(t, cfg)
	hostErrors := func(c *fiber.Ctx, err error) error {
		code := fiber.StatusInternalServerError
		var fe *fiber.Error
		if errors.As(err, &fe) {
			code = fe.Code
		}
		return c.Status(code).SendString("host error " + http.StatusText(code))
	}
	app := fiber.New(fiber.Config{ErrorHandler: b.ErrorHandler(hostErrors)})
	b.RegisterProbes(app)
	api := app.Group("/app", func(c *fiber.Ctx) error { // the host's own authentication
		user := strings.TrimPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
		if user == "" {
			return fiber.ErrUnauthorized
		}
		fiberbridge.SetAuth(c, contracts.AuthContext{Subject: user})
		return c.Next()
	})
	api.Get("/teapot", func(*fiber.Ctx) error { return fiber.ErrTeapot })
	b.RegisterTasks(api)

	r := testRequest(t, app, http.MethodGet, "/health", "", "")
	assert.Equal(t, http.StatusOK, r.status, "probes need no authentication")
	r = testRequest(t, app, http.MethodGet, "/app/teapot", "alice", "")
	assert.Equal(t, "host error I'm a teapot", string(r.body), "host routes keep the host's errors")
	r = testRequest(t, app, http.MethodGet, "/app/jobs/tasks/x/nothing-here", "alice", "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Contains(t, string(r.body), `"code":"ROUTE_NOT_FOUND"`, "below the task routes errors are envelopes")
	r = testRequest(t, app, http.MethodPost, "/app/jobs/tasks", "", `{}`)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, string(r.body), `"code":"AUTHENTICATION_ERROR"`, "protocol clients get envelopes from the host's middleware too")

	r = testRequest(t, app, http.MethodPost, "/app/jobs/tasks", "alice", `{"clientRequestId":"r1","taskType":"ask"}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(r.body, &created))
	events := "/app/jobs/tasks/" + created.TaskID + "/events"
	var suspendID string
	for after := ""; suspendID == ""; {
		r = testRequest(t, app, http.MethodGet, events+"?waitTimeoutMs=5000&afterEventId="+after, "bob", "")
		require.Equal(t, http.StatusOK, r.status, "the approver reads: %s", r.body)
		var page struct {
			Events []contracts.TaskEvent `json:"events"`
		}
		require.NoError(t, json.Unmarshal(r.body, &page))
		for _, ev := range page.Events {
			after = ev.EventID.String()
			if ev.Type == contracts.EventSuspended {
				p, err := contracts.DecodePayload(&ev)
				require.NoError(t, err)
				suspendID = p.(contracts.SuspendedPayload).SuspendID
			}
		}
	}
	r = testRequest(t, app, http.MethodGet, events, "mallory", "")
	assert.Equal(t, http.StatusNotFound, r.status, "anyone else: not found")
	r = testRequest(t, app, http.MethodPost, "/app/jobs/tasks/"+created.TaskID+"/cancel", "bob", "")
	assert.Equal(t, http.StatusForbidden, r.status, "the approver may not cancel: %s", r.body)
	assert.Contains(t, string(r.body), `"code":"TASK_OWNERSHIP_ERROR"`)
	action := `{"clientActionId":"a1","suspendId":"` + suspendID + `","actionType":"approve"}`
	r = testRequest(t, app, http.MethodPost, "/app/jobs/tasks/"+created.TaskID+"/actions", "mallory", action)
	assert.Equal(t, http.StatusNotFound, r.status)
	r = testRequest(t, app, http.MethodPost, "/app/jobs/tasks/"+created.TaskID+"/actions", "bob", action)
	assert.Equal(t, http.StatusAccepted, r.status, "the approver acts: %s", r.body)
	assert.Contains(t, string(r.body), `"ACCEPTED"`)
}

// TestNoAuthAtAll: without an AuthResolver and without SetAuth a task route
// answers 401.
func TestNoAuthAtAll(t *testing.T) {
	t.Parallel()
	cfg := memConfig(t)
	cfg.AuthResolver = nil
	b := newBridge(t, cfg)
	app := fiber.New()
	b.Register(app)
	r := testRequest(t, app, http.MethodPost, "/api/v1/tasks", "alice", `{"clientRequestId":"r1","taskType":"noop"}`)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, string(r.body), `"code":"AUTHENTICATION_ERROR"`)
}
