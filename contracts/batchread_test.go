package contracts_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// logStore is a tiny read-only event log, enough to show the port: Read
// pages through one slice per task and ReadBatch loops over Read, which
// makes it equal to Read by construction.
type logStore struct {
	logs map[string][]contracts.TaskEvent
}

func (s logStore) Read(_ context.Context, taskID string, after contracts.EventID, limit int) (contracts.EventPage, error) {
	if taskID == "broken" {
		return contracts.EventPage{}, errors.New("disk on fire")
	}
	var page contracts.EventPage
	for _, ev := range s.logs[taskID] {
		if after.Less(ev.EventID) && len(page.Events) < limit {
			page.Events = append(page.Events, ev)
		}
	}
	return page, nil
}

func (s logStore) ReadBatch(ctx context.Context, reqs []contracts.ReadRequest, pages []contracts.EventPage, errs []error) {
	for i, r := range reqs {
		pages[i], errs[i] = s.Read(ctx, r.TaskID, r.After, r.Limit)
	}
}

var _ contracts.BatchReader = logStore{}

// A reader serving many tasks asks the store for a BatchReader and makes
// one call for all of them; each request gets its own page or error.
func ExampleBatchReader() {
	id := contracts.MustParseEventID
	store := logStore{logs: map[string][]contracts.TaskEvent{
		"a": {{TaskID: "a", EventID: id("1-0")}, {TaskID: "a", EventID: id("2-0")}},
		"b": {{TaskID: "b", EventID: id("1-5")}},
	}}
	reqs := []contracts.ReadRequest{
		{TaskID: "a", After: id("1-0"), Limit: 10},
		{TaskID: "b", Limit: 10},
		{TaskID: "broken", Limit: 10},
		{TaskID: "a", Limit: 1},
	}
	pages := make([]contracts.EventPage, len(reqs))
	errs := make([]error, len(reqs))
	var reader any = store
	if br, ok := reader.(contracts.BatchReader); ok {
		br.ReadBatch(context.Background(), reqs, pages, errs)
	}
	for i, r := range reqs {
		fmt.Printf("%s after %s: %d events", r.TaskID, r.After, len(pages[i].Events))
		for _, ev := range pages[i].Events {
			fmt.Print(" ", ev.EventID)
		}
		if errs[i] != nil {
			fmt.Print(" error: ", errs[i])
		}
		fmt.Println()
	}
	// Output:
	// a after 1-0: 1 events 2-0
	// b after 0-0: 1 events 1-5
	// broken after 0-0: 0 events error: disk on fire
	// a after 0-0: 1 events 1-0
}
