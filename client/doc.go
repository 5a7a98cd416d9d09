// Package client is the Go client of a TaskBridge v1 server (this
// library's fiberbridge, or taskbridge-fastapi,
// https://github.com/nikkiw/task-bridge): create tasks, poll, cancel, act
// on suspensions, and Watch a task's events with the transport fallback,
// resume and backoff every client otherwise writes by hand.
//
//	c, err := client.New("https://api.example.com", client.WithBearerToken(token))
//	task, err := c.Create(ctx, client.CreateRequest{ClientRequestID: "r1", TaskType: "report.build"})
//	for ev, err := range c.Watch(ctx, task.TaskID, contracts.EventID{}) {
//		if err != nil {
//			return err
//		}
//		// ev is a contracts.TaskEvent; contracts.DecodePayload types its payload.
//	}
//
// # Watch
//
// Watch tries a WebSocket first, then SSE, then long-polling: it moves on
// when a transport cannot work (a proxy refusing the upgrade, a proxy
// buffering the SSE body, a route not mounted) or fails three connects in
// a row. Every reconnect waits a jittered exponential backoff and resumes
// strictly after the last event it yielded (WebSocket lastEventId, SSE
// Last-Event-ID, poll afterEventId); events are compared by event id in
// the protocol's numeric order (contracts.EventID), so what the server
// repeats is dropped and the sequence has no duplicate and no gap. A
// stream with no data, heartbeat or ping for the heartbeat timeout (45 s
// by default, three server heartbeat intervals) is presumed dead and
// replaced. The sequence ends after the terminal event, on SSE 204 or
// WebSocket close 1000 (the task ended at or before the cursor), or with
// an error as its last element: ctx's, or a refusal that retrying cannot
// fix (401, 403, 404, 429 and other 4xx, as a *ResponseError).
//
// # Errors
//
// Refusals are *ResponseError values carrying the HTTP status and the
// server's error envelope. errors.Is matches them against ErrUnauthorized,
// ErrForbidden, ErrNotFound, ErrConflict and ErrRateLimited by status, and
// against the bridgeerr sentinels by code (bridgeerr.ErrIdempotencyConflict).
// A WebSocket closed with 1008 and an error code as its reason becomes the
// same *ResponseError as the HTTP answer would have been.
//
// # Retries and idempotency
//
// Create, Poll, Cancel and Act retry transport failures and 5xx answers
// (WithRetries, default 3 attempts). That is safe by construction: a
// create carries its clientRequestId and an action its clientActionId (both
// generated when the caller leaves them empty), so the server answers a
// repeat with the first result.
//
// # Choices
//
// Options are functional (New(baseURL, opts...)), as Go HTTP clients
// usually are; New validates them and returns an error. Logging goes to a
// *zap.Logger (WithLogger), the logger type of the whole library; tokens are
// never logged. The package imports only contracts and errors of this
// module, so a client links neither Fiber nor the server packages (the
// WebSocket library, github.com/fasthttp/websocket, brings fasthttp).
package client
