package observe

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Transport names the path a request or stream took; it is the value of the
// "transport" log field and metric tag.
type Transport string

// Transports.
const (
	TransportHTTP     Transport = "http"
	TransportSSE      Transport = "sse"
	TransportWS       Transport = "ws"
	TransportInternal Transport = "internal"
)

// Stable log field names. Hosts build dashboards and alerts on them; they do
// not change.
const (
	FieldTaskID          = "taskId"
	FieldEventID         = "eventId"
	FieldClientRequestID = "clientRequestId"
	FieldUserID          = "userId"
	FieldTransport       = "transport"
	FieldOutcome         = "outcome"
	FieldDetails         = "details"
)

// Entry is one structured log line. Empty string fields are omitted; Details
// is logged under "details" when non-nil; Err under "error".
type Entry struct {
	TaskID          string
	EventID         string
	ClientRequestID string
	UserID          string
	Transport       Transport
	Outcome         string
	Details         map[string]any
	Err             error
}

// Logger writes Entries through a *zap.Logger. The zero value and a nil
// *Logger are usable and discard everything. Levels: per-event and heartbeat
// lines at Debug, lifecycle at Info, denials at Warn, failures at Error. A
// disabled level costs one level check and no allocation. Logger is safe for
// concurrent use.
type Logger struct {
	z *zap.Logger
}

// NewLogger returns a Logger writing to z; a nil z gives a no-op Logger.
func NewLogger(z *zap.Logger) *Logger {
	if z == nil {
		return NopLogger()
	}
	return &Logger{z: z}
}

var nopLogger = &Logger{}

// NopLogger returns a Logger that discards everything.
func NopLogger() *Logger { return nopLogger }

// Zap returns the underlying *zap.Logger (zap.NewNop() for a no-op Logger).
func (l *Logger) Zap() *zap.Logger {
	if l == nil || l.z == nil {
		return zap.NewNop()
	}
	return l.z
}

// Enabled reports whether lvl would be written; check it before building an
// expensive Entry.
func (l *Logger) Enabled(lvl zapcore.Level) bool {
	return l != nil && l.z != nil && l.z.Core().Enabled(lvl)
}

// Debug logs e at Debug level.
func (l *Logger) Debug(msg string, e Entry) { l.log(zapcore.DebugLevel, msg, &e) }

// Info logs e at Info level.
func (l *Logger) Info(msg string, e Entry) { l.log(zapcore.InfoLevel, msg, &e) }

// Warn logs e at Warn level.
func (l *Logger) Warn(msg string, e Entry) { l.log(zapcore.WarnLevel, msg, &e) }

// Error logs e at Error level.
func (l *Logger) Error(msg string, e Entry) { l.log(zapcore.ErrorLevel, msg, &e) }

func (l *Logger) log(lvl zapcore.Level, msg string, e *Entry) {
	if l == nil || l.z == nil {
		return
	}
	ce := l.z.Check(lvl, msg)
	if ce == nil {
		return
	}
	var buf [8]zap.Field
	ce.Write(e.fields(buf[:0])...)
}

func (e *Entry) fields(dst []zap.Field) []zap.Field {
	add := func(key, val string) {
		if val != "" {
			dst = append(dst, zap.String(key, val))
		}
	}
	add(FieldTaskID, e.TaskID)
	add(FieldEventID, e.EventID)
	add(FieldClientRequestID, e.ClientRequestID)
	add(FieldUserID, e.UserID)
	add(FieldTransport, string(e.Transport))
	add(FieldOutcome, e.Outcome)
	if e.Details != nil {
		dst = append(dst, zap.Any(FieldDetails, e.Details))
	}
	if e.Err != nil {
		dst = append(dst, zap.Error(e.Err))
	}
	return dst
}
