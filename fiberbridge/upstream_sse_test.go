package fiberbridge_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// androidLiveness is how long the TaskBridge Android SDK waits for the next
// SSE data line before it fails the stream (comments do not count).
const androidLiveness = 60 * time.Second

// heartbeatShape is the SSE JSON heartbeat of taskbridge-fastapi, key for
// key and in its order.
var heartbeatShape = regexp.MustCompile(`^\{"type":"HEARTBEAT","taskId":"[^"]+","eventId":"hb-[0-9a-f]{32}","createdAt":"[^"]+","payload":\{"live":true\}\}$`)

// TestSSESuspendedTaskOutlivesAndroidLiveness holds an SSE stream on a task
// suspended for approval for longer than the Android SDK's 60 s liveness
// timeout, with the default heartbeat settings, reading it as that SDK
// does: every data line must decode as an event envelope (type, taskId,
// eventId, createdAt, payload) and one must arrive within each 60 s. The
// heartbeats have the upstream shape and never an id: line; approving the
// task afterwards still delivers the rest of the stream.
func TestSSESuspendedTaskOutlivesAndroidLiveness(t *testing.T) {
	t.Parallel()
	h := startHarness(t, nil) // default stream options: 15 s heartbeats, JSON on
	id := h.create("alice", "test.approval", nil)
	s, r := h.openSSE("alice", id, "", nil)
	require.NotNil(t, s, string(r.body))
	require.Equal(t, contracts.EventStarted, s.nextEvent(wait).Type)
	susp := s.nextEvent(wait)
	require.Equal(t, contracts.EventSuspended, susp.Type)

	held := time.Now()
	beats := 0
	for time.Since(held) < androidLiveness+5*time.Second {
		it, ok := s.next(androidLiveness) // fails the test after 60 s without data
		require.True(t, ok, "the stream ended while the task was suspended")
		var env struct {
			Type      *string          `json:"type"`
			TaskID    *string          `json:"taskId"`
			EventID   *string          `json:"eventId"`
			CreatedAt *string          `json:"createdAt"`
			Payload   *json.RawMessage `json:"payload"`
		}
		dec := json.NewDecoder(bytes.NewReader(it.data))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&env), "%s", it.data)
		require.True(t, env.Type != nil && env.TaskID != nil && env.EventID != nil && env.CreatedAt != nil && env.Payload != nil,
			"not an envelope: %s", it.data)
		require.Equal(t, "HEARTBEAT", *env.Type, "only heartbeats while suspended: %s", it.data)
		assert.Regexp(t, heartbeatShape, string(it.data))
		assert.Equal(t, id, *env.TaskID)
		assert.False(t, it.hasID, "a heartbeat must not move Last-Event-ID")
		_, err := time.Parse(time.RFC3339Nano, *env.CreatedAt)
		assert.NoError(t, err)
		beats++
	}
	// 65 s at the 15 s default interval: at least four heartbeats.
	assert.GreaterOrEqual(t, beats, int((time.Since(held)-time.Second)/streaming.DefaultHeartbeatInterval))

	p, err := contracts.DecodePayload(&susp)
	require.NoError(t, err)
	r = h.postJSON("/api/v1/tasks/"+id+"/actions", "alice", map[string]any{
		"clientActionId": "a-1", "suspendId": p.(contracts.SuspendedPayload).SuspendID, "actionType": "approve"})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	rest := s.readUntilEnd(wait)
	require.Len(t, rest, 2)
	assert.Equal(t, contracts.EventActionAccepted, rest[0].Type)
	assert.Equal(t, contracts.EventCompleted, rest[1].Type)
}
