package contracts_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestConstructorsRejectInvalidPayloads(t *testing.T) {
	t.Parallel()
	valid := contracts.SuspendedPayload{SuspendID: "s", Kind: contracts.KindSystemPaused, ReasonCode: "r",
		AllowedActions: []string{"go"}, SchemaVersion: 1}
	withSuspended := func(f func(*contracts.SuspendedPayload)) contracts.SuspendedPayload {
		p := valid
		p.AllowedActions = append([]string(nil), valid.AllowedActions...)
		f(&p)
		return p
	}
	tests := []struct {
		name string
		make func() (contracts.EventDraft, error)
	}{
		{"progress below 0", func() (contracts.EventDraft, error) { return contracts.Progress(-0.1, "", "") }},
		{"progress above 100", func() (contracts.EventDraft, error) { return contracts.Progress(100.01, "", "") }},
		{"progress NaN", func() (contracts.EventDraft, error) { return contracts.Progress(math.NaN(), "", "") }},
		{"progress +Inf", func() (contracts.EventDraft, error) { return contracts.Progress(math.Inf(1), "", "") }},
		{"message level unknown", func() (contracts.EventDraft, error) { return contracts.Message("m", "error") }},
		{"suspended without id", func() (contracts.EventDraft, error) {
			return contracts.Suspended(withSuspended(func(p *contracts.SuspendedPayload) { p.SuspendID = "" }))
		}},
		{"suspended bad kind", func() (contracts.EventDraft, error) {
			return contracts.Suspended(withSuspended(func(p *contracts.SuspendedPayload) { p.Kind = "WAITING" }))
		}},
		{"suspended no reason", func() (contracts.EventDraft, error) {
			return contracts.Suspended(withSuspended(func(p *contracts.SuspendedPayload) { p.ReasonCode = "" }))
		}},
		{"suspended no actions", func() (contracts.EventDraft, error) {
			return contracts.Suspended(withSuspended(func(p *contracts.SuspendedPayload) { p.AllowedActions = nil }))
		}},
		{"suspended empty action", func() (contracts.EventDraft, error) {
			return contracts.Suspended(withSuspended(func(p *contracts.SuspendedPayload) { p.AllowedActions = []string{""} }))
		}},
		{"suspended schema version 0", func() (contracts.EventDraft, error) {
			return contracts.Suspended(withSuspended(func(p *contracts.SuspendedPayload) { p.SchemaVersion = 0 }))
		}},
		{"action accepted without time", func() (contracts.EventDraft, error) {
			return contracts.ActionAccepted(contracts.ActionAcceptedPayload{SuspendID: "s", ClientActionID: "c", ActionType: "a"})
		}},
		{"action accepted without type", func() (contracts.EventDraft, error) {
			return contracts.ActionAccepted(contracts.ActionAcceptedPayload{SuspendID: "s", ClientActionID: "c", AcceptedAt: time.Now()})
		}},
		{"completed without result", func() (contracts.EventDraft, error) {
			return contracts.NewDraft(contracts.CompletedPayload{})
		}},
		{"completed with invalid JSON", func() (contracts.EventDraft, error) {
			return contracts.Completed(json.RawMessage(`{"a":`))
		}},
		{"completed with unencodable result", func() (contracts.EventDraft, error) { return contracts.Completed(make(chan int)) }},
		{"failed without code", func() (contracts.EventDraft, error) { return contracts.Failed("", "m", false) }},
		{"failed without message", func() (contracts.EventDraft, error) { return contracts.Failed("C", "", false) }},
		{"cancelled without reason", func() (contracts.EventDraft, error) { return contracts.Cancelled("", "m") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.make()
			require.Error(t, err)
			assert.ErrorIs(t, err, contracts.ErrInvalidPayload)
			assert.True(t, d.IsZero(), "a failed constructor must not return a usable draft")
		})
	}
}

