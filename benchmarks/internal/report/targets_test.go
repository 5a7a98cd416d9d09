package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

func TestChecks(t *testing.T) {
	f := &File{Scenarios: []Scenario{
		{Name: "fanout", Kind: KindFanout, Params: Params{Store: "mem"}, Runs: []Run{
			{Target: TargetBridge, Events: 100, Expected: 100, DeliveredPerSec: 90, DeliveriesPerCPUSec: 300, LatencyUs: measure.Summary{P99: 140}},
			{Target: TargetBaseline, DeliveriesPerCPUSec: 100},
			{Target: TargetRaw, DeliveredPerSec: 100, LatencyUs: measure.Summary{P99: 100}},
		}},
		{Name: "idle-ws-15000", Kind: KindIdle, Params: Params{Store: "mem", Transport: "ws", Subscribers: 15_000}, Runs: []Run{
			{Target: TargetBridge, RSSPerConn: 13 * 1024, IdleWindow: Duration(5 * time.Second)},
		}},
		{Name: "idle-ws-1000", Kind: KindIdle, Params: Params{Store: "mem", Transport: "ws", Subscribers: 1000}, Runs: []Run{
			{Target: TargetBridge, RSSPerConn: 99 * 1024},
		}},
		{Name: "many", Kind: KindMany, Params: Params{Store: "redis"}, Runs: []Run{
			{Target: TargetBridge, Connected: 5000, LatencyUs: measure.Summary{P99: 20_000}, DeliveriesPerCPUSec: 500, RedisClientsAfter: 70},
			{Target: TargetBaseline, DeliveriesPerCPUSec: 100, RedisClientsAfter: 4000},
		}},
		{Name: "resume", Kind: KindResume, Params: Params{Store: "mem"}, Runs: []Run{
			{Target: TargetBridge, Reconnects: 10},
		}},
	}}
	got := map[string]Verdict{}
	for _, c := range Checks([]*File{f}, nil) {
		got[c.Target] = c.Verdict
	}
	assert.Equal(t, map[string]Verdict{
		"fanout (mem): every delivery within the run":                 Met,
		"fanout (mem): delivered rate vs raw":                         Met,
		"fanout (mem): p99 vs raw":                                    Met,
		"fanout (mem): deliveries per CPU-second vs baseline":         Met,
		"idle-ws-15000 (mem): RSS per idle connection":                NotMet,
		"idle-ws-15000 (mem): server CPU between heartbeats":          Met,
		"many (redis): p99":                                           NotMet,
		"many (redis): CPU (server + Redis) per delivery vs baseline": Met,
		"many (redis): Redis connections":                             NotJudged,
		"resume (mem): gaps and duplicates across reconnects":         Met,
	}, got, "idle below 15k connections is not a target; Redis connections at one size decide nothing")
}

func TestChecksNoTolerance(t *testing.T) {
	many := func(ratio float64) *File {
		return &File{Scenarios: []Scenario{{Name: "many", Kind: KindMany, Params: Params{Store: "mem"}, Runs: []Run{
			{Target: TargetBridge, DeliveriesPerCPUSec: 100 * ratio},
			{Target: TargetBaseline, DeliveriesPerCPUSec: 100},
		}}}}
	}
	verdictOf := func(f *File, target string) Verdict {
		for _, c := range Checks([]*File{f}, nil) {
			if c.Target == target {
				return c.Verdict
			}
		}
		t.Fatalf("no check %q", target)
		return NotJudged
	}
	const eff = "many (mem): deliveries per CPU-second vs baseline"
	assert.Equal(t, NotMet, verdictOf(many(0.92), eff), "no worse means no worse: 0.92x is worse")
	assert.Equal(t, NotMet, verdictOf(many(0.999), eff))
	assert.Equal(t, Met, verdictOf(many(1), eff))
}

