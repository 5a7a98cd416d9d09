package redisstore_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// The benchmarks run against the shared server (make bench or
// scripts/with-redis.sh go test -bench . ./stores/redisstore/); each
// operation is one round trip to a local redis-server, which dominates.

func BenchmarkAppend(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	draft := must(b)(contracts.Progress(50, "stage", "halfway there"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Events.Append(ctx, "bench", draft); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendKeyed is BenchmarkAppend with an idempotency key per
// append (as the emitter sends them): the key's check and record cost.
func BenchmarkAppendKeyed(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	draft := must(b)(contracts.Progress(50, "stage", "halfway there"))
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = contracts.NewID()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Events.Append(ctx, "bench", draft.WithIdempotencyKey(keys[i%len(keys)]+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendParallel(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	draft := must(b)(contracts.Progress(50, "stage", "halfway there"))
	var task atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		id := "bench-" + strconv.FormatInt(task.Add(1), 10)
		for pb.Next() {
			if _, err := s.Events.Append(ctx, id, draft); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReadAfter reads what follows a cursor in a 1000-event stream:
// the newest event (what the hub reads per change notice) and a replay
// page of 100.
func BenchmarkReadAfter(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	var ids []contracts.EventID
	for i := range 1000 {
		ev, err := s.Events.Append(ctx, "bench", contracts.Started(strconv.Itoa(i)))
		require.NoError(b, err)
		ids = append(ids, ev.EventID)
	}
	for _, bc := range []struct {
		name   string
		cursor contracts.EventID
		want   int
	}{
		{"newest", ids[len(ids)-2], 1},
		{"page100", ids[499], 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := s.Events.Read(ctx, "bench", bc.cursor, 100)
				if err != nil || len(page.Events) != bc.want {
					b.Fatal(err, len(page.Events))
				}
			}
		})
	}
}

// BenchmarkAppendReadAfter is the live path of one event: append, then
// read it after the previous cursor.
func BenchmarkAppendReadAfter(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	draft := must(b)(contracts.Progress(50, "stage", "halfway there"))
	var cursor contracts.EventID
	b.ReportAllocs()
	for b.Loop() {
		ev, err := s.Events.Append(ctx, "bench", draft)
		if err != nil {
			b.Fatal(err)
		}
		page, err := s.Events.Read(ctx, "bench", cursor, 10)
		if err != nil || len(page.Events) != 1 {
			b.Fatal(err, len(page.Events))
		}
		cursor = ev.EventID
	}
}

func benchTask(i int64) contracts.TaskRecord {
	n := strconv.FormatInt(i, 10)
	return contracts.TaskRecord{TaskID: "task-" + n, OwnerID: "owner", ClientRequestID: "req-" + n,
		TaskType: "demo", Input: json.RawMessage(`{"n":1}`), Fingerprint: "fp"}
}

// BenchmarkCreate creates a new task with its own idempotency key per
// operation.
func BenchmarkCreate(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	var i int64
	b.ReportAllocs()
	for b.Loop() {
		i++
		if _, created, err := s.Tasks.Create(ctx, benchTask(i)); err != nil || !created {
			b.Fatal(err, created)
		}
	}
}

func BenchmarkCreateParallel(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, created, err := s.Tasks.Create(ctx, benchTask(next.Add(1))); err != nil || !created {
				b.Error(err, created)
				return
			}
		}
	})
}

// BenchmarkCreateDuplicate repeats one request: the idempotent answer.
// Each repeat carries a task id of its own, as the creation service's do
// (the record goes first, and an id already taken is another task's).
func BenchmarkCreateDuplicate(b *testing.B) {
	s, _, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	_, _, err := s.Tasks.Create(ctx, benchTask(0))
	require.NoError(b, err)
	repeat := benchTask(0)
	b.ReportAllocs()
	for i := 1; b.Loop(); i++ {
		repeat.TaskID = "repeat-" + strconv.Itoa(i)
		if _, created, err := s.Tasks.Create(ctx, repeat); err != nil || created {
			b.Fatal(err, created)
		}
	}
}