func TestConstructorsEncodeProtocolShapes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 5, 14, 0, 4, 0, time.FixedZone("CEST", 2*3600))
	mustDraft := func(d contracts.EventDraft, err error) contracts.EventDraft {
		t.Helper()
		require.NoError(t, err)
		return d
	}
	tests := []struct {
		name  string
		draft contracts.EventDraft
		typ   contracts.EventType
		want  string
	}{
		{"started", contracts.Started(""), contracts.EventStarted, `{}`},
		{"progress", mustDraft(contracts.Progress(35, "prep", "Preparing")), contracts.EventProgress,
			`{"progress":35,"stage":"prep","message":"Preparing"}`},
		{"progress zero is kept", mustDraft(contracts.Progress(0, "", "")), contracts.EventProgress, `{"progress":0}`},
		{"message", mustDraft(contracts.Message("hi", contracts.LevelInfo)), contracts.EventMessage, `{"message":"hi","level":"info"}`},
		{"action accepted in UTC", mustDraft(contracts.ActionAccepted(contracts.ActionAcceptedPayload{SuspendID: "s",
			ClientActionID: "c", ActionType: "approve", AcceptedAt: at})), contracts.EventActionAccepted,
			`{"suspendId":"s","clientActionId":"c","actionType":"approve","acceptedAt":"2026-05-05T12:00:04.000Z"}`},
		{"completed null result", mustDraft(contracts.Completed(nil)), contracts.EventCompleted, `{"result":null}`},
		{"completed raw result compacted", mustDraft(contracts.Completed(json.RawMessage("{ \"a\" : 1 }"))),
			contracts.EventCompleted, `{"result":{"a":1}}`},
		{"failed", mustDraft(contracts.Failed("C", "m", true)), contracts.EventFailed, `{"code":"C","message":"m","retryable":true}`},
		{"cancelled", mustDraft(contracts.Cancelled("cancelled_by_user", "")), contracts.EventCancelled, `{"reason":"cancelled_by_user"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.typ, tt.draft.Type())
			assert.JSONEq(t, tt.want, string(tt.draft.Payload()))
			again, err := contracts.ParseDraft(tt.draft.Type(), tt.draft.Payload())
			require.NoError(t, err, "constructor output must pass the strict parser")
			assert.Equal(t, string(tt.draft.Payload()), string(again.Payload()))
		})
	}
}

func TestParseDraftIsStrict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		typ     contracts.EventType
		payload string
		ok      bool
	}{
		{"progress ok", contracts.EventProgress, `{"progress": 50}`, true},
		{"progress missing", contracts.EventProgress, `{"stage":"x"}`, false},
		{"progress null", contracts.EventProgress, `{"progress":null}`, false},
		{"progress string", contracts.EventProgress, `{"progress":"50"}`, false},
		{"progress unknown key", contracts.EventProgress, `{"progress":5,"eta":3}`, false},
		{"started unknown key", contracts.EventStarted, `{"foo":1}`, false},
		{"payload array", contracts.EventStarted, `[]`, false},
		{"payload null", contracts.EventStarted, `null`, false},
		{"payload string", contracts.EventStarted, `"x"`, false},
		{"trailing data", contracts.EventStarted, `{} {}`, false},
		{"completed extra keys allowed", contracts.EventCompleted, `{"result":1,"extra":true}`, true},
		{"completed result missing", contracts.EventCompleted, `{"extra":true}`, false},
		{"completed null result", contracts.EventCompleted, `{"result":null}`, true},
		{"failed retryable missing", contracts.EventFailed, `{"code":"C","message":"m"}`, false},
		{"failed ok", contracts.EventFailed, `{"code":"C","message":"m","retryable":false}`, true},
		{"suspended expiresAt null", contracts.EventSuspended,
			`{"suspendId":"s","kind":"SYSTEM_PAUSED","reasonCode":"r","allowedActions":["a"],"schemaVersion":1,"expiresAt":null}`, true},
		{"suspended empty actions", contracts.EventSuspended,
			`{"suspendId":"s","kind":"SYSTEM_PAUSED","reasonCode":"r","allowedActions":[],"schemaVersion":1}`, false},
		{"unknown type", "TASK_EXPLODED", `{}`, false},
		{"heartbeat is not an event", contracts.FrameHeartbeat, `{}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := contracts.ParseDraft(tt.typ, []byte(tt.payload))
			if !tt.ok {
				assert.ErrorIs(t, err, contracts.ErrInvalidPayload)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.typ, d.Type())
			assert.True(t, json.Valid(d.Payload()))
		})
	}
}

