package frames_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// TestDecodeHeartbeats: both wire forms of a heartbeat, and what is no
// heartbeat.
func TestDecodeHeartbeats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		frame   string
		ok      bool
		eventID string
		live    bool
	}{
		{name: "websocket form", frame: `{"type":"HEARTBEAT","taskId":"t1","live":true}`, ok: true, live: true},
		{name: "websocket form without live", frame: `{"type":"HEARTBEAT","taskId":"t1"}`, ok: true},
		{name: "sse envelope form (taskbridge-fastapi)", ok: true, live: true, eventID: "hb-0123456789abcdef0123456789abcdef",
			frame: `{"type":"HEARTBEAT","taskId":"t1","eventId":"hb-0123456789abcdef0123456789abcdef","createdAt":"2026-01-02T03:04:05.123456+00:00","payload":{"live":true}}`},
		{name: "sse form with our time layout", ok: true, live: true, eventID: "hb-x",
			frame: `{"type":"HEARTBEAT","taskId":"eventId","eventId":"hb-x","createdAt":"2026-01-02T03:04:05.123Z","payload":{"live":true}}`},
		{name: "sse form with an event id", frame: `{"type":"HEARTBEAT","taskId":"t1","eventId":"1-0","createdAt":"2026-01-02T03:04:05Z","payload":{"live":true}}`},
		{name: "sse form without createdAt", frame: `{"type":"HEARTBEAT","taskId":"t1","eventId":"hb-1","payload":{"live":true}}`},
		{name: "sse form with a bad createdAt", frame: `{"type":"HEARTBEAT","taskId":"t1","eventId":"hb-1","createdAt":"now","payload":{"live":true}}`},
		{name: "sse form without payload", frame: `{"type":"HEARTBEAT","taskId":"t1","eventId":"hb-1","createdAt":"2026-01-02T03:04:05Z"}`},
		{name: "sse form with unknown payload key", frame: `{"type":"HEARTBEAT","taskId":"t1","eventId":"hb-1","createdAt":"2026-01-02T03:04:05Z","payload":{"live":true,"x":1}}`},
		{name: "mixed forms", frame: `{"type":"HEARTBEAT","taskId":"t1","live":true,"eventId":"hb-1","createdAt":"2026-01-02T03:04:05Z","payload":{"live":true}}`},
		{name: "no task id", frame: `{"type":"HEARTBEAT","taskId":"","eventId":"hb-1","createdAt":"2026-01-02T03:04:05Z","payload":{"live":true}}`},
		{name: "unknown key", frame: `{"type":"HEARTBEAT","taskId":"t1","live":true,"x":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := frames.Decode([]byte(tc.frame))
			if !tc.ok {
				require.ErrorIs(t, err, contracts.ErrInvalidFrame)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, f.Heartbeat)
			assert.Equal(t, tc.eventID, f.Heartbeat.EventID)
			assert.Equal(t, tc.live, f.Heartbeat.Live)
			assert.Equal(t, tc.eventID != "", !f.Heartbeat.CreatedAt.IsZero())
		})
	}
}

// TestDecodeMultiTaskFrames: SUBSCRIPTION_ERROR and UNSUBSCRIBED.
func TestDecodeMultiTaskFrames(t *testing.T) {
	t.Parallel()
	f, err := frames.Decode([]byte(`{"type":"SUBSCRIPTION_ERROR","taskId":"t1","code":"TASK_NOT_FOUND","message":"task not found"}`))
	require.NoError(t, err)
	require.NotNil(t, f.SubscriptionError)
	assert.Equal(t, contracts.SubscriptionError{Type: contracts.FrameSubscriptionError, TaskID: "t1", Code: "TASK_NOT_FOUND", Message: "task not found"}, *f.SubscriptionError)

	f, err = frames.Decode([]byte(`{"type":"UNSUBSCRIBED","taskId":"t1","reason":"unsubscribed"}`))
	require.NoError(t, err)
	require.NotNil(t, f.Unsubscribed)
	assert.Equal(t, "unsubscribed", f.Unsubscribed.Reason)

	for _, bad := range []string{
		`{"type":"SUBSCRIPTION_ERROR","taskId":"t1","message":"m"}`,
		`{"type":"SUBSCRIPTION_ERROR","taskId":"t1","code":"X","message":"m","extra":1}`,
		`{"type":"UNSUBSCRIBED","taskId":"t1"}`,
		`{"type":"UNSUBSCRIBED","reason":"ended"}`,
	} {
		_, err := frames.Decode([]byte(bad))
		assert.ErrorIs(t, err, contracts.ErrInvalidFrame, bad)
	}
}

// TestDecodeConfirmationsAndEvents: a confirmation and an event decode; a
// confirmation with a malformed cursor, a key spelled in another case, a
// repeated key and an unknown type do not.
func TestDecodeConfirmationsAndEvents(t *testing.T) {
	t.Parallel()
	f, err := frames.Decode([]byte(`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t1","replayStartedAfterEventId":"5-1","live":true}`))
	require.NoError(t, err)
	require.NotNil(t, f.Confirmation)
	assert.Equal(t, "5-1", *f.Confirmation.ReplayStartedAfterEventID)

	f, err = frames.Decode([]byte(`{"type":"TASK_STARTED","taskId":"t1","eventId":"7-0","createdAt":"2026-01-01T00:00:00.000Z","payload":{}}`))
	require.NoError(t, err)
	require.NotNil(t, f.Event)
	assert.Equal(t, contracts.EventID{Ms: 7}, f.Event.EventID)

	for _, bad := range []string{
		`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t1","replayStartedAfterEventId":"x","live":true}`,
		`{"type":"SUBSCRIPTION_CONFIRMED","TaskId":"t1","replayStartedAfterEventId":null,"live":true}`,
		`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t1","taskId":"t2","replayStartedAfterEventId":null,"live":true}`,
		`{"type":"TASK_UNKNOWN","taskId":"t1","eventId":"7-0","createdAt":"2026-01-01T00:00:00.000Z","payload":{}}`,
		`[]`,
	} {
		_, err := frames.Decode([]byte(bad))
		assert.ErrorIs(t, err, contracts.ErrInvalidFrame, bad)
	}
}
