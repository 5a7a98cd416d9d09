package observe_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// observed returns a Logger writing to an in-memory core at min and the
// captured logs.
func observed(tb testing.TB, min zapcore.Level) (*observe.Logger, *observer.ObservedLogs) {
	tb.Helper()
	core, logs := observer.New(min)
	return observe.NewLogger(zap.New(core)), logs
}

func fullEntry() observe.Entry {
	return observe.Entry{
		TaskID:          "task-1",
		EventID:         "1700000000000-3",
		ClientRequestID: "req-9",
		UserID:          "user-7",
		Transport:       observe.TransportWS,
		Outcome:         "ok",
		Details:         map[string]any{"events": 3},
		Err:             errors.New("boom"),
	}
}

func TestLoggerFieldNamesAndLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		log   func(*observe.Logger, string, observe.Entry)
		level zapcore.Level
	}{
		{"debug", (*observe.Logger).Debug, zapcore.DebugLevel},
		{"info", (*observe.Logger).Info, zapcore.InfoLevel},
		{"warn", (*observe.Logger).Warn, zapcore.WarnLevel},
		{"error", (*observe.Logger).Error, zapcore.ErrorLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, logs := observed(t, zapcore.DebugLevel)
			tt.log(l, "something happened", fullEntry())

			all := logs.AllUntimed()
			require.Len(t, all, 1)
			got := all[0]
			assert.Equal(t, tt.level, got.Level)
			assert.Equal(t, "something happened", got.Message)
			assert.Equal(t, map[string]any{
				"taskId":          "task-1",
				"eventId":         "1700000000000-3",
				"clientRequestId": "req-9",
				"userId":          "user-7",
				"transport":       "ws",
				"outcome":         "ok",
				"details":         map[string]any{"events": 3},
				"error":           "boom",
			}, got.ContextMap())
			keys := make([]string, 0, len(got.Context))
			for _, f := range got.Context {
				keys = append(keys, f.Key)
			}
			assert.Equal(t, []string{
				observe.FieldTaskID, observe.FieldEventID, observe.FieldClientRequestID, observe.FieldUserID,
				observe.FieldTransport, observe.FieldOutcome, observe.FieldDetails, observe.FieldError,
			}, keys, "fields are written in a fixed order")
		})
	}
}

func TestLoggerOmitsEmptyFields(t *testing.T) {
	t.Parallel()
	l, logs := observed(t, zapcore.DebugLevel)
	l.Info("task created", observe.Entry{TaskID: "t1", Transport: observe.TransportHTTP})
	all := logs.AllUntimed()
	require.Len(t, all, 1)
	assert.Equal(t, map[string]any{"taskId": "t1", "transport": "http"}, all[0].ContextMap())
}

func TestLoggerRespectsLevel(t *testing.T) {
	t.Parallel()
	l, logs := observed(t, zapcore.InfoLevel)
	l.Debug("per event", observe.Entry{TaskID: "t1"})
	l.Info("lifecycle", observe.Entry{TaskID: "t1"})
	l.Warn("denied", observe.Entry{TaskID: "t1"})

	assert.False(t, l.Enabled(zapcore.DebugLevel))
	assert.True(t, l.Enabled(zapcore.InfoLevel))
	msgs := []string{}
	for _, e := range logs.AllUntimed() {
		msgs = append(msgs, e.Message)
	}
	assert.Equal(t, []string{"lifecycle", "denied"}, msgs)
}

func TestLoggerNopForms(t *testing.T) {
	t.Parallel()
	var nilLogger *observe.Logger
	var zero observe.Logger
	for name, l := range map[string]*observe.Logger{
		"nil":            nilLogger,
		"zero":           &zero,
		"NopLogger":      observe.NopLogger(),
		"NewLogger(nil)": observe.NewLogger(nil),
	} {
		t.Run(name, func(t *testing.T) {
			assert.NotPanics(t, func() {
				l.Debug("x", fullEntry())
				l.Info("x", fullEntry())
				l.Warn("x", fullEntry())
				l.Error("x", fullEntry())
				l.With(fullEntry()).Error("x", fullEntry())
			})
			assert.False(t, l.Enabled(zapcore.ErrorLevel))
			assert.NotNil(t, l.Zap())
			assert.Same(t, observe.NopLogger(), l.With(observe.Entry{TaskID: "t"}))
		})
	}
}

