package redisstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/observe"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
	"github.com/taskbridge/taskbridge-fiber/streaming"
)

// This file holds the harness of the end-to-end tests: a bridge instance
// (fiberbridge on the Redis stores, with the in-process executor, on a
// 127.0.0.1:0 listener) and a task type whose events the test emits one
// by one. Each instance has its own Redis client, as separate processes
// would.

// owner is the subject every end-to-end request authenticates as.
const owner = "alice"

// bearerAuth resolves "Authorization: Bearer <subject>".
func bearerAuth(c *fiber.Ctx) (contracts.AuthContext, error) {
	token, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || token == "" {
		return contracts.AuthContext{}, bridgeerr.New(bridgeerr.CodeAuthentication, "bearer token required")
	}
	return contracts.AuthContext{Subject: strings.Clone(token)}, nil
}

// nodeConfig configures startNode.
type nodeConfig struct {
	client   *redis.Client       // required; closed by the test's cleanup, after the node
	prefix   string              // required; the same for instances that share tasks
	steps    *stepper            // registers stepsType when set
	probe    time.Duration       // Redis readiness probe timeout; 0: 1s
	feedPing time.Duration       // redisstore.Options.FeedPingInterval
	metrics  observe.MetricsSink // bridge metrics; nil: none
	tickets  bool                // stream tickets on a redisstore.TicketStore with the prefix
	limits   orchestration.SubjectLimits
}

// node is one bridge instance serving on 127.0.0.1:0.
type node struct {
	tb     testing.TB
	name   string
	addr   string
	stores contracts.Stores
	exec   *orchestration.Executor
	bridge *fiberbridge.Bridge
	app    *fiber.App
	logs   *observer.ObservedLogs
	served chan error
	http   *http.Client

	stopOnce sync.Once
}

