package loadclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

// Group is Count subscribers of one task over one transport.
type Group struct {
	TaskID    string `json:"taskId"`
	Transport string `json:"transport"`
	Count     int    `json:"count"`
}

// Assignment is a child's share of a scenario.
type Assignment struct {
	// Addr is the data address of the server under test (host:port).
	Addr string `json:"addr"`
	// Token authenticates every request (Bearer header and access_token).
	Token string `json:"token"`
	// SourceIPs are the local addresses the child's connections use.
	SourceIPs []string `json:"sourceIps,omitempty"`
	// Strict decodes every frame with the protocol's strict decoders.
	Strict bool `json:"strict,omitempty"`
	// Groups are the subscribers to hold.
	Groups []Group `json:"groups,omitempty"`
	// DialConcurrency bounds connection attempts in flight. Default 64.
	DialConcurrency int `json:"dialConcurrency,omitempty"`
	// ConnectTimeout bounds the connect phase. Default 60s.
	ConnectTimeout time.Duration `json:"connectTimeoutNs,omitempty"`
	// PollWait is the long-poll waitTimeoutMs. Default 25s.
	PollWait time.Duration `json:"pollWaitNs,omitempty"`
	// Drops is how many times each subscriber drops its connection and
	// reconnects with its cursor, at random times in [DropFrom, DropTo]
	// after the go command.
	Drops    int           `json:"drops,omitempty"`
	DropFrom time.Duration `json:"dropFromNs,omitempty"`
	DropTo   time.Duration `json:"dropToNs,omitempty"`
	// HTTP, when set, makes the child run an HTTP load on go instead of
	// holding subscribers.
	HTTP *HTTPLoad `json:"http,omitempty"`
}

// Command is one line the generator sends to a child on stdin.
type Command struct {
	// Cmd is "start" (with Assign), "go", "drain" (with Expected and
	// Drain: wait for the subscribers to catch up, keep the connections) or
	// "finish" (stop everything and report; Expected defaults to the
	// drain's).
	Cmd    string      `json:"cmd"`
	Assign *Assignment `json:"assign,omitempty"`
	// Expected is each task's last sequence number: a subscriber is done
	// when it has seen it.
	Expected map[string]uint64 `json:"expected,omitempty"`
	// Drain bounds the wait for subscribers to catch up.
	Drain time.Duration `json:"drainNs,omitempty"`
}

