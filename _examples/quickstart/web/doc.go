// Package web is the quickstart's live demo page: one static HTML page with
// its script and stylesheet, embedded with go:embed, that starts demo tasks
// and shows their events arriving over WebSocket, SSE or long-polling.
//
// The page is plain HTML, CSS and JavaScript (no build step, no framework,
// nothing loaded from another origin). It talks to the TaskBridge v1 routes
// at their default paths on the same origin, authenticating with the
// quickstart's demo scheme: the user name is the bearer token, sent as
// "Authorization: Bearer <user>" on fetch requests and as the access_token
// query parameter on WebSocket and EventSource URLs.
//
// The transport chain mirrors TaskBridge's mobile client: WebSocket first,
// then SSE, then long-poll, each resuming from the last eventId the page
// has seen, with events de-duplicated by eventId. "?transport=ws|sse|poll"
// pins one transport. The page belongs to the example, not to the library.
package web
