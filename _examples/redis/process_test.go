package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/_examples/internal/demo"
	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// The tests of this file prove the guarantees of several instances with
// real processes: the example is built once and run as child processes on
// a redis-server of each test's own (e2etest.StartRedis), which the test
// pauses (SIGSTOP) or whose instances it kills (SIGKILL) or stops
// (SIGTERM). Clients follow tasks over SSE, WebSocket and long-polling,
// reconnecting with their cursor like real ones.

// build is the example binary, built once for the test binary.
var build struct {
	once   sync.Once
	path   string
	remove func()
	err    error
}

// exampleBinary builds the example (go build) once and returns its path.
func exampleBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.path, build.remove, build.err = e2etest.Build("", ".", "redis-example")
	})
	require.NoError(t, build.err)
	return build.path
}

// removeBuild deletes the built binary (TestMain, after the tests).
func removeBuild() {
	if build.remove != nil {
		build.remove()
	}
}

// proc is one instance of the example running as a child process.
type proc struct {
	*e2etest.Process
	t    *testing.T
	name string
	addr string
}

// startProc runs the example with args (and -addr 127.0.0.1:0), waits
// until it listens, and stops it (SIGKILL) at cleanup when the test has
// not; a failed test's log shows the last 60 lines it logged.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(exampleBinary(t), append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	p, err := e2etest.StartProcess(cmd, "redis example listening", 30*time.Second)
	require.NoError(t, err, name)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, p.Tail(60))
		}
	})
	return &proc{Process: p, t: t, name: name, addr: p.Addr}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.Signal(sig))
}

// kill ends the process at once (kill -9) and waits for it.
func (p *proc) kill() { p.Kill() }

// logged reports whether the process logged a line with message msg.
func (p *proc) logged(msg string) bool {
	return strings.Contains(p.Logs(), `"msg":"`+msg+`"`)
}

// waitExit waits for the process to exit on its own and returns its
// error (nil for exit code 0).
func (p *proc) waitExit(within time.Duration) error {
	p.t.Helper()
	select {
	case <-p.Exited:
		return p.Err
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %v", p.name, within)
		return nil
	}
}

// apiClient is the tests' HTTP client (requests, long-polls).
var apiClient = &http.Client{Timeout: 20 * time.Second}

const (
	owner     = "alice" // demo.Auth: the bearer token is the user name
	tasksPath = "/api/v1/tasks"
)

// createTask creates a task of taskType with input for user on p and
// returns its id.
func createTask(t *testing.T, p *proc, user, taskType, input string) string {
	t.Helper()
	body := `{"clientRequestId":"` + contracts.NewID() + `","taskType":"` + taskType + `","input":` + input + `}`
	req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+tasksPath, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+user)
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(raw))
	var created contracts.TaskCreated
	require.NoError(t, json.Unmarshal(raw, &created))
	return created.TaskID
}

// poll makes one long-poll of user's taskID on addr after cursor.
func poll(ctx context.Context, addr, user, taskID, cursor string, wait time.Duration) (contracts.PollResult, int, error) {
	url := fmt.Sprintf("http://%s%s/%s/events?maxEvents=500&waitTimeoutMs=%d&afterEventId=%s",
		addr, tasksPath, taskID, wait.Milliseconds(), cursor)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return contracts.PollResult{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+user)
	resp, err := apiClient.Do(req)
	if err != nil {
		return contracts.PollResult{}, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return contracts.PollResult{}, resp.StatusCode, err
	}
	var res contracts.PollResult
	return res, resp.StatusCode, json.Unmarshal(raw, &res)
}

// follower follows one task on one instance over one transport until the
// task's terminal event, reconnecting with its cursor (backoff 50 to 500
// ms) after any end before it, as a real client does.
type follower struct {
	transport string
	user      string
	done      chan struct{}

	mu     sync.Mutex
	events []contracts.TaskEvent
	ends   []string // how each connection ended, for diagnostics
	endAt  time.Time
}

// Transports of a follower.
const (
	viaSSE  = "sse"
	viaWS   = "ws"
	viaPoll = "poll"
)

