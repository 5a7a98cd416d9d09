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
			return s.Suspensions.(storetest.SuspensionStore)
		},
		Receipts: func(t *testing.T) contracts.ActionReceiptStore {
			s, _, _ := newStores(t, redisstore.Options{})
			return s.Receipts
		},
		Leases: func(t *testing.T) contracts.LeaseStore {
			s, _, _ := newStores(t, redisstore.Options{})
			return s.Leases
		},
	})
}
