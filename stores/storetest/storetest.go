package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// SuspensionStore is what the suite needs of a suspension store: the port
// and its maintenance side.
type SuspensionStore interface {
	contracts.SuspensionStore
	contracts.SuspensionMaintenance
}

// Factory holds the constructors RunAll uses. Each call must return a fresh,
// isolated store. Tasks, Events, Suspensions and Receipts are required.
type Factory struct {
	// Tasks returns a new, empty task registry.
	Tasks func(t *testing.T) contracts.TaskRegistry
	// Events returns a new, empty event store.
	Events func(t *testing.T) contracts.EventStore
	// Suspensions returns a new, empty suspension store.
	Suspensions func(t *testing.T) SuspensionStore
	// Receipts returns a new, empty receipt store.
	Receipts func(t *testing.T) contracts.ActionReceiptStore
	// EventsWithClock, optional, returns a new event store whose ids take
	// their milliseconds from clock. Stores whose ids come from elsewhere (a
	// Redis server) leave it nil and RunAll skips the clock-driven id tests,
	// saying so.
	EventsWithClock func(t *testing.T, clock func() time.Time) contracts.EventStore
	// Leases, optional, returns a new, empty lease store (for stores that
	// several processes share); RunAll skips the lease suite without it,
	// saying so.
	Leases func(t *testing.T) contracts.LeaseStore
}

// RunAll runs every suite of the package against the stores f builds, each
// as a subtest. It fails the test when a required constructor is missing.
func RunAll(t *testing.T, f Factory) {
	t.Helper()
	require.NotNil(t, f.Tasks, "storetest: Factory.Tasks is required")
	require.NotNil(t, f.Events, "storetest: Factory.Events is required")
	require.NotNil(t, f.Suspensions, "storetest: Factory.Suspensions is required")
	require.NotNil(t, f.Receipts, "storetest: Factory.Receipts is required")
	t.Run("TaskRegistry", func(t *testing.T) { RunTaskRegistry(t, f.Tasks) })
	t.Run("EventStore", func(t *testing.T) { RunEventStore(t, f.Events) })
	t.Run("EventStoreClock", func(t *testing.T) {
		if f.EventsWithClock == nil {
			t.Skip("storetest: Factory.EventsWithClock not provided; ids are not clock-driven by the test")
		}
		RunEventStoreClock(t, f.EventsWithClock)
	})
	t.Run("SuspensionStore", func(t *testing.T) { RunSuspensionStore(t, f.Suspensions) })
	t.Run("ReceiptStore", func(t *testing.T) { RunReceiptStore(t, f.Receipts) })
	t.Run("LeaseStore", func(t *testing.T) {
		if f.Leases == nil {
			t.Skip("storetest: Factory.Leases not provided; the store has no leases")
		}
		RunLeaseStore(t, f.Leases)
	})
}

// testTimeout bounds every wait of one subtest.
const testTimeout = 10 * time.Second

// testContext returns a context that ends with the test or after testTimeout.
func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// together runs fn(i) for i in [0, n) on n goroutines released at once, and
// waits for all of them. fn must not call t.FailNow (no require inside).
func together(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// ms returns a time truncated to milliseconds, the precision every store
// must keep.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// requireSameTime fails unless want and got are the same instant.
func requireSameTime(tb testing.TB, want, got time.Time, field string) {
	tb.Helper()
	require.Truef(tb, want.Equal(got), "%s: want %s, got %s", field, want.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
}
