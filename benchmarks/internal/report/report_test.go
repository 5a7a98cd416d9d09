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
