package conformance_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
)

// Every reference fixture passes our schemas (and the reference's).
func TestReferenceExamplesPass(t *testing.T) {
	dir, ok := conformance.ProtocolDir()
	if !ok {
		t.Skip("reference protocol directory absent: nothing to compare with (our schemas are checked by the other tests)")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "examples"))
	require.NoError(t, err)
	shapes := map[string]conformance.Schema{
		"poll_events_response.json":        conformance.PollEventsResponse,
		"websocket_subscribe_request.json": conformance.ClientFrame,
	}
	require.NotEmpty(t, entries)
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "examples", e.Name()))
			require.NoError(t, err)
			if s, ok := shapes[e.Name()]; ok {
				conformance.CheckBody(t, s, raw)
				if s == conformance.ClientFrame {
					conformance.CheckBody(t, conformance.SubscribeRequest, raw)
					var req contracts.SubscribeRequest
					require.NoError(t, strictjson.Unmarshal(raw, &req))
					require.NoError(t, req.Validate())
					assert.Equal(t, "task_123", req.TaskID)
				}
				return
			}
			require.True(t, strings.HasPrefix(e.Name(), "task_") || strings.HasPrefix(e.Name(), "websocket_"),
				"a fixture of an unknown kind: %s", e.Name())
			f := conformance.CheckFrame(t, raw)
			conformance.CheckBody(t, conformance.ServerFrame, raw)
			if f.Event != nil {
				conformance.CheckBody(t, conformance.SSEData, raw)
			}
		})
	}
}

// Our schemas refuse what the protocol forbids, in every clone.
func TestOurSchemasRejectInvalid(t *testing.T) {
	ev := func(typ, payload string) string {
		return `{"type":"` + typ + `","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z","payload":` + payload + `}`
	}
	bad := []struct {
		schema conformance.Schema
		body   string
	}{
		{conformance.TaskEvent, ev("TASK_PROGRESS", `{"progress":101}`)},
		{conformance.TaskEvent, ev("TASK_PROGRESS", `{}`)},
		{conformance.TaskEvent, ev("TASK_FAILED", `{"code":"X","message":"m"}`)},
		{conformance.TaskEvent, ev("TASK_SUSPENDED", `{"suspendId":"s","kind":"NOPE","reasonCode":"r","allowedActions":["a"],"schemaVersion":1}`)},
		{conformance.TaskEvent, ev("TASK_STARTED", `{"extra":1}`)},
		{conformance.TaskEvent, ev("TASK_OTHER", `{}`)},
		{conformance.TaskEvent, `{"type":"TASK_STARTED","taskId":"t","eventId":"hb-1","createdAt":"2026-01-01T00:00:00Z","payload":{}}`},
		{conformance.TaskEvent, `{"type":"TASK_STARTED","taskId":"t","eventId":"1-0","createdAt":"yesterday","payload":{}}`},
		{conformance.SubscriptionConfirmed, `{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t"}`},
		{conformance.SSEHeartbeat, `{"type":"HEARTBEAT","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z","payload":{"live":true}}`},
		{conformance.PollEventsResponse, `{"taskId":"t","events":[]}`},
		{conformance.ErrorResponse, `{"code":"X","message":"m"}`},
		{conformance.ClientFrame, `{"action":"subscribe"}`},
		{conformance.ClientFrame, `{"action":"unsubscribe","taskId":"t","lastEventId":"1-0"}`},
		{conformance.TaskSnapshot, `{"taskId":"t","taskType":"x","status":"RUNNING","createdAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z","lastEventId":null,"cancelRequested":false,"result":1}`},
		{conformance.TaskList, `{"tasks":[]}`},
		{conformance.ServerFrame, `{"type":"UNSUBSCRIBED","taskId":"t"}`},
		{conformance.ServerFrame, `{"type":"SUBSCRIPTION_ERROR","taskId":"t","message":"m"}`},
	}
	for _, tc := range bad {
		assert.Error(t, conformance.Validate(tc.schema, []byte(tc.body)), "%s must reject %s", tc.schema, tc.body)
	}
	good := []struct {
		schema conformance.Schema
		body   string
	}{
		{conformance.SubscriptionConfirmed, `{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t","replayStartedAfterEventId":null,"live":true}`},
		{conformance.ClientFrame, `{"action":"unsubscribe","taskId":"t"}`},
		{conformance.ClientFrame, `{"action":"subscribe","taskId":"t","lastEventId":null}`},
		{conformance.SSEData, `{"type":"HEARTBEAT","taskId":"t","eventId":"hb-0a1b","createdAt":"2026-01-01T00:00:00.000Z","payload":{"live":true}}`},
		{conformance.TaskList, `{"tasks":[],"nextCursor":null}`},
	}
	for _, tc := range good {
		assert.NoError(t, conformance.Validate(tc.schema, []byte(tc.body)), "%s must accept %s", tc.schema, tc.body)
	}
	assert.Error(t, conformance.Validate("NoSuchShape", []byte(`{}`)))
}

