package redisstore_test

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// BenchmarkRequestPath measures the store side of the request path's
// routes on Redis: a new task, and a poll of a task holding ten events read
// the two ways the polling service can (the record, then the page; or both
// in one script). Besides time it reports the CPU each operation costs this
// process (cpu-ns/op, the bridge's side: go-redis and decoding) and
// redis-server (redis-cpu-ns/op), which on a shared machine say more than
// the time.
func BenchmarkRequestPath(b *testing.B) {
	s, c, _ := newStores(b, redisstore.Options{})
	ctx := context.Background()
	task, _, err := s.Tasks.Create(ctx, benchTask(0))
	require.NoError(b, err)
	for i := range 10 {
		_, err := s.Events.Append(ctx, task.TaskID, must(b)(contracts.Progress(float64(10*i), "stage", "a progress message")))
		require.NoError(b, err)
	}
	events := s.Events.(*redisstore.EventStore)

	var next int64 = 1 << 40 // past benchTask(0), and new tasks on every run
	b.Run("create", func(b *testing.B) {
		measureCPU(b, c, func() {
			next++
			if _, created, err := s.Tasks.Create(ctx, benchTask(next)); err != nil || !created {
				b.Fatal(err, created)
			}
		})
	})
	b.Run("poll/get+read", func(b *testing.B) {
		measureCPU(b, c, func() {
			if _, err := s.Tasks.Get(ctx, task.TaskID); err != nil {
				b.Fatal(err)
			}
			if page, err := s.Events.Read(ctx, task.TaskID, contracts.EventID{}, 100); err != nil || len(page.Events) != 10 {
				b.Fatal(err, len(page.Events))
			}
		})
	})
	b.Run("poll/readtask", func(b *testing.B) {
		measureCPU(b, c, func() {
			if _, page, err := events.ReadTask(ctx, task.TaskID, contracts.EventID{}, 100); err != nil || len(page.Events) != 10 {
				b.Fatal(err, len(page.Events))
			}
		})
	})
}

// measureCPU runs op b.N times and reports the CPU per op of this process
// and of redis-server.
func measureCPU(b *testing.B, c *redis.Client, op func()) {
	b.Helper()
	b.ReportAllocs()
	redisBefore, procBefore := redisCPU(b, c), processCPU()
	for b.Loop() {
		op()
	}
	redisAfter, procAfter := redisCPU(b, c), processCPU()
	b.ReportMetric(float64(procAfter-procBefore)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(redisAfter-redisBefore)/float64(b.N), "redis-cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is redis-server's user + system CPU time so far (INFO cpu).
func redisCPU(tb testing.TB, c *redis.Client) time.Duration {
	tb.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	require.NoError(tb, err)
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(tb, err)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
