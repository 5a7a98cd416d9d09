package scenario

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
)

func TestLayoutScale(t *testing.T) {
	tests := []struct {
		name                           string
		n, instances, stages, perChild int
		wantKids, wantMaxPerChild      int
	}{
		{"100k over 6 instances in 4 stages", 100_000, 6, 4, 10_000, 24, 4167},
		{"one stage, two children per instance", 100_000, 6, 1, 10_000, 12, 8334},
		{"smoke", 300, 2, 2, 10_000, 4, 75},
		{"more stages than streams", 3, 2, 4, 10, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kids := layoutScale(tt.n, tt.instances, tt.stages, tt.perChild)
			require.Len(t, kids, tt.wantKids)
			seen := make([]int, tt.n)
			perInstance := make([]int, tt.instances)
			maxPer, lastStage := 0, 0
			for _, c := range kids {
				require.Less(t, c.lo, c.hi)
				assert.LessOrEqual(t, c.hi-c.lo, tt.perChild, "a child holds at most perChild sockets")
				assert.GreaterOrEqual(t, c.stage, lastStage, "children come in stage order")
				lastStage = c.stage
				maxPer = max(maxPer, c.hi-c.lo)
				perInstance[c.instance] += c.hi - c.lo
				for i := c.lo; i < c.hi; i++ {
					seen[i]++
				}
			}
			assert.Equal(t, tt.wantMaxPerChild, maxPer)
			for i, v := range seen {
				require.Equal(t, 1, v, "subscriber %d is planned exactly once", i)
			}
			for _, v := range perInstance {
				assert.InDelta(t, tt.n/tt.instances, v, 1, "the instances share the streams evenly")
			}
		})
	}
}

func TestScaleAssignments(t *testing.T) {
	r := &Runner{cfg: DefaultConfig("/bin/true")}
	ids := make([]string, 30)
	for i := range ids {
		ids[i] = "task" + string(rune('A'+i))
	}
	spec := Spec{Kind: report.KindScaleMany, Transport: TransportStreams, Subscribers: 300, Tasks: 30, Stages: 1}
	addrs := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	type key struct{ task, transport, addr string }
	per := map[key]int{}
	ips := map[string]bool{}
	for k, c := range layoutScale(300, 3, 1, 40) {
		a := r.scaleAssignment(spec, c, ids, addrs, sourceIP(k))
		assert.Equal(t, addrs[c.instance], a.Addr)
		assert.False(t, ips[a.SourceIPs[0]], "each child has its own source address")
		ips[a.SourceIPs[0]] = true
		for _, g := range a.Groups {
			per[key{g.TaskID, g.Transport, a.Addr}] += g.Count
		}
	}
	perTask := map[string]map[string]int{}
	instancesOf := map[string]map[string]bool{}
	for k, v := range per {
		if perTask[k.task] == nil {
			perTask[k.task], instancesOf[k.task] = map[string]int{}, map[string]bool{}
		}
		perTask[k.task][k.transport] += v
		instancesOf[k.task][k.addr] = true
	}
	require.Len(t, perTask, 30)
	for task, tr := range perTask {
		assert.Equal(t, map[string]int{loadclient.TransportSSE: 5, loadclient.TransportWS: 5}, tr, "task %s: 10 subscribers, both transports", task)
		assert.Len(t, instancesOf[task], 3, "task %s is followed through every instance", task)
	}

	assert.Equal(t, "127.0.0.2", sourceIP(0))
	assert.Equal(t, "127.0.0.251", sourceIP(249))
	assert.Equal(t, "127.0.1.2", sourceIP(250))
}

func TestInstancesFor(t *testing.T) {
	r := &Runner{cfg: DefaultConfig("/bin/true")}
	assert.Equal(t, 6, r.instancesFor(Spec{Subscribers: 100_000}), "17,000 streams per instance at most")
	assert.Equal(t, 2, r.instancesFor(Spec{Subscribers: 300}), "several instances, always")
	assert.Equal(t, 3, r.instancesFor(Spec{Subscribers: 300, Instances: 3}))
}