func follow(t *testing.T, ctx context.Context, transport, addr, taskID string) *follower {
	return followAs(t, ctx, owner, transport, addr, taskID)
}

// followAs is follow for a task of user.
func followAs(t *testing.T, ctx context.Context, user, transport, addr, taskID string) *follower {
	f := &follower{transport: transport, user: user, done: make(chan struct{})}
	go func() { // owned by the test: ends at the terminal event or with ctx
		defer close(f.done)
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			var end string
			switch transport {
			case viaSSE:
				end = f.sse(addr, taskID)
			case viaWS:
				end = f.ws(addr, taskID)
			default:
				end = f.poll(ctx, addr, taskID)
			}
			f.mu.Lock()
			f.ends = append(f.ends, end)
			finished := f.terminalLocked()
			if finished {
				f.endAt = time.Now()
			}
			f.mu.Unlock()
			if finished {
				return
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}()
	t.Cleanup(func() { <-f.done })
	return f
}

func (f *follower) terminalLocked() bool {
	n := len(f.events)
	return n > 0 && f.events[n-1].Type.IsTerminal()
}

func (f *follower) cursor() *string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		return nil
	}
	c := f.events[len(f.events)-1].EventID.String()
	return &c
}

func (f *follower) add(ev contracts.TaskEvent) {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
}

// count returns how many events the follower has received.
func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events)
}

func (f *follower) snapshot() ([]contracts.TaskEvent, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]contracts.TaskEvent(nil), f.events...), append([]string(nil), f.ends...)
}

