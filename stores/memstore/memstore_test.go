package memstore_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/stores/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConformance runs the store-agnostic suite against the memory stores,
// built both standalone and as a linked bundle.
func TestConformance(t *testing.T) {
	t.Run("Standalone", func(t *testing.T) {
		storetest.RunAll(t, storetest.Factory{
			Tasks:  func(*testing.T) contracts.TaskRegistry { return memstore.NewTaskRegistry(memstore.Options{}) },
			Events: func(*testing.T) contracts.EventStore { return memstore.NewEventStore(memstore.Options{}) },
			Suspensions: func(*testing.T) storetest.SuspensionStore {
				return memstore.NewSuspensionStore(memstore.Options{})
			},
			Receipts: func(*testing.T) contracts.ActionReceiptStore { return memstore.NewReceiptStore(memstore.Options{}) },
			EventsWithClock: func(_ *testing.T, clock func() time.Time) contracts.EventStore {
				return memstore.NewEventStore(memstore.Options{Clock: clock})
			},
			Leases: func(*testing.T) contracts.LeaseStore { return memstore.NewLeaseStore(memstore.Options{}) },
		})
	})
	t.Run("Bundle", func(t *testing.T) {
		storetest.RunAll(t, storetest.Factory{
			Tasks:  func(*testing.T) contracts.TaskRegistry { return memstore.New(memstore.Options{}).Tasks },
			Events: func(*testing.T) contracts.EventStore { return memstore.New(memstore.Options{}).Events },
			Suspensions: func(*testing.T) storetest.SuspensionStore {
				return memstore.New(memstore.Options{}).Suspensions.(storetest.SuspensionStore)
			},
			Receipts: func(*testing.T) contracts.ActionReceiptStore { return memstore.New(memstore.Options{}).Receipts },
			EventsWithClock: func(_ *testing.T, clock func() time.Time) contracts.EventStore {
				return memstore.New(memstore.Options{Clock: clock}).Events
			},
		})
	})
}
