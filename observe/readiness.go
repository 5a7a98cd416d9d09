package observe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ReadinessProbe answers the /ready route: whether the instance can serve,
// and per-dependency details for the response body. Implementations must
// honour ctx and be safe for concurrent use.
type ReadinessProbe interface {
	CheckReadiness(ctx context.Context) (ready bool, details map[string]any)
}

// AlwaysReady is the default ReadinessProbe: ready, with no details.
type AlwaysReady struct{}

// CheckReadiness implements ReadinessProbe.
func (AlwaysReady) CheckReadiness(context.Context) (bool, map[string]any) {
	return true, map[string]any{}
}

// Probe checks one dependency: nil means healthy. Check should return
// promptly once ctx is done. The error's text becomes the probe's message in
// the public /ready body, so it must not carry secrets (credentials,
// connection strings with passwords, tokens); return a short, operator-safe
// description. Implementations are safe for concurrent use.
type Probe interface {
	Check(ctx context.Context) error
}

// ProbeFunc adapts a function to Probe.
type ProbeFunc func(ctx context.Context) error

// Check implements Probe by calling f(ctx).
func (f ProbeFunc) Check(ctx context.Context) error { return f(ctx) }

// NamedProbe is a Probe with the name it is reported under in /ready
// details.
type NamedProbe struct {
	Name  string
	Probe Probe
}

// ProbeStatus is the state of one probe in /ready details.
type ProbeStatus string

// Probe states.
const (
	// ProbeOK means the probe returned nil in time.
	ProbeOK ProbeStatus = "ok"
	// ProbeFailing means the probe returned an error (or panicked).
	ProbeFailing ProbeStatus = "failing"
	// ProbeTimeout means the probe gave no answer before its deadline, or
	// answered with an error after its context was done.
	ProbeTimeout ProbeStatus = "timeout"
)

// ProbeResult is one probe's entry in /ready details; it marshals to
// {"status": "ok"|"failing"|"timeout", "message": "..."}.
type ProbeResult struct {
	Status  ProbeStatus `json:"status"`
	Message string      `json:"message"`
}

// DefaultProbeTimeout is the per-probe timeout NewComposite uses when given 0.
const DefaultProbeTimeout = 2 * time.Second

// maxProbeMessage bounds a message in /ready details, in bytes.
const maxProbeMessage = 256

// Composite is a ReadinessProbe made of named Probes. Every check runs all
// probes concurrently, each under its own timeout; the instance is ready
// only if every probe passes. Details map each probe's name to its
// ProbeResult.
//
// A hung dependency cannot hang /ready: at the timeout the probe is reported
// as "timeout" and abandoned. A probe that ignores its context keeps only its
// own goroutine alive until it returns; its late answer is dropped. A panic
// in a probe is recovered and reported as "failing" with the message
// "probe panicked" (the panic value is not shown).
//
// A Composite is immutable after NewComposite and safe for concurrent use.
type Composite struct {
	timeout time.Duration
	probes  []NamedProbe
}

var (
	_ ReadinessProbe = (*Composite)(nil)
	_ Probe          = (*Composite)(nil)
)

// NewComposite returns a Composite of probes, checked in parallel with a
// per-probe timeout: 0 means DefaultProbeTimeout, a negative value means no
// timeout of its own (only the caller's ctx bounds the check). It panics on
// an empty or duplicate name or a nil Probe: those are wiring mistakes to
// catch at boot.
func NewComposite(timeout time.Duration, probes ...NamedProbe) *Composite {
	if timeout == 0 {
		timeout = DefaultProbeTimeout
	}
	seen := make(map[string]struct{}, len(probes))
	for _, p := range probes {
		if p.Name == "" {
			panic("taskbridge: observe.NewComposite: probe with an empty name")
		}
		if p.Probe == nil {
			panic(fmt.Sprintf("taskbridge: observe.NewComposite: probe %q is nil", p.Name))
		}
		if _, dup := seen[p.Name]; dup {
			panic(fmt.Sprintf("taskbridge: observe.NewComposite: duplicate probe name %q", p.Name))
		}
		seen[p.Name] = struct{}{}
	}
	return &Composite{timeout: timeout, probes: append([]NamedProbe(nil), probes...)}
}

