package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

// ScaleRun is what the scale scenarios measure beyond a Run's totals: each
// bridge instance, each connect stage, and the machine limits that bound
// how many connections one box holds.
type ScaleRun struct {
	// Instances has one entry per bridge process, in order.
	Instances []InstanceRun `json:"instances"`
	// Stages has one entry per connect stage: the streams held after it.
	Stages []StageRun `json:"stages,omitempty"`
	// RedisClients is redis-server's connected_clients while the streams
	// were held: every instance's pool and change-feed subscription, the
	// emitter's pool and the generator's own sampling connection.
	RedisClients int `json:"redisClients"`
	// Limits were read before the run, Peak with the most streams held.
	Limits measure.Kernel `json:"limits"`
	Peak   measure.Kernel `json:"peak"`
	// Preflight compares what the plan needs with what the machine has.
	Preflight []LimitCheck `json:"preflight,omitempty"`
	// Tuned lists the sysctls the run raised (tbload -tune-kernel), as
	// "name: old -> new".
	Tuned []string `json:"tuned,omitempty"`
	// StopReason says which limit stopped the run short of the wanted
	// streams; empty when every stream connected.
	StopReason string `json:"stopReason,omitempty"`
	// EmitWanted is how many appends per second the emission asked for
	// (0: all at once) and EmitterCPU the emitter process's CPU over it.
	EmitWanted float64  `json:"emitWanted,omitempty"`
	EmitterCPU Duration `json:"emitterCpu,omitempty"`
}

// InstanceRun is one bridge process of a scale scenario.
type InstanceRun struct {
	PID  int    `json:"pid"`
	Addr string `json:"addr"`
	// Streams is how many streams it held.
	Streams int `json:"streams"`
	// RSS and goroutines after a forced GC, before the first stream
	// connected and with every stream held.
	RSSBefore         uint64  `json:"rssBefore"`
	RSSAfter          uint64  `json:"rssAfter"`
	GoroutinesBefore  int     `json:"goroutinesBefore"`
	GoroutinesAfter   int     `json:"goroutinesAfter"`
	RSSPerConn        float64 `json:"rssPerConn"`
	GoroutinesPerConn float64 `json:"goroutinesPerConn"`
	// FDs is how many files it had open with every stream held.
	FDs int `json:"fds"`
	// RedisPoolConns is its Redis client's pool size then.
	RedisPoolConns int `json:"redisPoolConns"`
	// IdleCPU is its CPU over the run's IdleWindow; ServerCPU over the
	// emission, from its start until every client had its last event.
	IdleCPU   Duration `json:"idleCpu"`
	ServerCPU Duration `json:"serverCpu"`
	// Exited says how the process ended when it died during the run.
	Exited string `json:"exited,omitempty"`
}

// StageRun is the state after one connect stage.
type StageRun struct {
	// Wanted is how many streams should be held after the stage,
	// Connected how many are, Failed how many of the stage's did not
	// connect.
	Wanted    int `json:"wanted"`
	Connected int `json:"connected"`
	Failed    int `json:"failed"`
	// ConnectTime is how long the stage's connects took.
	ConnectTime Duration `json:"connectTime"`
	// RSS and Goroutines are summed over the instances (after a GC);
	// RedisClients is redis-server's connected_clients.
	RSS          uint64 `json:"rss"`
	Goroutines   int    `json:"goroutines"`
	RedisClients int    `json:"redisClients"`
}

// LimitCheck is one machine limit against what a scale plan needs.
type LimitCheck struct {
	// Name says what is limited, e.g. "open files per bridge instance".
	Name string `json:"name"`
	// Sysctl is the setting that raises it; empty when root cannot.
	Sysctl string `json:"sysctl,omitempty"`
	Have   int64  `json:"have"`
	Need   int64  `json:"need"`
	OK     bool   `json:"ok"`
}

// captioned is a table with a caption line above it ("" for none).
type captioned struct {
	caption string
	t       table
}