// startNode builds and serves an instance; cleanup shuts it down.
func startNode(tb testing.TB, name string, cfg nodeConfig) *node {
	tb.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core).With(zap.String("node", name))
	stores := check(redisstore.New(cfg.client, redisstore.Options{KeyPrefix: cfg.prefix, Logger: log, FeedPingInterval: cfg.feedPing}))(tb)
	// The stepper's handlers wait for the test: stop them at once, no drain.
	exec := check(orchestration.NewExecutor(orchestration.ExecutorOptions{Stores: stores, Logger: log, DrainTimeout: -1}))(tb)
	if cfg.steps != nil {
		exec.Handle(stepsType, cfg.steps.run)
	}
	probe := cfg.probe
	if probe == 0 {
		probe = time.Second
	}
	var tickets fiberbridge.StreamTickets
	if cfg.tickets {
		tickets.Store = check(redisstore.NewTicketStore(cfg.client, redisstore.Options{KeyPrefix: cfg.prefix}))(tb)
	}
	bridge := check(fiberbridge.New(fiberbridge.Config{
		StreamTickets:       tickets,
		Stores:              stores,
		Executor:            exec,
		AuthResolver:        bearerAuth,
		Readiness:           observe.NewComposite(probe, observe.NamedProbe{Name: "redis", Probe: redisstore.NewProbe(cfg.client, probe)}),
		MaintenanceInterval: -1, // no background store traffic besides what a test does
		// The fan-out tests and benchmarks subscribe up to 1,000 streams with one token.
		MaxStreamsPerSubject: -1,
		Stream:               streaming.Options{HeartbeatInterval: time.Second},
		Logger:               log,
		Metrics:              cfg.metrics,
		SubjectLimits:        cfg.limits,
	}))(tb)
	app := fiber.New(fiber.Config{ErrorHandler: fiberbridge.ErrorHandler, DisableStartupMessage: true})
	bridge.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	n := &node{
		tb: tb, name: name, addr: ln.Addr().String(), stores: stores, exec: exec, bridge: bridge, app: app,
		logs: logs, served: make(chan error, 1), http: &http.Client{Timeout: 10 * time.Second},
	}
	go func() { n.served <- app.Listener(ln) }()
	tb.Cleanup(func() {
		n.stop()
		if tb.Failed() {
			for _, e := range logs.All() {
				tb.Logf("%s log: %s %s %v", name, e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return n
}

// stop shuts the instance down as a host would (once): the bridge ends its
// streams, the server stops, the executor ends its tasks.
func (n *node) stop() {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.http.CloseIdleConnections()
		assert.NoError(n.tb, n.bridge.Shutdown(ctx), "%s: bridge shutdown", n.name)
		assert.NoError(n.tb, n.app.ShutdownWithContext(ctx), "%s: app shutdown", n.name)
		assert.NoError(n.tb, <-n.served, "%s: serve", n.name)
		assert.NoError(n.tb, n.exec.Close(ctx), "%s: executor close", n.name)
	})
}

// do sends a request as owner and returns the status and body.
func (n *node) do(method, path, body string) (int, []byte) {
	n.tb.Helper()
	req, err := http.NewRequest(method, "http://"+n.addr+path, strings.NewReader(body))
	require.NoError(n.tb, err)
	req.Header.Set("Authorization", "Bearer "+owner)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.http.Do(req)
	require.NoError(n.tb, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(n.tb, err)
	return resp.StatusCode, data
}

// create creates a task of taskType with a fresh clientRequestId and
// returns its id.
func (n *node) create(taskType string) string {
	n.tb.Helper()
	status, body := n.do(http.MethodPost, "/api/v1/tasks",
		`{"clientRequestId":"`+contracts.NewID()+`","taskType":"`+taskType+`","input":{}}`)
	require.Equal(n.tb, http.StatusCreated, status, string(body))
	var created contracts.TaskCreated
	require.NoError(n.tb, json.Unmarshal(body, &created))
	return created.TaskID
}

// createRunning creates a stepsType task on n and waits until its handler
// runs (TASK_STARTED is stored). The tests connect their streams after
// that and append every further event only once each stream holds
// TASK_STARTED, so each stream is registered in its hub before the events
// it must receive live exist: the streaming hub drops a change notice that
// arrives between a stream's first read and its registration when no
// other local stream follows the task (reported separately; it is not a
// Redis matter).
func createRunning(tb testing.TB, ctx context.Context, n *node, steps *stepper) string {
	tb.Helper()
	taskID := n.create(stepsType)
	steps.awaitRunning(tb, ctx, taskID)
	return taskID
}

// stepsType is the task type whose events the test emits one at a time.
const stepsType = "e2e.steps"

// stepper is the handler of stepsType: each step the test sends appends
// one TASK_PROGRESS, and finish completes the task. A step whose append
// fails (Redis unavailable) is retried with backoff, as a handler that
// must not lose progress would, until its task's context ends.
type stepper struct {
	mu      sync.Mutex
	gates   map[string]chan stepCmd
	running map[string]chan struct{} // closed when the task's handler starts
}

type stepCmd struct {
	finish bool
	done   chan error // receives the step's outcome
}

func newStepper() *stepper {
	return &stepper{gates: make(map[string]chan stepCmd), running: make(map[string]chan struct{})}
}

func (s *stepper) gate(taskID string) (chan stepCmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gates[taskID]
	if g == nil {
		g = make(chan stepCmd)
		s.gates[taskID] = g
		s.running[taskID] = make(chan struct{})
	}
	return g, s.running[taskID]
}

func (s *stepper) run(ctx context.Context, task *orchestration.TaskContext) (any, error) {
	gate, running := s.gate(task.Task().TaskID)
	close(running) // the executor has stored TASK_STARTED
	steps := 0
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case cmd := <-gate:
			if cmd.finish {
				cmd.done <- nil
				return map[string]int{"steps": steps}, nil
			}
			steps++
			err := emitRetrying(ctx, task, steps)
			cmd.done <- err
			if err != nil {
				return nil, err
			}
		}
	}
}

// emitRetrying appends progress step n, retrying failed appends with
// backoff (20 ms doubling to 320 ms) until ctx ends.
func emitRetrying(ctx context.Context, task *orchestration.TaskContext, n int) error {
	backoff := 20 * time.Millisecond
	for {
		err := task.Progress(ctx, float64(min(n, 100)), "step", strconv.Itoa(n))
		if err == nil || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 320*time.Millisecond)
	}
}

