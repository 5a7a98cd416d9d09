package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// terminal is a tmux session (on a tmux server of its own) running one
// shell command in a 100x24 pane.
type terminal struct {
	t      *testing.T
	socket string
	name   string
}

// requireTmux finds tmux, installing Debian's package with apt-get when it
// is missing and the test runs as root. Without it the test fails under
// CI=true and is skipped otherwise.
func requireTmux(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("tmux"); err == nil {
		return p
	}
	if os.Geteuid() == 0 {
		install := func() error {
			cmd := exec.Command("apt-get", "install", "-y", "-qq", "tmux")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			return cmd.Run()
		}
		if install() != nil {
			_ = exec.Command("apt-get", "update", "-qq").Run()
			_ = install()
		}
		if p, err := exec.LookPath("tmux"); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("tmux is not installed and could not be installed (apt-get install tmux)")
	}
	t.Skip("tmux is not installed; installing it needs root (apt-get install tmux)")
	return ""
}

// startTerminal runs command in a new tmux pane. The pane stays after the
// command ends (so its last screen and the exit line can be read); the
// tmux server is killed at cleanup.
func startTerminal(t *testing.T, command string) *terminal {
	t.Helper()
	requireTmux(t)
	// A tmux server of its own, its socket in the test's temporary directory.
	term := &terminal{t: t, socket: filepath.Join(t.TempDir(), "tmux"), name: "cli"}
	var env []string
	for _, kv := range cliEnv(nil) {
		env = append(env, "export "+shellQuote(kv)+";")
	}
	script := strings.Join(env, " ") + " " + command + `; echo "EXIT=$?"; sleep 3600`
	term.tmux("new-session", "-d", "-s", term.name, "-x", "100", "-y", "24", "sh", "-c", script)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", term.socket, "kill-server").Run() })
	return term
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (term *terminal) tmux(args ...string) string {
	term.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", term.socket}, args...)...).CombinedOutput()
	require.NoError(term.t, err, "tmux %v: %s", args, out)
	return string(out)
}

// screen returns the pane's visible text.
func (term *terminal) screen() string {
	return term.tmux("capture-pane", "-p", "-t", term.name)
}

// send types keys (then Enter).
func (term *terminal) send(keys string) {
	term.tmux("send-keys", "-t", term.name, "-l", keys)
	term.tmux("send-keys", "-t", term.name, "Enter")
}

// waitFor polls the screen until it matches re and returns the match.
func (term *terminal) waitFor(re *regexp.Regexp) []string {
	term.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		s := term.screen()
		if m := re.FindStringSubmatch(s); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the terminal never showed %v; it shows:\n%s", re, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	exitLine = regexp.MustCompile(`EXIT=(\d+)`)
	barLine  = regexp.MustCompile(`\[([#-]{30})\]\s+(\d+)% (\w+)\s+(.*)\((ws|sse|poll)\)`)
)

// exitCode waits for the command to end and returns its exit status.
func (term *terminal) exitCode() int {
	term.t.Helper()
	code, err := strconv.Atoi(term.waitFor(exitLine)[1])
	require.NoError(term.t, err)
	return code
}

// TestTerminalProgressBar: in a terminal, watch redraws one progress bar
// in place while the task runs (percent, state, stage and message, the
// transport), then prints the result; exit code 0.
func TestTerminalProgressBar(t *testing.T) {
	t.Parallel()
	id := createTask(t, "demo.progress", `{"steps":10,"delayMs":300}`)
	term := startTerminal(t, cliBin+" watch "+id)
	seen := map[int]bool{}
	var order []int
	deadline := time.Now().Add(wait)
	for !exitLine.MatchString(term.screen()) && time.Now().Before(deadline) {
		screen := term.screen()
		bars := barLine.FindAllStringSubmatch(screen, -1)
		require.LessOrEqual(t, len(bars), 1, "one bar, redrawn in place:\n%s", screen)
		if len(bars) == 1 {
			pct, _ := strconv.Atoi(bars[0][2])
			if !seen[pct] {
				seen[pct] = true
				order = append(order, pct)
			}
			if pct > 0 && pct < 100 {
				assert.Equal(t, "running", bars[0][3])
				assert.Regexp(t, `working: step \d+ of 10`, bars[0][4])
				assert.Equal(t, strings.Repeat("#", pct*30/100), strings.TrimRight(bars[0][1], "-"))
			}
		}
		time.Sleep(40 * time.Millisecond)
	}
	assert.Equal(t, 0, term.exitCode())
	assert.GreaterOrEqual(t, len(order), 4, "the bar moved through several steps: %v", order)
	for i := 1; i < len(order); i++ {
		assert.Greater(t, order[i], order[i-1], "the bar only moves forward: %v", order)
	}
	screen := term.screen()
	assert.Contains(t, screen, "100% completed")
	assert.Contains(t, screen, `Completed: {"steps":10}`)
}

// TestTerminalApprovalPrompt: create -watch in a terminal stops at the
// suspension with a prompt; a wrong answer is refused, "approve" is
// submitted and the task completes with it; exit code 0.
func TestTerminalApprovalPrompt(t *testing.T) {
	t.Parallel()
	term := startTerminal(t, cliBin+" create -type demo.approval -watch")
	term.waitFor(regexp.MustCompile(`Suspended \(approval_required\): allowed actions approve, reject`))
	term.waitFor(regexp.MustCompile(`Action \(approve/reject, empty to skip\):`))
	term.send("later")
	term.waitFor(regexp.MustCompile(`"later" is not one of approve, reject`))
	term.send("approve")
	term.waitFor(regexp.MustCompile(`approve: ACCEPTED`))
	term.waitFor(regexp.MustCompile(`Completed: \{"decision":"approve"\}`))
	assert.Equal(t, 0, term.exitCode())
}

// TestTerminalExitCodes: the exit code follows the terminal status.
func TestTerminalExitCodes(t *testing.T) {
	t.Parallel()
	t.Run("failed", func(t *testing.T) {
		t.Parallel()
		term := startTerminal(t, cliBin+" create -type demo.fail -watch")
		assert.Equal(t, exitFailed, term.exitCode())
		assert.Contains(t, term.screen(), "Failed: DEMO_FAILURE: the demo task failed on purpose")
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		id := createTask(t, "demo.sleep", `{"delayMs":100}`)
		term := startTerminal(t, cliBin+" watch "+id)
		term.waitFor(regexp.MustCompile(`\d+% running\s+sleeping`))
		r := cli(t, nil, "cancel", id, "-reason", "stop")
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, exitCancelled, term.exitCode())
		assert.Contains(t, term.screen(), "Cancelled: stop")
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		term := startTerminal(t, cliBin+" watch no-such-task")
		assert.Equal(t, exitError, term.exitCode())
		assert.Contains(t, term.screen(), "404 TASK_NOT_FOUND")
	})
}
