// Package streaming is the TaskBridge streaming runtime: the per-process
// Hub that delivers task events to SSE and WebSocket streams and wakes
// long-polls, built so that fan-out costs one store read and one encoding
// per batch, whatever the number of subscribers, and an idle stream costs
// about 2 KB and no goroutine.
//
// # Lifetime
//
// Hosts mount streams through package fiberbridge and configure the hub
// with fiberbridge.Config.Stream (Options). fiberbridge creates one Hub per
// process with NewHub, runs Run in a goroutine, hands authorized requests
// to ServeSSE and AttachWebSocket, passes the Hub as the orchestration
// Waiter for long-polls and suspended handlers (Watch), and calls Shutdown
// before the Fiber app shuts down. Run owns every goroutine the hub starts (fan-out workers,
// the heartbeat wheel, the connection poller) and stops them before it
// returns; each stream's writer goroutine exists only while it has
// something to write, and ends with its stream.
//
// # Fan-out
//
// Run listens to the store's change feed (contracts.ChangeFeed) once. A
// notice for a task nobody here watches costs a map lookup. For a watched
// task, the notice wakes its watchers and queues one fan-out pass (at most
// one per task at a time); a worker reads the events after the task's
// position in pages of LiveBatchSize, encodes each page once per wire
// format (SSE `id:`/`data:` bytes and a complete WebSocket text frame, both
// from contracts.TaskEvent.AppendJSON) and offers the same immutable batch
// to every live subscriber. Notices for events a pass already read cost
// nothing; a feed Resync re-reads every watched task. When the store
// implements contracts.BatchReader, a worker takes up to FanoutReadBatch
// queued tasks and reads them all with one ReadBatch (on Redis one round
// trip), so thousands of busy tasks cost a few dozen round trips a second.
// Handing a batch to a subscriber is a pointer in a fixed ring: no
// allocation per subscriber.
//
// # One WebSocket, many tasks
//
// A WebSocket may follow several tasks (Options.WSMaxSubscriptions, 100 by
// default): each later subscribe frame adds a subscriber to the same
// connection, confirmed like the first, and an unsubscribe frame removes
// one. Events carry their taskId; heartbeats go out per task. A connection
// that subscribes once is exactly the v1 stream (closed 1000 after its
// terminal event); once it follows several tasks (its first frame after
// the subscribe, or WebSocketRequest.Multi), a task's terminal event ends
// only that task, refusals are SUBSCRIPTION_ERROR frames and other ends of
// one task UNSUBSCRIBED frames, and the connection stays open. Later
// subscribes are authorized and read by the connection's writer, never on
// the poller. There is no SSE stream for several tasks; README.md (next to this
// file) says why.
//
// # Subscribers and catch-up
//
// A stream starts in catch-up: it replays the store strictly after its
// cursor (ReplayBatchSize per read, the first page possibly read by the
// caller) and then joins live delivery, atomically with the task's fan-out
// position: if the hub has already fanned out events past the stream's
// cursor, the stream reads on until it has them (only a position beyond the
// store's end, set by a client cursor from the future, is rewound instead).
// A change announced between a stream's first read and its registration
// is not lost: a WebSocket registers with its task before the handshake's
// read, and an SSE stream, whose first page may have been read by the
// caller before the hub knew of it, makes the hub read once from its
// cursor when no other live stream follows the task (a live one proves the
// task's notices were being recorded). Long-poll watches register before
// their read (Watch). Subscribers drop frames at or before their own
// cursor, so each connection sees every event exactly once and in order. A subscriber whose queue (QueueSize batches) is full
// is switched back to catch-up: the hub never waits for it and holds
// nothing more for it; its writer drains what it had, reads the store by
// its own cursor until it has caught up, and joins again. Memory stays
// bounded however slow a client is, and no event is lost, because the
// store is the source of truth. Such switches are counted
// (MetricSlowSubscribers) and reported (OnSlowSubscriber).
//
// # Store failures
//
// A failed fan-out read, or a stream's failed catch-up read, is retried
// with a jittered backoff (50ms doubling to 2s) for as long as
// Options.StoreRetryBudget allows (10s by default): a store that comes
// back in time (a Redis restart, whose feed announces its return with a
// Resync) costs the streams nothing, and everything after their position
// is delivered without a gap. Meanwhile streams keep their heartbeats; no
// pass for the task starts twice. Only a store unavailable for the whole
// budget ends the streams (SSE: the end of the body; WebSocket: 1011), and
// since every reader's budget starts with its own first failure and its
// retries are jittered, they do not all end at the same moment. Retry
// timers belong to the hub: Shutdown ends waiting streams at once and
// cancels them.
//
// # Writes
//
// A stream's writer takes everything queued since its last write (events,
// a heartbeat, a pong, the end of the stream) and writes it in one write
// with one deadline (WriteTimeout): never one syscall per frame when
// several are waiting. SSE bodies are chunked, one chunk per write, and end
// with the final chunk after the terminal event. A failed write ends the
// stream at once.
//
// # Connections
//
// ServeSSE writes the response head itself after fasthttp's Hijack (with
// the headers host middleware set). Where the connection is plain TCP on
// Linux, the hub then detaches it: the socket's descriptor is duplicated,
// fasthttp's hijack goroutine returns and releases its per-request state,
// and one epoll poller per hub watches every detached connection for input
// (a WebSocket client's pongs and close frames, or a client leaving). An
// idle detached stream has no goroutine and no buffer. Where detaching is
// not possible (TLS, a wrapped connection, other platforms), or turned off
// with Options.DisableDetach, the stream keeps fasthttp's goroutine as its
// reader; everything else is the same. Detaching and the poller live in
// internal/netpoll; every WebSocket frame is parsed by internal/wsframe,
// whichever goroutine reads it.
//
// # Inside
//
// Three types keep three jobs apart. A subscriber is one task followed by
// one connection; the hub owns it (its registration with the task, live or
// catch-up state and queue change only through the task's methods) and
// the connection's writer advances its cursor. A conn is the socket: its
// writer, deadlines, heartbeat and ping clocks and its lifecycle, one state
// (connState) moved by one transition function (moveLocked) from handshake
// through open, ending and closing to released. A wireFormat (SSE or
// WebSocket) frames what a connection writes: events, heartbeats, control
// frames and the end of the stream. The lock order is written where the
// locks are declared (hub.go).
//
// # Heartbeats and dead peers
//
// One timing wheel serves every stream: a single goroutine sleeps until the
// next slot with due streams. A stream gets a heartbeat only after
// HeartbeatInterval without a write: on WebSocket a HEARTBEAT frame, on SSE
// a comment ping and the JSON heartbeat data line of taskbridge-fastapi,
// {"type":"HEARTBEAT","taskId":..,"eventId":"hb-<random>","createdAt":..,
// "payload":{"live":true}}, without an id: line, so Last-Event-ID never
// moves (clients such as the TaskBridge Android SDK drop a stream without a
// data line for 60 s; Options.SSECommentHeartbeatOnly leaves the comment).
// WebSockets are pinged every WSPingInterval and dropped when no client
// frame arrived for WSPingInterval+WSPongTimeout. Between due times nothing
// runs.
//
// # Shutdown
//
// Shutdown refuses new streams, wakes every watcher, and asks every stream
// to end: queued events and the end are written in one last write (SSE: the
// final chunk; WebSocket: close 1001 "going away", then up to a second for
// the client's close), so clients reconnect elsewhere with their cursor.
// It returns when all streams have ended, or closes the rest hard when its
// context ends. With thousands of streams it takes well under the 2 s a
// Fiber shutdown allows.
package streaming
