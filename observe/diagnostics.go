package observe

import "github.com/taskbridge/taskbridge-fiber/contracts"

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
