package fiberbridge_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// TestParseErrorsEchoNoRequestBytes sends requests fasthttp cannot parse
// (a malformed request line, a header without a colon, a bad
// Content-Length) carrying a secret Authorization header: the answer is a
// generic 400 INVALID_REQUEST envelope that quotes nothing of the request.
func TestParseErrorsEchoNoRequestBytes(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	const secret = "s3cr3t-token-0123456789"
	for _, tc := range []struct{ name, raw string }{
		{"header without colon", "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nBroken header line\r\n\r\n"},
		{"bad request line", "GET\x01/health HTTP/1.1 extra\r\nAuthorization: Bearer " + secret + "\r\n\r\n"},
		{"bad content length", "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: -5x\r\n\r\n"},
		{"no method", " /health HTTP/1.1\r\nAuthorization: Bearer " + secret + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e2etest.RawExchange(h.srv.Addr, []byte(tc.raw), hwait)
			require.NoError(t, err)
			env := e2etest.CheckEnvelope(t, resp, http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
			assert.Equal(t, "invalid request", env.Message)
			assert.NotContains(t, string(resp.Body), secret)
			assert.NotContains(t, string(resp.Body), "Authorization")
			for k, v := range resp.Header {
				assert.NotContains(t, strings.Join(v, ","), secret, "header %s", k)
			}
		})
	}
}

// TestStrictKeys sends bodies and WebSocket subscribe frames whose keys are
// repeated or spelled in another letter case than the protocol's schemas:
// a proxy that inspects the exact key would see something else than the
// bridge, so each is 400 INVALID_REQUEST (WebSocket: close 1008) and no
// task is created.
func TestStrictKeys(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	taskID := h.create("alice", "test.block", nil)
	for _, tc := range []struct {
		name, path, body, field, reason string
	}{
		{"create duplicate key", "/api/v1/tasks", `{"clientRequestId":"a","clientRequestId":"b","taskType":"test.steps"}`, "clientRequestId", "duplicate field"},
		{"create upper-case key", "/api/v1/tasks", `{"CLIENTREQUESTID":"a","taskType":"test.steps"}`, "CLIENTREQUESTID", "unknown field"},
		{"create mixed-case key", "/api/v1/tasks", `{"clientRequestId":"a","TaskType":"test.steps"}`, "TaskType", "unknown field"},
		{"create duplicate key in input", "/api/v1/tasks", `{"clientRequestId":"a","taskType":"test.steps","input":{"steps":1,"steps":2}}`, "input.steps", "duplicate field"},
		{"cancel other-case key", "/api/v1/tasks/" + taskID + "/cancel", `{"Reason":"x"}`, "Reason", "unknown field"},
		{"action duplicate key", "/api/v1/tasks/" + taskID + "/actions", `{"clientActionId":"1","suspendId":"s","suspendId":"t","actionType":"approve"}`, "suspendId", "duplicate field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(http.MethodPost, tc.path, "alice", "application/json", []byte(tc.body))
			env := e2etest.CheckEnvelope(t, r, http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
			assert.Equal(t, tc.field, env.Details["field"])
			assert.Equal(t, tc.reason, env.Details["reason"])
		})
	}
	// Nothing was created under the refused clientRequestId.
	r := h.do(http.MethodPost, "/api/v1/tasks", "alice", "application/json", []byte(`{"clientRequestId":"a","taskType":"test.steps","input":{"steps":1}}`))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))

	for _, frame := range []string{
		`{"action":"subscribe","taskId":"` + taskID + `","taskId":"` + taskID + `"}`,
		`{"action":"subscribe","TaskID":"` + taskID + `"}`,
		`{"ACTION":"subscribe","taskId":"` + taskID + `"}`,
		`{"action":"subscribe","taskId":"` + taskID + `","lastEventId":null,"lastEventId":"1-0"}`,
	} {
		c, resp := h.dial(nil, "alice")
		require.NotNil(t, c, "upgrade refused: %d", resp.Status)
		require.NoError(t, c.Conn.WriteMessage(websocket.TextMessage, []byte(frame)))
		_, code, reason, err := c.ReadToClose(hwait)
		require.NoError(t, err, frame)
		assert.Equal(t, websocket.ClosePolicyViolation, code, frame)
		assert.Equal(t, "invalid subscribe frame", reason, frame)
	}
	// The exact spelling still subscribes.
	c := h.subscribe(nil, "alice", taskID, nil)
	require.NotNil(t, c)
}