// Report is one line a child sends to the generator on stdout.
type Report struct {
	// Ev is "connected" (after start), "drained" (after drain), "result"
	// (after finish) or "fatal".
	Ev        string `json:"ev"`
	Connected int    `json:"connected,omitempty"`
	Failed    int    `json:"failed,omitempty"`
	// Behind counts subscribers still short of their expected event when
	// the drain ended.
	Behind int `json:"behind,omitempty"`
	// ErrorSamples are the first errors so far (connected reports carry
	// them, so that a failed connect says why).
	ErrorSamples []string `json:"errorSamples,omitempty"`
	Result       *Result  `json:"result,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// RunChild serves the child side of the protocol: it reads Commands from
// in and writes Reports to out until the finish command is done, in ends or
// ctx ends. When it returns every subscriber and connection it started has
// ended; the goroutine reading in ends when in is closed (a child process
// exits instead).
func RunChild(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmds := make(chan Command)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 256<<20)
		for sc.Scan() {
			var c Command
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				readErr <- fmt.Errorf("loadclient: bad command: %w", err)
				return
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			readErr <- err
			return
		}
		readErr <- io.EOF
	}()

	enc := json.NewEncoder(out)
	report := func(r Report) error { return enc.Encode(r) }
	var ch *child
	defer func() {
		if ch != nil {
			ch.stop()
		}
	}()
	for {
		var c Command
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return errors.New("loadclient: generator closed the pipe")
			}
			return err
		case c = <-cmds:
		}
		switch c.Cmd {
		case "start":
			if ch != nil || c.Assign == nil {
				return errors.New("loadclient: start needs an assignment, once")
			}
			var err error
			if ch, err = startChild(ctx, c.Assign); err != nil {
				_ = report(Report{Ev: "fatal", Error: err.Error()})
				return err
			}
			connected, failed := ch.waitConnected(ctx)
			rep := Report{Ev: "connected", Connected: connected, Failed: failed}
			if failed > 0 {
				rep.ErrorSamples = ch.env.c.errorSamples()
			}
			if err := report(rep); err != nil {
				return err
			}
		case "go":
			if ch == nil {
				return errors.New("loadclient: go before start")
			}
			ch.goNow()
		case "drain":
			if ch == nil {
				return errors.New("loadclient: drain before start")
			}
			ch.expected = c.Expected
			behind := ch.waitCaughtUp(ctx, c.Expected, c.Drain)
			if err := report(Report{Ev: "drained", Behind: behind}); err != nil {
				return err
			}
		case "finish":
			if ch == nil {
				return errors.New("loadclient: finish before start")
			}
			expected := c.Expected
			if expected == nil {
				expected = ch.expected
			}
			res := ch.finish(ctx, expected, c.Drain)
			ch = nil
			return report(Report{Ev: "result", Result: res})
		default:
			return fmt.Errorf("loadclient: unknown command %q", c.Cmd)
		}
	}
}

// child is the running state of one assignment.
type child struct {
	a      *Assignment
	env    *env
	subs   []*subscriber
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	httpDone chan *HTTPResult
	expected map[string]uint64
}

func startChild(parent context.Context, a *Assignment) (*child, error) {
	e, err := newEnv(a)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(parent)
	ch := &child{a: a, env: e, ctx: ctx, cancel: cancel}
	for _, g := range a.Groups {
		switch g.Transport {
		case TransportSSE, TransportWS, TransportPoll:
		default:
			cancel()
			return nil, fmt.Errorf("loadclient: unknown transport %q", g.Transport)
		}
		for i := 0; i < g.Count; i++ {
			ch.subs = append(ch.subs, newSubscriber(e, g.TaskID, g.Transport, len(ch.subs)))
		}
	}
	for _, s := range ch.subs {
		ch.wg.Add(1)
		go func(s *subscriber) {
			defer ch.wg.Done()
			s.run(ctx)
		}(s)
	}
	return ch, nil
}

// waitConnected waits until every subscriber connected once or the connect
// timeout passed.
func (ch *child) waitConnected(ctx context.Context) (connected, failed int) {
	timeout := ch.a.ConnectTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, s := range ch.subs {
		select {
		case <-s.ready:
		case <-deadline.C:
			return ch.countReady()
		case <-ctx.Done():
			return ch.countReady()
		}
	}
	return len(ch.subs), 0
}

func (ch *child) countReady() (connected, failed int) {
	for _, s := range ch.subs {
		if s.isReady() {
			connected++
		} else {
			failed++
		}
	}
	return connected, failed
}

// goNow starts the measured phase: the HTTP load, or the drop schedule.
func (ch *child) goNow() {
	if ch.a.HTTP != nil {
		ch.httpDone = make(chan *HTTPResult, 1)
		ch.wg.Add(1)
		go func() {
			defer ch.wg.Done()
			ch.httpDone <- runHTTPLoad(ch.ctx, ch.a.Addr, ch.a.Token, ch.env.dialer, *ch.a.HTTP, ch.env.c)
		}()
		return
	}
	if ch.a.Drops <= 0 {
		return
	}
	type planned struct {
		at  time.Duration
		sub *subscriber
	}
	var plan []planned
	span := ch.a.DropTo - ch.a.DropFrom
	for _, s := range ch.subs {
		for i := 0; i < ch.a.Drops; i++ {
			at := ch.a.DropFrom
			if span > 0 {
				at += rand.N(span)
			}
			plan = append(plan, planned{at, s})
		}
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	ch.wg.Add(1)
	go func() {
		defer ch.wg.Done()
		start := time.Now()
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for _, p := range plan {
			if wait := p.at - time.Since(start); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ch.ctx.Done():
					return
				}
			}
			p.sub.drop()
		}
	}()
}

// finish waits for the subscribers to catch up with expected (or for the
// HTTP load), stops everything and returns the result.
func (ch *child) finish(ctx context.Context, expected map[string]uint64, drain time.Duration) *Result {
	res := &Result{Subscribers: len(ch.subs)}
	res.Connected, res.ConnectFailures = ch.countReady()
	if ch.httpDone != nil {
		select {
		case res.HTTP = <-ch.httpDone:
		case <-ctx.Done():
		}
	} else {
		ch.waitCaughtUp(ctx, expected, drain)
	}
	ch.stop()
	ch.env.c.fill(res)
	if p, err := measure.ReadProc(os.Getpid()); err == nil {
		res.ClientCPU = p.CPU
	}
	for _, s := range ch.subs {
		res.Events += s.tracker.Received
		res.Gaps += s.tracker.Gaps
		res.Dups += s.tracker.Dups
		res.Missing += s.tracker.Missing(expected[s.task])
	}
	return res
}

// waitCaughtUp waits until every subscriber has seen its task's expected
// event (or its stream ended), up to drain, and returns how many have not.
func (ch *child) waitCaughtUp(ctx context.Context, expected map[string]uint64, drain time.Duration) int {
	if drain <= 0 {
		drain = 10 * time.Second
	}
	deadline := time.Now().Add(drain)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		behind := 0
		for _, s := range ch.subs {
			if s.last.Load() < expected[s.task] && !s.ended.Load() {
				behind++
			}
		}
		if behind == 0 || time.Now().After(deadline) {
			return behind
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return behind
		}
	}
}

// stop ends every subscriber and waits for their goroutines.
func (ch *child) stop() {
	ch.cancel()
	ch.wg.Wait()
	ch.env.close()
}
