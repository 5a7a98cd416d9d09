package observe_test

import (
	"io"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// discardCore is an enabled core (from min up) that drops entries without
// encoding them: it measures the Logger's own cost, like zapcore.NewNopCore
// but enabled.
type discardCore struct{ min zapcore.Level }

func (c discardCore) Enabled(l zapcore.Level) bool      { return l >= c.min }
func (c discardCore) With([]zapcore.Field) zapcore.Core { return c }
func (c discardCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}
func (discardCore) Write(zapcore.Entry, []zapcore.Field) error { return nil }
func (discardCore) Sync() error                                { return nil }

func jsonLogger(min zapcore.Level) *observe.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return observe.NewLogger(zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), min)))
}

func BenchmarkLoggerDebugDisabled(b *testing.B) {
	l := infoLoggerTB()
	e := fullEntry()
	b.ReportAllocs()
	for b.Loop() {
		l.Debug("event delivered", e)
	}
}

func BenchmarkLoggerDebugDisabledParallel(b *testing.B) {
	l := infoLoggerTB()
	e := fullEntry()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Debug("event delivered", e)
		}
	})
}

func BenchmarkLoggerDebugDisabledChild(b *testing.B) {
	l := infoLoggerTB().With(observe.Entry{TaskID: "t1", UserID: "u1", Transport: observe.TransportWS})
	b.ReportAllocs()
	for b.Loop() {
		l.Debug("event delivered", observe.Entry{EventID: "1700000000000-3"})
	}
}

func BenchmarkLoggerInfoEnabledDiscard(b *testing.B) {
	l := observe.NewLogger(zap.New(discardCore{min: zapcore.DebugLevel}))
	e := observe.Entry{TaskID: "t1", ClientRequestID: "r1", UserID: "u1", Transport: observe.TransportHTTP, Outcome: "created"}
	b.ReportAllocs()
	for b.Loop() {
		l.Info("task created", e)
	}
}

func BenchmarkLoggerInfoEnabledDiscardChild(b *testing.B) {
	l := observe.NewLogger(zap.New(discardCore{min: zapcore.DebugLevel})).
		With(observe.Entry{TaskID: "t1", UserID: "u1", Transport: observe.TransportHTTP})
	e := observe.Entry{ClientRequestID: "r1", Outcome: "created"}
	b.ReportAllocs()
	for b.Loop() {
		l.Info("task created", e)
	}
}

func BenchmarkLoggerInfoEnabledJSON(b *testing.B) {
	l := jsonLogger(zapcore.DebugLevel)
	e := observe.Entry{TaskID: "t1", ClientRequestID: "r1", UserID: "u1", Transport: observe.TransportHTTP, Outcome: "created"}
	b.ReportAllocs()
	for b.Loop() {
		l.Info("task created", e)
	}
}

func BenchmarkLoggerInfoEnabledJSONParallel(b *testing.B) {
	l := jsonLogger(zapcore.DebugLevel)
	e := observe.Entry{TaskID: "t1", ClientRequestID: "r1", UserID: "u1", Transport: observe.TransportHTTP, Outcome: "created"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Info("task created", e)
		}
	})
}

func infoLoggerTB() *observe.Logger {
	return observe.NewLogger(zap.New(discardCore{min: zapcore.InfoLevel}))
}
