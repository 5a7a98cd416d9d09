package memstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

// The four stores share one clock; here it stands still, so every event of
// the task gets the same millisecond and a growing sequence number.
func Example() {
	ctx := context.Background()
	clock := func() time.Time { return time.UnixMilli(1_700_000_000_000) }
	st := memstore.New(memstore.Options{Clock: clock, TerminalTTL: time.Hour})

	task, created, _ := st.Tasks.Create(ctx, contracts.TaskRecord{
		TaskID: "task-1", OwnerID: "alice", ClientRequestID: "req-1", TaskType: "report",
	})
	repeat, createdAgain, _ := st.Tasks.Create(ctx, contracts.TaskRecord{
		TaskID: "task-2", OwnerID: "alice", ClientRequestID: "req-1", TaskType: "report",
	})
	fmt.Println(task.TaskID, created, "/", repeat.TaskID, createdAgain)

	started, _ := st.Events.Append(ctx, "task-1", contracts.Started("warming up"))
	half, _ := contracts.Progress(50, "render", "")
	_, _ = st.Events.Append(ctx, "task-1", half)
	done, _ := contracts.Completed(map[string]string{"url": "/r/1"})
	_, _ = st.Events.Append(ctx, "task-1", done)

	page, _ := st.Events.Read(ctx, "task-1", started.EventID, 10)
	for _, ev := range page.Events {
		fmt.Println(ev.EventID, ev.Type)
	}
	fmt.Println("ended:", page.Ended)
	// Output:
	// task-1 true / task-1 false
	// 1700000000000-1 TASK_PROGRESS
	// 1700000000000-2 TASK_COMPLETED
	// ended: true
}

// A cursor older than the oldest retained event is reported, not skipped
// silently.
func ExampleEventStore_Read() {
	ctx := context.Background()
	events := memstore.NewEventStore(memstore.Options{MaxEventsPerTask: 2})
	var first contracts.TaskEvent
	for i := range 4 {
		ev, _ := events.Append(ctx, "task-1", contracts.Started(fmt.Sprint("step ", i)))
		if i == 0 {
			first = ev
		}
	}
	page, _ := events.Read(ctx, "task-1", first.EventID, 10)
	fmt.Println(len(page.Events), "events, gap:", page.RetentionGap)
	// Output:
	// 2 events, gap: true
}

// Of several actions on one suspension exactly one wins; the others get the
// winner's record.
func ExampleSuspensionStore_Resolve() {
	ctx := context.Background()
	sus := memstore.NewSuspensionStore(memstore.Options{})
	_ = sus.Create(ctx, contracts.SuspensionRecord{
		TaskID: "task-1", SuspendID: "approve", AllowedActions: []string{"approve"},
	})
	for _, action := range []string{"a-1", "a-2"} {
		rec, won, _ := sus.Resolve(ctx, "task-1", "approve", contracts.Resolution{
			Status: contracts.SuspensionResolved, ClientActionID: action,
		})
		fmt.Println(action, won, rec.SuccessfulActionID, rec.Handoff)
	}
	// Output:
	// a-1 true a-1 PENDING
	// a-2 false a-1 PENDING
}
