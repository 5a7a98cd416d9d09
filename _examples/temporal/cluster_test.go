package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// The end-to-end tests run the example as real processes (bridges and
// workers, built once by TestMain) against the dev server of
// scripts/with-temporal.sh and the redis-server of scripts/with-redis.sh,
// and kill them with SIGKILL.

// binary is the example built by TestMain; empty when the services are
// missing (the tests then skip, or fail under CI=true).
var binary string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Getenv("TASKBRIDGE_TEMPORAL_ADDR") != "" && os.Getenv("TASKBRIDGE_REDIS_ADDR") != "" {
		bin, remove, err := e2etest.Build("", ".", "temporal-example")
		if err != nil {
			fmt.Fprintln(os.Stderr, "building the example:", err)
			return 1
		}
		defer remove()
		binary = bin
	}
	code := m.Run()
	if code == 0 {
		// The processes are gone (each test's cleanup stops them) and
		// with them the goroutines that read their logs.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// services returns the Redis and Temporal addresses, skipping the test
// without them (failing under CI=true).
func services(t *testing.T) (redisAddr, temporalAddr string) {
	t.Helper()
	redisAddr, temporalAddr = os.Getenv("TASKBRIDGE_REDIS_ADDR"), os.Getenv("TASKBRIDGE_TEMPORAL_ADDR")
	if redisAddr == "" || temporalAddr == "" || binary == "" {
		msg := "needs TASKBRIDGE_REDIS_ADDR and TASKBRIDGE_TEMPORAL_ADDR: run through scripts/with-redis.sh scripts/with-temporal.sh (make test)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return redisAddr, temporalAddr
}

// cluster is one test's bridges and workers: they share a Redis key
// prefix and a Temporal task queue of their own.
type cluster struct {
	t               *testing.T
	redis, temporal string
	prefix, queue   string
	http            *http.Client
	mu              sync.Mutex
	procs           []*proc
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	redisAddr, temporalAddr := services(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c := &cluster{t: t, redis: redisAddr, temporal: temporalAddr, prefix: "tbtest:temporal:" + id + ":",
		queue: "tbtest-" + id, http: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(c.cleanup)
	return c
}

// cleanup stops what still runs and deletes the test's Redis keys.
func (c *cluster) cleanup() {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	c.http.CloseIdleConnections()
	rc := redis.NewClient(&redis.Options{Addr: c.redis})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := rc.Scan(ctx, 0, c.prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		_ = rc.Del(ctx, keys...).Err()
	}
}

// proc is one running example process.
type proc struct {
	*e2etest.Process
	t    *testing.T
	name string
	base string // bridges: http://addr
}

// start runs the example with args and waits for the log line whose msg
// is ready.
func (c *cluster) start(name, ready string, args ...string) *proc {
	c.t.Helper()
	args = append([]string{"-redis", c.redis, "-temporal", c.temporal, "-prefix", c.prefix, "-queue", c.queue}, args...)
	p, err := e2etest.StartProcess(exec.Command(binary, args...), ready, 60*time.Second)
	require.NoError(c.t, err, name)
	pr := &proc{Process: p, t: c.t, name: name}
	c.mu.Lock()
	c.procs = append(c.procs, pr)
	c.mu.Unlock()
	return pr
}

// bridge starts a bridge on a free port.
func (c *cluster) bridge(name string) *proc {
	c.t.Helper()
	p := c.start(name, "temporal example bridge listening", "-addr", "127.0.0.1:0", "-heartbeat", "1s")
	require.NotEmpty(c.t, p.Addr, "%s logged no address: %s", name, p.Ready)
	p.base = "http://" + p.Addr
	return p
}

// worker starts a worker.
func (c *cluster) worker(name string) *proc {
	c.t.Helper()
	return c.start(name, "temporal example worker started", "-worker")
}

// kill9 kills the process with SIGKILL and waits until it is gone.
func (p *proc) kill9() {
	p.t.Helper()
	_ = p.Signal(syscall.SIGKILL)
	select {
	case <-p.Exited:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not die", p.name)
	}
}

// kill stops the process at cleanup: SIGTERM, then SIGKILL after 10 s.
func (p *proc) kill() { p.Stop(10 * time.Second) }

// do sends a JSON request as alice and decodes the answer into out.
func (c *cluster) do(p *proc, method, path, body string, out any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer alice")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	if out != nil {
		require.NoError(c.t, json.Unmarshal(data, out), "%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}

// create creates a task through p and returns its id.
func (c *cluster) create(p *proc, taskType, input string) string {
	c.t.Helper()
	var res contracts.TaskCreated
	code := c.do(p, "POST", "/api/v1/tasks", fmt.Sprintf(`{"clientRequestId":%q,"taskType":%q,"input":%s}`,
		contracts.NewID(), taskType, input), &res)
	require.Equal(c.t, http.StatusCreated, code)
	return res.TaskID
}

// approve submits actionType for the suspension through p.
func (c *cluster) act(p *proc, taskID, suspendID, actionType string) contracts.ActionResult {
	c.t.Helper()
	var res contracts.ActionResult
	c.do(p, "POST", "/api/v1/tasks/"+taskID+"/actions", fmt.Sprintf(
		`{"suspendId":%q,"clientActionId":%q,"actionType":%q}`, suspendID, contracts.NewID(), actionType), &res)
	return res
}

// cancel asks p to cancel the task.
func (c *cluster) cancel(p *proc, taskID string) contracts.CancelResult {
	c.t.Helper()
	var res contracts.CancelResult
	code := c.do(p, "POST", "/api/v1/tasks/"+taskID+"/cancel", `{"reason":"test_cancel"}`, &res)
	require.Equal(c.t, http.StatusAccepted, code)
	return res
}

// log reads the task's whole event log through p by long-polling.
func (c *cluster) log(p *proc, taskID string) []contracts.TaskEvent {
	c.t.Helper()
	var all []contracts.TaskEvent
	after := ""
	for {
		var res contracts.PollResult
		code := c.do(p, "GET", "/api/v1/tasks/"+taskID+"/events?maxEvents=500&afterEventId="+url.QueryEscape(after), "", &res)
		require.Equal(c.t, http.StatusOK, code)
		all = append(all, res.Events...)
		if !res.HasMore || len(res.Events) == 0 {
			return all
		}
		after = res.Events[len(res.Events)-1].EventID.String()
	}
}

// sse is one SSE stream of a task.
type sse struct {
	resp *http.Response
	r    *bufio.Reader
}

// stream opens the task's SSE stream on p after lastEventID.
func (c *cluster) stream(p *proc, taskID, lastEventID string) *sse {
	c.t.Helper()
	req, err := http.NewRequest("GET", p.base+"/api/v1/tasks/"+taskID+"/events/stream", nil)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer alice")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := (&http.Client{}).Do(req) // no timeout: the stream lasts
	require.NoError(c.t, err)
	require.Equal(c.t, http.StatusOK, resp.StatusCode)
	s := &sse{resp: resp, r: bufio.NewReader(resp.Body)}
	c.t.Cleanup(s.close)
	return s
}

func (s *sse) close() { _ = s.resp.Body.Close() }

// next returns the stream's next task event, skipping heartbeats and
// comments; an error when the stream ends or breaks first.
func (s *sse) next() (contracts.TaskEvent, error) {
	var data []byte
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			return contracts.TaskEvent{}, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if data == nil {
				continue
			}
			var head struct{ Type string }
			if err := json.Unmarshal(data, &head); err != nil {
				return contracts.TaskEvent{}, err
			}
			if head.Type == string(contracts.FrameHeartbeat) {
				data = nil
				continue
			}
			var ev contracts.TaskEvent
			err := json.Unmarshal(data, &ev)
			return ev, err
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
}

// until reads events until one satisfies stop (returned last) and returns
// them; it fails the test when the stream ends first or nothing matches
// within 90 s.
func (s *sse) until(t *testing.T, stop func(contracts.TaskEvent) bool) []contracts.TaskEvent {
	t.Helper()
	var got []contracts.TaskEvent
	timer := time.AfterFunc(90*time.Second, s.close)
	defer timer.Stop()
	for {
		ev, err := s.next()
		require.NoError(t, err, "stream ended after %v", types(got))
		got = append(got, ev)
		if stop(ev) {
			return got
		}
	}
}

func isType(t contracts.EventType) func(contracts.TaskEvent) bool {
	return func(ev contracts.TaskEvent) bool { return ev.Type == t }
}

func terminal(ev contracts.TaskEvent) bool { return ev.Type.IsTerminal() }

func types(evs []contracts.TaskEvent) []contracts.EventType {
	out := make([]contracts.EventType, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func decode[T contracts.Payload](t *testing.T, ev contracts.TaskEvent) T {
	t.Helper()
	p, err := contracts.DecodePayload(&ev)
	require.NoError(t, err)
	v, ok := p.(T)
	require.True(t, ok, "payload of %s is %T", ev.Type, p)
	return v
}
