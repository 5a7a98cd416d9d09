package report

import (
	"encoding/json"
	"math"
)

// Ratio is one comparison between two targets of a scenario, e.g. the
// bridge's delivered rate as a fraction of the raw ceiling's. Value is NaN
// when the denominator is zero.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	// Better says which direction is good: "higher" or "lower".
	Better string `json:"better"`
}

// MarshalJSON writes NaN as null.
func (r Ratio) MarshalJSON() ([]byte, error) {
	type plain Ratio
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		type nullable struct {
			Name   string   `json:"name"`
			Value  *float64 `json:"value"`
			Better string   `json:"better"`
		}
		return json.Marshal(nullable{Name: r.Name, Better: r.Better})
	}
	return json.Marshal(plain(r))
}

// UnmarshalJSON reads null as NaN.
func (r *Ratio) UnmarshalJSON(b []byte) error {
	var in struct {
		Name   string   `json:"name"`
		Value  *float64 `json:"value"`
		Better string   `json:"better"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	r.Name, r.Better, r.Value = in.Name, in.Better, math.NaN()
	if in.Value != nil {
		r.Value = *in.Value
	}
	return nil
}

// Run returns the run of target, or nil.
func (s *Scenario) Run(target string) *Run {
	for i := range s.Runs {
		if s.Runs[i].Target == target {
			return &s.Runs[i]
		}
	}
	return nil
}

// div is a/b, NaN when b is zero (or either is NaN): no ratio to a zero.
func div(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}

// ComputeRatios fills s.Ratios from its runs.
func (s *Scenario) ComputeRatios() {
	s.Ratios = nil
	br, bl, raw := s.Run(TargetBridge), s.Run(TargetBaseline), s.Run(TargetRaw)
	add := func(name, better string, f func(a, b *Run) float64, a, b *Run) {
		if a == nil || b == nil {
			return
		}
		s.Ratios = append(s.Ratios, Ratio{Name: name, Value: f(a, b), Better: better})
	}
	rss := func(a, b *Run) float64 { return div(a.RSSPerConn, b.RSSPerConn) }
	gor := func(a, b *Run) float64 { return div(a.GoroutinesPerConn, b.GoroutinesPerConn) }
	idleCPU := func(a, b *Run) float64 { return div(float64(a.IdleCPU), float64(b.IdleCPU)) }
	rate := func(a, b *Run) float64 { return div(a.DeliveredPerSec, b.DeliveredPerSec) }
	p99 := func(a, b *Run) float64 { return div(float64(a.LatencyUs.P99), float64(b.LatencyUs.P99)) }
	p50 := func(a, b *Run) float64 { return div(float64(a.LatencyUs.P50), float64(b.LatencyUs.P50)) }
	eff := func(a, b *Run) float64 { return div(a.DeliveriesPerCPUSec, b.DeliveriesPerCPUSec) }
	switch s.Kind {
	case KindIdle:
		add("RSS per connection, bridge / baseline", "lower", rss, br, bl)
		add("RSS per connection, bridge / raw", "lower", rss, br, raw)
		add("goroutines per connection, bridge / baseline", "lower", gor, br, bl)
		add("idle CPU, bridge / baseline", "lower", idleCPU, br, bl)
	case KindFanout, KindMany, KindResume:
		add("delivered rate, bridge / raw", "higher", rate, br, raw)
		add("p50 latency, bridge / raw", "lower", p50, br, raw)
		add("p99 latency, bridge / raw", "lower", p99, br, raw)
		add("deliveries per CPU-second, bridge / baseline", "higher", eff, br, bl)
		add("p99 latency, bridge / baseline", "lower", p99, br, bl)
	case KindHTTP:
		for _, r := range []*Run{br, bl} {
			if r == nil {
				continue
			}
			bare := r.httpRPS("bare")
			for _, kind := range []string{"create", "poll"} {
				s.Ratios = append(s.Ratios, Ratio{Name: kind + " / bare Fiber JSON, " + r.Target,
					Value: div(r.httpRPS(kind), bare), Better: "higher"})
			}
		}
		if br != nil && bl != nil {
			for _, kind := range []string{"create", "poll"} {
				s.Ratios = append(s.Ratios, Ratio{Name: kind + " throughput, bridge / baseline",
					Value: div(br.httpRPS(kind), bl.httpRPS(kind)), Better: "higher"})
			}
		}
	}
}

func (r *Run) httpRPS(kind string) float64 {
	for _, h := range r.HTTP {
		if h.Kind == kind {
			return h.RPS
		}
	}
	return 0
}
