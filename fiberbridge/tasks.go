package fiberbridge

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// Query parameters of the task listing and their bounds.
const (
	paramStatus   = "status"
	paramTaskType = "taskType"
	paramLimit    = "limit"
	paramCursor   = "cursor"
	// maxTypeFilters bounds the task types one listing may filter by.
	maxTypeFilters = 20
)

// GetTaskHandler returns the handler of GET /api/v1/tasks/:taskId, a
// TaskBridge-for-Fiber addition: the task's snapshot (taskId, taskType,
// status, createdAt, updatedAt, lastEventId, cancelRequested, and when
// there are: progress, suspension, result, failure, cancellation; see
// contracts.TaskSnapshot). It costs two small store reads, not a replay of
// the log. A missing or foreign task is 404 TASK_NOT_FOUND.
func (b *Bridge) GetTaskHandler() fiber.Handler {
	return b.handler(b.getTask)
}

func (b *Bridge) getTask(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	taskID, err := parseTaskID(c.Params(TaskIDParam))
	if err != nil {
		return err
	}
	snap, err := s.Tasks.Snapshot(c.UserContext(), auth, taskID)
	if err != nil {
		return err
	}
	if b.log.Enabled(zapcore.DebugLevel) {
		b.log.Debug("http.task.snapshot", observe.Entry{TaskID: taskID, UserID: auth.Subject, Outcome: string(snap.Status)})
	}
	return writeJSON(c, http.StatusOK, snap)
}

// ListTasksHandler returns the handler of GET /api/v1/tasks, a
// TaskBridge-for-Fiber addition: the caller's tasks, newest first, as
// snapshots, {"tasks": [...], "nextCursor": "..." | null}. Query
// parameters: status and taskType filter (each repeatable or
// comma-separated; unknown statuses, more than 20 types or a type over 256
// bytes answer 422), limit (1..100, default 20; outside 422) and cursor
// (the nextCursor of the previous page; malformed 400). Pages are stable
// while tasks are created; a filtered page may be short while nextCursor
// is set (one request examines at most ten times its page size).
func (b *Bridge) ListTasksHandler() fiber.Handler {
	return b.handler(b.listTasks)
}

func (b *Bridge) listTasks(c *fiber.Ctx, s *orchestration.Services, auth contracts.AuthContext) error {
	args := c.Context().QueryArgs()
	q, err := parseListQuery(multiArg(args.PeekMulti(paramStatus)), multiArg(args.PeekMulti(paramTaskType)),
		c.Query(paramLimit), c.Query(paramCursor))
	if err != nil {
		return err
	}
	q.Auth = auth
	list, err := s.Tasks.List(c.UserContext(), q)
	if err != nil {
		return err
	}
	if b.log.Enabled(zapcore.DebugLevel) {
		b.log.Debug("http.task.list", observe.Entry{UserID: auth.Subject, Outcome: "ok",
			Details: map[string]any{"tasks": len(list.Tasks)}})
	}
	return writeJSON(c, http.StatusOK, list)
}

// multiArg copies the values of a repeated query parameter.
func multiArg(values [][]byte) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// parseListQuery parses the listing's parameters (without Auth): statuses
// and types are the parameter's values, each split at commas; empty items
// are ignored.
func parseListQuery(statuses, types []string, limit, cursor string) (contracts.ListTasksQuery, error) {
	var q contracts.ListTasksQuery
	for _, st := range splitValues(statuses) {
		status := contracts.TaskStatus(st)
		if !status.Valid() {
			return q, bridgeerr.New(bridgeerr.CodeRequestValidation, "status must be one of ACCEPTED, RUNNING, COMPLETED, FAILED, CANCELLED").
				WithDetails(map[string]any{"parameter": paramStatus})
		}
		q.Statuses = append(q.Statuses, status)
	}
	q.TaskTypes = splitValues(types)
	if len(q.TaskTypes) > maxTypeFilters {
		return q, bridgeerr.New(bridgeerr.CodeRequestValidation, "too many task types").
			WithDetails(map[string]any{"parameter": paramTaskType, "maxItems": maxTypeFilters})
	}
	for _, t := range q.TaskTypes {
		if len(t) > MaxFieldBytes || !printable(t) {
			return q, bridgeerr.New(bridgeerr.CodeRequestValidation, "invalid task type").
				WithDetails(map[string]any{"parameter": paramTaskType, "maxBytes": MaxFieldBytes})
		}
	}
	n, err := parseIntParam(paramLimit, limit, orchestration.DefaultTaskListLimit, 1, orchestration.MaxTaskListLimit)
	if err != nil {
		return q, err
	}
	q.Limit = n
	if q.Cursor, err = contracts.ParseTaskCursor(cursor); err != nil {
		return q, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "malformed cursor").
			WithDetails(map[string]any{"parameter": paramCursor, "reason": "not a cursor of this listing"})
	}
	return q, nil
}

// splitValues splits each value at commas and drops empty items.
func splitValues(values []string) []string {
	var out []string
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}
