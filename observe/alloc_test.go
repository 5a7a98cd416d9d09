//go:build !race

package observe_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// infoLogger returns a Logger over a core enabled from Info up that discards
// what it is given, so Debug is the disabled level.
func infoLogger() *observe.Logger {
	return observe.NewLogger(zap.New(discardCore{min: zapcore.InfoLevel}))
}

func TestDisabledLevelsDoNotAllocate(t *testing.T) {
	l := infoLogger()
	child := l.With(observe.Entry{TaskID: "t1", UserID: "u1", Transport: observe.TransportWS})
	e := fullEntry()
	diag := observe.NewLoggingDiagnostics(zap.New(discardCore{min: zapcore.InfoLevel}))
	id := contracts.EventID{Ms: 1700000000000, Seq: 3}
	var sink observe.MetricsSink = observe.NopMetrics{}

	tests := []struct {
		name string
		call func()
	}{
		{"Logger.Debug full entry", func() { l.Debug("event delivered", e) }},
		{"NopLogger.Debug full entry", func() { observe.NopLogger().Error("x", e) }},
		{"child.Debug", func() { child.Debug("event delivered", observe.Entry{EventID: "1-0"}) }},
		{"LoggingDiagnostics.OnDelivery", func() { diag.OnDelivery(observe.TransportSSE, "t1", id, 4) }},
		{"LoggingDiagnostics.OnReplayStart", func() { diag.OnReplayStart(observe.TransportSSE, "t1", id) }},
		{"LoggingDiagnostics.OnHeartbeat", func() { diag.OnHeartbeat(observe.TransportWS, "t1") }},
		{"MetricsSink with TransportTags", func() {
			sink.IncCounter(observe.MetricEventsDelivered, 1, observe.TransportTags(observe.TransportWS)...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Zero(t, testing.AllocsPerRun(1000, tt.call))
		})
	}
}