// CheckReadiness implements ReadinessProbe: ready only if every probe
// passes; details maps each probe name to its ProbeResult.
func (c *Composite) CheckReadiness(ctx context.Context) (bool, map[string]any) {
	ready, results := c.Results(ctx)
	details := make(map[string]any, len(results))
	for name, r := range results {
		details[name] = r
	}
	return ready, details
}

// Check implements Probe, so Composites nest: nil when every probe passes,
// otherwise an error naming the probes that did not.
func (c *Composite) Check(ctx context.Context) error {
	ready, results := c.Results(ctx)
	if ready {
		return nil
	}
	var bad []string
	for _, p := range c.probes {
		if r := results[p.Name]; r.Status != ProbeOK {
			bad = append(bad, p.Name+" "+string(r.Status))
		}
	}
	return errors.New("not ready: " + strings.Join(bad, ", "))
}

// Results runs every probe concurrently and returns whether all passed and
// each probe's result by name. It returns within the per-probe timeout (or
// when ctx is done, if sooner).
func (c *Composite) Results(ctx context.Context) (bool, map[string]ProbeResult) {
	type pending struct {
		ctx    context.Context
		cancel context.CancelFunc
		done   chan error
	}
	runs := make([]pending, len(c.probes))
	for i, np := range c.probes {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if c.timeout > 0 {
			pctx, cancel = context.WithTimeout(ctx, c.timeout)
		}
		done := make(chan error, 1) // buffered: an abandoned probe can still send and exit
		runs[i] = pending{ctx: pctx, cancel: cancel, done: done}
		go func(p Probe) { done <- callProbe(pctx, p) }(np.Probe)
	}

	ready := true
	results := make(map[string]ProbeResult, len(c.probes))
	for i, np := range c.probes {
		r := runs[i]
		var res ProbeResult
		select {
		case err := <-r.done:
			res = resultOf(r.ctx, err)
		case <-r.ctx.Done():
			res = ProbeResult{Status: ProbeTimeout, Message: c.timeoutMessage(ctx)}
		}
		r.cancel()
		if res.Status != ProbeOK {
			ready = false
		}
		results[np.Name] = res
	}
	return ready, results
}

func (c *Composite) timeoutMessage(parent context.Context) string {
	if err := parent.Err(); err != nil {
		return "check abandoned: " + err.Error()
	}
	return "no answer within " + c.timeout.String()
}

var errProbePanicked = errors.New("probe panicked")

// callProbe runs p, turning a panic into errProbePanicked.
func callProbe(ctx context.Context, p Probe) (err error) {
	defer func() {
		if recover() != nil {
			err = errProbePanicked
		}
	}()
	return p.Check(ctx)
}

func resultOf(ctx context.Context, err error) ProbeResult {
	switch {
	case err == nil:
		return ProbeResult{Status: ProbeOK}
	case ctx.Err() != nil:
		return ProbeResult{Status: ProbeTimeout, Message: truncateMessage(err.Error())}
	default:
		return ProbeResult{Status: ProbeFailing, Message: truncateMessage(err.Error())}
	}
}

// truncateMessage bounds s to maxProbeMessage bytes on a rune boundary.
func truncateMessage(s string) string {
	if len(s) <= maxProbeMessage {
		return s
	}
	cut := maxProbeMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ExecutorReadiness is what a task executor exposes for readiness: nil when
// it accepts work, otherwise an operator-safe reason (closed, queue full).
// The in-process executor of package orchestration implements it.
type ExecutorReadiness interface {
	Ready(ctx context.Context) error
}

// ExecutorProbe returns a Probe that asks x whether it accepts work. It
// panics if x is nil.
func ExecutorProbe(x ExecutorReadiness) Probe {
	if x == nil {
		panic("taskbridge: observe.ExecutorProbe: nil executor")
	}
	return ProbeFunc(x.Ready)
}

// StoreChecker is what a store exposes for readiness: a cheap round trip to
// its backend under ctx (the Redis store sends PING). It returns nil when the
// backend answers.
type StoreChecker interface {
	Check(ctx context.Context) error
}

// StoreProbe returns a Probe that checks store s. It panics if s is nil.
func StoreProbe(s StoreChecker) Probe {
	if s == nil {
		panic("taskbridge: observe.StoreProbe: nil store")
	}
	return ProbeFunc(s.Check)
}
