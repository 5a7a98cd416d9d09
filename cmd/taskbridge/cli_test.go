package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// The tests run the CLI as a person would: the built binary, against the
// built quickstart example (one process for the package), with plain
// output through pipes and, in tmux_test.go, in a real terminal.

var (
	cliBin  string // the built taskbridge command
	baseURL string // the quickstart's base URL
)

const wait = 20 * time.Second

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// testMain builds the CLI and the quickstart with the go command (go test
// puts its own first on PATH), starts the quickstart and runs the tests.
func testMain(m *testing.M) int {
	bin, remove, err := e2etest.Build("../..", "./cmd/taskbridge", "taskbridge")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer remove()
	cliBin = bin
	qs, removeQS, err := e2etest.Build("../..", "./_examples/quickstart", "quickstart")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer removeQS()
	// The kernel picks the port; the quickstart logs the address it bound.
	server, err := e2etest.StartProcess(exec.Command(qs, "-addr", "127.0.0.1:0", "-heartbeat", "1s"), "quickstart listening", 30*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer server.Stop(10 * time.Second)
	baseURL = "http://" + server.Addr
	return m.Run()
}

// result is a finished CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the binary with args and the environment extra (plus the
// quickstart's URL and the token alice unless extra sets them).
func cli(t *testing.T, extra map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin, args...)
	cmd.Env = cliEnv(extra)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("taskbridge %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func cliEnv(extra map[string]string) []string {
	env := map[string]string{"TASKBRIDGE_URL": baseURL, "TASKBRIDGE_TOKEN": "alice", "PATH": os.Getenv("PATH")}
	for k, v := range extra {
		env[k] = v
	}
	var out []string
	for k, v := range env {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// createTask creates a task with the CLI and returns its id.
func createTask(t *testing.T, taskType, input string) string {
	t.Helper()
	r := cli(t, nil, "create", "-type", taskType, "-input", input)
	require.Equal(t, 0, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)
	require.Regexp(t, `^[0-9a-f]{32}$`, id)
	return id
}

func TestWatchPlainLinesAndExitCodes(t *testing.T) {
	t.Parallel()
	t.Run("completed", func(t *testing.T) {
		t.Parallel()
		id := createTask(t, "demo.progress", `{"steps":4,"delayMs":20}`)
		r := cli(t, nil, "watch", id)
		require.Equal(t, exitCompleted, r.code, r.stderr)
		assert.Equal(t, "TASK_STARTED\n"+
			"TASK_PROGRESS 25% working: step 1 of 4\n"+
			"TASK_PROGRESS 50% working: step 2 of 4\n"+
			"TASK_PROGRESS 75% working: step 3 of 4\n"+
			"TASK_PROGRESS 100% working: step 4 of 4\n"+
			"TASK_COMPLETED {\"steps\":4}\n", r.stdout)
		assert.Contains(t, r.stderr, "watching "+id+" over ws")
	})
	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		r := cli(t, nil, "create", "-type", "demo.fail", "-watch")
		assert.Equal(t, exitFailed, r.code, r.stderr)
		assert.Contains(t, r.stdout, "TASK_FAILED DEMO_FAILURE: the demo task failed on purpose\n")
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		id := createTask(t, "demo.sleep", `{"delayMs":50}`)
		c := cli(t, nil, "cancel", id, "-reason", "enough")
		require.Equal(t, 0, c.code, c.stderr)
		assert.Equal(t, "CANCELLATION_REQUESTED\n", c.stdout)
		r := cli(t, nil, "watch", id)
		assert.Equal(t, exitCancelled, r.code, r.stderr)
		assert.Regexp(t, `TASK_CANCELLED enough`, r.stdout)
	})
	t.Run("over every transport", func(t *testing.T) {
		t.Parallel()
		id := createTask(t, "demo.progress", `{"steps":2,"delayMs":10}`)
		for _, tr := range []string{"ws", "sse", "poll"} {
			r := cli(t, map[string]string{"TASKBRIDGE_TRANSPORTS": tr}, "watch", id)
			require.Equal(t, exitCompleted, r.code, r.stderr)
			assert.Contains(t, r.stderr, "over "+tr)
			assert.Equal(t, 4, strings.Count(r.stdout, "\n"), r.stdout)
		}
	})
	t.Run("resume after a cursor", func(t *testing.T) {
		t.Parallel()
		id := createTask(t, "demo.progress", `{"steps":1,"delayMs":10}`)
		first := cli(t, nil, "watch", id)
		require.Equal(t, exitCompleted, first.code)
		r := cli(t, nil, "watch", id, "-from", "99999999999999-0")
		assert.Equal(t, exitCompleted, r.code, r.stderr)
		assert.Empty(t, r.stdout)
		assert.Contains(t, r.stderr, "ended at or before the cursor")
	})
}

func TestApproveAndReject(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"approve", "reject"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			id := createTask(t, "demo.approval", `{}`)
			require.Eventually(t, func() bool {
				r := cli(t, nil, action, id)
				return r.code == 0 && r.stdout == "ACCEPTED\n"
			}, wait, 50*time.Millisecond, "the suspension opens and the action is accepted")
			r := cli(t, nil, "watch", id)
			assert.Equal(t, exitCompleted, r.code, r.stderr)
			assert.Contains(t, r.stdout, "TASK_ACTION_ACCEPTED "+action+"\n")
			assert.Contains(t, r.stdout, `TASK_COMPLETED {"decision":"`+action+`"}`)
			again := cli(t, nil, action, id)
			assert.Equal(t, exitError, again.code)
			assert.Contains(t, again.stderr, "no open suspension")
		})
	}
}

