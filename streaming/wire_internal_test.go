package streaming

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// TestEventFrames: the bytes of one event on each wire: an SSE frame (id
// line, data line with the event JSON, blank line) and an unmasked,
// unfragmented WebSocket text frame carrying the same JSON.
func TestEventFrames(t *testing.T) {
	d, err := contracts.Progress(50, "", "half way")
	require.NoError(t, err)
	ev := contracts.TaskEvent{
		Type: d.Type(), TaskID: "t1", EventID: contracts.EventID{Ms: 1732000000000, Seq: 3},
		CreatedAt: time.Date(2024, 11, 19, 7, 6, 40, 0, time.UTC), Payload: d.Payload(),
	}
	const js = `{"type":"TASK_PROGRESS","taskId":"t1","eventId":"1732000000000-3","createdAt":"2024-11-19T07:06:40.000Z","payload":{"progress":50,"message":"half way"}}`

	assert.Equal(t, "id: 1732000000000-3\ndata: "+js+"\n\n", string(appendSSEEvent(nil, &ev)))

	ws := appendWSEvent([]byte("kept"), &ev)
	require.Greater(t, len(js), 125, "the 16-bit length form is exercised")
	assert.Equal(t, "kept", string(ws[:4]), "appends to dst")
	assert.Equal(t, []byte{0x81, 126, byte(len(js) >> 8), byte(len(js))}, ws[4:8], "FIN text frame, unmasked, 16-bit length")
	assert.Equal(t, js, string(ws[8:]))
}

// TestParseSubscribeRequest: what a subscribe frame must be.
func TestParseSubscribeRequest(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", contracts.MaxTaskIDLen+1)
	tests := []struct {
		name   string
		frame  string
		ok     bool
		cursor string
	}{
		{"with cursor", `{"action":"subscribe","taskId":"t","lastEventId":"4"}`, true, "4-0"},
		{"null cursor", `{"action":"subscribe","taskId":"t","lastEventId":null}`, true, "0-0"},
		{"no cursor", `{"action":"subscribe","taskId":"t"}`, true, "0-0"},
		{"empty cursor", `{"action":"subscribe","taskId":"t","lastEventId":""}`, true, "0-0"},
		{"bad cursor", `{"action":"subscribe","taskId":"t","lastEventId":"x"}`, false, ""},
		{"wrong action", `{"action":"unsubscribe","taskId":"t"}`, false, ""},
		{"missing task", `{"action":"subscribe"}`, false, ""},
		{"long task id", `{"action":"subscribe","taskId":"` + long + `"}`, false, ""},
		{"unknown key", `{"action":"subscribe","taskId":"t","token":"x"}`, false, ""},
		{"array", `[]`, false, ""},
		{"string", `"subscribe"`, false, ""},
		{"empty", ``, false, ""},
		{"not json", `subscribe t`, false, ""},
		{"two values", `{"action":"subscribe","taskId":"t"}{}`, false, ""},
		{"taskId number", `{"action":"subscribe","taskId":5}`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseSubscribe([]byte(tt.frame))
			if !tt.ok {
				assert.ErrorIs(t, err, contracts.ErrInvalidFrame)
				return
			}
			require.NoError(t, err)
			c, err := r.Cursor()
			require.NoError(t, err)
			assert.Equal(t, tt.cursor, c.String())
		})
	}
}
