package tbtemporal_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
)

func TestLoggerWritesKeyValuesAsFields(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	l := tbtemporal.Logger(zap.New(core))
	l.Info("worker started", "TaskQueue", "q", "Attempt", 2)
	l.(log.WithLogger).With("WorkflowID", "w1").Error("failed", "Error", errors.New("boom"), "dangling")

	entries := logs.AllUntimed()
	require.Len(t, entries, 2)
	assert.Equal(t, zapcore.InfoLevel, entries[0].Level)
	assert.Equal(t, map[string]any{"TaskQueue": "q", "Attempt": int64(2)}, entries[0].ContextMap())
	assert.Equal(t, "failed", entries[1].Message)
	assert.Equal(t, map[string]any{"WorkflowID": "w1", "Error": "boom", "dangling": nil}, entries[1].ContextMap())

	tbtemporal.Logger(nil).Warn("discarded") // a nil logger discards
}
