package observe

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// TransportDiagnosticsSink receives the streaming runtime's lifecycle hooks.
// Calls come from connection and hub goroutines; implementations must be
// safe for concurrent use and return quickly. OnDelivery is called once per
// batch written to a connection, with the last event id of the batch.
type TransportDiagnosticsSink interface {
	OnReplayStart(transport Transport, taskID string, after contracts.EventID)
	OnHeartbeat(transport Transport, taskID string)
	OnDelivery(transport Transport, taskID string, last contracts.EventID, events int)
	OnDisconnect(transport Transport, taskID string, reason string)
	OnSlowSubscriber(transport Transport, taskID string)
	OnShutdown(openStreams int)
}

// NopDiagnostics is a TransportDiagnosticsSink that discards everything.
type NopDiagnostics struct{}

// OnReplayStart implements TransportDiagnosticsSink.
func (NopDiagnostics) OnReplayStart(Transport, string, contracts.EventID) {}

// OnHeartbeat implements TransportDiagnosticsSink.
func (NopDiagnostics) OnHeartbeat(Transport, string) {}

// OnDelivery implements TransportDiagnosticsSink.
func (NopDiagnostics) OnDelivery(Transport, string, contracts.EventID, int) {}

// OnDisconnect implements TransportDiagnosticsSink.
func (NopDiagnostics) OnDisconnect(Transport, string, string) {}

// OnSlowSubscriber implements TransportDiagnosticsSink.
func (NopDiagnostics) OnSlowSubscriber(Transport, string) {}

// OnShutdown implements TransportDiagnosticsSink.
func (NopDiagnostics) OnShutdown(int) {}

// LoggingDiagnostics is a TransportDiagnosticsSink that writes each hook as
// a log line: replay starts, heartbeats and deliveries at Debug (they are
// per-event), disconnects, slow-subscriber switches and shutdown at Info
// (lifecycle). A disabled level costs no allocation: event ids are rendered
// and detail maps built only after the level check. It is safe for
// concurrent use; create it once with NewLoggingDiagnostics.
type LoggingDiagnostics struct {
	log *Logger
}

var _ TransportDiagnosticsSink = (*LoggingDiagnostics)(nil)

// NewLoggingDiagnostics returns a LoggingDiagnostics writing to z (a nil z
// discards everything).
func NewLoggingDiagnostics(z *zap.Logger) *LoggingDiagnostics {
	return &LoggingDiagnostics{log: NewLogger(z)}
}

// Diagnostics log messages.
const (
	msgReplayStart = "stream replay started"
	msgHeartbeat   = "stream heartbeat sent"
	msgDelivery    = "stream events delivered"
	msgDisconnect  = "stream disconnected"
	msgSlow        = "slow subscriber switched to catch-up reads"
	msgShutdown    = "shutdown: closing open streams"
)

// OnReplayStart implements TransportDiagnosticsSink. The cursor is logged
// under eventId; the zero cursor (replay from the start) is omitted.
func (d *LoggingDiagnostics) OnReplayStart(transport Transport, taskID string, after contracts.EventID) {
	if !d.log.Enabled(zapcore.DebugLevel) {
		return
	}
	e := Entry{TaskID: taskID, Transport: transport}
	if !after.IsZero() {
		e.EventID = after.String()
	}
	d.log.Debug(msgReplayStart, e)
}

// OnHeartbeat implements TransportDiagnosticsSink.
func (d *LoggingDiagnostics) OnHeartbeat(transport Transport, taskID string) {
	d.log.Debug(msgHeartbeat, Entry{TaskID: taskID, Transport: transport})
}

// OnDelivery implements TransportDiagnosticsSink. The batch's last event id
// is logged under eventId and its size under details.events.
func (d *LoggingDiagnostics) OnDelivery(transport Transport, taskID string, last contracts.EventID, events int) {
	if !d.log.Enabled(zapcore.DebugLevel) {
		return
	}
	d.log.Debug(msgDelivery, Entry{
		TaskID:    taskID,
		EventID:   last.String(),
		Transport: transport,
		Details:   map[string]any{"events": events},
	})
}

// OnDisconnect implements TransportDiagnosticsSink. The reason is logged
// under outcome.
func (d *LoggingDiagnostics) OnDisconnect(transport Transport, taskID string, reason string) {
	d.log.Info(msgDisconnect, Entry{TaskID: taskID, Transport: transport, Outcome: reason})
}

// OnSlowSubscriber implements TransportDiagnosticsSink.
func (d *LoggingDiagnostics) OnSlowSubscriber(transport Transport, taskID string) {
	d.log.Info(msgSlow, Entry{TaskID: taskID, Transport: transport, Outcome: "catchup"})
}

// OnShutdown implements TransportDiagnosticsSink. The number of open streams
// is logged under details.openStreams.
func (d *LoggingDiagnostics) OnShutdown(openStreams int) {
	if !d.log.Enabled(zapcore.InfoLevel) {
		return
	}
	d.log.Info(msgShutdown, Entry{
		Transport: TransportInternal,
		Details:   map[string]any{"openStreams": openStreams},
	})
}

// MultiDiagnostics returns a TransportDiagnosticsSink that forwards every
// hook to each of sinks in order. Nil sinks and NopDiagnostics are skipped;
// with nothing left it returns NopDiagnostics, with one sink that sink
// itself. The result is as safe for concurrent use as its parts.
func MultiDiagnostics(sinks ...TransportDiagnosticsSink) TransportDiagnosticsSink {
	kept := make(multiDiagnostics, 0, len(sinks))
	for _, s := range sinks {
		switch s.(type) {
		case nil, NopDiagnostics, *NopDiagnostics:
			continue
		}
		kept = append(kept, s)
	}
	switch len(kept) {
	case 0:
		return NopDiagnostics{}
	case 1:
		return kept[0]
	}
	return kept
}

type multiDiagnostics []TransportDiagnosticsSink

func (m multiDiagnostics) OnReplayStart(transport Transport, taskID string, after contracts.EventID) {
	for _, s := range m {
		s.OnReplayStart(transport, taskID, after)
	}
}

func (m multiDiagnostics) OnHeartbeat(transport Transport, taskID string) {
	for _, s := range m {
		s.OnHeartbeat(transport, taskID)
	}
}

func (m multiDiagnostics) OnDelivery(transport Transport, taskID string, last contracts.EventID, events int) {
	for _, s := range m {
		s.OnDelivery(transport, taskID, last, events)
	}
}

func (m multiDiagnostics) OnDisconnect(transport Transport, taskID string, reason string) {
	for _, s := range m {
		s.OnDisconnect(transport, taskID, reason)
	}
}

func (m multiDiagnostics) OnSlowSubscriber(transport Transport, taskID string) {
	for _, s := range m {
		s.OnSlowSubscriber(transport, taskID)
	}
}

func (m multiDiagnostics) OnShutdown(openStreams int) {
	for _, s := range m {
		s.OnShutdown(openStreams)
	}
}
