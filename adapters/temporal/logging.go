package tbtemporal

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Logger adapts z to the Temporal SDK's logger, for client.Options.Logger,
// so the SDK's lines (worker start, retries, panics) go to the host's zap
// logger like everything else. Key-value pairs become zap fields; a nil z
// discards everything.
func Logger(z *zap.Logger) log.Logger {
	if z == nil {
		z = zap.NewNop()
	}
	return zapLogger{z: z.WithOptions(zap.AddCallerSkip(1))}
}

// zapLogger implements log.Logger and log.WithLogger on a *zap.Logger.
type zapLogger struct{ z *zap.Logger }

var (
	_ log.Logger     = zapLogger{}
	_ log.WithLogger = zapLogger{}
)

func (l zapLogger) Debug(msg string, keyvals ...any) { l.z.Debug(msg, fields(keyvals)...) }
func (l zapLogger) Info(msg string, keyvals ...any)  { l.z.Info(msg, fields(keyvals)...) }
func (l zapLogger) Warn(msg string, keyvals ...any)  { l.z.Warn(msg, fields(keyvals)...) }
func (l zapLogger) Error(msg string, keyvals ...any) { l.z.Error(msg, fields(keyvals)...) }

// With returns a logger that adds keyvals to every line.
func (l zapLogger) With(keyvals ...any) log.Logger { return zapLogger{z: l.z.With(fields(keyvals)...)} }

// fields turns alternating keys and values into zap fields; a key that is
// not a string is formatted, and a trailing key without a value is kept
// with an empty value.
func fields(keyvals []any) []zap.Field {
	if len(keyvals) == 0 {
		return nil
	}
	out := make([]zap.Field, 0, (len(keyvals)+1)/2)
	for i := 0; i < len(keyvals); i += 2 {
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		var v any
		if i+1 < len(keyvals) {
			v = keyvals[i+1]
		}
		if err, isErr := v.(error); isErr {
			out = append(out, zap.NamedError(key, err))
			continue
		}
		out = append(out, zap.Any(key, v))
	}
	return out
}