func TestEveryConstructorProducesSchemaValidEvents(t *testing.T) {
	expires := time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC)
	drafts := []func() (contracts.EventDraft, error){
		func() (contracts.EventDraft, error) { return contracts.Started("go"), nil },
		func() (contracts.EventDraft, error) { return contracts.Progress(42.5, "stage", "msg") },
		func() (contracts.EventDraft, error) { return contracts.Message("hello", contracts.LevelWarning) },
		func() (contracts.EventDraft, error) {
			return contracts.Suspended(contracts.SuspendedPayload{SuspendID: "s1", Kind: contracts.KindUserActionRequired,
				ReasonCode: "approval_required", AllowedActions: []string{"approve", "reject"}, SchemaVersion: 1,
				ExpiresAt: &expires, UIHints: map[string]any{"presentation": "dialog"}})
		},
		func() (contracts.EventDraft, error) {
			return contracts.ActionAccepted(contracts.ActionAcceptedPayload{SuspendID: "s1", ClientActionID: "a1",
				ActionType: "approve", AcceptedAt: expires})
		},
		func() (contracts.EventDraft, error) { return contracts.Completed(map[string]any{"steps": 3}) },
		func() (contracts.EventDraft, error) { return contracts.Failed("DEMO_FAILURE", "failed", false) },
		func() (contracts.EventDraft, error) { return contracts.Cancelled("cancelled_by_user", "") },
	}
	for i, mk := range drafts {
		d, err := mk()
		require.NoError(t, err)
		ev := contracts.TaskEvent{Type: d.Type(), TaskID: "task-1", EventID: contracts.EventID{Ms: 1700000000000, Seq: uint64(i)},
			CreatedAt: expires, Payload: d.Payload()}
		conformance.CheckFrame(t, ev.AppendJSON(nil))
	}
}

// The SSE heartbeat has its own shape; the WebSocket one and the rest map
// to theirs.
func TestFrameSchema(t *testing.T) {
	for body, want := range map[string]conformance.Schema{
		`{"type":"HEARTBEAT","taskId":"t","eventId":"hb-00ff","createdAt":"2026-01-01T00:00:00.000Z","payload":{"live":true}}`: conformance.SSEHeartbeat,
		`{"type":"HEARTBEAT","taskId":"t","live":true}`:                                                            conformance.Heartbeat,
		`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t","replayStartedAfterEventId":null,"live":true}`:              conformance.SubscriptionConfirmed,
		`{"type":"TASK_STARTED","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00.000Z","payload":{}}`: conformance.TaskEvent,
		`{"type":"SUBSCRIPTION_ERROR","taskId":"t","code":"TASK_NOT_FOUND","message":"task not found"}`:            conformance.SubscriptionError,
		`{"type":"UNSUBSCRIBED","taskId":"t","reason":"unsubscribed"}`:                                             conformance.Unsubscribed,
	} {
		f := conformance.CheckFrame(t, []byte(body))
		assert.Equal(t, want, conformance.FrameSchema(f), body)
	}
}
