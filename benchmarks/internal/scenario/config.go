package scenario

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
)

// Transport value that spreads subscribers round robin over SSE, WebSocket
// and long-poll.
const TransportMix = "mix"

// Config is how the generator runs scenarios.
type Config struct {
	// Exe is the generator's own binary, re-executed as "exe serve ..." for
	// servers and "exe child" for clients.
	Exe string
	// Targets are the servers to measure, in order.
	Targets []string
	// Store is "mem" or "redis" (bridge and baseline; raw has none).
	Store string
	// RedisAddr is the redis-server of the redis store; the generator also
	// reads its CPU time and client count.
	RedisAddr string
	// Strict decodes every frame with the protocol's strict decoders.
	Strict bool
	// PerChild is the most sockets one client process holds.
	PerChild int
	// DialConcurrency bounds connection attempts in flight per child.
	DialConcurrency int
	// Token authenticates the clients.
	Token string
	// Heartbeat is the bridge's idle heartbeat in the streaming scenarios;
	// IdleHeartbeat in the idle scenario (longer than the idle window, so
	// that the window sits between heartbeats).
	Heartbeat, IdleHeartbeat time.Duration
	// Settle is the pause between connecting and the idle measurement;
	// IdleWindow the span over which idle CPU is measured.
	Settle, IdleWindow time.Duration
	// Drain bounds the wait for subscribers to catch up after emitting.
	Drain time.Duration
	// ConnectTimeout bounds the connect phase.
	ConnectTimeout time.Duration
	// ServerLog receives the servers' stderr; Progress the generator's
	// progress lines.
	ServerLog, Progress io.Writer
}

// DefaultConfig returns the defaults for exe.
func DefaultConfig(exe string) Config {
	return Config{
		Exe:             exe,
		Targets:         []string{report.TargetBridge, report.TargetBaseline, report.TargetRaw},
		Store:           "mem",
		PerChild:        10_000,
		DialConcurrency: 64,
		Token:           "bench",
		Heartbeat:       15 * time.Second,
		IdleHeartbeat:   60 * time.Second,
		Settle:          2 * time.Second,
		IdleWindow:      5 * time.Second,
		Drain:           15 * time.Second,
		ConnectTimeout:  90 * time.Second,
		ServerLog:       io.Discard,
		Progress:        io.Discard,
	}
}

// Spec is one scenario instance.
type Spec struct {
	Name        string
	Kind        string
	Transport   string
	Subscribers int
	Tasks       int
	Rate        float64
	Duration    time.Duration
	Drops       int
	// Concurrency and PollTasks are the http scenario's.
	Concurrency int
	PollTasks   int
}

// EventsPerTask is how many events the scenario emits to each task.
func (s Spec) EventsPerTask() int {
	return int(s.Rate*s.Duration.Seconds() + 0.5)
}

// Kinds lists the scenario kinds in run order.
var Kinds = []string{report.KindIdle, report.KindFanout, report.KindMany, report.KindResume, report.KindHTTP}

// Overrides change the default specs from the command line; zero fields
// keep the defaults.
type Overrides struct {
	Subscribers int
	Tasks       int
	Rate        float64
	Duration    time.Duration
	Transport   string
	Drops       int
	Sizes       []int
	Concurrency int
}

// DefaultSpecs returns the specs of kind with the sizes, changed by
// o.
func DefaultSpecs(kind string, o Overrides) ([]Spec, error) {
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	pickF := func(v, def float64) float64 {
		if v > 0 {
			return v
		}
		return def
	}
	pickD := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	pickS := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	switch kind {
	case report.KindIdle:
		sizes := o.Sizes
		if len(sizes) == 0 {
			sizes = []int{1000, 5000, 15000}
		}
		transports := []string{loadclient.TransportSSE, loadclient.TransportWS}
		if o.Transport != "" {
			transports = []string{o.Transport}
		}
		var out []Spec
		for _, tr := range transports {
			for _, n := range sizes {
				out = append(out, Spec{Name: fmt.Sprintf("idle-%s-%d", tr, n), Kind: kind, Transport: tr,
					Subscribers: n, Tasks: n})
			}
		}
		return out, nil
	case report.KindFanout:
		return []Spec{{Name: "fanout", Kind: kind, Transport: pickS(o.Transport, loadclient.TransportSSE),
			Subscribers: pick(o.Subscribers, 10_000), Tasks: pick(o.Tasks, 1), Rate: pickF(o.Rate, 50),
			Duration: pickD(o.Duration, 20*time.Second)}}, nil
	case report.KindMany:
		n := pick(o.Subscribers, 5000)
		return []Spec{{Name: "many", Kind: kind, Transport: pickS(o.Transport, loadclient.TransportSSE),
			Subscribers: n, Tasks: pick(o.Tasks, n), Rate: pickF(o.Rate, 1),
			Duration: pickD(o.Duration, 20*time.Second)}}, nil
	case report.KindResume:
		return []Spec{{Name: "resume", Kind: kind, Transport: pickS(o.Transport, TransportMix),
			Subscribers: pick(o.Subscribers, 1500), Tasks: pick(o.Tasks, 150), Rate: pickF(o.Rate, 10),
			Duration: pickD(o.Duration, 15*time.Second), Drops: pick(o.Drops, 2)}}, nil
	case report.KindHTTP:
		return []Spec{{Name: "http", Kind: kind, Concurrency: pick(o.Concurrency, 64),
			Duration: pickD(o.Duration, 5*time.Second), PollTasks: pick(o.Tasks, 100)}}, nil
	}
	return nil, fmt.Errorf("scenario: unknown scenario %q (%s)", kind, strings.Join(Kinds, ", "))
}

// SmokeSpecs returns every scenario at a small size, for bench-smoke: a
// whole run against all targets takes well under two minutes.
func SmokeSpecs() []Spec {
	return []Spec{
		{Name: "idle-sse-200", Kind: report.KindIdle, Transport: loadclient.TransportSSE, Subscribers: 200, Tasks: 200},
		{Name: "idle-ws-200", Kind: report.KindIdle, Transport: loadclient.TransportWS, Subscribers: 200, Tasks: 200},
		{Name: "fanout", Kind: report.KindFanout, Transport: TransportMix, Subscribers: 300, Tasks: 1, Rate: 50, Duration: 2 * time.Second},
		{Name: "many", Kind: report.KindMany, Transport: TransportMix, Subscribers: 300, Tasks: 300, Rate: 2, Duration: 2 * time.Second},
		{Name: "resume", Kind: report.KindResume, Transport: TransportMix, Subscribers: 150, Tasks: 15, Rate: 20, Duration: 3 * time.Second, Drops: 2},
		{Name: "http", Kind: report.KindHTTP, Concurrency: 8, Duration: time.Second, PollTasks: 10},
	}
}

// SmokeConfig shortens the pauses of cfg for bench-smoke and turns on
// strict decoding.
func SmokeConfig(cfg Config) Config {
	cfg.Strict = true
	cfg.Settle = 300 * time.Millisecond
	cfg.IdleWindow = 500 * time.Millisecond
	cfg.Drain = 10 * time.Second
	cfg.ConnectTimeout = 30 * time.Second
	return cfg
}
