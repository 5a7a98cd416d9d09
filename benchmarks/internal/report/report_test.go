package report

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		run  Run
		want []string
	}{
		{"clean", Run{Connected: 10, Events: 100, Expected: 100}, nil},
		{"everything wrong", Run{ConnectFailures: 1, Errors: 2, ProtocolErrors: 3, Gaps: 4, Dups: 5, Missing: 6, EmitErrors: 7},
			[]string{"1 connect failures", "2 errors", "3 protocol errors", "4 gaps", "5 duplicates", "6 missing events", "7 failed appends"}},
		{"http", Run{HTTP: []HTTPRun{{Kind: "create", Requests: 10, Errors: 1}, {Kind: "poll"}}},
			[]string{"1 create request errors", "poll: no successful request"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run
			r.Check()
			assert.Equal(t, tt.want, r.Problems)
		})
	}

	f := File{Scenarios: []Scenario{{Name: "fanout", Runs: []Run{{Target: "bridge", Problems: []string{"4 gaps"}}, {Target: "raw"}}}}}
	assert.Equal(t, []string{"fanout/bridge: 4 gaps"}, f.Problems())
}

func TestRatios(t *testing.T) {
	s := Scenario{Kind: KindFanout, Runs: []Run{
		{Target: TargetBridge, DeliveredPerSec: 400, DeliveriesPerCPUSec: 1000, LatencyUs: measure.Summary{P50: 50, P99: 150}},
		{Target: TargetBaseline, DeliveredPerSec: 100, DeliveriesPerCPUSec: 250, LatencyUs: measure.Summary{P50: 500, P99: 300}},
		{Target: TargetRaw, DeliveredPerSec: 500, DeliveriesPerCPUSec: 5000, LatencyUs: measure.Summary{P50: 25, P99: 100}},
	}}
	s.ComputeRatios()
	got := map[string]float64{}
	for _, r := range s.Ratios {
		got[r.Name] = r.Value
	}
	assert.Equal(t, 0.8, got["delivered rate, bridge / raw"])
	assert.Equal(t, 1.5, got["p99 latency, bridge / raw"])
	assert.Equal(t, 2.0, got["p50 latency, bridge / raw"])
	assert.Equal(t, 4.0, got["deliveries per CPU-second, bridge / baseline"])
	assert.Equal(t, 0.5, got["p99 latency, bridge / baseline"])

	idle := Scenario{Kind: KindIdle, Runs: []Run{
		{Target: TargetBridge, RSSPerConn: 4096, GoroutinesPerConn: 0, IdleCPU: Duration(time.Millisecond)},
		{Target: TargetBaseline, RSSPerConn: 16384, GoroutinesPerConn: 2},
	}}
	idle.ComputeRatios()
	require.Len(t, idle.Ratios, 3, "no raw run: no bridge/raw ratio")
	assert.Equal(t, 0.25, idle.Ratios[0].Value)
	assert.Equal(t, 0.0, idle.Ratios[1].Value, "no goroutine per connection against two: 0x")
	assert.True(t, math.IsNaN(idle.Ratios[2].Value), "baseline used no idle CPU: no ratio")

	h := Scenario{Kind: KindHTTP, Runs: []Run{
		{Target: TargetBridge, HTTP: []HTTPRun{{Kind: "create", RPS: 50}, {Kind: "poll", RPS: 80}, {Kind: "bare", RPS: 100}}},
	}}
	h.ComputeRatios()
	require.Len(t, h.Ratios, 2)
	assert.Equal(t, "create / bare Fiber JSON, bridge", h.Ratios[0].Name)
	assert.Equal(t, 0.5, h.Ratios[0].Value)
	assert.Equal(t, 0.8, h.Ratios[1].Value)
}

func sampleFile() *File {
	f := &File{
		Meta: Meta{Date: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Host: "vm", CPU: "AMD EPYC", Cores: 2,
			MemTotalMB: 24000, Kernel: "6.1", GoVersion: "go1.26", Args: []string{"-scenario", "fanout"}},
		Scenarios: []Scenario{
			{Name: "fanout", Kind: KindFanout, Params: Params{Transport: "sse", Subscribers: 10, Tasks: 1, Rate: 50,
				Duration: Duration(20 * time.Second), Store: "mem"},
				Runs: []Run{
					{Target: TargetBridge, Connected: 10, Events: 10_000, Expected: 10_000, DeliveredPerSec: 500,
						LatencyUs: measure.Summary{P50: 1500, P90: 2500, P99: 12_345, Max: 20_000},
						ServerCPU: Duration(2 * time.Second), DeliveriesPerCPUSec: 5000},
					{Target: TargetRaw, Connected: 10, Events: 9_000, Expected: 10_000, DeliveredPerSec: 450,
						Missing: 1000},
				}},
			{Name: "idle-ws-1000", Kind: KindIdle, Params: Params{Transport: "ws", Subscribers: 1000, Store: "mem"},
				Runs: []Run{{Target: TargetBridge, Connected: 1000, RSSPerConn: 6144, GoroutinesPerConn: 1,
					IdleWindow: Duration(5 * time.Second), IdleCPU: Duration(10 * time.Millisecond)}}},
		},
	}
	for i := range f.Scenarios {
		for j := range f.Scenarios[i].Runs {
			f.Scenarios[i].Runs[j].Check()
		}
		f.Scenarios[i].ComputeRatios()
	}
	return f
}

