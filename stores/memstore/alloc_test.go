//go:build !race

package memstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// TestHotPathAllocations locks in that reads allocate nothing and that
// appends allocate only when the task's array grows or is compacted
// (amortised well under one allocation per append).
func TestHotPathAllocations(t *testing.T) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{MaxEventsPerTask: 1000})
	d, err := contracts.Progress(1, "", "")
	require.NoError(t, err)
	var cursor contracts.EventID
	for i := range 1000 {
		ev, err := s.Append(ctx, "task", d)
		require.NoError(t, err)
		if i == 499 {
			cursor = ev.EventID
		}
	}

	reads := testing.AllocsPerRun(1000, func() {
		if _, err := s.Read(ctx, "task", cursor, 100); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, reads, "Read allocates nothing")

	appends := testing.AllocsPerRun(5000, func() {
		if _, err := s.Append(ctx, "task", d); err != nil {
			t.Fatal(err)
		}
	})
	// AllocsPerRun rounds the average down: growth and compaction
	// allocations amortise to zero, anything per append would show as >= 1.
	assert.Zero(t, appends, "Append allocates nothing per event")

	reg := memstore.NewTaskRegistry(memstore.Options{})
	_, _, err = reg.Create(ctx, contracts.TaskRecord{TaskID: "task", OwnerID: "o", ClientRequestID: "r"})
	require.NoError(t, err)
	gets := testing.AllocsPerRun(1000, func() {
		if _, err := reg.Get(ctx, "task"); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, gets, "TaskRegistry.Get allocates nothing")
}
