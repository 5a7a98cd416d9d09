package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// table is a rendered scenario: a header and rows of cells.
type table struct {
	head []string
	rows [][]string
}

func (t table) writeText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(t.head, "\t")+"\t")
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
}

func (t table) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(t.head, " | "))
	seps := make([]string, len(t.head))
	for i := range seps {
		seps[i] = "---:"
	}
	seps[0] = "---"
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
}

func ms(us uint64) string { return strconv.FormatFloat(float64(us)/1000, 'f', 1, 64) }

func kib(b float64) string { return strconv.FormatFloat(b/1024, 'f', 1, 64) }

func count(n float64) string {
	switch {
	case n >= 1e6:
		return strconv.FormatFloat(n/1e6, 'f', 2, 64) + "M"
	case n >= 1e4:
		return strconv.FormatFloat(n/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(n, 'f', 0, 64)
}

func secs(d Duration) string {
	return strconv.FormatFloat(time.Duration(d).Seconds(), 'f', 2, 64)
}

func ratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "x"
}

func problems(r *Run) string {
	if len(r.Problems) == 0 {
		return "ok"
	}
	return strings.Join(r.Problems, "; ")
}

func scenarioTable(s *Scenario) table {
	var t table
	switch s.Kind {
	case KindIdle:
		redis := false
		for i := range s.Runs {
			redis = redis || s.Runs[i].RedisClientsAfter > 0
		}
		t.head = []string{"target", "conns", "RSS/conn KiB", "goroutines/conn", "idle CPU ms/s"}
		if redis {
			t.head = append(t.head, "redis idle CPU ms/s", "redis conns")
		}
		t.head = append(t.head, "status")
		for i := range s.Runs {
			r := &s.Runs[i]
			idle := "n/a"
			if r.IdleWindow > 0 {
				idle = strconv.FormatFloat(float64(r.IdleCPU)/1e6/time.Duration(r.IdleWindow).Seconds(), 'f', 2, 64)
			}
			row := []string{r.Target, strconv.Itoa(r.Connected), kib(r.RSSPerConn),
				strconv.FormatFloat(r.GoroutinesPerConn, 'f', 2, 64), idle}
			if redis {
				redisIdle := "n/a"
				if r.IdleWindow > 0 {
					redisIdle = strconv.FormatFloat(float64(r.IdleRedisCPU)/1e6/time.Duration(r.IdleWindow).Seconds(), 'f', 2, 64)
				}
				row = append(row, redisIdle, strconv.Itoa(r.RedisClientsAfter))
			}
			t.rows = append(t.rows, append(row, problems(r)))
		}
	case KindHTTP:
		t.head = []string{"target", "load", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "status"}
		for i := range s.Runs {
			r := &s.Runs[i]
			for _, h := range r.HTTP {
				cpu := "n/a"
				if h.Requests > 0 {
					cpu = strconv.FormatFloat(float64(h.ServerCPU)/1e3/float64(h.Requests), 'f', 1, 64)
				}
				t.rows = append(t.rows, []string{r.Target, h.Kind, count(h.RPS), ms(h.LatencyUs.P50),
					ms(h.LatencyUs.P99), cpu, problems(r)})
			}
		}
	default:
		t = streamTable(s)
	}
	return t
}

// streamTable is the table of the streaming scenarios: one row per target.
func streamTable(s *Scenario) table {
	var t table
	redis := false
	for i := range s.Runs {
		redis = redis || s.Runs[i].RedisClientsAfter > 0
	}
	t.head = []string{"target", "subs", "delivered", "expected", "deliveries/s", "p50 ms", "p90 ms",
		"p99 ms", "max ms", "emit lag ms", "server CPU s", "client CPU s", "deliveries/CPU-s", "gaps", "dups", "reconnects"}
	if redis {
		t.head = append(t.head, "redis conns")
	}
	t.head = append(t.head, "status")
	for i := range s.Runs {
		r := &s.Runs[i]
		cpu := secs(r.ServerCPU)
		if r.RedisCPU > 0 {
			cpu += " (+redis " + secs(r.RedisCPU) + ")"
		}
		row := []string{r.Target, strconv.Itoa(r.Connected), count(float64(r.Events)),
			count(float64(r.Expected)), count(r.DeliveredPerSec), ms(r.LatencyUs.P50), ms(r.LatencyUs.P90),
			ms(r.LatencyUs.P99), ms(r.LatencyUs.Max), ms(uint64(time.Duration(r.EmitMaxLag) / time.Microsecond)),
			cpu, secs(r.ClientCPU), count(r.DeliveriesPerCPUSec),
			strconv.FormatUint(r.Gaps, 10), strconv.FormatUint(r.Dups, 10),
			strconv.FormatUint(r.Reconnects, 10)}
		if redis {
			row = append(row, strconv.Itoa(r.RedisClientsAfter))
		}
		t.rows = append(t.rows, append(row, problems(r)))
	}
	return t
}

// tables returns a scenario's tables, each with its caption.
func tables(s *Scenario) []captioned {
	if s.Kind == KindScale || s.Kind == KindScaleMany {
		return scaleTables(s)
	}
	return []captioned{{"", scenarioTable(s)}}
}

// Title describes a scenario's parameters in one line.
func (s *Scenario) Title() string {
	p := s.Params
	var parts []string
	switch s.Kind {
	case KindIdle:
		parts = append(parts, fmt.Sprintf("%d idle %s connections", p.Subscribers, p.Transport))
	case KindHTTP:
		parts = append(parts, fmt.Sprintf("%d connections, %s per load", p.Concurrency, time.Duration(p.Duration)))
	case KindScale, KindScaleMany:
		parts = append(parts, scaleTitle(p))
	default:
		parts = append(parts, fmt.Sprintf("%d %s subscribers on %d tasks, %g events/s per task for %s",
			p.Subscribers, p.Transport, p.Tasks, p.Rate, time.Duration(p.Duration)))
		if p.Drops > 0 {
			parts = append(parts, fmt.Sprintf("%d drops per subscriber", p.Drops))
		}
	}
	parts = append(parts, "store "+p.Store)
	return s.Name + ": " + strings.Join(parts, ", ")
}

// RenderText writes every scenario as an aligned table with its ratios.
func RenderText(w io.Writer, f *File) {
	m := f.Meta
	fmt.Fprintf(w, "%s on %s (%s, %d cores), load before %.2f after %.2f\n\n",
		m.Date.Format("2006-01-02 15:04 MST"), m.Host, m.CPU, m.Cores, m.LoadBefore[0], m.LoadAfter[0])
	for i := range f.Scenarios {
		s := &f.Scenarios[i]
		fmt.Fprintln(w, s.Title())
		for _, c := range tables(s) {
			if c.caption != "" {
				fmt.Fprintln(w, c.caption)
			}
			c.t.writeText(w)
		}
		for _, n := range scaleNotes(s) {
			fmt.Fprintf(w, "  %s\n", n)
		}
		for _, r := range s.Ratios {
			fmt.Fprintf(w, "  %-50s %s (%s is better)\n", r.Name, ratio(r.Value), r.Better)
		}
		fmt.Fprintln(w)
	}
}

// RenderMarkdown writes the machine line, every scenario's table and its
// ratios as Markdown.
func RenderMarkdown(w io.Writer, f *File) { RenderMarkdownWith(w, f, nil) }

// RenderMarkdownWith is RenderMarkdown with a note under each scenario's
// title where note returns one (nil: none), such as that a later run
// supersedes it.
func RenderMarkdownWith(w io.Writer, f *File, note func(*Scenario) string) {
	m := f.Meta
	fmt.Fprintf(w, "Measured %s on `%s`: %s, %d cores, %d MB RAM, Linux %s, %s. "+
		"Load average (1 min) %.2f before and %.2f after the run; server and clients share the cores.\n\n",
		m.Date.UTC().Format("2006-01-02 15:04 UTC"), m.Host, m.CPU, m.Cores, m.MemTotalMB, m.Kernel,
		m.GoVersion, m.LoadBefore[0], m.LoadAfter[0])
	if len(m.Args) > 0 {
		commit := ""
		if m.Commit != "" {
			commit = " at commit " + m.Commit
		}
		fmt.Fprintf(w, "Command: `tbload %s`%s\n\n", strings.Join(m.Args, " "), commit)
	}
	for i := range f.Scenarios {
		s := &f.Scenarios[i]
		fmt.Fprintf(w, "#### %s\n\n", s.Title())
		if note != nil {
			if n := note(s); n != "" {
				fmt.Fprintf(w, "%s\n\n", n)
			}
		}
		for j, c := range tables(s) {
			if j > 0 {
				fmt.Fprintln(w)
			}
			if c.caption != "" {
				fmt.Fprintf(w, "%s\n\n", c.caption)
			}
			c.t.writeMarkdown(w)
		}
		if notes := scaleNotes(s); len(notes) > 0 {
			fmt.Fprintln(w)
			for _, n := range notes {
				fmt.Fprintf(w, "- %s\n", n)
			}
		}
		if len(s.Ratios) > 0 {
			fmt.Fprintln(w)
			for _, r := range s.Ratios {
				fmt.Fprintf(w, "- %s: **%s** (%s is better)\n", r.Name, ratio(r.Value), r.Better)
			}
		}
		fmt.Fprintln(w)
	}
}
