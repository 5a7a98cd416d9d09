package observe_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

func TestLoggingDiagnostics(t *testing.T) {
	t.Parallel()
	id := contracts.EventID{Ms: 1700000000000, Seq: 2}
	tests := []struct {
		name   string
		call   func(observe.TransportDiagnosticsSink)
		level  zapcore.Level
		msg    string
		fields map[string]any
	}{
		{
			name:   "replay start",
			call:   func(d observe.TransportDiagnosticsSink) { d.OnReplayStart(observe.TransportSSE, "t1", id) },
			level:  zapcore.DebugLevel,
			msg:    "stream replay started",
			fields: map[string]any{"taskId": "t1", "transport": "sse", "eventId": "1700000000000-2"},
		},
		{
			name: "replay from the start omits the cursor",
			call: func(d observe.TransportDiagnosticsSink) {
				d.OnReplayStart(observe.TransportWS, "t1", contracts.EventID{})
			},
			level:  zapcore.DebugLevel,
			msg:    "stream replay started",
			fields: map[string]any{"taskId": "t1", "transport": "ws"},
		},
		{
			name:   "heartbeat",
			call:   func(d observe.TransportDiagnosticsSink) { d.OnHeartbeat(observe.TransportWS, "t1") },
			level:  zapcore.DebugLevel,
			msg:    "stream heartbeat sent",
			fields: map[string]any{"taskId": "t1", "transport": "ws"},
		},
		{
			name:  "delivery",
			call:  func(d observe.TransportDiagnosticsSink) { d.OnDelivery(observe.TransportWS, "t1", id, 4) },
			level: zapcore.DebugLevel,
			msg:   "stream events delivered",
			fields: map[string]any{
				"taskId": "t1", "transport": "ws", "eventId": "1700000000000-2",
				"details": map[string]any{"events": 4},
			},
		},
		{
			name:   "disconnect",
			call:   func(d observe.TransportDiagnosticsSink) { d.OnDisconnect(observe.TransportSSE, "t1", "client_gone") },
			level:  zapcore.InfoLevel,
			msg:    "stream disconnected",
			fields: map[string]any{"taskId": "t1", "transport": "sse", "outcome": "client_gone"},
		},
		{
			name:   "slow subscriber",
			call:   func(d observe.TransportDiagnosticsSink) { d.OnSlowSubscriber(observe.TransportWS, "t1") },
			level:  zapcore.InfoLevel,
			msg:    "slow subscriber switched to catch-up reads",
			fields: map[string]any{"taskId": "t1", "transport": "ws", "outcome": "catchup"},
		},
		{
			name:   "shutdown",
			call:   func(d observe.TransportDiagnosticsSink) { d.OnShutdown(12) },
			level:  zapcore.InfoLevel,
			msg:    "shutdown: closing open streams",
			fields: map[string]any{"transport": "internal", "details": map[string]any{"openStreams": 12}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			tt.call(observe.NewLoggingDiagnostics(zap.New(core)))
			all := logs.AllUntimed()
			require.Len(t, all, 1)
			assert.Equal(t, tt.level, all[0].Level)
			assert.Equal(t, tt.msg, all[0].Message)
			assert.Equal(t, tt.fields, all[0].ContextMap())

			// One level above: the line is dropped.
			quiet, none := observer.New(tt.level + 1)
			tt.call(observe.NewLoggingDiagnostics(zap.New(quiet)))
			assert.Zero(t, none.Len())
		})
	}
}

func TestLoggingDiagnosticsNilLogger(t *testing.T) {
	t.Parallel()
	d := observe.NewLoggingDiagnostics(nil)
	assert.NotPanics(t, func() {
		d.OnReplayStart(observe.TransportWS, "t", contracts.EventID{Ms: 1})
		d.OnHeartbeat(observe.TransportWS, "t")
		d.OnDelivery(observe.TransportWS, "t", contracts.EventID{Ms: 1}, 1)
		d.OnDisconnect(observe.TransportWS, "t", "x")
		d.OnSlowSubscriber(observe.TransportWS, "t")
		d.OnShutdown(1)
	})
}

// recordingDiagnostics records each hook as a string.
type recordingDiagnostics struct{ calls []string }

func (r *recordingDiagnostics) OnReplayStart(tr observe.Transport, task string, after contracts.EventID) {
	r.calls = append(r.calls, "replay "+string(tr)+" "+task+" "+after.String())
}
func (r *recordingDiagnostics) OnHeartbeat(tr observe.Transport, task string) {
	r.calls = append(r.calls, "heartbeat "+string(tr)+" "+task)
}
func (r *recordingDiagnostics) OnDelivery(tr observe.Transport, task string, last contracts.EventID, n int) {
	r.calls = append(r.calls, "delivery "+string(tr)+" "+task+" "+last.String()+" "+strconv.Itoa(n))
}
func (r *recordingDiagnostics) OnDisconnect(tr observe.Transport, task, reason string) {
	r.calls = append(r.calls, "disconnect "+string(tr)+" "+task+" "+reason)
}
func (r *recordingDiagnostics) OnSlowSubscriber(tr observe.Transport, task string) {
	r.calls = append(r.calls, "slow "+string(tr)+" "+task)
}
func (r *recordingDiagnostics) OnShutdown(n int) {
	r.calls = append(r.calls, "shutdown "+strconv.Itoa(n))
}

func TestMultiDiagnostics(t *testing.T) {
	t.Parallel()
	assert.Equal(t, observe.NopDiagnostics{}, observe.MultiDiagnostics())
	assert.Equal(t, observe.NopDiagnostics{}, observe.MultiDiagnostics(nil, observe.NopDiagnostics{}, &observe.NopDiagnostics{}))
	single := &recordingDiagnostics{}
	assert.Same(t, single, observe.MultiDiagnostics(observe.NopDiagnostics{}, single))

	a, b := &recordingDiagnostics{}, &recordingDiagnostics{}
	d := observe.MultiDiagnostics(a, nil, b)
	id := contracts.EventID{Ms: 5, Seq: 1}
	d.OnReplayStart(observe.TransportSSE, "t1", id)
	d.OnHeartbeat(observe.TransportSSE, "t1")
	d.OnDelivery(observe.TransportSSE, "t1", id, 3)
	d.OnDisconnect(observe.TransportSSE, "t1", "terminal")
	d.OnSlowSubscriber(observe.TransportWS, "t1")
	d.OnShutdown(2)
	want := []string{
		"replay sse t1 5-1", "heartbeat sse t1", "delivery sse t1 5-1 3",
		"disconnect sse t1 terminal", "slow ws t1", "shutdown 2",
	}
	assert.Equal(t, want, a.calls)
	assert.Equal(t, want, b.calls)
}