func TestPreflight(t *testing.T) {
	k := measure.Kernel{NoFile: 20_000, NoFileHard: 20_000, PortLow: 32768, PortHigh: 60999, FileMax: 2_000_000, FilesOpen: 1000,
		SoMaxConn: 4096, SynBacklog: 2048, MemAvailableMB: 20_000, ConntrackMax: -1, ConntrackCount: -1}
	byName := func(cs []report.LimitCheck) map[string]report.LimitCheck {
		out := map[string]report.LimitCheck{}
		for _, c := range cs {
			out[c.Name] = c
		}
		return out
	}
	ok := preflight(layoutScale(100_000, 6, 4, 10_000), 100_000, 6, 64, k)
	for _, c := range ok {
		assert.True(t, c.OK, "%s: have %d, need %d", c.Name, c.Have, c.Need)
	}
	assert.Len(t, ok, 7, "no conntrack check without conntrack")

	// Two instances for 100k: 50,000 sockets in one process.
	k.ConntrackMax, k.ConntrackCount = 65536, 100
	got := byName(preflight(layoutScale(100_000, 2, 1, 19_000), 100_000, 2, 64, k))
	assert.False(t, got["open files per bridge instance (RLIMIT_NOFILE)"].OK)
	assert.Equal(t, int64(50_256), got["open files per bridge instance (RLIMIT_NOFILE)"].Need)
	assert.True(t, got["open files per client process (RLIMIT_NOFILE)"].OK, "19,000 per child fits")
	conntrack := got["free connection-tracking entries"]
	assert.False(t, conntrack.OK)
	assert.Equal(t, int64(65436), conntrack.Have)
	assert.Equal(t, measure.KernelSysctl.ConntrackMax, conntrack.Sysctl, "root may raise it")
}

func TestDiagnose(t *testing.T) {
	k := measure.Kernel{NoFile: 20_000, PortLow: 32768, PortHigh: 60999, MemTotalMB: 24_000, MemAvailableMB: 20_000, ConntrackMax: -1}
	tests := []struct {
		name    string
		err     error
		samples []string
		now     measure.Kernel
		want    string
	}{
		{"fds", nil, []string{"sse t: dial: connection reset", "ws t: handshake: dial tcp: accept4: too many open files"}, k,
			"file descriptors: a process reached its limit of 20000 open files"},
		{"ports", nil, []string{"sse t: dial: dial tcp 127.0.0.2:0->127.0.0.1:80: connect: cannot assign requested address"}, k,
			"ephemeral ports: a source address ran out of its 28232 ports"},
		{"conntrack", nil, nil, measure.Kernel{ConntrackMax: 1000, ConntrackCount: 990, MemAvailableMB: -1}, "connection tracking: 990 of 1000"},
		{"memory", nil, nil, measure.Kernel{MemTotalMB: 24_000, MemAvailableMB: 1000, ConntrackMax: -1}, "memory: 1000 MB of 24000 MB"},
		{"client died", errors.New("client child exited"), nil, k, "client processes: client child exited"},
		{"none", nil, []string{"sse t: status 503"}, k, "no machine limit reached; first client error: sse t: status 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diagnose(tt.err, tt.samples, nil, k, tt.now)
			assert.True(t, strings.HasPrefix(got, tt.want), "got %q", got)
		})
	}
}

func TestScaleSpecs(t *testing.T) {
	specs, err := DefaultSpecs(report.KindScale, Overrides{})
	require.NoError(t, err)
	require.Len(t, specs, 2)
	assert.Equal(t, Spec{Name: "scale", Kind: report.KindScale, Transport: TransportStreams, Subscribers: 100_000, Tasks: 1, Stages: 4}, specs[0])
	assert.Equal(t, 10_000, specs[1].Tasks, "10,000 tasks x 10 subscribers")
	assert.Equal(t, 100_000, specs[1].Subscribers)
	assert.Equal(t, 20, specs[1].EventsPerTask(), "1 event/s for 20 s")

	var smoke []Spec
	for _, s := range SmokeSpecs() {
		if IsScale(s.Kind) {
			smoke = append(smoke, s)
		}
	}
	require.Len(t, smoke, 2, "bench-smoke runs the scale scenarios small")
	for _, s := range smoke {
		assert.Equal(t, 2, s.Instances)
		assert.LessOrEqual(t, s.Subscribers, 500)
	}
}
