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
	FieldClientActionID  = "clientActionId"
	FieldUserID          = "userId"
	FieldTransport       = "transport"
	FieldOutcome         = "outcome"
	FieldDetails         = "details"
	// FieldError is the key Entry.Err is logged under (zap's own default).
	FieldError = "error"
)

// Entry is one structured log line. Empty string fields are omitted; Details
// is logged under "details" when non-nil; Err under "error". An Entry is a
// plain value: building one costs nothing until it is written, except for a
// Details map, which callers on hot paths build only after checking Enabled.
type Entry struct {
	TaskID          string
	EventID         string
	ClientRequestID string
	ClientActionID  string
	UserID          string
	Transport       Transport
	Outcome         string
	Details         map[string]any
	Err             error
}

// Logger writes Entries through a *zap.Logger. The zero value and a nil
// *Logger are usable and discard everything.
//
// Hosts do not need it: every constructor of the library takes the host's
// *zap.Logger. It is exported for executors, stores and other adapters
// built outside this module (such as adapters/temporal), so that their
// lines carry the same stable fields and levels.
//
// Levels: per-event and heartbeat lines at Debug, lifecycle (task created,
// stream opened or closed, shutdown) at Info, denials (auth, ownership,
// validation, rate limits) at Warn, failures (task failed, store errors) at
// Error. A disabled level costs one level check and no allocation, so the
// per-subscriber hot path logs only at Debug and pays nothing in production.
//
// A Logger is immutable and safe for concurrent use; With derives children
// that share the underlying zap core.
type Logger struct {
	z     *zap.Logger // the given logger, skipping the Logger's own frames
	raw   *zap.Logger // the given logger, for Zap
	bound *Entry      // fields bound by With; nil for a root Logger
}

// callerSkip is the number of the Logger's own frames between the code
// that logs and zap's Check (Debug/Info/Warn/Error, then log), so a line's
// caller is the library code that logged it.
const callerSkip = 2

// NewLogger returns a Logger writing to z; a nil z gives a no-op Logger.
// Lines name as their caller the code that called Debug, Info, Warn or
// Error (when z records callers).
func NewLogger(z *zap.Logger) *Logger {
	if z == nil {
		return NopLogger()
	}
	return &Logger{z: z.WithOptions(zap.AddCallerSkip(callerSkip)), raw: z}
}

var nopLogger = &Logger{}

// NopLogger returns a Logger that discards everything. It is shared and
// immutable.
func NopLogger() *Logger { return nopLogger }

// Zap returns the underlying *zap.Logger (zap.NewNop() for a no-op Logger).
// For a child made by With, the bound fields are added to the returned
// logger, which costs an allocation per call; keep the result if it is used
// repeatedly.
func (l *Logger) Zap() *zap.Logger {
	if l == nil || l.z == nil {
		return zap.NewNop()
	}
	if l.bound == nil {
		return l.raw
	}
	return l.raw.With(l.bound.fields(make([]zap.Field, 0, l.bound.count()))...)
}

// Enabled reports whether lvl would be written; check it before building an
// expensive Entry (a Details map, an event id's text).
func (l *Logger) Enabled(lvl zapcore.Level) bool {
	return l != nil && l.z != nil && l.z.Core().Enabled(lvl)
}

// With returns a child Logger that adds the non-empty fields of e to every
// line it writes. Use it once per connection or task to bind taskId, userId
// and transport, then log per-event lines with only what changes.
//
// Binding is lazy: With allocates one small struct and encodes nothing, so a
// child whose lines are all at a disabled level costs nothing more. On each
// line, a non-empty field of the line's Entry replaces the bound one (Details
// and Err replace, they do not merge), so no key is ever written twice. With
// on a no-op Logger returns the same no-op Logger.
func (l *Logger) With(e Entry) *Logger {
	if l == nil || l.z == nil {
		return NopLogger()
	}
	merged := e
	if l.bound != nil {
		merged = l.bound.merge(&e)
	}
	return &Logger{z: l.z, raw: l.raw, bound: &merged}
}

// Debug logs e at Debug level: per-event, per-delivery and heartbeat lines.
func (l *Logger) Debug(msg string, e Entry) { l.log(zapcore.DebugLevel, msg, &e) }

// Info logs e at Info level: lifecycle lines.
func (l *Logger) Info(msg string, e Entry) { l.log(zapcore.InfoLevel, msg, &e) }

// Warn logs e at Warn level: denials and recoverable trouble.
func (l *Logger) Warn(msg string, e Entry) { l.log(zapcore.WarnLevel, msg, &e) }

// Error logs e at Error level: failures.
func (l *Logger) Error(msg string, e Entry) { l.log(zapcore.ErrorLevel, msg, &e) }

// log checks the level before touching e, so a disabled call returns after
// one comparison. Everything that can allocate (merging bound fields, the
// field slice, sized exactly) happens only on the enabled path.
func (l *Logger) log(lvl zapcore.Level, msg string, e *Entry) {
	if l == nil || l.z == nil {
		return
	}
	ce := l.z.Check(lvl, msg)
	if ce == nil {
		return
	}
	if l.bound != nil {
		merged := l.bound.merge(e)
		e = &merged
	}
	ce.Write(e.fields(make([]zap.Field, 0, e.count()))...)
}

// count returns how many fields e writes.
func (e *Entry) count() int {
	n := 0
	for _, s := range [...]string{e.TaskID, e.EventID, e.ClientRequestID, e.ClientActionID, e.UserID, string(e.Transport), e.Outcome} {
		if s != "" {
			n++
		}
	}
	if e.Details != nil {
		n++
	}
	if e.Err != nil {
		n++
	}
	return n
}

// merge returns b with every non-empty field of over replacing b's.
func (b *Entry) merge(over *Entry) Entry {
	m := *b
	if over.TaskID != "" {
		m.TaskID = over.TaskID
	}
	if over.EventID != "" {
		m.EventID = over.EventID
	}
	if over.ClientRequestID != "" {
		m.ClientRequestID = over.ClientRequestID
	}
	if over.ClientActionID != "" {
		m.ClientActionID = over.ClientActionID
	}
	if over.UserID != "" {
		m.UserID = over.UserID
	}
	if over.Transport != "" {
		m.Transport = over.Transport
	}
	if over.Outcome != "" {
		m.Outcome = over.Outcome
	}
	if over.Details != nil {
		m.Details = over.Details
	}
	if over.Err != nil {
		m.Err = over.Err
	}
	return m
}

// fields appends e's zap fields to dst in a fixed order.
func (e *Entry) fields(dst []zap.Field) []zap.Field {
	dst = appendString(dst, FieldTaskID, e.TaskID)
	dst = appendString(dst, FieldEventID, e.EventID)
	dst = appendString(dst, FieldClientRequestID, e.ClientRequestID)
	dst = appendString(dst, FieldClientActionID, e.ClientActionID)
	dst = appendString(dst, FieldUserID, e.UserID)
	dst = appendString(dst, FieldTransport, string(e.Transport))
	dst = appendString(dst, FieldOutcome, e.Outcome)
	if e.Details != nil {
		dst = append(dst, zap.Any(FieldDetails, e.Details))
	}
	if e.Err != nil {
		dst = append(dst, zap.NamedError(FieldError, e.Err))
	}
	return dst
}

func appendString(dst []zap.Field, key, val string) []zap.Field {
	if val == "" {
		return dst
	}
	return append(dst, zap.String(key, val))
}
