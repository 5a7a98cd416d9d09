package scenario

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name       string
		spec       Spec
		tasks      int
		perChild   int
		wantKids   int
		wantGroups int // in the first child
	}{
		{"fanout fits one child", Spec{Subscribers: 10_000, Transport: "sse"}, 1, 10_000, 1, 1},
		{"fanout over two children", Spec{Subscribers: 15_000, Transport: "sse"}, 1, 10_000, 2, 1},
		{"one task per subscriber", Spec{Subscribers: 30, Transport: "ws"}, 30, 20, 2, 15},
		{"mix alternates transports", Spec{Subscribers: 9, Transport: TransportMix}, 1, 100, 1, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig("/bin/true")
			cfg.PerChild = tt.perChild
			r := &Runner{cfg: cfg}
			ids := make([]string, tt.tasks)
			for i := range ids {
				ids[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
			}
			plan := r.plan(tt.spec, ids, "127.0.0.1:1")
			require.Len(t, plan, tt.wantKids)
			assert.Len(t, plan[0].Groups, tt.wantGroups)

			total := 0
			perTask := map[string]int{}
			perTransport := map[string]int{}
			ips := map[string]bool{}
			for _, a := range plan {
				assert.LessOrEqual(t, sum(a.Groups), tt.perChild, "a child holds at most PerChild sockets")
				require.Len(t, a.SourceIPs, 1)
				assert.False(t, ips[a.SourceIPs[0]], "each child has its own source address")
				ips[a.SourceIPs[0]] = true
				for _, g := range a.Groups {
					total += g.Count
					perTask[g.TaskID] += g.Count
					perTransport[g.Transport] += g.Count
				}
			}
			assert.Equal(t, tt.spec.Subscribers, total)
			assert.Len(t, perTask, tt.tasks, "every task has subscribers")
			if tt.spec.Transport == TransportMix {
				assert.Equal(t, map[string]int{"sse": 3, "ws": 3, "poll": 3}, perTransport)
			}
		})
	}
}

func sum(gs []loadclient.Group) int {
	n := 0
	for _, g := range gs {
		n += g.Count
	}
	return n
}

func TestPlanDrops(t *testing.T) {
	r := &Runner{cfg: DefaultConfig("/bin/true")}
	plan := r.plan(Spec{Subscribers: 3, Transport: "sse", Drops: 2, Duration: 10 * time.Second}, []string{"t"}, "a:1")
	require.Len(t, plan, 1)
	assert.Equal(t, 2, plan[0].Drops)
	assert.Equal(t, time.Second, plan[0].DropFrom)
	assert.Equal(t, 8*time.Second, plan[0].DropTo)
}

func TestFillRunExpected(t *testing.T) {
	res := &loadclient.Result{Events: 7, Gaps: 1, Latency: &measure.Histogram{}}
	res.Latency.Record(1500)
	var run report.Run
	// 5 subscribers over 2 tasks: a gets 3 (10 events each), b gets 2 (4 each).
	fillRun(&run, res, Spec{Subscribers: 5}, []string{"a", "b"}, map[string]uint64{"a": 10, "b": 4})
	assert.Equal(t, uint64(38), run.Expected)
	assert.Equal(t, uint64(7), run.Events)
	assert.Equal(t, uint64(1), run.Gaps)
	assert.Equal(t, uint64(1500), run.LatencyUs.P50)
}

func TestParseRedisInfo(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9\r\n# Clients\r\nconnected_clients:12\r\n"
	cpu, clients, err := parseRedisInfo(info)
	require.NoError(t, err)
	assert.Equal(t, 3750*time.Millisecond, cpu)
	assert.Equal(t, 12, clients)

	_, _, err = parseRedisInfo("used_cpu_sys:1\r\n")
	assert.Error(t, err, "connected_clients is required")
	_, _, err = parseRedisInfo("used_cpu_sys:x\r\nconnected_clients:1\r\n")
	assert.Error(t, err)
}

func TestDefaultSpecs(t *testing.T) {
	idle, err := DefaultSpecs(report.KindIdle, Overrides{})
	require.NoError(t, err)
	require.Len(t, idle, 6, "1k, 5k, 15k for SSE and for WS")
	assert.Equal(t, "idle-sse-1000", idle[0].Name)
	assert.Equal(t, 15_000, idle[5].Subscribers)
	assert.Equal(t, "ws", idle[5].Transport)

	fan, err := DefaultSpecs(report.KindFanout, Overrides{})
	require.NoError(t, err)
	assert.Equal(t, Spec{Name: "fanout", Kind: report.KindFanout, Transport: "sse", Subscribers: 10_000, Tasks: 1,
		Rate: 50, Duration: 20 * time.Second}, fan[0])
	assert.Equal(t, 1000, fan[0].EventsPerTask())

	many, err := DefaultSpecs(report.KindMany, Overrides{Subscribers: 100, Transport: "ws"})
	require.NoError(t, err)
	assert.Equal(t, 100, many[0].Tasks, "many: one task per subscriber by default")
	assert.Equal(t, "ws", many[0].Transport)

	_, err = DefaultSpecs("nonsense", Overrides{})
	assert.Error(t, err)

	for _, s := range SmokeSpecs() {
		assert.LessOrEqual(t, s.Subscribers, 500, "%s stays small", s.Name)
		assert.LessOrEqual(t, s.Duration, 3*time.Second, "%s stays short", s.Name)
	}
	kinds := map[string]bool{}
	for _, s := range SmokeSpecs() {
		kinds[s.Kind] = true
	}
	for _, k := range Kinds {
		assert.True(t, kinds[k], "smoke covers %s", k)
	}
}