func TestErrorsAndUsage(t *testing.T) {
	t.Parallel()
	id := createTask(t, "demo.progress", `{"steps":1}`)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		code  int
		input string
	}{
		{"no token", map[string]string{"TASKBRIDGE_TOKEN": ""}, []string{"watch", id}, exitError, "401 AUTHENTICATION_ERROR"},
		{"another user's task", map[string]string{"TASKBRIDGE_TOKEN": "bob"}, []string{"watch", id}, exitError, "404 TASK_NOT_FOUND"},
		{"token flag wins", map[string]string{"TASKBRIDGE_TOKEN": "alice"}, []string{"watch", id, "-token", "bob"}, exitError, "404 TASK_NOT_FOUND"},
		{"url flag wins", map[string]string{"TASKBRIDGE_URL": "http://127.0.0.1:1"}, []string{"cancel", id, "-url", baseURL}, exitCompleted, ""},
		{"server down", map[string]string{"TASKBRIDGE_URL": "http://127.0.0.1:1"}, []string{"cancel", id}, exitError, "connection refused"},
		{"unknown command", nil, []string{"frobnicate"}, exitUsage, "unknown command"},
		{"no command", nil, nil, exitUsage, "usage: taskbridge"},
		{"watch without id", nil, []string{"watch"}, exitUsage, "want one task id"},
		{"bad cursor", nil, []string{"watch", id, "-from", "x"}, exitUsage, "malformed event id"},
		{"create without type", nil, []string{"create"}, exitUsage, "-type is required"},
		{"bad input", nil, []string{"create", "-type", "demo.progress", "-input", "{"}, exitUsage, "not valid JSON"},
		{"unknown flag", nil, []string{"cancel", id, "-force"}, exitUsage, "flag provided but not defined"},
		{"bad transport", map[string]string{"TASKBRIDGE_TRANSPORTS": "ws,pigeon"}, []string{"watch", id}, exitError, "unknown transport"},
	} {
		r := cli(t, tc.env, tc.args...)
		assert.Equal(t, tc.code, r.code, "%s: %s", tc.name, r.stderr)
		assert.Contains(t, r.stderr, tc.input, tc.name)
	}
}

func TestCreateWithAttachment(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(file, []byte("hello"), 0o600))
	r := cli(t, nil, "create", "-type", "demo.progress", "-input", `{"steps":1}`, "-attach", file,
		"-request-id", "cli-attach-1", "-json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"clientRequestId":"cli-attach-1"`)
	again := cli(t, nil, "create", "-type", "demo.progress", "-input", `{"steps":1}`, "-attach", file,
		"-request-id", "cli-attach-1")
	require.Equal(t, 0, again.code, again.stderr)
	assert.Contains(t, again.stderr, "already made this task")
}