func TestLoggerZapReturnsUnderlying(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	z := zap.New(core)
	l := observe.NewLogger(z)
	assert.Same(t, z, l.Zap())

	l.With(observe.Entry{TaskID: "t1"}).Zap().Info("direct")
	all := logs.AllUntimed()
	require.Len(t, all, 1)
	assert.Equal(t, map[string]any{"taskId": "t1"}, all[0].ContextMap(), "a child's Zap carries the bound fields")
}

func TestLoggerWith(t *testing.T) {
	t.Parallel()
	l, logs := observed(t, zapcore.DebugLevel)
	conn := l.With(observe.Entry{TaskID: "t1", UserID: "u1", Transport: observe.TransportSSE})

	conn.Debug("event delivered", observe.Entry{EventID: "5-0"})
	conn.Info("stream closed", observe.Entry{Outcome: "terminal", TaskID: "t2"})
	conn.With(observe.Entry{ClientRequestID: "r1"}).Warn("denied", observe.Entry{})
	l.Info("parent untouched", observe.Entry{})

	all := logs.AllUntimed()
	require.Len(t, all, 4)
	assert.Equal(t, map[string]any{"taskId": "t1", "userId": "u1", "transport": "sse", "eventId": "5-0"}, all[0].ContextMap())
	assert.Equal(t, map[string]any{"taskId": "t2", "userId": "u1", "transport": "sse", "outcome": "terminal"}, all[1].ContextMap(),
		"a line's field replaces the bound one")
	assert.Len(t, all[1].Context, 4, "no key is written twice")
	assert.Equal(t, map[string]any{"taskId": "t1", "userId": "u1", "transport": "sse", "clientRequestId": "r1"}, all[2].ContextMap(),
		"With on a child keeps the parent's bindings")
	assert.Empty(t, all[3].ContextMap())
}

func TestLoggerWithReplacesDetailsAndErr(t *testing.T) {
	t.Parallel()
	l, logs := observed(t, zapcore.DebugLevel)
	child := l.With(observe.Entry{Details: map[string]any{"a": 1}, Err: errors.New("bound")})
	child.Error("x", observe.Entry{})
	child.Error("y", observe.Entry{Details: map[string]any{"b": 2}, Err: errors.New("line")})
	all := logs.AllUntimed()
	require.Len(t, all, 2)
	assert.Equal(t, map[string]any{"details": map[string]any{"a": 1}, "error": "bound"}, all[0].ContextMap())
	assert.Equal(t, map[string]any{"details": map[string]any{"b": 2}, "error": "line"}, all[1].ContextMap())
}

// TestLoggerCallerIsTheCodeThatLogged: with zap.AddCaller, a line names the
// function that called Debug/Info/Warn/Error (here this test file), through
// With children too, not the Logger's own file.
func TestLoggerCallerIsTheCodeThatLogged(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	l := observe.NewLogger(zap.New(core, zap.AddCaller()))
	l.Info("root", observe.Entry{})
	l.With(observe.Entry{TaskID: "t"}).Warn("child", observe.Entry{})
	l.Zap().Info("zap")
	require.Equal(t, 3, logs.Len())
	for _, e := range logs.AllUntimed() {
		require.True(t, e.Caller.Defined, e.Message)
		assert.True(t, strings.HasSuffix(e.Caller.File, "observe/logger_test.go"), "%s: caller %s", e.Message, e.Caller)
	}
}

// TestLoggerClientActionID: an action's id has a field of its own.
func TestLoggerClientActionID(t *testing.T) {
	t.Parallel()
	l, logs := observed(t, zapcore.InfoLevel)
	l.Info("action", observe.Entry{ClientActionID: "a1"})
	require.Equal(t, 1, logs.Len())
	assert.Equal(t, map[string]any{observe.FieldClientActionID: "a1"}, logs.All()[0].ContextMap())
}
