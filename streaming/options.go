package streaming

import (
	"context"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Options configures a Hub. The zero value is usable: every field has a
// documented default. Durations follow the project rule: 0 means the
// default, a negative value turns the feature off.
type Options struct {
	// HeartbeatInterval is how long a stream may stay silent before the hub
	// writes a heartbeat (on SSE a comment ping and, unless
	// SSECommentHeartbeatOnly is set, the JSON heartbeat data line; a
	// HEARTBEAT frame on WebSocket). Any data written resets the idle clock.
	// Optional. Default: 15s. Negative: no heartbeats.
	HeartbeatInterval time.Duration

	// WriteTimeout is the deadline of one write (one coalesced flush) to a
	// connection. A write that does not finish in time ends the stream.
	// Optional. Default: 10s. Negative: no deadline.
	WriteTimeout time.Duration

	// QueueSize is how many live batches may wait for one subscriber's
	// writer. A subscriber whose queue is full is switched to catch-up reads
	// from the store, so a slow client never blocks the hub nor grows memory.
	// Optional. Default: 16.
	QueueSize int

	// ReplayBatchSize is the page size of replay and catch-up reads.
	// Optional. Default: 100.
	ReplayBatchSize int

	// LiveBatchSize is the page size of the hub's fan-out reads.
	// Optional. Default: 100.
	LiveBatchSize int

	// FanoutWorkers is how many goroutines read and fan out changed tasks.
	// Optional. Default: GOMAXPROCS.
	FanoutWorkers int

	// FanoutReadBatch is how many changed tasks one fan-out worker reads
	// with a single call when the EventStore implements
	// contracts.BatchReader: the worker takes up to this many tasks off the
	// run queue, reads all of them with one ReadBatch (on Redis, one round
	// trip) and then fans each task's page out as it would after its own
	// Read. Under many busy tasks this replaces thousands of round trips a
	// second by a few dozen; with few changes a batch holds one task and
	// costs what a Read does. Each request still counts as one store read
	// (MetricStoreReads, reason fanout). Stores without the port are read
	// one task at a time whatever this says.
	// Optional. Default: 128. 1 or negative: one Read per task.
	FanoutReadBatch int

	// SSEPreambleBytes is the size of an SSE comment written first on every
	// stream to push it through buffering proxies.
	// Optional. Default: 0 (no preamble).
	SSEPreambleBytes int

	// SSECommentHeartbeatOnly drops the JSON heartbeat data line from SSE
	// heartbeats, leaving the comment ping alone. By default every SSE
	// heartbeat is
	//
	//	: ping
	//	data: {"type":"HEARTBEAT","taskId":"<id>","eventId":"hb-<32 hex>","createdAt":"<RFC 3339>","payload":{"live":true}}
	//
	// with no id: line, so Last-Event-ID never moves: the data line of
	// taskbridge-fastapi, in the event envelope's shape. Clients written for
	// it need one: the TaskBridge Android SDK decodes every data line as an
	// envelope and drops a stream that carries no data for 60 s (comments
	// do not count), so keep the default unless every client tolerates
	// silence. The eventId is random per heartbeat and is no cursor.
	// Optional. Default: false (JSON heartbeats on).
	SSECommentHeartbeatOnly bool

	// WSReadLimit is the largest client frame accepted on a WebSocket; a
	// larger subscribe frame closes the socket with 1008.
	// Optional. Default: 4096 bytes.
	WSReadLimit int

	// WSMaxSubscriptions is how many tasks one WebSocket may follow at
	// once (one subscribe frame each); a subscribe over it is answered
	// with SUBSCRIPTION_ERROR TOO_MANY_STREAMS. 1 keeps every connection to
	// one task, as the v1 protocol has it: any data frame after the
	// subscribe then closes the connection (1008 "unexpected frame").
	// Optional. Default: 100.
	WSMaxSubscriptions int

	// WSHandshakeTimeout is how long a WebSocket client has, after the
	// upgrade, to send its subscribe frame. It cannot be turned off: a
	// negative value means the default.
	// Optional. Default: 10s.
	WSHandshakeTimeout time.Duration

	// WSPingInterval is how often the server pings a WebSocket client.
	// Optional. Default: 30s. Negative: no pings and no dead-peer detection.
	WSPingInterval time.Duration

	// WSPongTimeout is how long after a ping falls due the hub waits for any
	// client frame (normally the pong) before it drops the connection as
	// dead. A negative value means the default; turn dead-peer detection off
	// with WSPingInterval.
	// Optional. Default: 10s.
	WSPongTimeout time.Duration

	// StoreRetryBudget is how long the hub keeps retrying a failed store
	// read made for open streams (a fan-out read of a task's new events,
	// including the re-reads after a change feed Resync, or a stream's own
	// catch-up read) before it ends those streams: SSE responses end, and
	// WebSockets close 1011 "store unavailable", so clients reconnect with
	// their cursor. Retries back off from 50ms to 2s, doubling, with
	// jitter, so a recovering store is not hammered and the streams of an
	// instance do not all end or retry at the same moment. A retry that
	// succeeds within the budget delivers everything after each stream's
	// position: streams survive a short outage (a Redis restart) without a
	// gap. Streams keep their heartbeats while they wait, and Shutdown ends
	// them at once.
	// Optional. Default: 10s. Negative: no retries (the first failed read
	// ends the streams).
	StoreRetryBudget time.Duration

	// TaskExists reports whether a task still exists (the registry still
	// holds it). After every change feed Resync (the feed reconnected, as
	// after a Redis restart) the hub asks it about each task that has open
	// streams here and ends the streams of tasks that are gone: WebSockets
	// close 1011 "task no longer exists" and SSE responses end, so clients
	// reconnect and are told 404 TASK_NOT_FOUND instead of receiving
	// heartbeats forever. A call that fails leaves the streams open (the
	// next Resync asks again). fiberbridge sets it from the task registry.
	// Optional. Default: nil (no check).
	TaskExists func(ctx context.Context, taskID string) (bool, error)

	// DisableDetach keeps every stream on the goroutine that handed its
	// connection over (fasthttp's hijack or upgrade goroutine), which then
	// reads the connection for the life of the stream. By default, on
	// Linux, a plain TCP connection is detached instead: its descriptor is
	// duplicated, fasthttp's goroutine and per-request state are released,
	// and the hub's one epoll poller watches the connection, so an idle
	// stream holds no goroutine (about 2 KB instead of about 11 KB).
	// Connections that cannot be detached (TLS, wrapped connections, other
	// platforms) are held whatever this says. Streams behave the same in
	// both modes; turn detaching off to rule it out when chasing a problem.
	// Optional. Default: false (detach where possible).
	DisableDetach bool

	// Logger receives lifecycle lines (Info), denials (Warn), failures
	// (Error) and per-delivery lines (Debug).
	// Optional. Default: zap.NewNop().
	Logger *zap.Logger

	// Metrics receives the runtime's counters, gauges and histograms.
	// Optional. Default: observe.NopMetrics.
	Metrics observe.MetricsSink

	// Diagnostics receives the transport lifecycle hooks.
	// Optional. Default: observe.NopDiagnostics.
	Diagnostics observe.TransportDiagnosticsSink
}

// Defaults applied by NewHub to zero fields.
const (
	DefaultHeartbeatInterval  = 15 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultQueueSize          = 16
	DefaultReplayBatchSize    = 100
	DefaultLiveBatchSize      = 100
	DefaultFanoutReadBatch    = 128
	DefaultWSReadLimit        = 4096
	DefaultWSMaxSubscriptions = 100
	DefaultWSHandshakeTimeout = 10 * time.Second
	DefaultWSPingInterval     = 30 * time.Second
	DefaultWSPongTimeout      = 10 * time.Second
	DefaultStoreRetryBudget   = 10 * time.Second
)

// config is Options with defaults applied; durations are 0 when off.
type config struct {
	heartbeat     time.Duration
	writeTimeout  time.Duration
	queueSize     int
	replayBatch   int
	liveBatch     int
	workers       int
	readBatch     int // tasks per fan-out ReadBatch; 1: Read per task
	preamble      int
	sseJSONBeat   bool
	wsReadLimit   int
	wsMaxSubs     int
	wsHandshake   time.Duration
	wsPing        time.Duration
	wsPongTimeout time.Duration
	retryBudget   time.Duration // 0: no retries
	taskExists    func(ctx context.Context, taskID string) (bool, error)
	detach        bool
	log           *observe.Logger
	metrics       observe.MetricsSink
	diag          observe.TransportDiagnosticsSink
}

func duration(v, def time.Duration) time.Duration {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func positive(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func (o Options) config() config {
	c := config{
		heartbeat:     duration(o.HeartbeatInterval, DefaultHeartbeatInterval),
		writeTimeout:  duration(o.WriteTimeout, DefaultWriteTimeout),
		queueSize:     positive(o.QueueSize, DefaultQueueSize),
		replayBatch:   positive(o.ReplayBatchSize, DefaultReplayBatchSize),
		liveBatch:     positive(o.LiveBatchSize, DefaultLiveBatchSize),
		workers:       positive(o.FanoutWorkers, runtime.GOMAXPROCS(0)),
		readBatch:     positive(o.FanoutReadBatch, DefaultFanoutReadBatch),
		preamble:      max(o.SSEPreambleBytes, 0),
		sseJSONBeat:   !o.SSECommentHeartbeatOnly,
		wsReadLimit:   positive(o.WSReadLimit, DefaultWSReadLimit),
		wsMaxSubs:     positive(o.WSMaxSubscriptions, DefaultWSMaxSubscriptions),
		wsHandshake:   duration(o.WSHandshakeTimeout, DefaultWSHandshakeTimeout),
		wsPing:        duration(o.WSPingInterval, DefaultWSPingInterval),
		wsPongTimeout: duration(o.WSPongTimeout, DefaultWSPongTimeout),
		retryBudget:   duration(o.StoreRetryBudget, DefaultStoreRetryBudget),
		taskExists:    o.TaskExists,
		detach:        !o.DisableDetach,
		log:           observe.NewLogger(o.Logger),
		metrics:       o.Metrics,
		diag:          o.Diagnostics,
	}
	if o.FanoutReadBatch < 0 {
		c.readBatch = 1
	}
	if c.wsHandshake == 0 {
		c.wsHandshake = DefaultWSHandshakeTimeout
	}
	if c.wsPongTimeout == 0 {
		c.wsPongTimeout = DefaultWSPongTimeout
	}
	if c.metrics == nil {
		c.metrics = observe.NopMetrics{}
	}
	if c.diag == nil {
		c.diag = observe.NopDiagnostics{}
	}
	return c
}
