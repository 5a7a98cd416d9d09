package memstore_test

import (
	"testing"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/stores/storetest"
)

// TestReadBatchRetention runs the conformance suite's ReadBatch checks
// against a capped store (TestConformance covers the uncapped ones).
func TestReadBatchRetention(t *testing.T) {
	storetest.RunBatchReaderRetention(t, func(_ *testing.T, maxEvents int) contracts.EventStore {
		return memstore.NewEventStore(memstore.Options{MaxEventsPerTask: maxEvents})
	})
}

// TestIdempotencyRetention checks that the cap forgets an idempotency key
// together with its event.
func TestIdempotencyRetention(t *testing.T) {
	storetest.RunIdempotencyRetention(t, func(_ *testing.T, maxEvents int) contracts.EventStore {
		return memstore.NewEventStore(memstore.Options{MaxEventsPerTask: maxEvents})
	})
}
