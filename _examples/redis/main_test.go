package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/conformance"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(cleanupAfter{m},
		// fasthttp's own background goroutines (worker pool cleaner, date updater).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// cleanupAfter runs the tests, then deletes the example binary the
// process tests built.
type cleanupAfter struct{ m *testing.M }

func (c cleanupAfter) Run() int {
	code := c.m.Run()
	removeBuild()
	return code
}

const wait = 15 * time.Second

// redisAddr is the test server's address (scripts/with-redis.sh, make
// test); without it the test skips.
func redisAddr(t *testing.T) string {
	t.Helper()
	return e2etest.RedisAddr(t)
}

// uniquePrefix returns a key prefix for one test and deletes its keys at
// cleanup.
func uniquePrefix(t *testing.T, addr string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "tbtest:example:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			_ = c.Del(ctx, keys...).Err()
		}
	})
	return prefix
}

// instance is one running copy of the example on 127.0.0.1:0.
type instance struct {
	t      *testing.T
	srv    *server
	base   string
	client *http.Client
	served chan error
	down   bool
}

// startInstance starts an instance whose shutdown drains for 100 ms only
// (tests leave tasks running).
func startInstance(t *testing.T, redisAddr, prefix string) *instance {
	t.Helper()
	return startInstanceDraining(t, redisAddr, prefix, 100*time.Millisecond)
}

func startInstanceDraining(t *testing.T, redisAddr, prefix string, drain time.Duration) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	opts := options{addr: ln.Addr().String(), redis: redisAddr, prefix: prefix, heartbeat: 15 * time.Second, drain: drain,
		leaseTTL: 20 * time.Second, leaseSweep: 5 * time.Second, workers: 64}
	srv, err := newServer(context.Background(), opts, zaptest.NewLogger(t))
	require.NoError(t, err)
	in := &instance{t: t, srv: srv, base: "http://" + ln.Addr().String(), client: &http.Client{Timeout: 30 * time.Second},
		served: make(chan error, 1)}
	go func() { in.served <- srv.serve(ln) }()
	t.Cleanup(in.stop)
	return in
}

// stop shuts the instance down gracefully (once).
func (in *instance) stop() {
	if in.down {
		return
	}
	in.down = true
	in.client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	assert.NoError(in.t, in.srv.shutdown(ctx))
	assert.NoError(in.t, <-in.served)
}

func (in *instance) do(method, path, token, body string) (int, []byte) {
	in.t.Helper()
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	require.NoError(in.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := in.client.Do(req)
	require.NoError(in.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(in.t, err)
	return resp.StatusCode, data
}

// create creates a task with clientRequestId request and returns the answer.
func (in *instance) create(token, request, taskType, input string) (int, contracts.TaskCreated) {
	in.t.Helper()
	status, body := in.do(http.MethodPost, "/api/v1/tasks", token,
		`{"clientRequestId":"`+request+`","taskType":"`+taskType+`","input":`+input+`}`)
	require.Contains(in.t, []int{http.StatusOK, http.StatusCreated}, status, string(body))
	conformance.CheckBody(in.t, conformance.TaskCreatedResponse, body)
	var created contracts.TaskCreated
	require.NoError(in.t, json.Unmarshal(body, &created))
	return status, created
}

// pollUntil long-polls from the start until an event of type stop and
// returns the events.
func (in *instance) pollUntil(token, taskID string, stop contracts.EventType) []contracts.TaskEvent {
	in.t.Helper()
	var all []contracts.TaskEvent
	cursor := ""
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		status, body := in.do(http.MethodGet, "/api/v1/tasks/"+taskID+"/events?waitTimeoutMs=2000&afterEventId="+cursor, token, "")
		require.Equal(in.t, http.StatusOK, status, string(body))
		conformance.CheckBody(in.t, conformance.PollEventsResponse, body)
		var res contracts.PollResult
		require.NoError(in.t, json.Unmarshal(body, &res))
		for _, ev := range res.Events {
			all = append(all, ev)
			if ev.Type == stop {
				return all
			}
		}
		if res.NextAfterEventID != nil {
			cursor = res.NextAfterEventID.String()
		}
	}
	in.t.Fatalf("no %s event on %s; got %v", stop, taskID, typesOf(all))
	return nil
}

// sse reads an SSE stream from the cursor until the server ends it and
// returns its events, each checked against the protocol.
func (in *instance) sse(token, taskID, lastEventID string) []contracts.TaskEvent {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.base+"/api/v1/tasks/"+taskID+"/events/stream", nil)
	require.NoError(in.t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(in.t, err)
	defer resp.Body.Close()
	require.Equal(in.t, http.StatusOK, resp.StatusCode)
	var out []contracts.TaskEvent
	r := bufio.NewReader(resp.Body)
	var id string
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return out
		}
		require.NoError(in.t, err)
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			id = string(line[4:])
		case bytes.HasPrefix(line, []byte("data: ")):
			f := conformance.CheckFrame(in.t, line[6:])
			if f.Event != nil {
				require.Equal(in.t, f.Event.EventID.String(), id, "id: line and eventId")
				out = append(out, *f.Event)
			}
		}
	}
}