// stepAsync asks the handler of taskID for one more event (or to finish)
// and returns the channel that receives the outcome.
func (s *stepper) stepAsync(ctx context.Context, taskID string, finish bool) <-chan error {
	done := make(chan error, 1)
	gate, _ := s.gate(taskID)
	select {
	case gate <- stepCmd{finish: finish, done: done}:
	case <-ctx.Done():
		done <- fmt.Errorf("handler of %s did not take the step: %w", taskID, ctx.Err())
	}
	return done
}

// awaitRunning waits until the handler of taskID runs, that is until its
// TASK_STARTED is stored.
func (s *stepper) awaitRunning(tb testing.TB, ctx context.Context, taskID string) {
	tb.Helper()
	_, running := s.gate(taskID)
	select {
	case <-running:
	case <-ctx.Done():
		require.FailNow(tb, "the task's handler did not start before the deadline")
	}
}

// step emits one event of taskID and waits until it is stored.
func (s *stepper) step(tb testing.TB, ctx context.Context, taskID string) {
	tb.Helper()
	awaitStep(tb, ctx, s.stepAsync(ctx, taskID, false))
}

// finish lets the handler of taskID return (the executor then appends
// TASK_COMPLETED).
func (s *stepper) finish(tb testing.TB, ctx context.Context, taskID string) {
	tb.Helper()
	awaitStep(tb, ctx, s.stepAsync(ctx, taskID, true))
}

func awaitStep(tb testing.TB, ctx context.Context, done <-chan error) {
	tb.Helper()
	select {
	case err := <-done:
		require.NoError(tb, err)
	case <-ctx.Done():
		require.FailNow(tb, "the step was not stored before the deadline")
	}
}

// storedIDs returns the ids of every event of taskID in the store, in
// order.
func storedIDs(tb testing.TB, ctx context.Context, events contracts.EventStore, taskID string) []string {
	tb.Helper()
	var ids []string
	var cursor contracts.EventID
	for {
		page, err := events.Read(ctx, taskID, cursor, 500)
		require.NoError(tb, err)
		for _, ev := range page.Events {
			ids = append(ids, ev.EventID.String())
			cursor = ev.EventID
		}
		if len(page.Events) < 500 {
			return ids
		}
	}
}

// errorEnvelope decodes an error body, checking it against the protocol.
func errorEnvelope(tb testing.TB, body []byte) bridgeerr.Envelope {
	tb.Helper()
	var env bridgeerr.Envelope
	require.NoError(tb, json.Unmarshal(body, &env), "not an envelope: %s", body)
	return env
}

// loggedErrors returns the error-level log entries of n whose message is
// msg (any message when msg is empty).
func (n *node) loggedErrors(msg string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range n.logs.All() {
		if e.Level >= zapcore.ErrorLevel && (msg == "" || e.Message == msg) {
			out = append(out, e)
		}
	}
	return out
}

// errText is the text of an entry's error field ("" when none).
func errText(e observer.LoggedEntry) string {
	for _, f := range e.Context {
		if f.Key == "error" {
			if err, ok := f.Interface.(error); ok {
				return err.Error()
			}
			return f.String
		}
	}
	return ""
}

// isRedisCause reports whether a logged cause names a Redis failure: a
// timeout, a refused or dropped connection, or a wrapped store error.
func isRedisCause(s string) bool {
	for _, sign := range []string{"redisstore", "i/o timeout", "connection refused", "deadline exceeded", "EOF",
		"connection reset", "broken pipe"} {
		if strings.Contains(s, sign) {
			return true
		}
	}
	return false
}
