package e2etest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles the main package pkg with the go command found on PATH
// (go test puts its own first), run in dir ("" for the current directory,
// the test's package), into a new temporary directory, and returns the
// binary's path and a func that removes the directory. It takes seconds:
// build once per test binary (TestMain, or a sync.Once).
func Build(dir, pkg, name string) (bin string, remove func(), err error) {
	tmp, err := os.MkdirTemp("", "taskbridge-"+name+"-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { _ = os.RemoveAll(tmp) }
	bin = filepath.Join(tmp, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, remove, nil
}

// Process is a program a test runs as a child process (an example or a
// command built with Build), with its stderr collected: the JSON log lines
// the examples write. A goroutine owned by the Process reads them until
// the process exits.
type Process struct {
	// Cmd is the started command.
	Cmd *exec.Cmd
	// Ready is the log line StartProcess waited for, and Addr its "addr"
	// field ("" when it has none).
	Ready []byte
	Addr  string
	// Exited is closed once the process has ended and its stderr is read;
	// Err is then cmd.Wait's answer.
	Exited chan struct{}
	Err    error

	mu   sync.Mutex
	logs bytes.Buffer
}

// StartProcess starts cmd (whose Stderr must be unset) and waits up to
// timeout for a JSON log line on its stderr whose "msg" is ready. A
// process that exits first, or is not ready in time (it is killed then),
// is an error that quotes its last log lines.
func StartProcess(cmd *exec.Cmd, ready string, timeout time.Duration) (*Process, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, Exited: make(chan struct{})}
	found := make(chan []byte, 1)
	go func() { // owned by p: ends when the process exits (EOF on its stderr)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var entry struct {
				Msg string `json:"msg"`
			}
			if json.Unmarshal(line, &entry) == nil && entry.Msg == ready {
				select {
				case found <- bytes.Clone(line):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.Err = cmd.Wait()
		close(p.Exited)
	}()
	select {
	case line := <-found:
		var entry struct {
			Addr string `json:"addr"`
		}
		_ = json.Unmarshal(line, &entry)
		p.Ready, p.Addr = line, entry.Addr
		return p, nil
	case <-p.Exited:
		return nil, fmt.Errorf("%s exited (%v) before logging %q:\n%s", filepath.Base(cmd.Path), p.Err, ready, p.Tail(40))
	case <-time.After(timeout):
		p.Kill()
		return nil, fmt.Errorf("%s did not log %q within %v:\n%s", filepath.Base(cmd.Path), ready, timeout, p.Tail(40))
	}
}

// Logs returns what the process logged so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Tail returns the last n lines the process logged.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimSpace(p.Logs()), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Alive reports whether the process still runs.
func (p *Process) Alive() bool {
	select {
	case <-p.Exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process; signalling one that has exited is no
// error.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Kill ends the process at once (SIGKILL) and waits until it is gone.
func (p *Process) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.Exited
}

// Stop asks the process to end (SIGTERM) and kills it when it has not
// within grace; it returns once the process is gone.
func (p *Process) Stop(grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
	case <-time.After(grace):
		p.Kill()
	}
}