func (f *follower) sse(addr, taskID string) string {
	header := http.Header{"Authorization": {"Bearer " + f.user}}
	if c := f.cursor(); c != nil {
		header.Set("Last-Event-ID", *c)
	}
	s, resp, err := e2etest.OpenSSE(nil, addr, tasksPath+"/"+taskID+"/events/stream", header, 10*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	if s == nil {
		return "status " + strconv.Itoa(resp.Status)
	}
	defer s.Close()
	for {
		ev, err := s.NextEvent(30 * time.Second)
		if err != nil {
			return "read: " + err.Error()
		}
		f.add(ev)
		if ev.Type.IsTerminal() {
			return "terminal"
		}
	}
}

func (f *follower) ws(addr, taskID string) string {
	c, resp, err := e2etest.DialWS(nil, "ws://"+addr+tasksPath+"/ws", http.Header{"Authorization": {"Bearer " + f.user}},
		10*time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	if c == nil {
		return "status " + strconv.Itoa(resp.Status)
	}
	defer c.Close()
	if err := c.Subscribe(taskID, f.cursor()); err != nil {
		return "subscribe: " + err.Error()
	}
	if _, err := c.Confirm(30 * time.Second); err != nil {
		return "confirm: " + err.Error()
	}
	for {
		r, err := c.Read(30 * time.Second)
		switch {
		case err != nil:
			return "read: " + err.Error()
		case r.Closed:
			return fmt.Sprintf("close %d %s", r.CloseCode, r.CloseText)
		case r.Frame.Event != nil:
			f.add(*r.Frame.Event)
			if r.Frame.Event.Type.IsTerminal() {
				return "terminal"
			}
		}
	}
}

func (f *follower) poll(ctx context.Context, addr, taskID string) string {
	cursor := ""
	if c := f.cursor(); c != nil {
		cursor = *c
	}
	for {
		res, status, err := poll(ctx, addr, f.user, taskID, cursor, 5*time.Second)
		if err != nil || status != http.StatusOK {
			return fmt.Sprintf("poll: status %d %v", status, err)
		}
		for _, ev := range res.Events {
			f.add(ev)
			if ev.Type.IsTerminal() {
				return "terminal"
			}
		}
		if res.NextAfterEventID != nil {
			cursor = res.NextAfterEventID.String()
		}
	}
}

// await waits until every follower has seen the terminal event.
func await(t *testing.T, ctx context.Context, fs ...*follower) {
	t.Helper()
	for _, f := range fs {
		select {
		case <-f.done:
		case <-ctx.Done():
		}
		evs, ends := f.snapshot()
		n := len(evs)
		require.True(t, n > 0 && evs[n-1].Type.IsTerminal(), "%s: no terminal event; %d events, connections ended %q",
			f.transport, n, ends)
	}
}

// storedLog reads the task's whole log through addr.
func storedLog(t *testing.T, addr, taskID string) []contracts.TaskEvent {
	return storedLogOf(t, addr, owner, taskID)
}

// storedLogOf is storedLog for a task of user.
func storedLogOf(t *testing.T, addr, user, taskID string) []contracts.TaskEvent {
	t.Helper()
	var all []contracts.TaskEvent
	cursor := ""
	for {
		res, status, err := poll(context.Background(), addr, user, taskID, cursor, 0)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		all = append(all, res.Events...)
		if !res.HasMore {
			return all
		}
		cursor = res.NextAfterEventID.String()
	}
}

// requireExactlyOnce checks a demo.progress task's log: TASK_STARTED, the
// progress steps 1..k of steps each once and in order, one terminal event
// and nothing after it (all steps when it completed); and that every
// follower received exactly the log, in order.
func requireExactlyOnce(t *testing.T, log []contracts.TaskEvent, steps int, fs ...*follower) {
	t.Helper()
	require.NotEmpty(t, log)
	assert.Equal(t, contracts.EventStarted, log[0].Type)
	terminal := log[len(log)-1]
	require.True(t, terminal.Type.IsTerminal(), "the log ends with its terminal event")
	step := 0
	for _, ev := range log[1 : len(log)-1] {
		require.Equal(t, contracts.EventProgress, ev.Type, "only progress between start and end")
		var p contracts.ProgressPayload
		require.NoError(t, json.Unmarshal(ev.Payload, &p))
		step++
		require.Equal(t, fmt.Sprintf("step %d of %d", step, steps), p.Message, "each step stored once, in order")
	}
	if terminal.Type == contracts.EventCompleted {
		assert.Equal(t, steps, step, "a completed task stored every step")
	}
	ids := make([]string, len(log))
	for i, ev := range log {
		ids[i] = ev.EventID.String()
	}
	for _, f := range fs {
		evs, ends := f.snapshot()
		got := make([]string, len(evs))
		for i, ev := range evs {
			got[i] = ev.EventID.String()
		}
		assert.Equal(t, ids, got, "%s received every event exactly once, in order (connections ended %q)", f.transport, ends)
	}
}

// registryStatus reads a task's status from Redis ("error: ..." when it
// cannot). It may run in Eventually's goroutine: it does not fail the test.
func registryStatus(c *redis.Client, taskID string) contracts.TaskStatus {
	s, err := c.HGet(context.Background(), "proc:{"+taskID+"}:task", "status").Result()
	if err != nil {
		return contracts.TaskStatus("error: " + err.Error())
	}
	return contracts.TaskStatus(s)
}

// assertStatus checks that the registry follows the task's terminal event
// to want: the status is updated right after the event is appended.
func assertStatus(t *testing.T, c *redis.Client, taskID string, want contracts.TaskStatus) {
	t.Helper()
	assert.Eventually(t, func() bool { return registryStatus(c, taskID) == want },
		10*time.Second, 10*time.Millisecond, "task %s: registry status %s, want %s", taskID,
		registryStatus(c, taskID), want)
}

// failedPayload decodes a TASK_FAILED event.
func failedPayload(t *testing.T, ev contracts.TaskEvent) contracts.FailedPayload {
	t.Helper()
	require.Equal(t, contracts.EventFailed, ev.Type)
	var p contracts.FailedPayload
	require.NoError(t, json.Unmarshal(ev.Payload, &p))
	return p
}

// instanceArgs are the flags of the test instances on redisAddr.
func instanceArgs(redisAddr string, extra ...string) []string {
	return append([]string{"-redis", redisAddr, "-prefix", "proc:", "-heartbeat", "1s"}, extra...)
}

// TestProcessRedisPaused pauses the instances' redis-server (SIGSTOP) for
// 1, 3, 6 and 12 s while a 100-event task runs on instance A and clients
// follow it on instance B over SSE, WebSocket and long-polling at once.
// Within the emit retry budget (15 s) the task completes: its log holds
// every step exactly once, every client receives exactly the log in order,
// and the registry is not left RUNNING.
func TestProcessRedisPaused(t *testing.T) {
	t.Parallel()
	exampleBinary(t) // before the subtests start their instances
	for _, pause := range []time.Duration{time.Second, 3 * time.Second, 6 * time.Second, 12 * time.Second} {
		t.Run(pause.String(), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			srv := e2etest.StartRedis(t)
			a := startProc(t, "A", instanceArgs(srv.Addr())...)
			b := startProc(t, "B", instanceArgs(srv.Addr())...)
			const steps = 100
			taskID := createTask(t, a, owner, demo.TypeProgress, fmt.Sprintf(`{"steps":%d,"delayMs":50}`, steps))
			fs := []*follower{
				follow(t, ctx, viaSSE, b.addr, taskID), follow(t, ctx, viaWS, b.addr, taskID), follow(t, ctx, viaPoll, b.addr, taskID),
			}
			require.Eventually(t, func() bool {
				for _, f := range fs {
					if f.count() < 15 {
						return false
					}
				}
				return true
			}, time.Minute, 10*time.Millisecond, "the clients did not get going")

			srv.Pause()
			time.Sleep(pause) // the outage itself
			srv.Resume()

			await(t, ctx, fs...)
			log := storedLog(t, b.addr, taskID)
			requireExactlyOnce(t, log, steps, fs...)
			assert.Equal(t, contracts.EventCompleted, log[len(log)-1].Type,
				"a pause within the retry budget loses nothing: %s", log[len(log)-1].Payload)
			rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			defer rc.Close()
			assertStatus(t, rc, taskID, contracts.StatusCompleted)
			if pause > 8*time.Second {
				// Longer than go-redis's own four attempts of 2 s: the
				// emitter's retries carried the appends through.
				assert.True(t, a.logged("task.emit.retrying"), "the pause made A's appends fail and retry")
			}
		})
	}
}

// Lease settings of the kill test: a short TTL keeps the test short.
const (
	killLeaseTTL   = 2 * time.Second
	killLeaseSweep = 250 * time.Millisecond
)

// TestProcessInstanceKilled kills (SIGKILL) the instance that runs four
// tasks: one running, one suspended for approval, one of a type safe to
// run again (demo.repeatable) and one still queued (the instance runs
// three at once). Clients on the other instance see the running and the
// suspended task end TASK_FAILED EXECUTOR_LOST, retryable, within the
// lease TTL plus the sweep interval (plus slack for a loaded machine);
// the repeatable one runs again there (announced by a TASK_MESSAGE) and
// completes; the queued one never started, so it runs there too.
func TestProcessInstanceKilled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := e2etest.StartRedis(t)
	args := instanceArgs(srv.Addr(), "-lease-ttl", killLeaseTTL.String(), "-lease-sweep", killLeaseSweep.String())
	a := startProc(t, "A", append(args, "-workers", "3")...)
	b := startProc(t, "B", args...)

	running := createTask(t, a, owner, demo.TypeProgress, `{"steps":1000,"delayMs":50}`)
	suspended := createTask(t, a, owner, demo.TypeApproval, `{}`)
	repeatable := createTask(t, a, owner, demo.TypeRepeatable, `{"steps":40,"delayMs":50}`)
	queued := createTask(t, a, owner, demo.TypeProgress, `{"steps":3,"delayMs":10}`)
	onRunning := follow(t, ctx, viaSSE, b.addr, running)
	onSuspended := follow(t, ctx, viaWS, b.addr, suspended)
	onRepeatable := follow(t, ctx, viaSSE, b.addr, repeatable)
	onQueued := follow(t, ctx, viaPoll, b.addr, queued)
	require.Eventually(t, func() bool {
		evs, _ := onSuspended.snapshot()
		return onRunning.count() >= 3 && onRepeatable.count() >= 3 && len(evs) >= 2 &&
			evs[len(evs)-1].Type == contracts.EventSuspended
	}, time.Minute, 10*time.Millisecond, "the running, repeatable and suspended tasks did not get going")
	assert.Zero(t, onQueued.count(), "the third task waits in A's queue")

	killed := time.Now()
	a.kill()
	await(t, ctx, onRunning, onSuspended, onRepeatable, onQueued)
	bound := killLeaseTTL + killLeaseSweep
	for name, f := range map[string]*follower{"running": onRunning, "suspended": onSuspended} {
		evs, _ := f.snapshot()
		p := failedPayload(t, evs[len(evs)-1])
		assert.Equal(t, orchestration.CodeExecutorLost, p.Code, name)
		assert.True(t, p.Retryable, name)
		assert.Contains(t, p.Message, "may be submitted again", name)
		took := f.endAt.Sub(killed)
		t.Logf("%s task ended EXECUTOR_LOST %v after kill -9 (lease TTL + sweep = %v)", name, took.Round(time.Millisecond), bound)
		assert.Less(t, took, bound+5*time.Second, "%s: ended within the lease TTL plus the sweep (and slack)", name)
	}
	evs, _ := onQueued.snapshot()
	assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type, "the queued task ran on B")
	evs, _ = onRepeatable.snapshot()
	assert.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type, "the repeatable task ran again on B")
	announced := 0
	for _, ev := range evs {
		if ev.Type == contracts.EventMessage {
			var p contracts.MessagePayload
			require.NoError(t, json.Unmarshal(ev.Payload, &p))
			assert.Equal(t, "attempt 2 of 3: the instance running the task stopped; running the task again", p.Message)
			announced++
		}
	}
	assert.Equal(t, 1, announced, "the second attempt was announced once")
	assert.Equal(t, storedLog(t, b.addr, repeatable), evs, "the client received the log of both attempts exactly once")
	requireExactlyOnce(t, storedLog(t, b.addr, queued), 3, onQueued)
	requireExactlyOnce(t, storedLog(t, b.addr, running), 1000, onRunning)

	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	assertStatus(t, rc, running, contracts.StatusFailed)
	assertStatus(t, rc, suspended, contracts.StatusFailed)
	assertStatus(t, rc, queued, contracts.StatusCompleted)
}

