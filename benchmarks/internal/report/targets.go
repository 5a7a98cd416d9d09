package report

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Verdict is a target's outcome.
type Verdict int

// The verdicts. NotJudged is a target the results cannot decide, for
// example a growth target with only one data point.
const (
	NotMet Verdict = iota
	Met
	NotJudged
)

// String returns "yes", "no" or "not judged".
func (v Verdict) String() string {
	switch v {
	case Met:
		return "yes"
	case NotJudged:
		return "not judged"
	}
	return "no"
}

func verdict(ok bool) Verdict {
	if ok {
		return Met
	}
	return NotMet
}

// Which of the project's goals a target belongs to: the streaming goals set
// with the load generator (idle memory, fan-out, many tasks, resume) and
// the later performance goals (request path, Redis round trips, many
// instances).
const (
	SetByBenchmarks  = "streaming goals"
	SetByPerformance = "performance goals"
)

// Check is one target, worded exactly as the goal that set it, evaluated
// against measured results. No tolerance is added to a target: "no worse"
// means a ratio of at least 1, "0" means 0. A target about growth ("do not
// grow", "2x today's") needs two data points and is NotJudged with one.
type Check struct {
	SetBy   string
	Target  string
	Want    string
	Got     string
	Verdict Verdict
}

// Checks evaluates the targets that the results files can answer: fanout,
// idle (15k), many, resume, http and scale, per store. Targets whose
// scenario is missing from the files are left out. before holds results of
// a run before a change, on the same machine; targets stated as growth over
// "today" are judged against it, and not judged without it.
//
// A scenario that a later run in files supersedes (Superseded) decides
// nothing.
func Checks(files []*File, before []*File) []Check {
	old := Superseded(files)
	current := func(s *Scenario) bool { _, superseded := old[s]; return !superseded }
	var out []Check
	for _, f := range files {
		for i := range f.Scenarios {
			if s := &f.Scenarios[i]; current(s) {
				out = append(out, scenarioChecks(s)...)
			}
		}
	}
	out = append(out, redisConnGrowth(files, current)...)
	out = append(out, httpGrowth(files, before, current)...)
	return out
}