func TestStatusTransitions(t *testing.T) {
	t.Parallel()
	all := []contracts.TaskStatus{contracts.StatusAccepted, contracts.StatusRunning, contracts.StatusCompleted,
		contracts.StatusFailed, contracts.StatusCancelled}
	allowed := map[[2]contracts.TaskStatus]bool{
		{contracts.StatusAccepted, contracts.StatusRunning}:   true,
		{contracts.StatusAccepted, contracts.StatusCancelled}: true,
		{contracts.StatusAccepted, contracts.StatusFailed}:    true,
		{contracts.StatusRunning, contracts.StatusCompleted}:  true,
		{contracts.StatusRunning, contracts.StatusFailed}:     true,
		{contracts.StatusRunning, contracts.StatusCancelled}:  true,
	}
	for _, from := range all {
		for _, to := range all {
			assert.Equal(t, allowed[[2]contracts.TaskStatus{from, to}], from.CanTransitionTo(to), "%s -> %s", from, to)
		}
		assert.True(t, from.Valid())
	}
	assert.False(t, contracts.TaskStatus("PAUSED").Valid())
	for _, s := range all[2:] {
		assert.True(t, s.IsTerminal())
	}
	assert.False(t, contracts.StatusRunning.IsTerminal())
	st, ok := contracts.TerminalStatusFor(contracts.EventCancelled)
	assert.True(t, ok)
	assert.Equal(t, contracts.StatusCancelled, st)
	_, ok = contracts.TerminalStatusFor(contracts.EventProgress)
	assert.False(t, ok)
}

func TestAppendJSONStringEscapes(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"plain":           `"plain"`,
		"a\"b\\c":         `"a\"b\\c"`,
		"line\nbreak\r":   `"line\nbreak\r"`,
		"nul\x00bell\x07": `"nul\u0000bell\u0007"`,
		"\u2028sep":       `"\u2028sep"`,
		"bad\xffutf8":     `"bad\ufffdutf8"`,
		"ünïcödé ✓":       `"ünïcödé ✓"`,
	}
	for in, want := range tests {
		got := string(contracts.AppendJSONString(nil, in))
		assert.Equal(t, want, got, "input %q", in)
		assert.True(t, json.Valid([]byte(got)), got)
		assert.NotContains(t, got, "\n")
	}
}

func TestTaskEventJSONRoundTrip(t *testing.T) {
	t.Parallel()
	d, err := contracts.Progress(60, "inference", "Running")
	require.NoError(t, err)
	ev := contracts.TaskEvent{Type: d.Type(), TaskID: "task\n\"x", EventID: contracts.MustParseEventID("3-1"),
		CreatedAt: time.Date(2026, 5, 4, 14, 0, 10, 123456789, time.FixedZone("", 7200)), Payload: d.Payload()}
	raw, err := json.Marshal(ev)
	require.NoError(t, err)
	assert.Equal(t, `{"type":"TASK_PROGRESS","taskId":"task\n\"x","eventId":"3-1","createdAt":"2026-05-04T12:00:10.123Z",`+
		`"payload":{"progress":60,"stage":"inference","message":"Running"}}`, string(raw))
	var back contracts.TaskEvent
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, ev.TaskID, back.TaskID)
	assert.Equal(t, ev.EventID, back.EventID)
	assert.True(t, ev.CreatedAt.Truncate(time.Millisecond).Equal(back.CreatedAt))
	p, err := contracts.DecodePayload(&back)
	require.NoError(t, err)
	assert.Equal(t, contracts.ProgressPayload{Progress: 60, Stage: "inference", Message: "Running"}, p)
}

