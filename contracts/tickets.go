package contracts

import (
	"context"
	"time"
)

// StreamTicket is a short-lived, single-use credential for one task's
// stream: issued to an authenticated caller, it stands in for that
// caller's credentials on the SSE and WebSocket routes (EventSource and
// browser WebSockets cannot send an Authorization header). Auth is the
// caller's context as it was resolved at issue time.
type StreamTicket struct {
	TaskID    string      `json:"taskId"`
	Auth      AuthContext `json:"auth"`
	ExpiresAt time.Time   `json:"expiresAt"`
}

// TicketStore keeps stream tickets from their issue to their single
// redemption. Tickets are stored under a key derived from the ticket (its
// hash), never under the ticket itself. Every instance that serves streams
// must share the store (the Redis store on several instances), so a ticket
// issued by one instance is redeemable on any other. Implementations are
// safe for concurrent use.
type TicketStore interface {
	// Put stores t under key until t.ExpiresAt.
	Put(ctx context.Context, key string, t StreamTicket) error
	// Take returns the ticket stored under key and deletes it, atomically:
	// of concurrent Takes of one key at most one succeeds. It returns
	// ErrNotFound for a key that was never stored, was taken already or
	// whose ticket has expired.
	Take(ctx context.Context, key string) (StreamTicket, error)
}
