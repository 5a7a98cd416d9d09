package tbtemporal_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/goleak"

	tbtemporal "github.com/taskbridge/taskbridge-fiber/adapters/temporal"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/memstore"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// Workflows stay in the SDK's process-wide sticky cache (with their
	// coroutines) after their workers stop; every worker has stopped now.
	worker.PurgeStickyWorkflowCache()
	if code == 0 {
		if err := goleak.Find(
			// gRPC's shared background goroutines outlive the clients.
			goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// temporalAddr returns the dev server's address (scripts/with-temporal.sh
// exports it). Without it the test skips, or fails under CI=true.
func temporalAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("TASKBRIDGE_TEMPORAL_ADDR")
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TASKBRIDGE_TEMPORAL_ADDR is not set: run the tests through scripts/with-temporal.sh")
		}
		t.Skip("TASKBRIDGE_TEMPORAL_ADDR is not set: run through scripts/with-temporal.sh for the Temporal tests")
	}
	return addr
}

// dial returns a client of the dev server, closed at the end of the test.
func dial(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: temporalAddr(t), Logger: tbtemporal.Logger(nil)})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

var queueSeq atomic.Int64

// env is one test's bridge services and worker on memory stores, with a
// task queue of its own on the shared dev server.
type env struct {
	t        *testing.T
	c        client.Client
	stores   contracts.Stores
	exec     *tbtemporal.Executor
	worker   *tbtemporal.Worker
	services *orchestration.Services
	queue    string
}

// newEnv builds the env; register handlers with e.worker.Handle, then call
// e.start.
func newEnv(t *testing.T) *env {
	t.Helper()
	c := dial(t)
	queue := "tbtest-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" +
		time.Now().Format("150405.000000") + "-" + string(rune('a'+queueSeq.Add(1)%26))
	stores := memstore.New(memstore.Options{})
	w, err := tbtemporal.NewWorker(c, tbtemporal.WorkerOptions{
		Stores: stores, TaskQueue: queue,
		Worker: worker.Options{WorkerStopTimeout: 5 * time.Second},
	})
	require.NoError(t, err)
	return &env{t: t, c: c, stores: stores, worker: w, queue: queue}
}

// start starts the worker and builds the executor and services for the
// registered task types.
func (e *env) start() {
	e.t.Helper()
	x, err := tbtemporal.NewExecutor(e.c, tbtemporal.ExecutorOptions{TaskTypes: e.worker.TaskTypes(), TaskQueue: e.queue})
	require.NoError(e.t, err)
	e.exec = x
	s, err := orchestration.NewServices(orchestration.Options{
		Stores: e.stores, Executor: x,
	})
	require.NoError(e.t, err)
	e.services = s
	e.t.Cleanup(func() { require.NoError(e.t, s.Close(context.Background())) })
	require.NoError(e.t, e.worker.Start())
	e.t.Cleanup(e.worker.Stop)
}

var owner = contracts.AuthContext{Subject: "alice"}

// create creates a task of taskType with input through the creation
// service and returns its id.
func (e *env) create(taskType, input string) string {
	e.t.Helper()
	if input == "" {
		input = "{}"
	}
	res, err := e.services.Creation.Create(context.Background(), contracts.CreateTaskCommand{
		Auth: owner, ClientRequestID: contracts.NewID(), TaskType: taskType, Input: []byte(input),
	})
	require.NoError(e.t, err)
	return res.TaskID
}

// waitFor reads the task's events until one satisfies done (or the
// terminal event), waking on the store's change feed, within 60 s.
func (e *env) waitFor(taskID string, done func(contracts.TaskEvent) bool) []contracts.TaskEvent {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	changed := make(chan struct{}, 1)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		_ = e.stores.Events.Listen(ctx, func(c contracts.Change) {
			if c.Resync || c.TaskID == taskID {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		})
	}()
	defer func() {
		cancel()
		<-listening
	}()
	for {
		page, err := e.stores.Events.Read(ctx, taskID, contracts.EventID{}, 1000)
		require.NoError(e.t, err)
		for _, ev := range page.Events {
			if done(ev) {
				return page.Events
			}
		}
		if page.Ended {
			return page.Events
		}
		select {
		case <-changed:
		case <-ctx.Done():
			e.t.Fatalf("task %s: no matching event within 60 s; events so far: %s", taskID, types(page.Events))
		}
	}
}

// waitEnd waits for the terminal event and for the task's workflow to
// close, and returns all events.
func (e *env) waitEnd(taskID string) []contracts.TaskEvent {
	e.t.Helper()
	evs := e.waitFor(taskID, func(ev contracts.TaskEvent) bool { return ev.Type.IsTerminal() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var outcome string
	require.NoError(e.t, e.c.GetWorkflow(ctx, tbtemporal.WorkflowID("", taskID), "").Get(ctx, &outcome))
	require.NotEmpty(e.t, outcome)
	return evs
}

// types lists the events' types, for assertions and messages.
func types(evs []contracts.TaskEvent) []contracts.EventType {
	out := make([]contracts.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// payload decodes an event's payload.
func payload(t testing.TB, ev contracts.TaskEvent) contracts.Payload {
	t.Helper()
	p, err := contracts.DecodePayload(&ev)
	require.NoError(t, err)
	return p
}