func typesOf(evs []contracts.TaskEvent) []contracts.EventType {
	out := make([]contracts.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func payload[T any](t *testing.T, ev contracts.TaskEvent) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(ev.Payload, &v))
	return v
}

// TestTwoInstancesShareTasks runs two instances on one Redis: a task
// created on A streams from B, a handler suspended on B resumes after an
// action accepted on A, a cancel sent to B stops a task running on A, a
// repeated create on the other instance is deduplicated, and both are
// ready.
func TestTwoInstancesShareTasks(t *testing.T) {
	addr := redisAddr(t)
	prefix := uniquePrefix(t, addr)
	a := startInstance(t, addr, prefix)
	b := startInstance(t, addr, prefix)

	t.Run("create on A, stream from B", func(t *testing.T) {
		_, created := a.create("alice", "p1", demo.TypeProgress, `{"steps":5,"delayMs":20}`)
		evs := b.sse("alice", created.TaskID, "")
		assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventProgress, contracts.EventProgress,
			contracts.EventProgress, contracts.EventProgress, contracts.EventProgress, contracts.EventCompleted}, typesOf(evs))
		// The same events from A by long-poll, and a resume on A from B's
		// third event yields exactly the rest.
		assert.Equal(t, evs, a.pollUntil("alice", created.TaskID, contracts.EventCompleted))
		assert.Equal(t, evs[3:], a.sse("alice", created.TaskID, evs[2].EventID.String()))
	})

	t.Run("repeated create on the other instance is deduplicated", func(t *testing.T) {
		status, first := a.create("alice", "dup", demo.TypeProgress, `{"steps":1,"delayMs":0}`)
		require.Equal(t, http.StatusCreated, status)
		status, again := b.create("alice", "dup", demo.TypeProgress, `{"steps":1,"delayMs":0}`)
		assert.Equal(t, http.StatusOK, status)
		assert.True(t, again.Deduplicated)
		assert.Equal(t, first.TaskID, again.TaskID)
		// Another owner's task is not found on either instance.
		status, body := b.do(http.MethodGet, "/api/v1/tasks/"+first.TaskID+"/events", "mallory", "")
		assert.Equal(t, http.StatusNotFound, status, string(body))
		assert.Contains(t, string(body), string(bridgeerr.CodeTaskNotFound))
	})

	t.Run("suspended on B, approved on A", func(t *testing.T) {
		_, created := b.create("alice", "ap1", demo.TypeApproval, `{}`)
		evs := a.pollUntil("alice", created.TaskID, contracts.EventSuspended)
		susp := payload[contracts.SuspendedPayload](t, evs[len(evs)-1])
		status, body := a.do(http.MethodPost, "/api/v1/tasks/"+created.TaskID+"/actions", "alice",
			`{"suspendId":"`+susp.SuspendID+`","clientActionId":"c1","actionType":"approve"}`)
		require.Equal(t, http.StatusAccepted, status, string(body))
		conformance.CheckBody(t, conformance.ActionResponse, body)
		evs = b.pollUntil("alice", created.TaskID, contracts.EventCompleted)
		assert.Equal(t, []contracts.EventType{contracts.EventStarted, contracts.EventSuspended,
			contracts.EventActionAccepted, contracts.EventCompleted}, typesOf(evs))
		assert.JSONEq(t, `{"decision":"approve"}`, string(payload[contracts.CompletedPayload](t, evs[3]).Result))
	})

	t.Run("running on A, cancelled through B", func(t *testing.T) {
		_, created := a.create("alice", "s1", demo.TypeSleep, `{"delayMs":20}`)
		b.pollUntil("alice", created.TaskID, contracts.EventProgress)
		status, body := b.do(http.MethodPost, "/api/v1/tasks/"+created.TaskID+"/cancel", "alice", `{"reason":"enough"}`)
		require.Equal(t, http.StatusAccepted, status, string(body))
		evs := a.pollUntil("alice", created.TaskID, contracts.EventCancelled)
		assert.Equal(t, "enough", payload[contracts.CancelledPayload](t, evs[len(evs)-1]).Reason)
	})

	t.Run("ready", func(t *testing.T) {
		for _, in := range []*instance{a, b} {
			status, body := in.do(http.MethodGet, "/ready", "", "")
			assert.Equal(t, http.StatusOK, status, string(body))
			assert.JSONEq(t, `{"status":"ready","details":{"redis":{"status":"ok","message":""}}}`, string(body))
		}
	})
}