// TestDecodeEventRejects: TaskEvent decodes strictly.
func TestDecodeEventRejects(t *testing.T) {
	t.Parallel()
	const ok = `{"type":"TASK_STARTED","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z","payload":{}}`
	var ev contracts.TaskEvent
	require.NoError(t, json.Unmarshal([]byte(ok), &ev))
	for name, frame := range map[string]string{
		"unknown envelope key": `{"type":"TASK_STARTED","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z","payload":{},"x":1}`,
		"missing payload":      `{"type":"TASK_STARTED","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z"}`,
		"bad event id":         `{"type":"TASK_STARTED","taskId":"t","eventId":"hb-1","createdAt":"2026-01-01T00:00:00Z","payload":{}}`,
		"bad time":             `{"type":"TASK_STARTED","taskId":"t","eventId":"1-0","createdAt":"yesterday","payload":{}}`,
		"empty task id":        `{"type":"TASK_STARTED","taskId":"","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z","payload":{}}`,
		"bad payload":          `{"type":"TASK_PROGRESS","taskId":"t","eventId":"1-0","createdAt":"2026-01-01T00:00:00Z","payload":{}}`,
		"not an object":        `[1]`,
	} {
		assert.ErrorIs(t, json.Unmarshal([]byte(frame), &ev), contracts.ErrInvalidFrame, name)
	}
}

func TestCanonicalJSONAndFingerprint(t *testing.T) {
	t.Parallel()
	a, err := contracts.CanonicalObject([]byte(`{ "b": [1, 2.50, {"y":1,"x":2}], "a": "s" }`))
	require.NoError(t, err)
	b, err := contracts.CanonicalObject([]byte(`{"a":"s","b":[1,2.50,{"x":2,"y":1}]}`))
	require.NoError(t, err)
	assert.Equal(t, string(a), string(b))
	assert.Equal(t, `{"a":"s","b":[1,2.50,{"x":2,"y":1}]}`, string(a), "numbers keep their spelling")

	empty, err := contracts.CanonicalObject(nil)
	require.NoError(t, err)
	assert.Equal(t, "{}", string(empty))
	_, err = contracts.CanonicalObject([]byte(`[1]`))
	assert.ErrorIs(t, err, contracts.ErrNotObject)
	_, err = contracts.CanonicalObject([]byte(`{"a":`))
	assert.Error(t, err)

	att := contracts.NewAttachment("a.txt", "text/plain", []byte("hello"))
	assert.EqualValues(t, 5, att.Size)
	f1 := contracts.Fingerprint("demo", a, []contracts.Attachment{att})
	assert.Equal(t, f1, contracts.Fingerprint("demo", b, []contracts.Attachment{att}))
	assert.NotEqual(t, f1, contracts.Fingerprint("demo", a, nil))
	assert.NotEqual(t, f1, contracts.Fingerprint("demo2", a, []contracts.Attachment{att}))
	assert.NotEqual(t, contracts.Fingerprint("ab", []byte("c"), nil), contracts.Fingerprint("a", []byte("bc"), nil),
		"fields are length-prefixed")
	assert.Len(t, contracts.NewID(), 32)
	assert.NotEqual(t, contracts.NewID(), contracts.NewID())
}

func BenchmarkTaskEventAppendJSON(b *testing.B) {
	d, _ := contracts.Progress(60, "inference", "Running inference")
	ev := contracts.TaskEvent{Type: d.Type(), TaskID: "0123456789abcdef0123456789abcdef",
		EventID: contracts.MustParseEventID("1700000000000-10"), CreatedAt: time.Now(), Payload: d.Payload()}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
}