func TestRedisConnectionGrowth(t *testing.T) {
	many := func(subs, conns int) *File {
		return &File{Scenarios: []Scenario{{Name: "many", Kind: KindMany, Params: Params{Store: "redis", Subscribers: subs}, Runs: []Run{
			{Target: TargetBridge, Connected: subs, RedisClientsAfter: conns},
		}}}}
	}
	find := func(files ...*File) Check {
		for _, c := range Checks(files, nil) {
			if c.Target == "many (redis): Redis connections" {
				return c
			}
		}
		t.Fatal("no Redis connections check")
		return Check{}
	}
	assert.Equal(t, NotJudged, find(many(5000, 70)).Verdict, "one size is one data point")
	assert.Equal(t, NotJudged, find(many(5000, 70), many(5000, 71)).Verdict, "two runs at one size are still one size")
	c := find(many(5000, 71), many(1000, 70))
	assert.Equal(t, NotMet, c.Verdict, "71 at 5000 against 70 at 1000 grew")
	assert.Equal(t, "70 at 1000 subscribers, 71 at 5000", c.Got)
	assert.Equal(t, Met, find(many(1000, 70), many(5000, 70)).Verdict)
}

func TestHTTPChecks(t *testing.T) {
	httpRun := func(store, host string, bridge, baseline map[string]float64) *File {
		runs := func(target string, rps map[string]float64) Run {
			r := Run{Target: target}
			for k, v := range rps {
				r.HTTP = append(r.HTTP, HTTPRun{Kind: k, RPS: v})
			}
			return r
		}
		return &File{Meta: Meta{Host: host, CPU: "cpu", Cores: 2}, Scenarios: []Scenario{{Name: "http", Kind: KindHTTP,
			Params: Params{Store: store}, Runs: []Run{runs(TargetBridge, bridge), runs(TargetBaseline, baseline)}}}}
	}
	verdicts := func(files, before []*File) map[string]Verdict {
		out := map[string]Verdict{}
		for _, c := range Checks(files, before) {
			out[c.Target] = c.Verdict
		}
		return out
	}
	mem := httpRun("mem", "vm", map[string]float64{"create": 75, "poll": 89, "bare": 100}, map[string]float64{"create": 62.5})
	assert.Equal(t, map[string]Verdict{
		"http (mem): create vs bare Fiber JSON":       Met,
		"http (mem): create vs the baseline's create": Met,
		"http (mem): poll vs bare Fiber JSON":         NotMet,
	}, verdicts([]*File{mem}, nil))

	after := httpRun("redis", "vm", map[string]float64{"create": 10_000}, nil)
	const growth = "http (redis): create throughput"
	assert.Equal(t, NotJudged, verdicts([]*File{after}, nil)[growth], "growth over today needs a run before the change")
	other := httpRun("redis", "other", map[string]float64{"create": 4000}, nil)
	assert.Equal(t, NotJudged, verdicts([]*File{after}, []*File{other})[growth], "a run on another machine decides nothing")
	assert.Equal(t, Met, verdicts([]*File{after}, []*File{httpRun("redis", "vm", map[string]float64{"create": 5000}, nil)})[growth])
	assert.Equal(t, NotMet, verdicts([]*File{after}, []*File{httpRun("redis", "vm", map[string]float64{"create": 5001}, nil)})[growth])
}

func TestScaleCheck(t *testing.T) {
	scale := func(wanted, held, failed int, stop string) *File {
		return &File{Scenarios: []Scenario{{Name: "scale", Kind: KindScale, Params: Params{Store: "redis", Subscribers: wanted, Instances: 6},
			Runs: []Run{{Target: TargetBridge, Connected: held, ConnectFailures: failed, Scale: &ScaleRun{StopReason: stop}}}}}}
	}
	checks := Checks([]*File{scale(100_000, 100_000, 0, "")}, nil)
	require.Len(t, checks, 1)
	assert.Equal(t, Met, checks[0].Verdict)
	assert.Equal(t, "100000 held over 6 instances, 0 failed", checks[0].Got)
	checks = Checks([]*File{scale(100_000, 87_000, 13_000, "file descriptors")}, nil)
	require.Len(t, checks, 1)
	assert.Equal(t, NotMet, checks[0].Verdict)
	assert.Contains(t, checks[0].Got, "stopped: file descriptors")
	assert.Empty(t, Checks([]*File{scale(300, 300, 0, "")}, nil), "a smoke-sized run is not the target")
}