// TestShutdownDrainsRunningTasks: an instance that shuts down lets the
// tasks it runs finish within -drain; a client following the task on
// another instance sees it complete.
func TestShutdownDrainsRunningTasks(t *testing.T) {
	addr := redisAddr(t)
	prefix := uniquePrefix(t, addr)
	a := startInstanceDraining(t, addr, prefix, 10*time.Second)
	b := startInstance(t, addr, prefix)

	_, created := a.create("alice", "d1", demo.TypeProgress, `{"steps":5,"delayMs":200}`)
	b.pollUntil("alice", created.TaskID, contracts.EventProgress)
	a.stop() // returns once the task has ended
	evs := b.pollUntil("alice", created.TaskID, contracts.EventCompleted)
	assert.Equal(t, 5, countOf(evs, contracts.EventProgress), "every step ran during the drain")
}

// countOf counts the events of type t.
func countOf(evs []contracts.TaskEvent, t contracts.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == t {
			n++
		}
	}
	return n
}

// TestShutdownEndsLocalTasksRetryably: an instance that shuts down ends
// the tasks its executor still runs once its drain is over with the
// retryable EXECUTOR_SHUTDOWN, so a client streaming the task from another
// instance sees it end.
func TestShutdownEndsLocalTasksRetryably(t *testing.T) {
	addr := redisAddr(t)
	prefix := uniquePrefix(t, addr)
	a := startInstance(t, addr, prefix)
	b := startInstance(t, addr, prefix)

	_, created := a.create("alice", "s1", demo.TypeSleep, `{"delayMs":20}`)
	b.pollUntil("alice", created.TaskID, contracts.EventProgress)
	a.stop()
	evs := b.pollUntil("alice", created.TaskID, contracts.EventFailed)
	failed := payload[contracts.FailedPayload](t, evs[len(evs)-1])
	assert.Equal(t, orchestration.CodeExecutorShutdown, failed.Code)
	assert.True(t, failed.Retryable)
}

// TestBootNeedsRedis: an instance whose Redis does not answer fails at
// start with an error naming the address, instead of serving 500s.
func TestBootNeedsRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	_, err = newServer(context.Background(), options{addr: "127.0.0.1:0", redis: closed, prefix: "x:", heartbeat: time.Second},
		zaptest.NewLogger(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), closed)
}

