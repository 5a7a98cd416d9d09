// Package web is the quickstart's live demo page: one static HTML page with
// its script and stylesheet, embedded with go:embed, that starts demo tasks
// and shows their events arriving over WebSocket, SSE or long-polling.
//
// The page is plain HTML, CSS and JavaScript (no framework, nothing loaded
// from another origin) on top of the TaskBridge TypeScript client
// (clients/js), whose built ES modules are embedded from taskbridge/ and
// served under ClientPath. The client talks to the TaskBridge v1 routes at
// their default paths on the same origin, authenticating with the
// quickstart's demo scheme: the user name is the bearer token, sent as
// "Authorization: Bearer <user>" on fetch requests; the WebSocket and
// EventSource carry a one-minute, single-use stream ticket instead, so the
// token never goes into a URL.
//
// The client's transport chain is WebSocket first, then SSE, then
// long-poll, each connection resuming after the last event delivered, with
// repeats dropped by event id. "?transport=ws|sse|poll" pins one
// transport. The page belongs to the example, not to the library.
package web
