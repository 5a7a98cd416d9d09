package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The quickstart as a child process of its tests: the tests build the
// quickstart's own main once (without the race detector, so the child's
// memory and speed are those of a real deployment even under go test
// -race) and start it through /bin/sh, whose ulimit sets the child's
// open-file limit (soft and hard), as an operator's would.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// quickstartBinary builds the quickstart once per test run.
func quickstartBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "quickstart-child-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "quickstart")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// removeChildBinary deletes what quickstartBinary built (TestMain).
func removeChildBinary() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
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
	bin := quickstartBinary(t)
	limit := "unlimited"
	if files > 0 {
		limit = strconv.Itoa(files)
	}
	cmd := exec.Command("/bin/sh", "-c", `ulimit -n "$1" && exec "$0"`, bin, limit)
	if files == 0 {
		cmd = exec.Command(bin)
	}
	cmd.Env = append(os.Environ(), "TASKBRIDGE_ADDR=127.0.0.1:0", "TASKBRIDGE_LOG_LEVEL=info")
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
