package report

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

// Scenario kinds.
const (
	KindIdle   = "idle"
	KindFanout = "fanout"
	KindMany   = "many"
	KindResume = "resume"
	KindHTTP   = "http"
	// KindScale holds many streams over several bridge instances sharing
	// one Redis, measures them idle, then sends one event to the task they
	// all follow.
	KindScale = "scale"
	// KindScaleMany runs many tasks with a few subscribers each over
	// several bridge instances sharing one Redis, at a rate per task.
	KindScaleMany = "scale-many"
)

// Targets: the bridge, the handwritten baseline and the raw ceiling.
const (
	TargetBridge   = "bridge"
	TargetBaseline = "baseline"
	TargetRaw      = "raw"
)

// File is one run of the generator: where and when, and every scenario.
type File struct {
	Meta      Meta       `json:"meta"`
	Scenarios []Scenario `json:"scenarios"`
}

// Meta describes the machine and the run.
type Meta struct {
	Date       time.Time  `json:"date"`
	Host       string     `json:"host"`
	CPU        string     `json:"cpu"`
	Cores      int        `json:"cores"`
	MemTotalMB int        `json:"memTotalMB"`
	Kernel     string     `json:"kernel"`
	GoVersion  string     `json:"goVersion"`
	Commit     string     `json:"commit,omitempty"`
	LoadBefore [3]float64 `json:"loadBefore"`
	LoadAfter  [3]float64 `json:"loadAfter"`
	Args       []string   `json:"args"`
	Smoke      bool       `json:"smoke,omitempty"`
	Elapsed    Duration   `json:"elapsed"`
}

// Duration is a time.Duration that reads and writes as a Go duration string.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Params are a scenario's parameters.
type Params struct {
	Transport   string   `json:"transport,omitempty"`
	Subscribers int      `json:"subscribers,omitempty"`
	Tasks       int      `json:"tasks,omitempty"`
	Rate        float64  `json:"ratePerTask,omitempty"`
	Duration    Duration `json:"duration,omitempty"`
	Drops       int      `json:"drops,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
	Store       string   `json:"store"`
	// Instances and Stages are the scale scenarios': bridge processes
	// sharing the store, and steps in which the streams connect.
	Instances int `json:"instances,omitempty"`
	Stages    int `json:"stages,omitempty"`
}

// Scenario is one scenario measured against each target in one run.
type Scenario struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind"`
	Params Params  `json:"params"`
	Runs   []Run   `json:"runs"`
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Run is one target's measurement in a scenario.
type Run struct {
	Target string `json:"target"`
	Store  string `json:"store,omitempty"`

	Subscribers     int    `json:"subscribers"`
	Connected       int    `json:"connected"`
	ConnectFailures int    `json:"connectFailures"`
	Expected        uint64 `json:"expected"`
	Events          uint64 `json:"events"`
	Gaps            uint64 `json:"gaps"`
	Dups            uint64 `json:"dups"`
	Missing         uint64 `json:"missing"`
	Errors          uint64 `json:"errors"`
	ProtocolErrors  uint64 `json:"protocolErrors"`
	Reconnects      uint64 `json:"reconnects"`
	Heartbeats      uint64 `json:"heartbeats"`
	Behind          int    `json:"behind"`

	LatencyUs       measure.Summary `json:"latencyUs"`
	Elapsed         Duration        `json:"elapsed"`
	DeliveredPerSec float64         `json:"deliveredPerSec"`

	EmitAppended int      `json:"emitAppended"`
	EmitErrors   int      `json:"emitErrors"`
	EmitMaxLag   Duration `json:"emitMaxLag"`
	EmitElapsed  Duration `json:"emitElapsed"`

	ServerCPU           Duration `json:"serverCpu"`
	ClientCPU           Duration `json:"clientCpu"`
	RedisCPU            Duration `json:"redisCpu,omitempty"`
	DeliveriesPerCPUSec float64  `json:"deliveriesPerCpuSec"`
	CPUPerEventUs       float64  `json:"cpuPerEventUs"`

	RSSBefore         uint64   `json:"rssBefore"`
	RSSAfter          uint64   `json:"rssAfter"`
	GoroutinesBefore  int      `json:"goroutinesBefore"`
	GoroutinesAfter   int      `json:"goroutinesAfter"`
	RSSPerConn        float64  `json:"rssPerConn"`
	GoroutinesPerConn float64  `json:"goroutinesPerConn"`
	IdleWindow        Duration `json:"idleWindow,omitempty"`
	// IdleCPU is the server's CPU over IdleWindow; IdleRedisCPU
	// redis-server's over the same window.
	IdleCPU      Duration `json:"idleCpu,omitempty"`
	IdleRedisCPU Duration `json:"idleRedisCpu,omitempty"`

	RedisClientsBefore int `json:"redisClientsBefore,omitempty"`
	RedisClientsAfter  int `json:"redisClientsAfter,omitempty"`

	HTTP []HTTPRun `json:"http,omitempty"`

	// Scale is the scale scenarios' part: per instance, per connect stage,
	// the machine's limits and why the run stopped short, if it did.
	Scale *ScaleRun `json:"scale,omitempty"`

	ErrorSamples []string `json:"errorSamples,omitempty"`
	Problems     []string `json:"problems,omitempty"`
}

// HTTPRun is one kind of HTTP load against a target.
type HTTPRun struct {
	Kind      string          `json:"kind"`
	Requests  uint64          `json:"requests"`
	Errors    uint64          `json:"errors"`
	BadStatus uint64          `json:"badStatus"`
	RPS       float64         `json:"rps"`
	LatencyUs measure.Summary `json:"latencyUs"`
	ServerCPU Duration        `json:"serverCpu"`
}

// Check fills Problems with every reason the run is not clean: failed
// connections, errors, protocol violations, gaps, duplicates, events that
// never arrived, failed appends and failed HTTP requests.
func (r *Run) Check() {
	r.Problems = nil
	add := func(n uint64, what string) {
		if n > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(uint64(r.ConnectFailures), "connect failures")
	add(r.Errors, "errors")
	add(r.ProtocolErrors, "protocol errors")
	add(r.Gaps, "gaps")
	add(r.Dups, "duplicates")
	add(r.Missing, "missing events")
	add(uint64(r.EmitErrors), "failed appends")
	if r.Scale != nil && r.Scale.StopReason != "" {
		r.Problems = append(r.Problems, "stopped at "+strconv.Itoa(r.Connected)+" streams: "+r.Scale.StopReason)
	}
	for _, h := range r.HTTP {
		add(h.Errors, h.Kind+" request errors")
		add(h.BadStatus, h.Kind+" unexpected statuses")
		if h.Requests == 0 {
			r.Problems = append(r.Problems, h.Kind+": no successful request")
		}
	}
}

// Problems lists every problem of every run, prefixed with scenario and
// target.
func (f *File) Problems() []string {
	var out []string
	for _, s := range f.Scenarios {
		for _, r := range s.Runs {
			for _, p := range r.Problems {
				out = append(out, fmt.Sprintf("%s/%s: %s", s.Name, r.Target, p))
			}
		}
	}
	return out
}

// WriteFile writes f as indented JSON.
func (f *File) WriteFile(path string) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadFile reads a results file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	return &f, nil
}