func scenarioChecks(s *Scenario) []Check {
	br, bl, raw := s.Run(TargetBridge), s.Run(TargetBaseline), s.Run(TargetRaw)
	if br == nil {
		return nil
	}
	store := s.Params.Store
	name := func(what string) string { return fmt.Sprintf("%s (%s): %s", s.Name, store, what) }
	var out []Check
	add := func(setBy, target, want, got string, v Verdict) {
		out = append(out, Check{SetBy: setBy, Target: name(target), Want: want, Got: got, Verdict: v})
	}
	switch s.Kind {
	case KindFanout:
		add(SetByBenchmarks, "every delivery within the run", "all delivered, no gap or duplicate",
			fmt.Sprintf("%d of %d, %d gaps, %d dups", br.Events, br.Expected, br.Gaps, br.Dups),
			verdict(br.Expected > 0 && br.Events == br.Expected && br.Missing == 0 && br.Gaps == 0 && br.Dups == 0))
		if raw != nil {
			r := div(br.DeliveredPerSec, raw.DeliveredPerSec)
			add(SetByBenchmarks, "delivered rate vs raw", ">= 0.80x", ratio(r), verdict(r >= 0.8))
			p := div(float64(br.LatencyUs.P99), float64(raw.LatencyUs.P99))
			add(SetByBenchmarks, "p99 vs raw", "<= 1.5x", ratio(p), verdict(p <= 1.5))
		}
		if bl != nil {
			want := 2.0
			if store == "redis" {
				want = 10
			}
			e := div(br.DeliveriesPerCPUSec, bl.DeliveriesPerCPUSec)
			add(SetByBenchmarks, "deliveries per CPU-second vs baseline", fmt.Sprintf(">= %gx", want), ratio(e), verdict(e >= want))
		}
	case KindIdle:
		if s.Params.Subscribers < 15_000 {
			return nil
		}
		limit, stretch := 8.0, 4.0
		if s.Params.Transport == "ws" {
			limit, stretch = 12, 8
		}
		kibPer := br.RSSPerConn / 1024
		add(SetByBenchmarks, "RSS per idle connection", fmt.Sprintf("<= %g KiB (stretch %g)", limit, stretch),
			fmt.Sprintf("%.1f KiB", kibPer), verdict(kibPer <= limit))
		cpu := time.Duration(br.IdleCPU)
		add(SetByBenchmarks, "server CPU between heartbeats", "0",
			fmt.Sprintf("%s over %s", cpu, time.Duration(br.IdleWindow)), verdict(cpu == 0))
	case KindMany:
		p99 := float64(br.LatencyUs.P99) / 1000
		add(SetByBenchmarks, "p99", "< 15 ms", fmt.Sprintf("%.1f ms", p99), verdict(p99 < 15))
		if bl != nil {
			e := div(br.DeliveriesPerCPUSec, bl.DeliveriesPerCPUSec)
			if store == "redis" {
				add(SetByBenchmarks, "CPU (server + Redis) per delivery vs baseline", ">= 5x less", ratio(e)+" less", verdict(e >= 5))
			} else {
				add(SetByBenchmarks, "deliveries per CPU-second vs baseline", "no worse than the baseline (>= 1.00x)", ratio(e), verdict(e >= 1))
			}
		}
	case KindResume:
		add(SetByBenchmarks, "gaps and duplicates across reconnects", "0 and 0",
			fmt.Sprintf("%d and %d (%d reconnects)", br.Gaps, br.Dups, br.Reconnects),
			verdict(br.Gaps == 0 && br.Dups == 0 && br.Reconnects > 0 && br.Missing == 0))
	case KindHTTP:
		if store != "mem" {
			return out
		}
		create, poll, bare := br.httpRPS("create"), br.httpRPS("poll"), br.httpRPS("bare")
		c := div(create, bare)
		add(SetByPerformance, "create vs bare Fiber JSON", ">= 0.75x", ratio(c), verdict(c >= 0.75))
		if bl != nil {
			cb := div(create, bl.httpRPS("create"))
			add(SetByPerformance, "create vs the baseline's create", ">= 1.2x", ratio(cb), verdict(cb >= 1.2))
		}
		p := div(poll, bare)
		add(SetByPerformance, "poll vs bare Fiber JSON", ">= 0.9x", ratio(p), verdict(p >= 0.9))
	case KindScale:
		if s.Params.Subscribers < 100_000 {
			return nil
		}
		held := br.Connected
		stop := ""
		if br.Scale != nil && br.Scale.StopReason != "" {
			stop = "; stopped: " + br.Scale.StopReason
		}
		add(SetByPerformance, "concurrent idle streams on one machine (SSE and WebSocket, several instances, one Redis)",
			"100,000", fmt.Sprintf("%d held over %d instances, %d failed%s", held, s.Params.Instances, br.ConnectFailures, stop),
			verdict(held >= 100_000 && br.ConnectFailures == 0 && stop == ""))
	}
	return out
}

// redisConnGrowth judges "a Redis connection count that does not grow with
// subscribers" (many, on Redis) from the many runs at different sizes; one
// size is one data point and decides nothing.
func redisConnGrowth(files []*File, current func(*Scenario) bool) []Check {
	type point struct{ subs, conns int }
	var pts []point
	for _, f := range files {
		for i := range f.Scenarios {
			s := &f.Scenarios[i]
			if s.Kind != KindMany || s.Params.Store != "redis" || !current(s) {
				continue
			}
			if br := s.Run(TargetBridge); br != nil && br.Connected > 0 {
				pts = append(pts, point{br.Connected, br.RedisClientsAfter})
			}
		}
	}
	if len(pts) == 0 {
		return nil
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].subs < pts[j].subs })
	lo, hi := pts[0], pts[len(pts)-1]
	c := Check{SetBy: SetByBenchmarks, Target: "many (redis): Redis connections", Want: "do not grow with subscribers"}
	if lo.subs == hi.subs {
		c.Got = fmt.Sprintf("%d at %d subscribers, one size only", hi.conns, hi.subs)
		c.Verdict = NotJudged
		return []Check{c}
	}
	c.Got = fmt.Sprintf("%d at %d subscribers, %d at %d", lo.conns, lo.subs, hi.conns, hi.subs)
	c.Verdict = verdict(hi.conns <= lo.conns)
	return []Check{c}
}

