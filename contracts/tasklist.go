package contracts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TaskHeader is the small part of a TaskRecord that listings carry: no
// input, metadata or attachments, whose size the client controls.
type TaskHeader struct {
	TaskID          string
	OwnerID         string
	TaskType        string
	Status          TaskStatus
	CancelRequested bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Header returns the record's header.
func (t TaskRecord) Header() TaskHeader {
	return TaskHeader{TaskID: t.TaskID, OwnerID: t.OwnerID, TaskType: t.TaskType, Status: t.Status,
		CancelRequested: t.CancelRequested, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// TaskCursor is a position in an owner's task listing, which is ordered
// newest first: by CreatedAt at millisecond precision (the wire's), then by
// TaskID, both descending. The zero TaskCursor is the start of the listing.
// A listing continued from a cursor is stable while tasks are created: new
// tasks sort before the cursor, so they neither shift nor repeat the later
// pages.
type TaskCursor struct {
	CreatedAt time.Time
	TaskID    string
}

// CursorOf returns the listing position of a task created at createdAt.
func CursorOf(taskID string, createdAt time.Time) TaskCursor {
	return TaskCursor{CreatedAt: time.UnixMilli(createdAt.UnixMilli()).UTC(), TaskID: taskID}
}

// IsZero reports whether c is the start of the listing.
func (c TaskCursor) IsZero() bool { return c.TaskID == "" && c.CreatedAt.IsZero() }

// Admits reports whether the task at (taskID, createdAt) comes after c in
// the newest-first listing, that is whether a page continued from c may
// hold it. The zero cursor admits every task.
func (c TaskCursor) Admits(taskID string, createdAt time.Time) bool {
	if c.IsZero() {
		return true
	}
	ms, cms := createdAt.UnixMilli(), c.CreatedAt.UnixMilli()
	if ms != cms {
		return ms < cms
	}
	return taskID < c.TaskID
}

// ErrMalformedTaskCursor is returned (wrapped) by ParseTaskCursor for text
// that no listing produced. The HTTP layer answers it with 400.
var ErrMalformedTaskCursor = errors.New("taskbridge: malformed task list cursor")

// taskCursorVersion starts the text form, so the form can change later
// without old cursors being misread.
const taskCursorVersion = "1:"

// String returns the cursor's opaque text form (URL-safe); "" for the zero
// cursor.
func (c TaskCursor) String() string {
	if c.IsZero() {
		return ""
	}
	raw := taskCursorVersion + strconv.FormatInt(c.CreatedAt.UnixMilli(), 10) + ":" + c.TaskID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseTaskCursor parses a cursor's text form; "" is the zero cursor.
func ParseTaskCursor(s string) (TaskCursor, error) {
	if s == "" {
		return TaskCursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return TaskCursor{}, fmt.Errorf("%w: not base64url", ErrMalformedTaskCursor)
	}
	rest, ok := strings.CutPrefix(string(raw), taskCursorVersion)
	if !ok {
		return TaskCursor{}, fmt.Errorf("%w: unknown version", ErrMalformedTaskCursor)
	}
	msText, taskID, ok := strings.Cut(rest, ":")
	if !ok || taskID == "" || len(taskID) > MaxTaskIDLen {
		return TaskCursor{}, fmt.Errorf("%w: no task id", ErrMalformedTaskCursor)
	}
	ms, err := strconv.ParseInt(msText, 10, 64)
	if err != nil || ms < 0 {
		return TaskCursor{}, fmt.Errorf("%w: bad time", ErrMalformedTaskCursor)
	}
	return TaskCursor{CreatedAt: time.UnixMilli(ms).UTC(), TaskID: taskID}, nil
}

// TaskListQuery asks a TaskLister for one page of an owner's tasks.
type TaskListQuery struct {
	// OwnerID is whose tasks to list. Required.
	OwnerID string
	// Statuses keeps only tasks in one of these statuses; empty keeps all.
	Statuses []TaskStatus
	// TaskTypes keeps only tasks of one of these types; empty keeps all.
	TaskTypes []string
	// After continues the listing after this position; zero starts with
	// the newest task.
	After TaskCursor
	// Limit is the most tasks the page holds; it must be positive.
	Limit int
	// ScanLimit bounds the work of one call: at most this many tasks are
	// examined against the filters (at least Limit are). When it runs out
	// the page may be short, even empty, with Next set. Zero or less: no
	// bound beyond Limit matching tasks.
	ScanLimit int
}

// Matches reports whether h passes the query's filters (not its owner).
func (q *TaskListQuery) Matches(h TaskHeader) bool {
	return q.MatchesStatus(h.Status) && q.MatchesType(h.TaskType)
}

// MatchesStatus reports whether the status filter keeps status.
func (q *TaskListQuery) MatchesStatus(status TaskStatus) bool {
	return len(q.Statuses) == 0 || containsStatus(q.Statuses, status)
}

// MatchesType reports whether the task type filter keeps taskType.
func (q *TaskListQuery) MatchesType(taskType string) bool {
	return len(q.TaskTypes) == 0 || containsString(q.TaskTypes, taskType)
}

func containsStatus(list []TaskStatus, s TaskStatus) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TaskListPage is one page of a listing: matching tasks newest first, and
// where to continue (zero when the listing has no more tasks).
type TaskListPage struct {
	Tasks []TaskHeader
	Next  TaskCursor
}

// TaskLister is implemented by task registries that index tasks by owner
// (both registries of this library do). The index follows the records: a
// task that expired is no longer listed.
type TaskLister interface {
	// ListTasks returns the next page of q.OwnerID's tasks that match q,
	// newest first (see TaskCursor for the order), strictly after q.After.
	ListTasks(ctx context.Context, q TaskListQuery) (TaskListPage, error)
}

// ListTasksQuery asks the task read service for a page of the caller's
// tasks: those Auth.Subject owns, newest first, optionally only in one of
// Statuses and of one of TaskTypes, continuing after Cursor (zero: from
// the newest), at most Limit of them (0: the service's default).
type ListTasksQuery struct {
	Auth      AuthContext
	Statuses  []TaskStatus
	TaskTypes []string
	Cursor    TaskCursor
	Limit     int
}
