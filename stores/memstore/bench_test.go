package memstore_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

func benchDraft(b *testing.B) contracts.EventDraft {
	b.Helper()
	d, err := contracts.Progress(42, "stage", "working")
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkAppend appends to one task; past MaxEventsPerTask (10,000) the
// cap trims the oldest events, so the steady state includes trimming.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{})
	d := benchDraft(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, "task", d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendWithListener is BenchmarkAppend with one change-feed
// listener attached, as the hub has.
func BenchmarkAppendWithListener(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	s := memstore.NewEventStore(memstore.Options{})
	var seen atomic.Int64
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, func(contracts.Change) { seen.Add(1) }) }()
	d := benchDraft(b)
	for seen.Load() == 0 { // wait until the listener is registered
		if _, err := s.Append(ctx, "warmup", d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, "task", d); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkAppendReadAfter is the hub's pattern: append one event, then read
// after the previously seen id.
func BenchmarkAppendReadAfter(b *testing.B) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{})
	d := benchDraft(b)
	var last contracts.EventID
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, "task", d); err != nil {
			b.Fatal(err)
		}
		page, err := s.Read(ctx, "task", last, 100)
		if err != nil || len(page.Events) != 1 {
			b.Fatalf("read %d events, err %v", len(page.Events), err)
		}
		last = page.Events[0].EventID
	}
}

// BenchmarkRead100 reads a 100-event page from the middle of a 1,000-event
// stream.
func BenchmarkRead100(b *testing.B) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{})
	d := benchDraft(b)
	var cursor contracts.EventID
	for i := range 1000 {
		ev, err := s.Append(ctx, "task", d)
		if err != nil {
			b.Fatal(err)
		}
		if i == 499 {
			cursor = ev.EventID
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		page, err := s.Read(ctx, "task", cursor, 100)
		if err != nil || len(page.Events) != 100 {
			b.Fatalf("read %d events, err %v", len(page.Events), err)
		}
	}
}

// BenchmarkAppendParallel appends from every goroutine, each to its own task.
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{})
	d := benchDraft(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		task := fmt.Sprint("task-", n.Add(1))
		for pb.Next() {
			if _, err := s.Append(ctx, task, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendParallelOneTask appends from every goroutine to one task
// (contention on that task's lock).
func BenchmarkAppendParallelOneTask(b *testing.B) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{})
	d := benchDraft(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Append(ctx, "task", d); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendReadAfterParallel runs the hub pattern on every goroutine,
// each on its own task.
func BenchmarkAppendReadAfterParallel(b *testing.B) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{})
	d := benchDraft(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		task := fmt.Sprint("task-", n.Add(1))
		var last contracts.EventID
		for pb.Next() {
			if _, err := s.Append(ctx, task, d); err != nil {
				b.Error(err)
				return
			}
			page, err := s.Read(ctx, task, last, 100)
			if err != nil || len(page.Events) != 1 {
				b.Errorf("read %d events, err %v", len(page.Events), err)
				return
			}
			last = page.Events[0].EventID
		}
	})
}

// BenchmarkRead100Parallel has every goroutine read the same 100-event page
// of one task, like many pollers catching up on one task.
func BenchmarkRead100Parallel(b *testing.B) {
	ctx := context.Background()
	s := memstore.NewEventStore(memstore.Options{})
	d := benchDraft(b)
	var cursor contracts.EventID
	for i := range 1000 {
		ev, err := s.Append(ctx, "task", d)
		if err != nil {
			b.Fatal(err)
		}
		if i == 499 {
			cursor = ev.EventID
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			page, err := s.Read(ctx, "task", cursor, 100)
			if err != nil || len(page.Events) != 100 {
				b.Errorf("read %d events, err %v", len(page.Events), err)
				return
			}
		}
	})
}

// BenchmarkTaskGet reads one task record (the ownership check of every
// request).
func BenchmarkTaskGet(b *testing.B) {
	ctx := context.Background()
	reg := memstore.NewTaskRegistry(memstore.Options{})
	if _, _, err := reg.Create(ctx, contracts.TaskRecord{TaskID: "task", OwnerID: "o", ClientRequestID: "r"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Get(ctx, "task"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTaskCreate creates new tasks of one owner, each with its own
// idempotency key, as the create route does: every op grows the registry
// (run it with a fixed -benchtime such as 250000x, the size a 5 s create
// load reaches, so that runs compare). The ids are built in the loop
// (about 60 ns of each op).
func BenchmarkTaskCreate(b *testing.B) {
	ctx := context.Background()
	reg := memstore.NewTaskRegistry(memstore.Options{})
	rec := contracts.TaskRecord{OwnerID: "bench", TaskType: "bench.hold", Input: []byte(`{"n":1}`),
		Fingerprint: "f", Status: contracts.StatusAccepted}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec.TaskID = "task-" + strconv.Itoa(i)
		rec.ClientRequestID = "request-" + strconv.Itoa(i)
		if _, created, err := reg.Create(ctx, rec); err != nil || !created {
			b.Fatal(err, created)
		}
	}
}
