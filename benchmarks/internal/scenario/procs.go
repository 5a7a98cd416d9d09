package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/control"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/serve"
)

// serverProc is a bench server child process.
type serverProc struct {
	cmd   *exec.Cmd
	ready serve.Ready
	ctl   *control.Client
	done  chan error
	// exitedc is closed when the process has ended; exitErr is then how.
	exitedc chan struct{}
	exitErr error
}

// exited reports whether the process has ended, and how.
func (p *serverProc) exited() (bool, error) {
	select {
	case <-p.exitedc:
		return true, p.exitErr
	default:
		return false, nil
	}
}

// startServer starts "<exe> serve -kind target ..." and waits for its
// Ready line.
func startServer(ctx context.Context, cfg *Config, target string, extra ...string) (*serverProc, error) {
	args := []string{"serve", "-kind", target, "-store", cfg.Store}
	if cfg.RedisAddr != "" {
		args = append(args, "-redis-addr", cfg.RedisAddr)
	}
	args = append(args, extra...)
	cmd := exec.Command(cfg.Exe, args...)
	cmd.Stderr = cfg.ServerLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", target, err)
	}
	p := &serverProc{cmd: cmd, done: make(chan error, 1), exitedc: make(chan struct{})}
	readyc := make(chan serve.Ready, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if r, ok := serve.ParseReady(sc.Text()); ok && !sent {
				readyc <- r
				sent = true
			}
		}
		p.exitErr = cmd.Wait()
		close(p.exitedc)
		p.done <- p.exitErr
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case p.ready = <-readyc:
	case err := <-p.done:
		return nil, fmt.Errorf("%s server exited before it was ready: %v", target, err)
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("%s server did not announce itself in 30s", target)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
	p.ctl = control.NewClient(p.ready.Control)
	return p, nil
}

func (p *serverProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop asks the server to shut down (SIGTERM) and kills it after 10 s.
func (p *serverProc) stop() error {
	p.ctl.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("server did not stop within 10s after SIGTERM")
	}
}

// childProc is a client child process.
type childProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	enc     *json.Encoder
	reports chan loadclient.Report
	done    chan error
}

func startChild(cfg *Config) (*childProc, error) {
	cmd := exec.Command(cfg.Exe, "child")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start client child: %w", err)
	}
	c := &childProc{cmd: cmd, in: in, enc: json.NewEncoder(in), reports: make(chan loadclient.Report, 4), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 256<<20)
		for sc.Scan() {
			var r loadclient.Report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = loadclient.Report{Ev: "fatal", Error: "bad report: " + err.Error()}
			}
			c.reports <- r
		}
		close(c.reports)
		c.done <- cmd.Wait()
	}()
	return c, nil
}

func (c *childProc) send(cmd loadclient.Command) error { return c.enc.Encode(cmd) }

// await returns the next report, which must be of kind ev.
func (c *childProc) await(ctx context.Context, ev string, timeout time.Duration) (loadclient.Report, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r, ok := <-c.reports:
		if !ok {
			return r, errors.New("client child exited")
		}
		if r.Ev != ev {
			return r, fmt.Errorf("client child: want %q, got %q %s", ev, r.Ev, r.Error)
		}
		return r, nil
	case <-timer.C:
		return loadclient.Report{}, fmt.Errorf("client child: no %q report within %s", ev, timeout)
	case <-ctx.Done():
		return loadclient.Report{}, ctx.Err()
	}
}

// close ends the child: it closes stdin (the child exits when its pipe
// closes) and kills it if it lingers.
func (c *childProc) close() {
	c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// children is a set of client children driven in lockstep.
type children []*childProc

func (cs children) sendAll(cmd loadclient.Command) error {
	for _, c := range cs {
		if err := c.send(cmd); err != nil {
			return err
		}
	}
	return nil
}

func (cs children) awaitAll(ctx context.Context, ev string, timeout time.Duration) ([]loadclient.Report, error) {
	out := make([]loadclient.Report, len(cs))
	errc := make(chan error, len(cs))
	for i, c := range cs {
		go func(i int, c *childProc) {
			r, err := c.await(ctx, ev, timeout)
			out[i] = r
			errc <- err
		}(i, c)
	}
	var first error
	for range cs {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return out, first
}

func (cs children) closeAll() {
	for _, c := range cs {
		c.close()
	}
}
