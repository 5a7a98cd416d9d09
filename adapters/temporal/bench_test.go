package tbtemporal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// The load comparison of benchmarks/README.md ("Temporal executor"): the
// same task type on the in-process executor and on Temporal, both on the
// Redis stores, created through the creation service with 1 and with
// benchConcurrency tasks in flight. Each task emits benchEvents TASK_PROGRESS events whose
// message is the wall-clock time (ns) just before the emit; a change-feed
// listener (what a bridge's streaming hub runs) reads each new event and
// records emit-to-delivery latency. Reported per run: tasks/s (created
// and completed), create-to-STARTED and create-to-terminal latency,
// emit-to-delivery latency (p50, p99), and CPU per task of this process and
// of the Temporal dev server.
//
//	scripts/with-redis.sh scripts/with-temporal.sh sh -c \
//	  'cd adapters/temporal && go test -run "^$" -bench Executors -benchtime 400x'
const (
	benchEvents      = 5
	benchConcurrency = 32
	// benchPollers is the worker's workflow task pollers (Temporal's
	// default is 2).
	benchPollers = 8
)

// wallNanos is the handler's clock reading that its progress event
// carries (through a side effect in workflow code).
func wallNanos() string { return strconv.FormatInt(time.Now().UnixNano(), 10) }

func BenchmarkExecutors(b *testing.B) {
	redisAddr := e2etest.RedisAddr(b)
	rc := redis.NewClient(&redis.Options{Addr: redisAddr})
	b.Cleanup(func() { _ = rc.Close() })

	for _, conc := range []int{1, benchConcurrency} {
		b.Run(fmt.Sprintf("inflight=%d", conc), func(b *testing.B) { benchExecutors(b, rc, conc) })
	}
}

// benchExecutors runs the load on both executors with conc tasks in
// flight.
func benchExecutors(b *testing.B, rc *redis.Client, conc int) {
	b.Run("inprocess", func(b *testing.B) {
		stores := benchStores(b, rc)
		x, err := orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, MaxConcurrent: 2 * benchConcurrency})
		require.NoError(b, err)
		b.Cleanup(func() { _ = x.Close(context.Background()) })
		x.Handle("bench", func(ctx context.Context, task *orchestration.TaskContext) (any, error) {
			for i := range benchEvents {
				if err := task.Progress(ctx, float64(i*100/benchEvents), "", wallNanos()); err != nil {
					return nil, err
				}
			}
			return "ok", nil
		})
		runLoad(b, stores, x, conc)
	})
	b.Run("temporal", func(b *testing.B) {
		stores := benchStores(b, rc)
		c := dial(b)
		queue := "tbbench-" + randomHex()
		w, err := tbtemporal.NewWorker(c, tbtemporal.WorkerOptions{Stores: stores, TaskQueue: queue,
			Worker: worker.Options{WorkerStopTimeout: 5 * time.Second, MaxConcurrentWorkflowTaskPollers: benchPollers}})
		require.NoError(b, err)
		w.Handle("bench", func(ctx workflow.Context, task *tbtemporal.Task) (any, error) {
			for i := range benchEvents {
				var at string
				if err := workflow.SideEffect(ctx, func(workflow.Context) any { return wallNanos() }).Get(&at); err != nil {
					return nil, err
				}
				if err := task.Progress(ctx, float64(i*100/benchEvents), "", at); err != nil {
					return nil, err
				}
			}
			return "ok", nil
		})
		require.NoError(b, w.Start())
		b.Cleanup(w.Stop)
		x, err := tbtemporal.NewExecutor(c, tbtemporal.ExecutorOptions{TaskTypes: []string{"bench"}, TaskQueue: queue})
		require.NoError(b, err)
		runLoad(b, stores, x, conc)
	})
}

func randomHex() string {
	var p [6]byte
	_, _ = rand.Read(p[:])
	return hex.EncodeToString(p[:])
}

// benchStores are Redis stores under a key prefix of their own, deleted
// at cleanup.
func benchStores(b *testing.B, rc *redis.Client) contracts.Stores {
	prefix := "tbbench:" + randomHex() + ":"
	stores, err := redisstore.New(rc, redisstore.Options{KeyPrefix: prefix})
	require.NoError(b, err)
	b.Cleanup(func() {
		ctx := context.Background()
		iter := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			_ = rc.Del(ctx, iter.Val()).Err()
		}
	})
	return stores
}

// taskTimes are one task's measurements.
type taskTimes struct {
	mu       sync.Mutex // serialises deliver
	created  time.Time
	started  time.Duration // create to TASK_STARTED delivered
	ended    time.Duration // create to terminal delivered
	endedC   chan struct{}
	seen     contracts.EventID
	progress []time.Duration // emit to delivery, per TASK_PROGRESS
}

