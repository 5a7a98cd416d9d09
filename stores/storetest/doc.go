// Package storetest is the store-agnostic conformance suite for the four
// TaskBridge store ports. Every implementation (stores/memstore,
// stores/redisstore, or a host's own) runs it from its tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunAll(t, storetest.Factory{
//			Tasks:       func(t *testing.T) contracts.TaskRegistry { return newRegistry(t) },
//			Events:      func(t *testing.T) contracts.EventStore { return newEvents(t) },
//			Suspensions: func(t *testing.T) storetest.SuspensionStore { return newSuspensions(t) },
//			Receipts:    func(t *testing.T) contracts.ActionReceiptStore { return newReceipts(t) },
//		})
//	}
//
// Each constructor must return a fresh, isolated store (for a shared server,
// a unique key prefix per call) and may register cleanup with t.Cleanup.
// Subtests run in parallel. The suite checks the rules of the ports that do
// not depend on the implementation: atomic idempotent create, status
// transitions and their errors, event-id order across digit-length changes,
// strictly-after reads with limits and pagination, rejection of the zero
// draft and of appends after the terminal event (exactly one terminal event
// under concurrency), EventPage.Ended, change-feed delivery in append order,
// the compare-and-set of suspensions, handoffs, ExpireOpen,
// create-if-absent receipts with DeleteExpired, and, for stores that
// implement them, contracts.BatchReader, contracts.SummaryReader (the
// summary follows every append), contracts.TaskLister (listing order,
// pagination while tasks are created, filters, the scan bound) and
// contracts.TaskFinder (look-up by idempotency key, scoped by owner). It
// never sleeps; waits are
// bounded by context deadlines.
//
// Retention (per-task caps, TTLs) is configuration-specific and is tested by
// each implementation itself.
package storetest