func TestRenderText(t *testing.T) {
	var buf bytes.Buffer
	RenderText(&buf, sampleFile())
	out := buf.String()
	assert.Contains(t, out, "fanout: 10 sse subscribers on 1 tasks, 50 events/s per task for 20s, store mem")
	assert.Contains(t, out, "12.3") // p99 in ms
	assert.Contains(t, out, "1000 missing events")
	assert.Contains(t, out, "delivered rate, bridge / raw")
	assert.Contains(t, out, "1.11x")
	assert.Contains(t, out, "6.0")  // KiB per idle connection
	assert.Contains(t, out, "2.00") // idle CPU ms/s: 10 ms over 5 s
}

func TestRenderMarkdown(t *testing.T) {
	var buf bytes.Buffer
	RenderMarkdown(&buf, sampleFile())
	out := buf.String()
	assert.Contains(t, out, "Measured 2025-01-02 03:04 UTC on `vm`: AMD EPYC, 2 cores")
	assert.Contains(t, out, "Command: `tbload -scenario fanout`")
	assert.Contains(t, out, "| target | subs | delivered |")
	assert.Contains(t, out, "| --- | ---: |")
	assert.Contains(t, out, "| bridge | 10 | 10.0k | 10.0k | 500 | 1.5 | 2.5 | 12.3 | 20.0 | 0.0 | 2.00 | 0.00 | 5000 | 0 | 0 | 0 | ok |")
	assert.Contains(t, out, "- delivered rate, bridge / raw: **1.11x** (higher is better)")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "|") {
			assert.True(t, strings.HasSuffix(line, "|"), "table row %q", line)
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	f := sampleFile()
	f.Scenarios[1].Ratios = append(f.Scenarios[1].Ratios, Ratio{Name: "undefined", Value: math.NaN(), Better: "lower"})
	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, f.WriteFile(path))
	back, err := ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, f.Meta.Date, back.Meta.Date)
	assert.Equal(t, f.Scenarios[0].Runs, back.Scenarios[0].Runs)
	last := back.Scenarios[1].Ratios[len(back.Scenarios[1].Ratios)-1]
	assert.True(t, math.IsNaN(last.Value), "NaN survives as null")

	data, err := json.Marshal(Duration(1500 * time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, `"1.5s"`, string(data))
}

func TestReplaceSection(t *testing.T) {
	doc := []byte("# Title\n\n" + BeginMarker + "\nold table\n" + EndMarker + "\n\ntail\n")
	out, err := ReplaceSection(doc, []byte("\nnew table\n\n"))
	require.NoError(t, err)
	assert.Equal(t, "# Title\n\n"+BeginMarker+"\n\nnew table\n\n"+EndMarker+"\n\ntail\n", string(out))

	again, err := ReplaceSection(out, []byte("new table"))
	require.NoError(t, err)
	assert.Equal(t, out, again, "idempotent")

	_, err = ReplaceSection([]byte("no markers"), nil)
	assert.ErrorIs(t, err, ErrNoMarkers)
	_, err = ReplaceSection([]byte(EndMarker+BeginMarker), nil)
	assert.ErrorIs(t, err, ErrNoMarkers)
}

