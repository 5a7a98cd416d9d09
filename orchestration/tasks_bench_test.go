package orchestration_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// BenchmarkSnapshot reads the snapshot of a task with a short and a long
// log: the cost does not grow with the log (the store keeps the summary on
// append), against the same snapshot folded from the log ("replay"), which
// is what an event store without summaries costs.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		stores, svc := benchServices(b, nopExecutor{})
		created, err := svc.Creation.Create(context.Background(), createCmd("alice", "r", "t", ""))
		if err != nil {
			b.Fatal(err)
		}
		appendN(b, stores.Events, created.TaskID, n)
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.Tasks.Snapshot(context.Background(), auth("alice"), created.TaskID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("events=%d/replay", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var sum contracts.TaskLogSummary
				var after contracts.EventID
				for {
					page, err := stores.Events.Read(context.Background(), created.TaskID, after, 500)
					if err != nil {
						b.Fatal(err)
					}
					for i := range page.Events {
						sum.Apply(&page.Events[i])
					}
					if len(page.Events) < 500 {
						break
					}
					after = page.Events[len(page.Events)-1].EventID
				}
			}
		})
	}
}

// BenchmarkListTasks reads the first page (20) of an owner with 10,000
// tasks, unfiltered and filtered by a status half of them have.
func BenchmarkListTasks(b *testing.B) {
	stores, svc := benchServices(b, nopExecutor{})
	for i := range 10_000 {
		created, err := svc.Creation.Create(context.Background(), createCmd("alice", fmt.Sprint(i), "t", ""))
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := stores.Tasks.UpdateStatus(context.Background(), created.TaskID, contracts.StatusRunning); err != nil {
				b.Fatal(err)
			}
		}
	}
	for name, q := range map[string]contracts.ListTasksQuery{
		"all":     {Auth: auth("alice"), Limit: 20},
		"running": {Auth: auth("alice"), Limit: 20, Statuses: []contracts.TaskStatus{contracts.StatusRunning}},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if page, err := svc.Tasks.List(context.Background(), q); err != nil || len(page.Tasks) != 20 {
					b.Fatal(err, len(page.Tasks))
				}
			}
		})
	}
}
