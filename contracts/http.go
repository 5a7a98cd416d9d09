package contracts

// The TaskBridge v1 HTTP surface: default paths (the ":taskId" segment is
// the task id) and the names of query parameters and headers. Servers and
// clients both take them from here.
const (
	PathCreateTask   = "/api/v1/tasks"
	PathPollEvents   = "/api/v1/tasks/:taskId/events"
	PathStreamEvents = "/api/v1/tasks/:taskId/events/stream"
	PathCancelTask   = "/api/v1/tasks/:taskId/cancel"
	PathSubmitAction = "/api/v1/tasks/:taskId/actions"
	PathWebSocket    = "/api/v1/tasks/ws"
	// PathStreamTicket issues stream tickets (opt-in on the server).
	PathStreamTicket = "/api/v1/tasks/:taskId/stream-ticket"

	// QueryAfterEventID is the long-poll's cursor.
	QueryAfterEventID = "afterEventId"
	// QueryWaitTimeoutMs is the long-poll's wait, 0..MaxWaitTimeoutMs.
	QueryWaitTimeoutMs = "waitTimeoutMs"
	// QueryMaxEvents is the long-poll's page size, 1..500.
	QueryMaxEvents = "maxEvents"
	// QueryLastEventID is the SSE cursor of a first connect (EventSource
	// cannot set headers); HeaderLastEventID wins when both are sent.
	QueryLastEventID = "lastEventId"
	// HeaderLastEventID is the SSE cursor EventSource sends on reconnects.
	HeaderLastEventID = "Last-Event-ID"
	// QueryMulti=true opens a WebSocket that follows several tasks from its
	// first subscribe (a TaskBridge-for-Fiber addition).
	QueryMulti = "multi"
	// QueryStreamTicket carries a stream ticket on the SSE and WebSocket
	// routes, in place of the caller's credentials.
	QueryStreamTicket = "ticket"

	// MaxWaitTimeoutMs is the protocol's longest long-poll wait (60 s).
	MaxWaitTimeoutMs = 60_000
)
