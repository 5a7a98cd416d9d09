package orchestration_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

type nopExecutor struct{}

func (nopExecutor) Submit(context.Context, contracts.TaskRecord) error { return nil }
func (nopExecutor) Cancel(context.Context, contracts.TaskRecord) error { return nil }

func benchServices(b *testing.B, exec contracts.Executor) (contracts.Stores, *orchestration.Services) {
	b.Helper()
	stores := memstore.New(memstore.Options{})
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: exec,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close(context.Background()) })
	return stores, svc
}

// BenchmarkPoll is a long-poll that finds 10 events after its cursor (no
// wait): authorize, one store read, the result.
func BenchmarkPoll(b *testing.B) {
	stores, svc := benchServices(b, nopExecutor{})
	created, err := svc.Creation.Create(context.Background(), createCmd("alice", "r", "t", ""))
	if err != nil {
		b.Fatal(err)
	}
	evs := appendN(b, stores.Events, created.TaskID, 100)
	q := contracts.PollQuery{Auth: auth("alice"), TaskID: created.TaskID, After: evs[89].EventID, Limit: 100}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if res, err := svc.Polling.Poll(context.Background(), q); err != nil || len(res.Events) != 10 {
				b.Fatal(err, len(res.Events))
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := svc.Polling.Poll(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkCreate is an idempotent create of a new task (nop executor).
func BenchmarkCreate(b *testing.B) {
	_, svc := benchServices(b, nopExecutor{})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cmd := createCmd("alice", strconv.FormatInt(n.Add(1), 10), "t", `{"width":640,"height":480}`)
			if _, err := svc.Creation.Create(context.Background(), cmd); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFeedWaiter measures a watch registered and released, and a
// change waking 1, 100 and 1000 watchers of one task.
func BenchmarkFeedWaiter(b *testing.B) {
	feed := &manualFeed{ready: make(chan func(contracts.Change), 1)}
	fw := orchestration.NewFeedWaiter(feed)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = fw.Run(ctx)
	}()
	notify := <-feed.ready
	defer func() {
		cancel()
		<-done
	}()
	b.Run("watch-release", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, release := fw.Watch("task")
				release()
			}
		})
	})
	for _, n := range []int{1, 100, 1000} {
		b.Run("wake-"+strconv.Itoa(n), func(b *testing.B) {
			releases := make([]func(), n)
			b.ReportAllocs()
			for b.Loop() {
				for i := range releases {
					_, releases[i] = fw.Watch("task")
				}
				notify(contracts.Change{TaskID: "task"})
				for _, r := range releases {
					r()
				}
			}
		})
	}
}

// BenchmarkExecutorRun is one task end to end: create, queue, STARTED, a
// progress event, COMPLETED, over memstore.
func BenchmarkExecutorRun(b *testing.B) {
	stores := memstore.New(memstore.Options{})
	exec := must(orchestration.NewExecutor(orchestration.ExecutorOptions{
		Stores:        stores,
		MaxConcurrent: 4,
		QueueSize:     1 << 16,
	}))(b)
	finished := make(chan struct{}, 1<<16)
	exec.Handle("job", func(ctx context.Context, tc *orchestration.TaskContext) (any, error) {
		err := tc.Progress(ctx, 50, "", "")
		finished <- struct{}{}
		return "ok", err
	})
	svc, err := orchestration.NewServices(orchestration.Options{
		Stores:   stores,
		Executor: exec,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = exec.Close(context.Background())
		_ = svc.Close(context.Background())
	}()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := svc.Creation.Create(context.Background(), createCmd("alice", strconv.Itoa(i), "job", "")); err != nil {
			b.Fatal(err)
		}
		<-finished
	}
}
