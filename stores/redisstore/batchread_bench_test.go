package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// benchReads prepares tasks tasks of two events each and returns the
// requests for each task's newest event (what the hub reads per change
// notice).
func benchReads(b *testing.B, tasks int) (*redisstore.EventStore, []contracts.ReadRequest) {
	b.Helper()
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	draft := must(b)(contracts.Progress(50, "stage", "halfway there"))
	reqs := make([]contracts.ReadRequest, tasks)
	for i := range reqs {
		id := "bench-" + strconv.Itoa(i)
		first, err := s.Events.Append(ctx, id, draft)
		require.NoError(b, err)
		_, err = s.Events.Append(ctx, id, draft)
		require.NoError(b, err)
		reqs[i] = contracts.ReadRequest{TaskID: id, After: first.EventID, Limit: 100}
	}
	return s.Events.(*redisstore.EventStore), reqs
}

// BenchmarkRead is the fan-out read of one task's newest event, one
// round trip per read; ns/read equals ns/op.
func BenchmarkRead(b *testing.B) {
	events, reqs := benchReads(b, 128)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		i++
		page, err := events.Read(ctx, r.TaskID, r.After, r.Limit)
		if err != nil || len(page.Events) != 1 {
			b.Fatal(err, len(page.Events))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/read")
}

// BenchmarkReadBatch makes the same reads as BenchmarkRead in batches of
// 1, 16 and 128 tasks (one pipeline each); ns/read and allocs/read are
// per request, comparable with BenchmarkRead's ns/op and allocs/op.
func BenchmarkReadBatch(b *testing.B) {
	events, all := benchReads(b, 128)
	ctx := context.Background()
	for _, n := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			reqs := all[:n]
			pages := make([]contracts.EventPage, n)
			errs := make([]error, n)
			b.ReportAllocs()
			ops := 0
			for b.Loop() {
				ops++
				events.ReadBatch(ctx, reqs, pages, errs)
				for j := range reqs {
					if errs[j] != nil || len(pages[j].Events) != 1 {
						b.Fatal(errs[j], len(pages[j].Events))
					}
				}
			}
			reads := float64(ops * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/reads, "ns/read")
			b.ReportMetric(float64(testing.AllocsPerRun(20, func() { events.ReadBatch(ctx, reqs, pages, errs) }))/float64(n), "allocs/read")
		})
	}
}
