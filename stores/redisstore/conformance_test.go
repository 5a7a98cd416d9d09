package redisstore_test

import (
	"testing"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
	"github.com/taskbridge/taskbridge-fiber/stores/storetest"
)

// TestConformance runs the store-agnostic suite against the Redis stores,
// each store on its own client and key prefix. Event ids come from the
// Redis server's clock, so the suite's clock-driven id tests do not apply
// (Factory.EventsWithClock stays nil and the suite says so).
func TestConformance(t *testing.T) {
	redisAddr(t)
	storetest.RunAll(t, storetest.Factory{
		Tasks: func(t *testing.T) contracts.TaskRegistry {
			s, _, _ := newStores(t, redisstore.Options{})
			return s.Tasks
		},
		Events: func(t *testing.T) contracts.EventStore {
			s, _, _ := newStores(t, redisstore.Options{})
			return s.Events
		},
		Suspensions: func(t *testing.T) storetest.SuspensionStore {
			s, _, _ := newStores(t, redisstore.Options{})
			return s.Suspensions
		},
		Receipts: func(t *testing.T) contracts.ActionReceiptStore {
			s, _, _ := newStores(t, redisstore.Options{})
			return s.Receipts
		},
	})
}

// TestConformanceSeparateConstructors runs the suite on stores built one by
// one (NewTaskRegistry, ...) rather than through New.
func TestConformanceSeparateConstructors(t *testing.T) {
	redisAddr(t)
	opts := func(t *testing.T) (*redisstore.Options, func() *redisClient) {
		c := newClient(t)
		o := &redisstore.Options{KeyPrefix: uniquePrefix(t, c)}
		return o, func() *redisClient { return c }
	}
	storetest.RunAll(t, storetest.Factory{
		Tasks: func(t *testing.T) contracts.TaskRegistry {
			o, c := opts(t)
			return redisstore.NewTaskRegistry(c(), *o)
		},
		Events: func(t *testing.T) contracts.EventStore {
			o, c := opts(t)
			return redisstore.NewEventStore(c(), *o)
		},
		Suspensions: func(t *testing.T) storetest.SuspensionStore {
			o, c := opts(t)
			return redisstore.NewSuspensionStore(c(), *o)
		},
		Receipts: func(t *testing.T) contracts.ActionReceiptStore {
			o, c := opts(t)
			return redisstore.NewReceiptStore(c(), *o)
		},
	})
}
