package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// The quickstart as a child process of its tests: the tests build the
// quickstart's own main once (without the race detector, so the child's
// memory and speed are those of a real deployment even under go test
// -race) and start it through /bin/sh, whose ulimit sets the child's
// open-file limit (soft and hard), as an operator's would.
var (
	buildOnce   sync.Once
	binPath     string
	removeBuild = func() {}
	buildErr    error
)

// quickstartBinary builds the quickstart once per test run.
func quickstartBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath, removeBuild, buildErr = e2etest.Build("", ".", "quickstart")
	})
	require.NoError(t, buildErr)
	return binPath
}

// removeChildBinary deletes what quickstartBinary built (TestMain).
func removeChildBinary() { removeBuild() }

// child is a running quickstart process.
type child struct {
	*e2etest.Process
	t    *testing.T
	addr string
}

// startChild starts the quickstart in a child process with at most files
// open files (0: the default limit) and waits for its address. It is
// stopped (SIGTERM, then SIGKILL) at cleanup; its drain is short, so a
// task still running then (a suspended demo.approval) does not hold the
// stop for the default 10 s.
func startChild(t *testing.T, files int) *child {
	t.Helper()
	bin := quickstartBinary(t)
	cmd := exec.Command(bin)
	if files > 0 {
		cmd = exec.Command("/bin/sh", "-c", `ulimit -n "$1" && exec "$0"`, bin, strconv.Itoa(files))
	}
	cmd.Env = append(os.Environ(), "TASKBRIDGE_ADDR=127.0.0.1:0", "TASKBRIDGE_LOG_LEVEL=info", "TASKBRIDGE_DRAIN=100ms")
	p, err := e2etest.StartProcess(cmd, "quickstart listening", wait)
	require.NoError(t, err)
	t.Cleanup(func() { p.Stop(15 * time.Second) })
	return &child{Process: p, t: t, addr: p.Addr}
}

// alive reports whether the process still runs.
func (c *child) alive() bool { return c.Alive() }

// stderr returns what the child logged so far.
func (c *child) stderr() string { return c.Logs() }

// rssBytes is the child's resident set size (VmRSS).
func (c *child) rssBytes() int64 {
	c.t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Cmd.Process.Pid))
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
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Cmd.Process.Pid))
	require.NoError(c.t, err)
	return len(entries)
}
