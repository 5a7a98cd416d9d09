package redisstore

import (
	"github.com/redis/go-redis/v9"
)

// Stores bundles the four Redis stores built by New on one client and one
// configuration. The fields are set once and safe for concurrent use. The
// host owns the client: it closes it after the last Listen call on Events
// has returned.
type Stores struct {
	Tasks       *TaskRegistry
	Events      *EventStore
	Suspensions *SuspensionStore
	Receipts    *ReceiptStore

	client redis.UniversalClient
}

// New returns the four stores on client, configured by opts. It panics if
// opts.KeyPrefix contains '{' or '}' (a configuration error, caught at
// boot). It logs a warning through opts.Logger when the client ignores
// context deadlines (redis.Options.ContextTimeoutEnabled unset).
func New(client redis.UniversalClient, opts Options) *Stores {
	cfg := newConfig(opts)
	warnIfContextTimeoutsOff(client, cfg.log)
	return &Stores{
		Tasks:       newTaskRegistry(client, cfg),
		Events:      newEventStore(client, cfg),
		Suspensions: newSuspensionStore(client, cfg),
		Receipts:    newReceiptStore(client, cfg),
		client:      client,
	}
}
