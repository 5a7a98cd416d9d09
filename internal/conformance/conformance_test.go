package conformance_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
)

func TestReferenceExamplesPass(t *testing.T) {
	dir, ok := conformance.ProtocolDir()
	if !ok {
		t.Skip("reference protocol directory absent; schema part skipped")
	}
	frames := []string{"task_action_accepted.json", "task_cancelled.json", "task_completed.json",
		"task_failed.json", "task_message.json", "task_progress.json", "task_started.json",
		"task_suspended.json", "websocket_heartbeat.json", "websocket_subscribe_ack.json"}
	for _, name := range frames {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "examples", name))
			require.NoError(t, err)
			conformance.CheckFrame(t, raw)
		})
	}
	raw, err := os.ReadFile(filepath.Join(dir, "examples", "poll_events_response.json"))
	require.NoError(t, err)
	conformance.CheckBody(t, conformance.PollEventsResponse, raw)

	raw, err = os.ReadFile(filepath.Join(dir, "examples", "websocket_subscribe_request.json"))
	require.NoError(t, err)
	req, err := contracts.ParseSubscribeRequest(raw)
	require.NoError(t, err)
	assert.Equal(t, "task_123", req.TaskID)
}

func TestSchemaRejectsInvalid(t *testing.T) {
	if _, ok := conformance.ProtocolDir(); !ok {
		t.Skip("reference protocol directory absent")
	}
	bad := map[conformance.Schema]string{
		conformance.TaskEvent:             `{"type":"TASK_PROGRESS","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z","payload":{"progress":101}}`,
		conformance.SubscriptionConfirmed: `{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t"}`,
		conformance.PollEventsResponse:    `{"taskId":"t","events":[]}`,
		conformance.ErrorResponse:         `{"code":"X","message":"m"}`,
	}
	for s, body := range bad {
		checked, err := conformance.Validate(s, []byte(body))
		assert.True(t, checked)
		assert.Error(t, err, "%s must reject %s", s, body)
	}
	checked, err := conformance.Validate(conformance.SubscriptionConfirmed,
		[]byte(`{"type":"SUBSCRIPTION_CONFIRMED","taskId":"t","replayStartedAfterEventId":null,"live":true}`))
	assert.True(t, checked)
	assert.NoError(t, err, "nullable cursor must validate")
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
