package contracts_test

import (
	"fmt"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Events are built from validated drafts; an invalid payload never becomes
// an event.
func ExampleProgress() {
	if _, err := contracts.Progress(120, "", ""); err != nil {
		fmt.Println("rejected:", err)
	}
	d, _ := contracts.Progress(40, "upload", "Uploading")
	ev := contracts.TaskEvent{Type: d.Type(), TaskID: "t1", EventID: contracts.MustParseEventID("1700000000000-0"),
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Payload: d.Payload()}
	fmt.Println(string(ev.AppendJSON(nil)))
	// Output:
	// rejected: taskbridge: invalid event payload: TASK_PROGRESS: progress 120 is outside 0..100
	// {"type":"TASK_PROGRESS","taskId":"t1","eventId":"1700000000000-0","createdAt":"2026-01-02T03:04:05.000Z","payload":{"progress":40,"stage":"upload","message":"Uploading"}}
}

// Event ids compare numerically, never as strings.
func ExampleEventID_Compare() {
	a := contracts.MustParseEventID("9-0")
	b := contracts.MustParseEventID("10-0")
	fmt.Println(a.Compare(b), "9-0" < "10-0")
	_, err := contracts.ParseCursor("not-an-id")
	fmt.Println(err)
	// Output:
	// -1 false
	// taskbridge: malformed event id "not-an-id"
}