func TestParseOptions(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want options
		err  bool
	}{
		{name: "defaults", want: options{addr: "127.0.0.1:8081", redis: "127.0.0.1:6379", prefix: "taskbridge:", heartbeat: 15 * time.Second, drain: 10 * time.Second, leaseTTL: 20 * time.Second, leaseSweep: 5 * time.Second, workers: 64}},
		{name: "flags", args: []string{"-addr", ":9000", "-redis", "10.0.0.1:6380", "-prefix", "app:", "-heartbeat", "5s"},
			want: options{addr: ":9000", redis: "10.0.0.1:6380", prefix: "app:", heartbeat: 5 * time.Second, drain: 10 * time.Second, leaseTTL: 20 * time.Second, leaseSweep: 5 * time.Second, workers: 64}},
		{name: "environment", env: map[string]string{"TASKBRIDGE_ADDR": ":1", "TASKBRIDGE_REDIS": "redis://:pw@h:1/2",
			"TASKBRIDGE_REDIS_PREFIX": "p:", "TASKBRIDGE_HEARTBEAT": "1s"},
			want: options{addr: ":1", redis: "redis://:pw@h:1/2", prefix: "p:", heartbeat: time.Second, drain: 10 * time.Second, leaseTTL: 20 * time.Second, leaseSweep: 5 * time.Second, workers: 64}},
		{name: "flags win", args: []string{"-addr", ":2"}, env: map[string]string{"TASKBRIDGE_ADDR": ":1"},
			want: options{addr: ":2", redis: "127.0.0.1:6379", prefix: "taskbridge:", heartbeat: 15 * time.Second, drain: 10 * time.Second, leaseTTL: 20 * time.Second, leaseSweep: 5 * time.Second, workers: 64}},
		{name: "drain", args: []string{"-drain", "30s"}, env: map[string]string{"TASKBRIDGE_DRAIN": "1s"},
			want: options{addr: "127.0.0.1:8081", redis: "127.0.0.1:6379", prefix: "taskbridge:", heartbeat: 15 * time.Second, drain: 30 * time.Second, leaseTTL: 20 * time.Second, leaseSweep: 5 * time.Second, workers: 64}},
		{name: "drain env", env: map[string]string{"TASKBRIDGE_DRAIN": "0s"},
			want: options{addr: "127.0.0.1:8081", redis: "127.0.0.1:6379", prefix: "taskbridge:", heartbeat: 15 * time.Second, leaseTTL: 20 * time.Second, leaseSweep: 5 * time.Second, workers: 64}},
		{name: "bad drain", args: []string{"-drain", "-1s"}, err: true},
		{name: "leases and workers", args: []string{"-lease-ttl", "2s", "-lease-sweep", "500ms", "-workers", "2"},
			want: options{addr: "127.0.0.1:8081", redis: "127.0.0.1:6379", prefix: "taskbridge:", heartbeat: 15 * time.Second,
				drain: 10 * time.Second, leaseTTL: 2 * time.Second, leaseSweep: 500 * time.Millisecond, workers: 2}},
		{name: "bad lease ttl", args: []string{"-lease-ttl", "0s"}, err: true},
		{name: "bad workers", args: []string{"-workers", "0"}, err: true},
		{name: "bad heartbeat", args: []string{"-heartbeat", "0s"}, err: true},
		{name: "bad heartbeat env", env: map[string]string{"TASKBRIDGE_HEARTBEAT": "soon"}, err: true},
		{name: "bad redis address", args: []string{"-redis", "nohostport"}, err: true},
		{name: "bad redis url", args: []string{"-redis", "http://x"}, err: true},
		{name: "brace in prefix", args: []string{"-prefix", "a{b}"}, err: true},
		{name: "stray argument", args: []string{"extra"}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := parseOptions(tc.args, env(tc.env), &stderr)
			if tc.err {
				require.Error(t, err)
				assert.NotEmpty(t, stderr.String())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestRelaySweepCancelsMissedRequests: a cancel request whose notice an
// instance missed (its subscription was down) is applied by a sweep, which
// the relay runs after every (re)subscription (redisstore's tests cover the
// reconnect itself).
func TestRelaySweepCancelsMissedRequests(t *testing.T) {
	addr := redisAddr(t)
	a := startInstance(t, addr, uniquePrefix(t, addr))
	_, created := a.create("alice", "s1", demo.TypeSleep, `{"delayMs":20}`)
	a.pollUntil("alice", created.TaskID, contracts.EventProgress)

	ctx := context.Background()
	// Recorded in the registry, but never published: as if the notice had
	// been sent while the relay was reconnecting.
	_, err := a.srv.stores.Tasks.RequestCancellation(ctx, created.TaskID, "missed")
	require.NoError(t, err)
	require.NoError(t, a.srv.relay.Sweep(ctx))
	evs := a.pollUntil("alice", created.TaskID, contracts.EventCancelled)
	assert.Equal(t, "missed", payload[contracts.CancelledPayload](t, evs[len(evs)-1]).Reason)
}
