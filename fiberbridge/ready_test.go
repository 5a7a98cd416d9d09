package fiberbridge_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

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
)

// getReady asks /ready with a client bounded by limit, so a /ready that
// hangs fails the test instead of stalling it.
func (h *harness) getReady(limit time.Duration) response {
	h.t.Helper()
	client := &http.Client{Timeout: limit}
	defer client.CloseIdleConnections()
	resp, err := client.Get(h.base + "/ready")
	require.NoError(h.t, err, "/ready must answer within %v", limit)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// TestReadyFailingProbe: one failing probe of a composite makes /ready 503
// with that probe's name and message next to the healthy ones; the change
// back and forth is logged.
func TestReadyFailingProbe(t *testing.T) {
	t.Parallel()
	var storeDown atomic.Bool
	storeDown.Store(true)
	core, logs := observer.New(zapcore.InfoLevel)
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		cfg.Logger = zap.New(core)
		cfg.Readiness = observe.NewComposite(2*time.Second,
			observe.NamedProbe{Name: "executor", Probe: observe.ExecutorProbe(cfg.Executor.(*orchestration.Executor))},
			observe.NamedProbe{Name: "store", Probe: observe.ProbeFunc(func(context.Context) error {
				if storeDown.Load() {
					return errors.New("store unreachable")
				}
				return nil
			})},
		)
	})

	r := h.getReady(wait)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"status":"not_ready","details":{
		"executor":{"status":"ok","message":""},
		"store":{"status":"failing","message":"store unreachable"}}}`, string(r.body))
	warn := findLog(t, logs, logWant{"http.ready.changed", zapcore.WarnLevel, map[string]any{
		observe.FieldOutcome: "not_ready", observe.FieldTransport: "http"}})
	assert.Contains(t, warn.ContextMap()[observe.FieldDetails], "store")

	storeDown.Store(false)
	r = h.getReady(wait)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ready","details":{
		"executor":{"status":"ok","message":""},
		"store":{"status":"ok","message":""}}}`, string(r.body))
	findLog(t, logs, logWant{"http.ready.changed", zapcore.InfoLevel, map[string]any{observe.FieldOutcome: "ready"}})
	r = h.getReady(wait)
	require.Equal(t, http.StatusOK, r.status)
	assert.Len(t, logs.FilterMessage("http.ready.changed").All(), 2, "only changes are logged")
}

// hungProbe blocks until released, ignoring its context.
type hungProbe struct{ release chan struct{} }

func newHungProbe(t testing.TB) *hungProbe {
	p := &hungProbe{release: make(chan struct{})}
	t.Cleanup(func() { close(p.release) }) // the abandoned goroutine ends
	return p
}

func (p *hungProbe) Check(context.Context) error {
	<-p.release
	return nil
}

func (p *hungProbe) CheckReadiness(context.Context) (bool, map[string]any) {
	<-p.release
	return true, nil
}

// panicProbe panics on every check.
type panicProbe struct{}

func (panicProbe) CheckReadiness(context.Context) (bool, map[string]any) { panic("probe bug") }

