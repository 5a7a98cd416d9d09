package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Check is one of issue 8's targets evaluated against measured results.
type Check struct {
	Target string
	Want   string
	Got    string
	Met    bool
}

// Checks evaluates the targets that the given results files can answer:
// fanout, idle (15k), many and resume, per store. Targets whose scenario is
// missing from the files are left out.
func Checks(files ...*File) []Check {
	var out []Check
	for _, f := range files {
		for i := range f.Scenarios {
			out = append(out, scenarioChecks(&f.Scenarios[i])...)
		}
	}
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
	switch s.Kind {
	case KindFanout:
		out = append(out, Check{name("every delivery within the run"), "all delivered, no gap or duplicate",
			fmt.Sprintf("%d of %d, %d gaps, %d dups", br.Events, br.Expected, br.Gaps, br.Dups),
			br.Expected > 0 && br.Events == br.Expected && br.Missing == 0 && br.Gaps == 0 && br.Dups == 0})
		if raw != nil {
			r := div(br.DeliveredPerSec, raw.DeliveredPerSec)
			out = append(out, Check{name("delivered rate vs raw"), ">= 0.80x", ratio(r), r >= 0.8})
			p := div(float64(br.LatencyUs.P99), float64(raw.LatencyUs.P99))
			out = append(out, Check{name("p99 vs raw"), "<= 1.5x", ratio(p), p <= 1.5})
		}
		if bl != nil {
			want := 2.0
			if store == "redis" {
				want = 10
			}
			e := div(br.DeliveriesPerCPUSec, bl.DeliveriesPerCPUSec)
			out = append(out, Check{name("deliveries per CPU-second vs baseline"), fmt.Sprintf(">= %gx", want), ratio(e), e >= want})
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
		out = append(out, Check{name("RSS per idle connection"), fmt.Sprintf("<= %g KiB (stretch %g)", limit, stretch),
			fmt.Sprintf("%.1f KiB", kibPer), kibPer <= limit})
		cpu := time.Duration(br.IdleCPU)
		out = append(out, Check{name("server CPU between heartbeats"), "0",
			fmt.Sprintf("%s over %s", cpu, time.Duration(br.IdleWindow)), cpu == 0})
	case KindMany:
		p99 := float64(br.LatencyUs.P99) / 1000
		out = append(out, Check{name("p99"), "< 15 ms", fmt.Sprintf("%.1f ms", p99), p99 < 15})
		if bl != nil {
			e := div(br.DeliveriesPerCPUSec, bl.DeliveriesPerCPUSec)
			if store == "redis" {
				out = append(out, Check{name("CPU (server + Redis) per delivery vs baseline"), ">= 5x less", ratio(e) + " less", e >= 5})
				out = append(out, Check{name("Redis connections"), "do not grow with subscribers",
					fmt.Sprintf("%d for %d subscribers (baseline %d)", br.RedisClientsAfter, br.Connected, bl.RedisClientsAfter),
					br.RedisClientsAfter < br.Connected/10})
			} else {
				out = append(out, Check{name("deliveries per CPU-second vs baseline"), "no worse (>= 0.9x, noise)", ratio(e), e >= 0.9})
			}
		}
	case KindResume:
		out = append(out, Check{name("gaps and duplicates across reconnects"), "0 and 0",
			fmt.Sprintf("%d and %d (%d reconnects)", br.Gaps, br.Dups, br.Reconnects),
			br.Gaps == 0 && br.Dups == 0 && br.Reconnects > 0 && br.Missing == 0})
	}
	return out
}

// MicroAllocCheck reads go test -bench output of the micro benchmarks and
// checks the bridge's fan-out to 1,000 subscribers: allocations per
// delivery must be (close to) zero, i.e. nothing per subscriber.
func MicroAllocCheck(r io.Reader) []Check {
	var out []Check
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.Contains(f[0], "/bridge/subs=1000") {
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
			name := strings.TrimPrefix(strings.SplitN(f[0], "/", 2)[0], "Benchmark")
			out = append(out, Check{name + " (micro): allocations per subscriber per delivered event", "0",
				fmt.Sprintf("%.4f allocs/delivery (the event's own, shared by 1,000)", v), v < 0.05})
		}
	}
	return out
}

// RenderChecks writes the checks as a Markdown table.
func RenderChecks(w io.Writer, checks []Check) {
	t := table{head: []string{"target", "wanted", "measured", "met"}}
	for _, c := range checks {
		met := "no"
		if c.Met {
			met = "yes"
		}
		t.rows = append(t.rows, []string{c.Target, c.Want, c.Got, met})
	}
	t.writeMarkdown(w)
}
