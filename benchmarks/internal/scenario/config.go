package scenario

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
)

// Transport values that spread subscribers round robin: TransportMix over
// SSE, WebSocket and long-poll, TransportStreams over SSE and WebSocket.
const (
	TransportMix     = "mix"
	TransportStreams = "sse+ws"
)

// transportsOf returns the transports a Spec.Transport value spreads over.
func transportsOf(tr string) []string {
	switch tr {
	case TransportMix:
		return []string{loadclient.TransportSSE, loadclient.TransportWS, loadclient.TransportPoll}
	case TransportStreams:
		return []string{loadclient.TransportSSE, loadclient.TransportWS}
	}
	return []string{tr}
}

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
	// PerInstance is the most streams one bridge instance holds in the
	// scale scenarios when Spec.Instances is 0 (a process may hold at most
	// about 19,900 sockets here).
	PerInstance int
	// ScaleHeartbeat is the heartbeat and WebSocket ping interval of the
	// scale scenario's instances: longer than connecting and measuring
	// take, so that the idle window lies between heartbeats.
	ScaleHeartbeat time.Duration
	// ScaleRedisPool is the instances' Redis pool size in the scale
	// scenarios; 0 is go-redis's default (10 per core), what a host gets.
	ScaleRedisPool int
	// ScaleConnectTimeout bounds each connect stage of the scale
	// scenarios; ScaleDrain the wait for the clients to catch up.
	ScaleConnectTimeout, ScaleDrain time.Duration
	// ScaleQuiet is how long after the last stream connected the scale
	// scenario's idle window starts: longer than the streams' write
	// deadline (streaming's WriteTimeout, 10 s), which each stream's first
	// write arms and which fires once, unneeded, when it comes round.
	ScaleQuiet time.Duration
	// ScaleEmitWorkers is how many goroutines append in scale-many.
	ScaleEmitWorkers int
	// TuneKernel raises the sysctls a scale plan needs and the machine has
	// too low (root only); the results list what changed.
	TuneKernel bool
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

		PerInstance:         17_000,
		ScaleHeartbeat:      10 * time.Minute,
		ScaleConnectTimeout: 5 * time.Minute,
		ScaleDrain:          60 * time.Second,
		ScaleQuiet:          12 * time.Second,
		ScaleEmitWorkers:    32,

		ServerLog: io.Discard,
		Progress:  io.Discard,
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
	// Instances and Stages are the scale scenarios': bridge processes
	// sharing one Redis (0: enough that none holds more than
	// Config.PerInstance streams) and steps in which the streams connect.
	Instances int
	Stages    int
}

// EventsPerTask is how many events the scenario emits to each task.
func (s Spec) EventsPerTask() int {
	return int(s.Rate*s.Duration.Seconds() + 0.5)
}

// Kinds lists the scenario kinds "all" runs, in run order.
var Kinds = []string{report.KindIdle, report.KindFanout, report.KindMany, report.KindResume, report.KindHTTP}

// ScaleKinds are the multi-instance scenarios: -scenario scale runs both,
// on Redis only, and "all" leaves them out (a full-size run holds 100,000
// connections and takes the whole machine for several minutes).
var ScaleKinds = []string{report.KindScale, report.KindScaleMany}

// ScaleHold names the scale scenario without scale-many on the command
// line (-scenario scale-hold).
const ScaleHold = "scale-hold"

// IsScale reports whether kind is one of ScaleKinds.
func IsScale(kind string) bool { return kind == report.KindScale || kind == report.KindScaleMany }

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
	Instances   int
	Stages      int
}

// DefaultSpecs returns the specs of kind at the sizes their targets are
// stated for, changed by o.
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
	case report.KindScale, report.KindScaleMany, ScaleHold:
		// The streams: first all of them on one task, idle, then one event;
		// then as many on tasks of 10 subscribers each at a rate per task.
		// "scale-many" runs the second alone, ScaleHold the first.
		n := pick(o.Subscribers, 100_000)
		tasks := pick(o.Tasks, max(n/10, 1))
		tr := pickS(o.Transport, TransportStreams)
		specs := []Spec{
			{Name: "scale", Kind: report.KindScale, Transport: tr, Subscribers: n, Tasks: 1,
				Instances: o.Instances, Stages: pick(o.Stages, 4)},
			{Name: "scale-many", Kind: report.KindScaleMany, Transport: tr, Subscribers: n, Tasks: tasks,
				Rate: pickF(o.Rate, 1), Duration: pickD(o.Duration, 20*time.Second), Instances: o.Instances, Stages: 1},
		}
		switch kind {
		case report.KindScaleMany:
			specs = specs[1:]
		case ScaleHold:
			specs = specs[:1]
		}
		return specs, nil
	}
	return nil, fmt.Errorf("scenario: unknown scenario %q (%s, %s)", kind, strings.Join(Kinds, ", "), report.KindScale)
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
		// Redis only: two instances, a few hundred streams.
		{Name: "scale", Kind: report.KindScale, Transport: TransportStreams, Subscribers: 300, Tasks: 1, Instances: 2, Stages: 2},
		{Name: "scale-many", Kind: report.KindScaleMany, Transport: TransportStreams, Subscribers: 300, Tasks: 30,
			Rate: 5, Duration: 2 * time.Second, Instances: 2, Stages: 1},
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
	cfg.ScaleConnectTimeout = 30 * time.Second
	cfg.ScaleDrain = 10 * time.Second
	cfg.ScaleQuiet = 0
	return cfg
}
