// Package frames decodes, strictly, what a TaskBridge v1 server sends on a
// stream (a WebSocket text message, or the data of an SSE message): an
// event, a SUBSCRIPTION_CONFIRMED, a HEARTBEAT in either of its two forms,
// and the SUBSCRIPTION_ERROR and UNSUBSCRIBED frames of a WebSocket that
// follows several tasks. The Go client, the load generator and the tests
// read streams with it; servers write the frames with the types of package
// contracts.
//
// Keys must be spelled exactly as the protocol names them, appear once and
// be known (internal/strictjson); every error wraps contracts.ErrInvalidFrame.
package frames
