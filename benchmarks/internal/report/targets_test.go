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
	got := map[string]bool{}
	for _, c := range Checks(f) {
		got[c.Target] = c.Met
	}
	assert.Equal(t, map[string]bool{
		"fanout (mem): every delivery within the run":                 true,
		"fanout (mem): delivered rate vs raw":                         true,
		"fanout (mem): p99 vs raw":                                    true,
		"fanout (mem): deliveries per CPU-second vs baseline":         true,
		"idle-ws-15000 (mem): RSS per idle connection":                false,
		"idle-ws-15000 (mem): server CPU between heartbeats":          true,
		"many (redis): p99":                                           false,
		"many (redis): CPU (server + Redis) per delivery vs baseline": true,
		"many (redis): Redis connections":                             true,
		"resume (mem): gaps and duplicates across reconnects":         true,
	}, got, "idle below 15k connections is not a target")
}

func TestMicroAllocCheck(t *testing.T) {
	out := "BenchmarkFanoutSSE/bridge/subs=1000-2  81  14361008 ns/op  0.007012 allocs/delivery  69633 deliveries/s  1512 B/op  7 allocs/op\n" +
		"BenchmarkFanoutSSE/baseline/subs=1000-2  81  17901420 ns/op  3.007 allocs/delivery\n" +
		"BenchmarkFanoutWS/bridge/subs=1000-2  85  14834102 ns/op  2.5 allocs/delivery\n"
	checks := MicroAllocCheck(strings.NewReader(out))
	require.Len(t, checks, 2)
	assert.True(t, checks[0].Met)
	assert.Contains(t, checks[0].Target, "FanoutSSE")
	assert.False(t, checks[1].Met)

	var buf bytes.Buffer
	RenderChecks(&buf, checks)
	assert.Contains(t, buf.String(), "| target | wanted | measured | met |")
	assert.Contains(t, buf.String(), "| no |")
}