// httpGrowth judges "on Redis: create >= 2x today's req/s" against a run
// before the change on the same machine.
func httpGrowth(files, before []*File, current func(*Scenario) bool) []Check {
	find := func(fs []*File) (*File, float64) {
		for _, f := range fs {
			for i := range f.Scenarios {
				s := &f.Scenarios[i]
				if s.Kind != KindHTTP || s.Params.Store != "redis" || !current(s) {
					continue
				}
				if br := s.Run(TargetBridge); br != nil {
					return f, br.httpRPS("create")
				}
			}
		}
		return nil, 0
	}
	af, after := find(files)
	if af == nil {
		return nil
	}
	c := Check{SetBy: SetByPerformance, Target: "http (redis): create throughput", Want: ">= 2x the req/s before the change"}
	superseded := Superseded(before) // of the runs before, the latest
	current = func(s *Scenario) bool { _, old := superseded[s]; return !old }
	bf, prev := find(before)
	switch {
	case bf == nil:
		c.Got = fmt.Sprintf("%s req/s; no run before the change to compare with", count(after))
		c.Verdict = NotJudged
	case bf.Meta.Host != af.Meta.Host || bf.Meta.CPU != af.Meta.CPU || bf.Meta.Cores != af.Meta.Cores:
		c.Got = fmt.Sprintf("%s req/s; the run before the change was on another machine", count(after))
		c.Verdict = NotJudged
	default:
		r := div(after, prev)
		c.Got = fmt.Sprintf("%s -> %s req/s (%s)", count(prev), count(after), ratio(r))
		c.Verdict = verdict(r >= 2)
	}
	return []Check{c}
}

// MicroAllocCheck reads go test -bench output of the micro benchmarks and
// checks the bridge's fan-out: allocations per delivered event must not grow
// with subscribers (0 per subscriber). It compares the allocations of one
// event (allocs/delivery times subscribers) at 1 subscriber and at the most
// subscribers measured; the difference divided by the added subscribers is
// the allocation per subscriber per event.
func MicroAllocCheck(r io.Reader) []Check {
	type point struct {
		subs     int
		perEvent float64
	}
	byBench := map[string][]point{}
	var order []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.Contains(f[0], "/bridge/subs=") {
			continue
		}
		name := strings.TrimPrefix(strings.SplitN(f[0], "/", 2)[0], "Benchmark")
		subsText := f[0][strings.Index(f[0], "subs=")+len("subs="):]
		if i := strings.IndexByte(subsText, '-'); i >= 0 {
			subsText = subsText[:i]
		}
		subs, err := strconv.Atoi(subsText)
		if err != nil || subs < 1 {
			continue
		}
		for i := 1; i < len(f); i++ {
			if f[i] != "allocs/delivery" {
				continue
			}
			v, err := strconv.ParseFloat(f[i-1], 64)
			if err != nil {
				continue
			}
			if _, ok := byBench[name]; !ok {
				order = append(order, name)
			}
			byBench[name] = append(byBench[name], point{subs, v * float64(subs)})
		}
	}
	var out []Check
	for _, name := range order {
		pts := byBench[name]
		sort.Slice(pts, func(i, j int) bool { return pts[i].subs < pts[j].subs })
		lo, hi := pts[0], pts[len(pts)-1]
		c := Check{SetBy: SetByBenchmarks, Target: name + " (micro): allocations per subscriber per delivered event", Want: "0"}
		if lo.subs == hi.subs {
			c.Got = fmt.Sprintf("%.1f allocations per event at %d subscribers, one size only", hi.perEvent, hi.subs)
			c.Verdict = NotJudged
		} else {
			per := (hi.perEvent - lo.perEvent) / float64(hi.subs-lo.subs)
			c.Got = fmt.Sprintf("%.4f (%.1f allocations per event at %s, %.1f at %d; whole process)",
				per, lo.perEvent, subscribers(lo.subs), hi.perEvent, hi.subs)
			c.Verdict = verdict(per <= 0)
		}
		out = append(out, c)
	}
	return out
}

func subscribers(n int) string {
	if n == 1 {
		return "1 subscriber"
	}
	return strconv.Itoa(n) + " subscribers"
}

// RenderChecks writes the checks as a Markdown table.
func RenderChecks(w io.Writer, checks []Check) {
	t := table{head: []string{"target", "set by", "wanted", "measured", "met"}}
	for _, c := range checks {
		t.rows = append(t.rows, []string{c.Target, c.SetBy, c.Want, c.Got, c.Verdict.String()})
	}
	t.writeMarkdown(w)
}