// runLoad creates b.N tasks through the creation service over x, at most
// conc at once, and reports the measurements.
func runLoad(b *testing.B, stores contracts.Stores, x contracts.Executor, conc int) {
	s, err := orchestration.NewServices(orchestration.Options{Stores: stores, Executor: x,
		// One subject creates every task: the per-subject quotas are off.
		SubjectLimits: orchestration.SubjectLimits{MaxActiveTasks: -1, CreatesPerSecond: -1}})
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close(context.Background()) })

	var mu sync.Mutex
	tasks := make(map[string]*taskTimes)
	lookup := func(id string) *taskTimes {
		mu.Lock()
		defer mu.Unlock()
		return tasks[id]
	}
	notices := make(chan string, 1<<16)
	ctx, stop := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	subscribed := make(chan struct{})
	var once sync.Once
	// The listener passes each notice on to readers that read what is
	// new, as a bridge's streaming hub does. Owned here:
	// stopped before runLoad returns.
	loops.Go(func() {
		_ = stores.Events.Listen(ctx, func(c contracts.Change) {
			if c.Resync {
				once.Do(func() { close(subscribed) })
				return
			}
			select {
			case notices <- c.TaskID:
			default:
				b.Error("notice buffer full")
			}
		})
	})
	for range 4 {
		loops.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-notices:
					if tt := lookup(id); tt != nil {
						deliver(ctx, stores.Events, id, tt)
					}
				}
			}
		})
	}
	<-subscribed
	defer func() {
		stop()
		loops.Wait()
	}()

	cpu0, server0 := processCPU(), serverCPU()
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			tt := &taskTimes{endedC: make(chan struct{})}
			// Notices that come before the task is registered are
			// ignored; deliver below reads what they announced.
			tt.created = time.Now()
			res, err := s.Creation.Create(context.Background(), contracts.CreateTaskCommand{
				Auth: owner, ClientRequestID: contracts.NewID(), TaskType: "bench", Input: []byte(`{}`),
			})
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			tasks[res.TaskID] = tt
			mu.Unlock()
			// Events appended before the registration are read now.
			deliver(ctx, stores.Events, res.TaskID, tt)
			select {
			case <-tt.endedC:
			case <-time.After(60 * time.Second):
				b.Errorf("task %s did not end within 60 s", res.TaskID)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu, server := processCPU()-cpu0, serverCPU()-server0

	var started, ended, progress []time.Duration
	for _, tt := range tasks {
		started = append(started, tt.started)
		ended = append(ended, tt.ended)
		progress = append(progress, tt.progress...)
	}
	b.ReportMetric(float64(len(tasks))/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(ms(pct(started, 50)), "start_p50_ms")
	b.ReportMetric(ms(pct(started, 99)), "start_p99_ms")
	b.ReportMetric(ms(pct(ended, 50)), "end_p50_ms")
	b.ReportMetric(ms(pct(ended, 99)), "end_p99_ms")
	b.ReportMetric(ms(pct(progress, 50)), "emit_p50_ms")
	b.ReportMetric(ms(pct(progress, 99)), "emit_p99_ms")
	// CPU per task: this process (handlers, worker, creation service,
	// listener) and the Temporal dev server; Redis is left out.
	b.ReportMetric(ms(cpu)/float64(len(tasks)), "cpu_ms/task")
	if _, onTemporal := x.(*tbtemporal.Executor); onTemporal && server0 >= 0 {
		b.ReportMetric(ms(server)/float64(len(tasks)), "server_cpu_ms/task")
	}
	b.ReportMetric(0, "ns/op")
}

// deliver reads the task's events after the last one seen and records
// them as delivered when the read returns.
func deliver(ctx context.Context, events contracts.EventStore, taskID string, tt *taskTimes) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	page, err := events.Read(ctx, taskID, tt.seen, 100)
	if err != nil {
		return
	}
	// An event appended after the notice may come with this read: it is
	// delivered now, not at the notice.
	at := time.Now()
	for _, ev := range page.Events {
		tt.seen = ev.EventID
		switch {
		case ev.Type == contracts.EventStarted:
			tt.started = at.Sub(tt.created)
		case ev.Type == contracts.EventProgress:
			p, err := contracts.DecodePayload(&ev)
			if err != nil {
				continue
			}
			if ns, err := strconv.ParseInt(p.(contracts.ProgressPayload).Message, 10, 64); err == nil {
				tt.progress = append(tt.progress, at.Sub(time.Unix(0, ns)))
			}
		case ev.Type.IsTerminal():
			tt.ended = at.Sub(tt.created)
			close(tt.endedC)
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// processCPU is the CPU time this process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is the CPU time the Temporal dev server has used, read from
// /proc/<TASKBRIDGE_TEMPORAL_PID>/stat (scripts/with-temporal.sh exports
// it); -1 when it cannot be read.
func serverCPU() time.Duration {
	data, err := os.ReadFile("/proc/" + os.Getenv("TASKBRIDGE_TEMPORAL_PID") + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold spaces, in parentheses):
	// utime and stime are the 14th and 15th fields of the line.
	rest := string(data[bytes.LastIndexByte(data, ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}
