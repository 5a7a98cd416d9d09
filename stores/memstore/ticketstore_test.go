package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
	"github.com/taskbridge/taskbridge-fiber/stores/storetest"
)

func TestTicketStoreConformance(t *testing.T) {
	storetest.RunTicketStore(t, func(_ *testing.T, clock func() time.Time) contracts.TicketStore {
		return memstore.NewTicketStore(memstore.Options{Clock: clock})
	})
}

// TestTicketStoreDropsExpired: tickets never taken do not pile up.
func TestTicketStoreDropsExpired(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := memstore.NewTicketStore(memstore.Options{Clock: func() time.Time { return now }})
	ctx := context.Background()
	for i := range 1000 {
		require.NoError(t, s.Put(ctx, fmt.Sprint("old-", i), contracts.StreamTicket{TaskID: "t", ExpiresAt: now.Add(time.Second)}))
	}
	now = now.Add(2 * time.Second)
	for i := range 300 {
		require.NoError(t, s.Put(ctx, fmt.Sprint("new-", i), contracts.StreamTicket{TaskID: "t", ExpiresAt: now.Add(time.Second)}))
	}
	assert.LessOrEqual(t, memstore.TicketCount(s), 300)
}
