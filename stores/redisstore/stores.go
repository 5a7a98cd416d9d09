package redisstore

import (
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// New returns the four Redis stores on client, configured by opts, as the
// bundle the bridge and the executor take: a *TaskRegistry, an *EventStore
// (also a contracts.BatchReader; its change feed holds one subscription
// per Listen call), a *SuspensionStore (also contracts.SuspensionMaintenance),
// a *ReceiptStore and a *LeaseStore (the leases of running tasks, so that
// the tasks of an instance that dies are ended by another). New does no I/O and starts no goroutine. It returns
// an error when client is nil or opts.KeyPrefix contains '{' or '}', and
// logs a warning through opts.Logger when the client ignores context
// deadlines (redis.Options.ContextTimeoutEnabled unset).
//
// The host owns client: it closes it after the last Listen call on the
// event store has returned (after the bridge and the executor are shut
// down). NewProbe gives the readiness probe on the same client.
func New(client redis.UniversalClient, opts Options) (contracts.Stores, error) {
	if client == nil {
		return contracts.Stores{}, errors.New("taskbridge: redisstore.New: client is nil")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return contracts.Stores{}, err
	}
	warnIfContextTimeoutsOff(client, cfg.log)
	return contracts.Stores{
		Tasks:       newTaskRegistry(client, cfg),
		Events:      newEventStore(client, cfg),
		Suspensions: newSuspensionStore(client, cfg),
		Receipts:    newReceiptStore(client, cfg),
		Leases:      newLeaseStore(client, cfg),
	}, nil
}