// TestReadyHungProbe: a probe that ignores its context and never answers
// makes /ready 503 at the timeout, naming it; the route answers within the
// timeout plus a margin (the client's limit), whether the probe is one of a
// composite or the whole Config.Readiness. A panicking probe answers 503 too.
func TestReadyHungProbe(t *testing.T) {
	t.Parallel()
	const probeTimeout = 200 * time.Millisecond
	const limit = probeTimeout + 5*time.Second

	tests := []struct {
		name  string
		setup func(t testing.TB, cfg *fiberbridge.Config)
		body  string
	}{
		{
			name: "composite probe",
			setup: func(t testing.TB, cfg *fiberbridge.Config) {
				cfg.Readiness = observe.NewComposite(probeTimeout,
					observe.NamedProbe{Name: "executor", Probe: observe.ExecutorProbe(cfg.Executor.(*orchestration.Executor))},
					observe.NamedProbe{Name: "search", Probe: newHungProbe(t)},
				)
			},
			body: `{"status":"not_ready","details":{
				"executor":{"status":"ok","message":""},
				"search":{"status":"timeout","message":"no answer within 200ms"}}}`,
		},
		{
			name: "whole readiness probe",
			setup: func(t testing.TB, cfg *fiberbridge.Config) {
				cfg.Readiness = newHungProbe(t)
				cfg.ReadinessTimeout = probeTimeout
			},
			body: `{"status":"not_ready","details":{"readiness":{"status":"timeout","message":"no answer within 200ms"}}}`,
		},
		{
			name:  "panicking probe",
			setup: func(_ testing.TB, cfg *fiberbridge.Config) { cfg.Readiness = panicProbe{} },
			body:  `{"status":"not_ready","details":{"readiness":{"status":"failing","message":"probe panicked"}}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHarness(t, func(cfg *fiberbridge.Config) { tc.setup(t, cfg) })
			for range 2 { // a second check is not held up by the first's abandoned probe
				r := h.getReady(limit)
				require.Equal(t, http.StatusServiceUnavailable, r.status)
				assert.JSONEq(t, tc.body, string(r.body))
			}
			// The bridge itself still serves.
			assert.Equal(t, http.StatusOK, h.request(http.MethodGet, "/health", "", "", nil).status)
		})
	}
}

// TestReadyExecutorProbe: the executor probe fails while the executor's
// bounded queue is full and after it is closed, and passes again once a
// worker takes the queued task.
func TestReadyExecutorProbe(t *testing.T) {
	t.Parallel()
	var exec *orchestration.Executor
	h := startHarness(t, func(cfg *fiberbridge.Config) {
		st := cfg.Stores
		exec = check(orchestration.NewExecutor(orchestration.ExecutorOptions{
			Stores: st, MaxConcurrent: 1, QueueSize: 1, DrainTimeout: -1, // its handler blocks until cancelled
		}))(t)
		exec.Handle("test.block", func(ctx context.Context, _ *orchestration.TaskContext) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		t.Cleanup(func() { // after the harness has stopped the bridge
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, exec.Close(ctx))
		})
		cfg.Executor = exec
		cfg.Readiness = observe.NewComposite(time.Second, observe.NamedProbe{Name: "executor", Probe: observe.ExecutorProbe(exec)})
	})
	ready := func(status int, body string) {
		t.Helper()
		r := h.getReady(wait)
		require.Equal(t, status, r.status, string(r.body))
		assert.JSONEq(t, body, string(r.body))
	}
	ready(http.StatusOK, `{"status":"ready","details":{"executor":{"status":"ok","message":""}}}`)

	running := h.create("alice", "test.block", nil)
	h.awaitEvent("alice", running, contracts.EventStarted) // the only worker took it
	queued := h.create("alice", "test.block", nil)
	ready(http.StatusServiceUnavailable,
		`{"status":"not_ready","details":{"executor":{"status":"failing","message":"taskbridge: executor queue is full (1 tasks waiting)"}}}`)
	r := h.postJSON("/api/v1/tasks", "alice", map[string]any{"clientRequestId": "third", "taskType": "test.block"})
	checkEnvelope(t, r, http.StatusServiceUnavailable, bridgeerr.CodeTaskSubmission)

	r = h.request(http.MethodPost, "/api/v1/tasks/"+running+"/cancel", "alice", "", nil)
	require.Equal(t, http.StatusAccepted, r.status)
	h.awaitEvent("alice", queued, contracts.EventStarted) // the worker took the queued task
	ready(http.StatusOK, `{"status":"ready","details":{"executor":{"status":"ok","message":""}}}`)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, exec.Close(ctx))
	ready(http.StatusServiceUnavailable,
		`{"status":"not_ready","details":{"executor":{"status":"failing","message":"taskbridge: executor is closed"}}}`)
}

// awaitEvent long-polls until taskID has an event of type typ.
func (h *harness) awaitEvent(token, taskID string, typ contracts.EventType) {
	h.t.Helper()
	cursor := ""
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		res, r := h.poll(token, taskID, "?waitTimeoutMs=5000&afterEventId="+cursor)
		require.Equal(h.t, http.StatusOK, r.status, string(r.body))
		for _, ev := range res.Events {
			if ev.Type == typ {
				return
			}
		}
		if res.NextAfterEventID != nil {
			cursor = res.NextAfterEventID.String()
		}
	}
	h.t.Fatalf("task %s: no %s", taskID, typ)
}
