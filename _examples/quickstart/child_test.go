package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// The quickstart as a child process of its tests: the test binary runs
// itself with childEnv set, and TestMain then runs the quickstart's run
// (listening on 127.0.0.1:0) instead of the tests. childFilesEnv, when
// set, lowers the child's open-file limit (soft and hard) first, as an
// operator's ulimit would.
const (
	childEnv      = "QUICKSTART_TEST_CHILD"
	childFilesEnv = "QUICKSTART_TEST_NOFILE"
)

// runChild is TestMain's child mode; it returns the exit code.
func runChild() int {
	if v := os.Getenv(childFilesEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err == nil {
			err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "set open-file limit:", err)
			return 2
		}
	}
	// JSON lines on stderr; the parent reads the address from the
	// "quickstart listening" line.
	log := newLogger(zapcore.Lock(os.Stderr), false, zapcore.InfoLevel)
	if err := run(options{addr: "127.0.0.1:0", heartbeat: 15 * time.Second, logLevel: zapcore.InfoLevel}, log); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart failed:", err)
		return 1
	}
	return 0
}

// child is a running quickstart process.
type child struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	logPath string        // the child's stderr
	exit    chan struct{} // closed when the process ended
}

// startChild starts the quickstart in a child process with at most files
// open files (0: the default limit) and waits for its address. It is
// stopped (SIGTERM, then SIGKILL) at cleanup.
func startChild(t *testing.T, files int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if files > 0 {
		cmd.Env = append(cmd.Env, childFilesEnv+"="+strconv.Itoa(files))
	}
	c := &child{t: t, cmd: cmd, logPath: filepath.Join(t.TempDir(), "stderr"), exit: make(chan struct{})}
	logFile, err := os.Create(c.logPath)
	require.NoError(t, err)
	defer logFile.Close()
	cmd.Stderr = logFile
	require.NoError(t, cmd.Start())
	go func() { // owner: this child; ends when the process does
		_ = cmd.Wait()
		close(c.exit)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exit:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-c.exit
		}
	})
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		raw, _ := os.ReadFile(c.logPath)
		for _, line := range strings.Split(string(raw), "\n") {
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "quickstart listening" {
				c.addr = entry.Addr
			}
		}
		assert.NotEmpty(ct, c.addr, "no address logged yet")
		assert.True(ct, c.alive(), "the child exited: %s", raw)
	}, wait, 10*time.Millisecond)
	return c
}

// alive reports whether the process still runs.
func (c *child) alive() bool {
	select {
	case <-c.exit:
		return false
	default:
		return true
	}
}

// stderr returns what the child logged so far.
func (c *child) stderr() string {
	raw, _ := os.ReadFile(c.logPath)
	return string(raw)
}

// rssBytes is the child's resident set size (VmRSS).
func (c *child) rssBytes() int64 {
	c.t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	require.NoError(c.t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(c.t, err)
			return kb << 10
		}
	}
	c.t.Fatal("no VmRSS in /proc status")
	return 0
}

// openFiles counts the child's open descriptors.
func (c *child) openFiles() int {
	c.t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.cmd.Process.Pid))
	require.NoError(c.t, err)
	return len(entries)
}