func TestMicroAllocCheck(t *testing.T) {
	out := "BenchmarkFanoutSSE/bridge/subs=1-2  28903  40031 ns/op  6.000 allocs/delivery  24981 deliveries/s\n" +
		"BenchmarkFanoutSSE/bridge/subs=1000-2  81  14361008 ns/op  0.006 allocs/delivery  69633 deliveries/s  1512 B/op  7 allocs/op\n" +
		"BenchmarkFanoutSSE/baseline/subs=1000-2  81  17901420 ns/op  3.007 allocs/delivery\n" +
		"BenchmarkFanoutWS/bridge/subs=1-2  24102  45531 ns/op  6.000 allocs/delivery\n" +
		"BenchmarkFanoutWS/bridge/subs=1000-2  85  14834102 ns/op  0.0061 allocs/delivery\n" +
		"BenchmarkFanoutX/bridge/subs=1000-2  85  14834102 ns/op  0.0061 allocs/delivery\n"
	checks := MicroAllocCheck(strings.NewReader(out))
	require.Len(t, checks, 3)
	assert.Contains(t, checks[0].Target, "FanoutSSE")
	assert.Equal(t, Met, checks[0].Verdict, "6 allocations per event at 1 and at 1,000 subscribers: none per subscriber")
	assert.Equal(t, NotMet, checks[1].Verdict, "6.1 at 1,000 against 6 at 1: 0.0001 per subscriber is not 0")
	assert.Contains(t, checks[1].Got, "0.0001")
	assert.Equal(t, NotJudged, checks[2].Verdict, "one size says nothing about growth")

	var buf bytes.Buffer
	RenderChecks(&buf, checks)
	assert.Contains(t, buf.String(), "| target | set by | wanted | measured | met |")
	assert.Contains(t, buf.String(), "| no |")
}

func TestRoundTripChecks(t *testing.T) {
	out := `=== RUN   TestRoundTripsPerRoute
    roundtrips_test.go:241: Redis round trips per route (after a warm-up round):
          action           7 round trips: HMGET, HMGET, HGET, EVALSHA, EVALSHA, EVALSHA, EVALSHA
          create           1 round trips: EVALSHA
          create (repeat)  2 round trips: EVALSHA, pipeline[HMGET DEL ZREM]
          poll             2 round trips: HMGET, EVALSHA
--- PASS: TestRoundTripsPerRoute (0.02s)
`
	checks := RoundTripChecks(strings.NewReader(out))
	require.Len(t, checks, 2)
	assert.Equal(t, "http (redis): round trips per create (TestRoundTripsPerRoute)", checks[0].Target)
	assert.Equal(t, "1 (EVALSHA)", checks[0].Got)
	assert.Equal(t, Met, checks[0].Verdict)
	assert.Equal(t, NotMet, checks[1].Verdict, "two round trips per poll")

	failed := strings.Replace(out, "--- PASS", "--- FAIL", 1)
	checks = RoundTripChecks(strings.NewReader(failed))
	require.Len(t, checks, 2)
	assert.Equal(t, NotMet, checks[0].Verdict, "a failed test decides against")
	assert.Contains(t, checks[0].Got, "the test failed")
	assert.Empty(t, RoundTripChecks(strings.NewReader("ok\n")))
}

func TestSupersededRunsDecideNothing(t *testing.T) {
	http := func(date time.Time, create float64) *File {
		return &File{Meta: Meta{Date: date, Host: "vm", CPU: "cpu", Cores: 2}, Scenarios: []Scenario{
			{Name: "http", Kind: KindHTTP, Params: Params{Store: "mem", Concurrency: 64}, Runs: []Run{
				{Target: TargetBridge, HTTP: []HTTPRun{{Kind: "create", RPS: create}, {Kind: "poll", RPS: 95}, {Kind: "bare", RPS: 100}}},
			}},
			{Name: "resume", Kind: KindResume, Params: Params{Store: "mem"}, Runs: []Run{{Target: TargetBridge, Reconnects: 3}}},
		}}
	}
	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	suite, later := http(day, 43), http(day.Add(time.Hour), 80)
	later.Scenarios = later.Scenarios[:1] // only the http scenario was run again
	got := map[string]string{}
	for _, c := range Checks([]*File{suite, later}, nil) {
		got[c.Target] = c.Got
	}
	assert.Equal(t, map[string]string{
		"http (mem): create vs bare Fiber JSON":               "0.80x",
		"http (mem): poll vs bare Fiber JSON":                 "0.95x",
		"resume (mem): gaps and duplicates across reconnects": "0 and 0 (3 reconnects)",
	}, got, "the later http run decides; the suite's other scenarios still count")
	old := Superseded([]*File{suite, later})
	require.Len(t, old, 1)
	assert.Same(t, later, old[&suite.Scenarios[0]])
}