func scaleFile() *File {
	inst := func(streams int, rssAfter uint64, g int) InstanceRun {
		return InstanceRun{Streams: streams, RSSBefore: 10 << 20, RSSAfter: rssAfter, GoroutinesBefore: 20, GoroutinesAfter: g,
			RSSPerConn: float64(rssAfter-10<<20) / float64(streams), GoroutinesPerConn: float64(g-20) / float64(streams),
			FDs: streams + 40, RedisPoolConns: 20, IdleCPU: Duration(10 * time.Millisecond), ServerCPU: Duration(300 * time.Millisecond)}
	}
	f := &File{Meta: Meta{Host: "vm", Cores: 2}, Scenarios: []Scenario{
		{Name: "scale", Kind: KindScale, Params: Params{Transport: "sse+ws", Subscribers: 100_000, Tasks: 1, Store: "redis", Instances: 2, Stages: 2},
			Runs: []Run{{Target: TargetBridge, Subscribers: 100_000, Connected: 100_000, Events: 100_000, Expected: 100_000,
				IdleWindow: Duration(5 * time.Second), LatencyUs: measure.Summary{P50: 150_000, P99: 480_000, Max: 612_300},
				ServerCPU: Duration(600 * time.Millisecond), RedisCPU: Duration(10 * time.Millisecond),
				Scale: &ScaleRun{
					Instances: []InstanceRun{inst(50_000, 10<<20+150_000*1024, 120), inst(50_000, 10<<20+160_000*1024, 130)},
					Stages: []StageRun{{Wanted: 50_000, Connected: 50_000, ConnectTime: Duration(20 * time.Second), RSS: 100 << 20, RedisClients: 45},
						{Wanted: 100_000, Connected: 100_000, ConnectTime: Duration(22 * time.Second), RSS: 330 << 20, RedisClients: 46}},
					RedisClients: 46,
					Limits:       measure.Kernel{NoFile: 20_000, NoFileHard: 20_000, PortLow: 32768, PortHigh: 60999},
					Preflight:    []LimitCheck{{Name: "memory available (MB)", Have: 100, Need: 4687}},
				}}}},
		{Name: "scale-many", Kind: KindScaleMany, Params: Params{Transport: "sse+ws", Subscribers: 100_000, Tasks: 10_000, Rate: 1,
			Duration: Duration(20 * time.Second), Store: "redis", Instances: 2, Stages: 1},
			Runs: []Run{{Target: TargetBridge, Subscribers: 100_000, Connected: 90_000, Events: 1_800_000, Expected: 1_800_000, DeliveredPerSec: 99_000,
				EmitAppended: 200_000, EmitElapsed: Duration(40 * time.Second), EmitMaxLag: Duration(20 * time.Second), RedisCPU: Duration(28 * time.Second),
				RedisClientsAfter: 47, Scale: &ScaleRun{Instances: []InstanceRun{inst(50_000, 200<<20, 90), inst(50_000, 210<<20, 95)},
					StopReason: "memory: 100 MB of 24000 MB available", EmitWanted: 10_000, EmitterCPU: Duration(30 * time.Second)}}}},
	}}
	for i := range f.Scenarios {
		for j := range f.Scenarios[i].Runs {
			f.Scenarios[i].Runs[j].Check()
		}
	}
	return f
}

func TestRenderScale(t *testing.T) {
	var md bytes.Buffer
	RenderMarkdown(&md, scaleFile())
	out := md.String()
	assert.Contains(t, out, "#### scale: 100000 sse+ws streams on one task, connected in 2 stages, then one event, over 2 bridge instances, store redis")
	assert.Contains(t, out, "| 1 | 50000 | 3.0 | 0.002 | 50040 | 20 | 2.00 | 300.0 | ok |", "per instance: 150,000 KiB over 50,000 streams")
	assert.Contains(t, out, "| all | 100000 | 3.1 | 0.002 | 100080 | 40 | 4.00 | 600.0 |  |")
	assert.Contains(t, out, "| 100000 | 100000 | 0 | 22.00 | 330.0 | 0 | 46 |")
	assert.Contains(t, out, "| 100000 | 100000 | 150.0 | 480.0 | 612.3 | 0 | 0 | 0.60 | 0.01 | ok |", "the last client's time is the maximum")
	assert.Contains(t, out, "- Redis connections in total: 46")
	assert.Contains(t, out, "- limit too low for the plan: memory available (MB): 100, needs 4687")
	assert.Contains(t, out, "#### scale-many: 10000 tasks x 10 sse+ws subscribers (100000 streams), 1 events/s per task for 20s, over 2 bridge instances, store redis")
	assert.Contains(t, out, "| bridge | 90000 | 1.80M | 1.80M | 99.0k |")
	assert.Contains(t, out, "- appends: 200000 in 40.0 s, 5000/s of the 10000/s wanted (max lag 20s); emitter CPU 30.00 s (150 µs per append), Redis CPU 28.00 s (140 µs per append, the instances' reads included)")
	assert.Contains(t, out, "- stopped at 90000 of 100000 streams: memory: 100 MB of 24000 MB available")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "|") {
			assert.True(t, strings.HasSuffix(line, "|"), "table row %q", line)
		}
	}
	assert.Contains(t, strings.Join(scaleFile().Problems(), "\n"), "scale-many/bridge: stopped at 90000 streams: memory")

	var txt bytes.Buffer
	RenderText(&txt, scaleFile())
	assert.Contains(t, txt.String(), "Connect stages (server figures summed over the instances):")
}
