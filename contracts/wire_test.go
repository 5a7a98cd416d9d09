package contracts_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestDecodeServerFrameHeartbeats(t *testing.T) {
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
			f, err := contracts.DecodeServerFrame([]byte(tc.frame))
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

func TestHeartbeatMarshalsTheWebSocketForm(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(contracts.Heartbeat{Type: contracts.FrameHeartbeat, TaskID: "t", Live: true, EventID: "hb-1", CreatedAt: time.Now()})
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"HEARTBEAT","taskId":"t","live":true}`, string(b))
}