// TestProcessRollingRestart stops (SIGTERM) an instance that runs 50
// tasks of 3 s each with a 10 s drain: every task completes (their clients
// follow them through the other instance), and the instance exits cleanly
// once they have.
func TestProcessRollingRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := e2etest.StartRedis(t)
	a := startProc(t, "A", instanceArgs(srv.Addr(), "-drain", "10s")...)
	b := startProc(t, "B", instanceArgs(srv.Addr())...)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()

	const tasks, steps = 50, 30 // 30 steps 100 ms apart: 3 s each
	ids := make([]string, tasks)
	user := func(i int) string { return fmt.Sprint("user-", i%5) } // 10 each, within the per-user quota
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = createTask(t, a, user(i), demo.TypeProgress, fmt.Sprintf(`{"steps":%d,"delayMs":100}`, steps))
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if registryStatus(rc, id) != contracts.StatusRunning {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "the 50 tasks are running")

	a.signal(syscall.SIGTERM)
	fs := make([]*follower, tasks)
	for i, id := range ids {
		fs[i] = followAs(t, ctx, user(i), viaPoll, b.addr, id)
	}
	require.NoError(t, a.waitExit(20*time.Second), "A exits cleanly after the drain")
	await(t, ctx, fs...)
	for i, id := range ids {
		evs, _ := fs[i].snapshot()
		require.Equal(t, contracts.EventCompleted, evs[len(evs)-1].Type, "task %d: %s", i, evs[len(evs)-1].Payload)
		requireExactlyOnce(t, storedLogOf(t, b.addr, user(i), id), steps, fs[i])
		assertStatus(t, rc, id, contracts.StatusCompleted)
	}
	var exitErr *exec.ExitError
	assert.False(t, errors.As(a.Err, &exitErr), "exit code 0")
}
