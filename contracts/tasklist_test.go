package contracts_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestTaskCursorText(t *testing.T) {
	at := time.Date(2026, 5, 4, 12, 0, 0, 123_456_789, time.UTC)
	c := contracts.CursorOf("task:1", at)
	assert.True(t, c.CreatedAt.Equal(at.Truncate(time.Millisecond)), "millisecond precision")
	back, err := contracts.ParseTaskCursor(c.String())
	require.NoError(t, err)
	assert.Equal(t, c, back)
	assert.NotContains(t, c.String(), "task", "opaque")

	zero, err := contracts.ParseTaskCursor("")
	require.NoError(t, err)
	assert.True(t, zero.IsZero())
	assert.Equal(t, "", zero.String())

	for _, bad := range []string{"!!", "MTIz", "Mjox", "MTp4Og", "MTotNTp4"} {
		_, err := contracts.ParseTaskCursor(bad)
		assert.ErrorIs(t, err, contracts.ErrMalformedTaskCursor, bad)
	}
}

func TestTaskCursorAdmits(t *testing.T) {
	at := time.UnixMilli(1_000)
	c := contracts.CursorOf("m", at)
	assert.True(t, c.Admits("z", at.Add(-time.Millisecond)), "older")
	assert.False(t, c.Admits("a", at.Add(time.Millisecond)), "newer")
	assert.True(t, c.Admits("a", at.Add(500*time.Microsecond)), "same millisecond, smaller id")
	assert.False(t, c.Admits("m", at), "the cursor's own task")
	assert.False(t, c.Admits("z", at), "same millisecond, larger id")
	assert.True(t, contracts.TaskCursor{}.Admits("any", at))
}

func TestTaskListQueryMatches(t *testing.T) {
	q := contracts.TaskListQuery{Statuses: []contracts.TaskStatus{contracts.StatusRunning}, TaskTypes: []string{"a", "b"}}
	assert.True(t, q.Matches(contracts.TaskHeader{Status: contracts.StatusRunning, TaskType: "b"}))
	assert.False(t, q.Matches(contracts.TaskHeader{Status: contracts.StatusFailed, TaskType: "b"}))
	assert.False(t, q.Matches(contracts.TaskHeader{Status: contracts.StatusRunning, TaskType: "c"}))
	assert.True(t, (&contracts.TaskListQuery{}).Matches(contracts.TaskHeader{}))
}

func TestTaskLogSummaryApply(t *testing.T) {
	mk := func(typ contracts.EventType, payload string, seq uint64) *contracts.TaskEvent {
		return &contracts.TaskEvent{Type: typ, EventID: contracts.EventID{Ms: 1, Seq: seq}, CreatedAt: time.UnixMilli(int64(seq)), Payload: []byte(payload)}
	}
	var s contracts.TaskLogSummary
	s.Apply(mk(contracts.EventProgress, `{"progress":5}`, 1))
	s.Apply(mk(contracts.EventSuspended, `{"suspendId":"a"}`, 2))
	s.Apply(mk(contracts.EventActionAccepted, `{"suspendId":"b"}`, 3))
	assert.JSONEq(t, `{"suspendId":"a"}`, string(s.Suspended), "another suspension's accept")
	s.Apply(mk(contracts.EventActionAccepted, `{"suspendId":"a"}`, 4))
	assert.Nil(t, s.Suspended)
	s.Apply(mk(contracts.EventSuspended, `{"suspendId":"c"}`, 5))
	s.Apply(mk(contracts.EventCancelled, `{"reason":"r"}`, 6))
	assert.Nil(t, s.Suspended, "the end closes it")
	assert.Equal(t, contracts.EventCancelled, s.TerminalType)
	assert.Equal(t, contracts.EventID{Ms: 1, Seq: 6}, s.LastEventID)
	assert.JSONEq(t, `{"progress":5}`, string(s.Progress))
}