func mib(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

func msPerSec(cpu, window Duration) string {
	if window <= 0 {
		return "n/a"
	}
	return strconv.FormatFloat(float64(cpu)/1e6/time.Duration(window).Seconds(), 'f', 2, 64)
}

// scaleTables renders a scale scenario: per instance, per stage and (for
// the broadcast) the one event.
func scaleTables(s *Scenario) []captioned {
	var out []captioned
	for i := range s.Runs {
		r := &s.Runs[i]
		if r.Scale == nil {
			continue
		}
		sc := r.Scale
		if s.Kind == KindScaleMany {
			out = append(out, captioned{"", streamTable(s)})
			it := table{head: []string{"instance", "streams", "server CPU s", "RSS MiB", "goroutines", "Redis pool conns", "status"}}
			for j, in := range sc.Instances {
				it.rows = append(it.rows, []string{strconv.Itoa(j + 1), strconv.Itoa(in.Streams), secs(in.ServerCPU),
					mib(in.RSSAfter), strconv.Itoa(in.GoroutinesAfter), strconv.Itoa(in.RedisPoolConns), exitedOr(in.Exited)})
			}
			out = append(out, captioned{"Per instance:", it})
			continue
		}
		it := table{head: []string{"instance", "streams", "RSS/conn KiB", "goroutines/conn", "open fds",
			"Redis pool conns", "idle CPU ms/s", "CPU for the event ms", "status"}}
		var streams, fds, pool, gBefore, gAfter int
		var rssDelta float64
		var idle, cpu Duration
		for j, in := range sc.Instances {
			it.rows = append(it.rows, []string{strconv.Itoa(j + 1), strconv.Itoa(in.Streams), kib(in.RSSPerConn),
				strconv.FormatFloat(in.GoroutinesPerConn, 'f', 3, 64), strconv.Itoa(in.FDs), strconv.Itoa(in.RedisPoolConns),
				msPerSec(in.IdleCPU, r.IdleWindow), ms(uint64(time.Duration(in.ServerCPU) / time.Microsecond)), exitedOr(in.Exited)})
			streams += in.Streams
			fds += in.FDs
			pool += in.RedisPoolConns
			gBefore += in.GoroutinesBefore
			gAfter += in.GoroutinesAfter
			rssDelta += float64(in.RSSAfter) - float64(in.RSSBefore)
			idle += in.IdleCPU
			cpu += in.ServerCPU
		}
		perConn, gPerConn := 0.0, 0.0
		if streams > 0 {
			perConn, gPerConn = rssDelta/float64(streams), float64(gAfter-gBefore)/float64(streams)
		}
		it.rows = append(it.rows, []string{"all", strconv.Itoa(streams), kib(perConn), strconv.FormatFloat(gPerConn, 'f', 3, 64),
			strconv.Itoa(fds), strconv.Itoa(pool), msPerSec(idle, r.IdleWindow), ms(uint64(time.Duration(cpu) / time.Microsecond)), ""})
		out = append(out, captioned{"Per instance, with every stream held (RSS and goroutines after a forced GC; idle CPU over " +
			time.Duration(r.IdleWindow).String() + " between heartbeats):", it})

		st := table{head: []string{"streams wanted", "held", "failed", "connect s", "server RSS MiB", "server goroutines", "Redis connections"}}
		for _, g := range sc.Stages {
			st.rows = append(st.rows, []string{strconv.Itoa(g.Wanted), strconv.Itoa(g.Connected), strconv.Itoa(g.Failed),
				secs(g.ConnectTime), mib(g.RSS), strconv.Itoa(g.Goroutines), strconv.Itoa(g.RedisClients)})
		}
		out = append(out, captioned{"Connect stages (server figures summed over the instances):", st})

		bt := table{head: []string{"clients", "delivered", "p50 ms", "p99 ms", "last client ms", "gaps", "dups",
			"server CPU s", "Redis CPU s", "status"}}
		bt.rows = append(bt.rows, []string{strconv.Itoa(r.Connected), strconv.FormatUint(r.Events, 10),
			ms(r.LatencyUs.P50), ms(r.LatencyUs.P99), ms(r.LatencyUs.Max), strconv.FormatUint(r.Gaps, 10),
			strconv.FormatUint(r.Dups, 10), secs(r.ServerCPU), secs(r.RedisCPU), problems(r)})
		out = append(out, captioned{"One event to the task every stream follows (append to receive; the last client's time is the maximum):", bt})
	}
	return out
}

func exitedOr(s string) string {
	if s == "" {
		return "ok"
	}
	return "exited: " + s
}

// scaleNotes are the lines under a scale scenario's tables.
func scaleNotes(s *Scenario) []string {
	var out []string
	for i := range s.Runs {
		sc := s.Runs[i].Scale
		if sc == nil {
			continue
		}
		out = append(out, fmt.Sprintf("Redis connections in total: %d (redis-server's connected_clients with the streams held, "+
			"including the emitter's and the generator's own)", sc.RedisClients))
		if r := &s.Runs[i]; sc.EmitWanted > 0 && r.EmitAppended > 0 && r.EmitElapsed > 0 {
			el := time.Duration(r.EmitElapsed).Seconds()
			line := fmt.Sprintf("appends: %d in %.1f s, %.0f/s of the %.0f/s wanted (max lag %s)", r.EmitAppended, el,
				float64(r.EmitAppended)/el, sc.EmitWanted, time.Duration(r.EmitMaxLag).Round(time.Millisecond))
			per := func(d Duration) string {
				return strconv.FormatFloat(float64(time.Duration(d)/time.Microsecond)/float64(r.EmitAppended), 'f', 0, 64)
			}
			line += fmt.Sprintf("; emitter CPU %s s (%s µs per append), Redis CPU %s s (%s µs per append, the instances' reads included)",
				secs(sc.EmitterCPU), per(sc.EmitterCPU), secs(r.RedisCPU), per(r.RedisCPU))
			out = append(out, line)
		}
		l, p := sc.Limits, sc.Peak
		out = append(out, fmt.Sprintf("machine limits: %d open files per process (hard %d), ports %d-%d per source address, "+
			"somaxconn %d, tcp_max_syn_backlog %d, file-max %d, conntrack max %d; at the peak %d TCP sockets in use, "+
			"%d open files, %d MB of %d MB available, conntrack count %d",
			l.NoFile, l.NoFileHard, l.PortLow, l.PortHigh, l.SoMaxConn, l.SynBacklog, l.FileMax, l.ConntrackMax,
			p.TCPInUse, p.FilesOpen, p.MemAvailableMB, p.MemTotalMB, p.ConntrackCount))
		for _, c := range sc.Preflight {
			if !c.OK {
				out = append(out, fmt.Sprintf("limit too low for the plan: %s: %d, needs %d", c.Name, c.Have, c.Need))
			}
		}
		for _, t := range sc.Tuned {
			out = append(out, "raised for the run: "+t)
		}
		if sc.StopReason != "" {
			out = append(out, fmt.Sprintf("stopped at %d of %d streams: %s", s.Runs[i].Connected, s.Runs[i].Subscribers, sc.StopReason))
		}
	}
	return out
}

// scaleTitle describes a scale scenario's parameters.
func scaleTitle(p Params) string {
	var b strings.Builder
	if p.Tasks > 1 {
		fmt.Fprintf(&b, "%d tasks x %d %s subscribers (%d streams), %g events/s per task for %s",
			p.Tasks, p.Subscribers/max(p.Tasks, 1), p.Transport, p.Subscribers, p.Rate, time.Duration(p.Duration))
	} else {
		fmt.Fprintf(&b, "%d %s streams on one task, connected in %d stages, then one event", p.Subscribers, p.Transport, max(p.Stages, 1))
	}
	fmt.Fprintf(&b, ", over %d bridge instances", p.Instances)
	return b.String()
}
