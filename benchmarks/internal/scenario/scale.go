package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/control"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/servers"
)

// Figures of the scale plan's preflight: files a process opens besides its
// streams (Redis pool, listeners, epoll, pipes), and what one stream costs
// the machine in memory with both of its ends (server ~3 KiB, client
// goroutine and buffers ~25 KiB, two kernel sockets ~8 KiB), rounded up.
const (
	fdReserve       = 256
	streamMemoryKiB = 48
)

// instancesFor returns how many bridge instances spec runs: its own
// number, or enough that none holds more than PerInstance streams (at
// least two: the scenario is about several).
func (r *Runner) instancesFor(spec Spec) int {
	if spec.Instances > 0 {
		return spec.Instances
	}
	per := max(r.cfg.PerInstance, 1)
	return max((spec.Subscribers+per-1)/per, 2)
}

// scaleChild is one client process of a scale plan: subscribers [lo, hi)
// of the scenario's numbering, on one instance, in one connect stage.
type scaleChild struct {
	instance, stage, lo, hi int
}

// layoutScale spreads n subscribers over instances in contiguous blocks,
// splits each block into stages (every stage adds streams to every
// instance) and each stage's share into client processes of at most
// perChild sockets. The children come out in stage order.
func layoutScale(n, instances, stages, perChild int) []scaleChild {
	instances, stages, perChild = max(instances, 1), max(stages, 1), max(perChild, 1)
	var out []scaleChild
	for s := 0; s < stages; s++ {
		for b := 0; b < instances; b++ {
			blo, bhi := b*n/instances, (b+1)*n/instances
			lo, hi := blo+s*(bhi-blo)/stages, blo+(s+1)*(bhi-blo)/stages
			if hi <= lo {
				continue
			}
			kids := (hi - lo + perChild - 1) / perChild
			for k := 0; k < kids; k++ {
				out = append(out, scaleChild{instance: b, stage: s, lo: lo + k*(hi-lo)/kids, hi: lo + (k+1)*(hi-lo)/kids})
			}
		}
	}
	return out
}

// sourceIP returns the loopback source address of client process k:
// 127.0.0.2 to 127.0.0.251, then 127.0.1.2, ... (all of 127/8 is loopback).
func sourceIP(k int) string { return fmt.Sprintf("127.0.%d.%d", k/250, 2+k%250) }

// taskOf and transportOf say what subscriber i of a scale plan follows:
// task i mod T, and the transports alternate once per round over the tasks,
// so each task has subscribers on every transport.
func taskOf(i int, ids []string) string { return ids[i%len(ids)] }

func transportOf(i, tasks int, transports []string) string {
	return transports[(i/max(tasks, 1))%len(transports)]
}

// scaleAssignment is the assignment of child c.
func (r *Runner) scaleAssignment(spec Spec, c scaleChild, ids []string, addrs []string, ip string) *loadclient.Assignment {
	a := &loadclient.Assignment{Addr: addrs[c.instance], Token: r.cfg.Token, Strict: r.cfg.Strict,
		SourceIPs: []string{ip}, DialConcurrency: r.cfg.DialConcurrency, ConnectTimeout: r.cfg.ScaleConnectTimeout}
	transports := transportsOf(spec.Transport)
	for i := c.lo; i < c.hi; i++ {
		task, tr := taskOf(i, ids), transportOf(i, len(ids), transports)
		if g := len(a.Groups) - 1; g >= 0 && a.Groups[g].TaskID == task && a.Groups[g].Transport == tr {
			a.Groups[g].Count++
			continue
		}
		a.Groups = append(a.Groups, loadclient.Group{TaskID: task, Transport: tr, Count: 1})
	}
	return a
}

// preflight compares what the plan needs with the machine's limits.
func preflight(plan []scaleChild, n, instances int, dialConcurrency int, k measure.Kernel) []report.LimitCheck {
	perInstance := make([]int, instances)
	perChild, kidsPerInstanceStage := 0, map[[2]int]int{}
	for _, c := range plan {
		perInstance[c.instance] += c.hi - c.lo
		perChild = max(perChild, c.hi-c.lo)
		kidsPerInstanceStage[[2]int{c.instance, c.stage}]++
	}
	maxInstance, maxKids := 0, 1
	for _, v := range perInstance {
		maxInstance = max(maxInstance, v)
	}
	for _, v := range kidsPerInstanceStage {
		maxKids = max(maxKids, v)
	}
	// The connects one instance may see at once.
	inFlight := int64(max(dialConcurrency, 1) * maxKids)
	out := []report.LimitCheck{
		{Name: "open files per bridge instance (RLIMIT_NOFILE)", Have: k.NoFile, Need: int64(maxInstance + fdReserve)},
		{Name: "open files per client process (RLIMIT_NOFILE)", Have: k.NoFile, Need: int64(perChild + fdReserve)},
		{Name: "ephemeral ports per source address and instance", Sysctl: measure.KernelSysctl.PortRange,
			Have: k.Ports(), Need: int64(perChild)},
		{Name: "free open files on the machine", Sysctl: measure.KernelSysctl.FileMax,
			Have: k.FileMax - k.FilesOpen, Need: int64(2*n + 4*fdReserve)},
		{Name: "listen backlog", Sysctl: measure.KernelSysctl.SoMaxConn, Have: k.SoMaxConn, Need: inFlight},
		{Name: "half-open connections per listener", Sysctl: measure.KernelSysctl.SynBacklog, Have: k.SynBacklog, Need: inFlight},
		{Name: "memory available (MB)", Have: k.MemAvailableMB, Need: int64(n) * streamMemoryKiB / 1024},
	}
	if k.ConntrackMax >= 0 {
		// Both scale scenarios' connections may be in the table at once
		// (closed ones linger in TIME_WAIT).
		out = append(out, report.LimitCheck{Name: "free connection-tracking entries", Sysctl: measure.KernelSysctl.ConntrackMax,
			Have: k.ConntrackMax - max(k.ConntrackCount, 0), Need: int64(2*n + 4*fdReserve)})
	}
	for i := range out {
		out[i].OK = out[i].Have < 0 || out[i].Have >= out[i].Need // unknown: not judged here
	}
	return out
}

// tuneKernel raises the sysctls of the failed checks it can set (as root)
// and returns what it changed as "name: old -> new".
func tuneKernel(checks []report.LimitCheck, k measure.Kernel) ([]string, error) {
	var changed []string
	var errs []error
	for _, c := range checks {
		if c.OK || c.Sysctl == "" {
			continue
		}
		var old, val string
		switch c.Sysctl {
		case measure.KernelSysctl.PortRange:
			old, val = fmt.Sprintf("%d %d", k.PortLow, k.PortHigh), "1024 65535"
		case measure.KernelSysctl.FileMax:
			old, val = strconv.FormatInt(k.FileMax, 10), strconv.FormatInt(k.FileMax+c.Need-c.Have, 10)
		case measure.KernelSysctl.ConntrackMax:
			old, val = strconv.FormatInt(k.ConntrackMax, 10), strconv.FormatInt(k.ConntrackMax+c.Need-c.Have, 10)
		default:
			old, val = strconv.FormatInt(c.Have, 10), strconv.FormatInt(c.Need, 10)
		}
		if err := os.WriteFile(measure.SysctlPath(c.Sysctl), []byte(val), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("set %s: %w", c.Sysctl, err))
			continue
		}
		changed = append(changed, fmt.Sprintf("%s: %s -> %s", c.Sysctl, old, val))
	}
	return changed, errors.Join(errs...)
}

// instance is a running bridge of a scale scenario.
type instance struct {
	srv     *serverProc
	streams int
	before  control.Stats
	after   control.Stats
}

// sampleAll reads every instance's statistics, after a GC when gc is set.
func sampleAll(ctx context.Context, insts []*instance, gc bool) ([]control.Stats, error) {
	out := make([]control.Stats, len(insts))
	errs := make([]error, len(insts))
	var wg sync.WaitGroup
	for i, in := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if gc {
				if errs[i] = in.srv.ctl.GC(ctx); errs[i] != nil {
					return
				}
			}
			out[i], errs[i] = in.srv.ctl.Stats(ctx)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// cpuAll reads every instance's CPU time from /proc.
func cpuAll(insts []*instance) ([]time.Duration, error) {
	out := make([]time.Duration, len(insts))
	for i, in := range insts {
		cpu, err := procCPU(in.srv.ready.PID)
		if err != nil {
			return nil, err
		}
		out[i] = cpu
	}
	return out, nil
}

// runScale runs a scale scenario against the bridge: several instances
// sharing one Redis, client processes over many source addresses.
func (r *Runner) runScale(ctx context.Context, spec Spec) (report.Run, error) {
	run := report.Run{Target: report.TargetBridge, Store: r.cfg.Store, Subscribers: spec.Subscribers}
	sc := &report.ScaleRun{Limits: measure.ReadKernel()}
	run.Scale = sc
	if r.cfg.Store != benchstore.Redis || r.redis == nil {
		return run, errors.New("the scale scenarios need Redis (-store redis): the instances share one store")
	}
	hold := spec.Kind == report.KindScale
	k := r.instancesFor(spec)
	tasks := max(spec.Tasks, 1)
	layout := layoutScale(spec.Subscribers, k, spec.Stages, r.cfg.PerChild)
	sc.Preflight = preflight(layout, spec.Subscribers, k, r.cfg.DialConcurrency, sc.Limits)
	if r.cfg.TuneKernel {
		changed, err := tuneKernel(sc.Preflight, sc.Limits)
		sc.Tuned = changed
		if err != nil {
			r.logf("%s: raising kernel limits: %v", spec.Name, err)
		}
		if len(changed) > 0 {
			sc.Limits = measure.ReadKernel()
			sc.Preflight = preflight(layout, spec.Subscribers, k, r.cfg.DialConcurrency, sc.Limits)
		}
	}
	for _, c := range sc.Preflight {
		if !c.OK {
			r.logf("%s: limit too low for the plan: %s: %d, needs %d", spec.Name, c.Name, c.Have, c.Need)
		}
	}

	// The instances, and a separate emitter process (a worker elsewhere)
	// that appends, all on one key prefix.
	prefix := benchstore.NewKeyPrefix()
	args := []string{"-redis-prefix", prefix, "-redis-pool", strconv.Itoa(r.cfg.ScaleRedisPool)}
	if hold {
		args = append(args, "-heartbeat", r.cfg.ScaleHeartbeat.String(), "-ws-ping", r.cfg.ScaleHeartbeat.String())
	} else {
		args = append(args, "-heartbeat", r.cfg.Heartbeat.String())
	}
	insts := make([]*instance, 0, k)
	defer func() {
		for _, in := range insts {
			if err := in.srv.stop(); err != nil {
				r.logf("%s: instance stop: %v", spec.Name, err)
			}
		}
	}()
	addrs := make([]string, 0, k)
	for range k {
		srv, err := startServer(ctx, &r.cfg, servers.Bridge, args...)
		if err != nil {
			return run, err
		}
		insts = append(insts, &instance{srv: srv})
		addrs = append(addrs, srv.ready.Data)
	}
	em, err := startServer(ctx, &r.cfg, servers.Emitter, "-redis-prefix", prefix)
	if err != nil {
		return run, err
	}
	defer func() {
		if err := em.stop(); err != nil {
			r.logf("%s: emitter stop: %v", spec.Name, err)
		}
	}()

	ids, err := createSpread(ctx, insts, tasks)
	if err != nil {
		return run, err
	}
	before, err := sampleAll(ctx, insts, true)
	if err != nil {
		return run, err
	}
	for i := range insts {
		insts[i].before = before[i]
	}
	rs, err := r.redisNow(ctx)
	if err != nil {
		return run, err
	}
	run.RedisClientsBefore = rs.redisClients

	// Connect stage by stage; stop adding stages after one that fell short.
	var kids children
	defer func() { kids.closeAll() }()
	var lastConnect time.Time
	var started []scaleChild
	var samples []string
	wanted := 0
	for s := 0; s < max(spec.Stages, 1); s++ {
		var stage []scaleChild
		var plan []*loadclient.Assignment
		for _, c := range layout {
			if c.stage == s {
				stage = append(stage, c)
				plan = append(plan, r.scaleAssignment(spec, c, ids, addrs, sourceIP(len(started)+len(stage)-1)))
				wanted += c.hi - c.lo
			}
		}
		t0 := time.Now()
		newKids, reports, err := r.startChildrenReports(ctx, plan, r.cfg.ScaleConnectTimeout)
		kids = append(kids, newKids...)
		started = append(started, stage[:len(newKids)]...)
		failed := 0
		for j, rep := range reports {
			insts[stage[j].instance].streams += rep.Connected
			run.Connected += rep.Connected
			failed += rep.Failed
			samples = append(samples, rep.ErrorSamples...)
		}
		g := report.StageRun{Wanted: wanted, Connected: run.Connected, Failed: failed,
			ConnectTime: report.Duration(time.Since(t0).Round(time.Millisecond))}
		r.logf("%s: stage %d: %d of %d streams held, %d failed in %s", spec.Name, s+1, run.Connected, wanted, failed,
			time.Duration(g.ConnectTime))
		if st, serr := sampleAll(ctx, insts, true); serr == nil {
			for _, x := range st {
				g.RSS += x.RSS
				g.Goroutines += x.Goroutines
			}
		}
		if rs, serr := r.redisNow(ctx); serr == nil {
			g.RedisClients = rs.redisClients
		}
		sc.Stages = append(sc.Stages, g)
		lastConnect = time.Now()
		if err != nil || failed > 0 || len(newKids) < len(plan) {
			sc.StopReason = diagnose(err, samples, insts, sc.Limits, measure.ReadKernel())
			break
		}
	}
	run.ConnectFailures = spec.Subscribers - run.Connected

	// Held: memory and goroutines per stream, files, Redis connections.
	sleepCtx(ctx, r.cfg.Settle)
	after, err := sampleAll(ctx, insts, true)
	if err != nil {
		return run, err
	}
	sc.Peak = measure.ReadKernel()
	if rs, err = r.redisNow(ctx); err != nil {
		return run, err
	}
	sc.RedisClients, run.RedisClientsAfter = rs.redisClients, rs.redisClients
	var rssDelta float64
	var gDelta int
	for i, in := range insts {
		in.after = after[i]
		rssDelta += float64(after[i].RSS) - float64(in.before.RSS)
		gDelta += after[i].Goroutines - in.before.Goroutines
	}
	run.RSSBefore, run.RSSAfter = sumRSS(before), sumRSS(after)
	if run.Connected > 0 {
		run.RSSPerConn = rssDelta / float64(run.Connected)
		run.GoroutinesPerConn = float64(gDelta) / float64(run.Connected)
	}
	idle := make([]time.Duration, len(insts))
	if hold {
		// Between heartbeats: the GC the harness asked for has finished and
		// the write deadlines the streams' first writes armed have passed.
		sleepCtx(ctx, max(time.Second, time.Until(lastConnect.Add(r.cfg.ScaleQuiet))))
		// The window's CPU is read from /proc by this process, so that the
		// instances do no measuring work inside it.
		w0, err := cpuAll(insts)
		if err != nil {
			return run, err
		}
		r0, err := r.redisNow(ctx)
		if err != nil {
			return run, err
		}
		sleepCtx(ctx, r.cfg.IdleWindow)
		w1, err := cpuAll(insts)
		if err != nil {
			return run, err
		}
		r1, err := r.redisNow(ctx)
		if err != nil {
			return run, err
		}
		run.IdleWindow = report.Duration(r.cfg.IdleWindow)
		for i := range insts {
			idle[i] = w1[i] - w0[i]
			run.IdleCPU += report.Duration(idle[i])
		}
		run.IdleRedisCPU = report.Duration(r1.redisCPU - r0.redisCPU)
	}

	// The emission: one event to the task every stream follows, or the
	// tasks at their rate.
	e0, err := sampleAll(ctx, insts, false)
	if err != nil {
		return run, err
	}
	re0, err := r.redisNow(ctx)
	if err != nil {
		return run, err
	}
	if err := kids.sendAll(loadclient.Command{Cmd: "go"}); err != nil {
		return run, err
	}
	req := control.EmitRequest{TaskIDs: ids, EventsPerTask: 1, Workers: 1}
	if !hold {
		req = control.EmitRequest{TaskIDs: ids, EventsPerTask: spec.EventsPerTask(), RatePerTask: spec.Rate, Workers: r.cfg.ScaleEmitWorkers}
	}
	em0, err := em.ctl.Stats(ctx)
	if err != nil {
		return run, err
	}
	if req.RatePerTask > 0 {
		sc.EmitWanted = req.RatePerTask * float64(len(req.TaskIDs))
	}
	start := time.Now()
	emit, err := em.ctl.Emit(ctx, req)
	if err != nil {
		return run, err
	}
	if em1, err := em.ctl.Stats(ctx); err == nil {
		sc.EmitterCPU = report.Duration(em1.CPU - em0.CPU)
	}
	run.EmitAppended, run.EmitErrors = emit.Appended, emit.Errors
	run.EmitMaxLag, run.EmitElapsed = report.Duration(emit.MaxLag), report.Duration(emit.Elapsed)
	if err := kids.sendAll(loadclient.Command{Cmd: "drain", Expected: emit.LastSeq, Drain: r.cfg.ScaleDrain}); err != nil {
		return run, err
	}
	drained, err := kids.awaitAll(ctx, "drained", r.cfg.ScaleDrain+30*time.Second)
	if err != nil {
		return run, err
	}
	elapsed := time.Since(start)
	for _, d := range drained {
		run.Behind += d.Behind
	}
	e1, err := sampleAll(ctx, insts, false)
	if err != nil {
		return run, err
	}
	re1, err := r.redisNow(ctx)
	if err != nil {
		return run, err
	}
	run.Elapsed = report.Duration(elapsed)
	run.RedisCPU = report.Duration(re1.redisCPU - re0.redisCPU)
	for i, in := range insts {
		cpu := e1[i].CPU - e0[i].CPU
		run.ServerCPU += report.Duration(cpu)
		ir := report.InstanceRun{PID: in.srv.ready.PID, Addr: in.srv.ready.Data, Streams: in.streams,
			RSSBefore: in.before.RSS, RSSAfter: in.after.RSS, GoroutinesBefore: in.before.Goroutines,
			GoroutinesAfter: in.after.Goroutines, FDs: in.after.FDs,
			RedisPoolConns: int(in.after.Extra["redisPoolConns"]), IdleCPU: report.Duration(idle[i]), ServerCPU: report.Duration(cpu)}
		if in.streams > 0 {
			ir.RSSPerConn = (float64(in.after.RSS) - float64(in.before.RSS)) / float64(in.streams)
			ir.GoroutinesPerConn = float64(in.after.Goroutines-in.before.Goroutines) / float64(in.streams)
		}
		if gone, err := in.srv.exited(); gone {
			ir.Exited = fmt.Sprint(err)
		}
		sc.Instances = append(sc.Instances, ir)
	}
	r.logf("%s: %d appended in %s (max lag %s), drained after %s", spec.Name, emit.Appended,
		emit.Elapsed.Round(time.Millisecond), emit.MaxLag.Round(time.Millisecond), elapsed.Round(time.Millisecond))

	res, err := r.finish(ctx, kids, emit.LastSeq, 120*time.Second)
	if err != nil {
		return run, err
	}
	run.Events, run.Gaps, run.Dups, run.Missing = res.Events, res.Gaps, res.Dups, res.Missing
	run.Errors, run.ProtocolErrors, run.Reconnects, run.Heartbeats = res.Errors, res.ProtocolErrors, res.Reconnects, res.Heartbeats
	run.ErrorSamples = res.ErrorSamples
	run.ClientCPU = report.Duration(res.ClientCPU)
	if res.Latency != nil {
		run.LatencyUs = res.Latency.Summarize()
	}
	// Every subscriber of every child started should have every event of
	// its task; those that never connected count as missing.
	for _, c := range started {
		for i := c.lo; i < c.hi; i++ {
			run.Expected += emit.LastSeq[taskOf(i, ids)]
		}
	}
	if elapsed > 0 {
		run.DeliveredPerSec = float64(run.Events) / elapsed.Seconds()
		if cpu := time.Duration(run.ServerCPU + run.RedisCPU); cpu > 0 {
			run.DeliveriesPerCPUSec = float64(run.Events) / cpu.Seconds()
			if run.Events > 0 {
				run.CPUPerEventUs = float64(cpu/time.Microsecond) / float64(run.Events)
			}
		}
	}
	run.Check()
	return run, nil
}

// redisNow reads redis-server's CPU time and client count.
func (r *Runner) redisNow(ctx context.Context) (sample, error) {
	var s sample
	var err error
	s.redisCPU, s.redisClients, err = redisInfo(ctx, r.redis)
	return s, err
}

func sumRSS(st []control.Stats) uint64 {
	var n uint64
	for _, s := range st {
		n += s.RSS
	}
	return n
}

// createSpread creates n tasks, spread over the instances' creation
// services concurrently (they share the store), and returns their ids.
func createSpread(ctx context.Context, insts []*instance, n int) ([]string, error) {
	parts := make([][]string, len(insts))
	errs := make([]error, len(insts))
	var wg sync.WaitGroup
	for i, in := range insts {
		cnt := (i+1)*n/len(insts) - i*n/len(insts)
		if cnt == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[i], errs[i] = in.srv.ctl.CreateTasks(ctx, cnt)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ids := make([]string, 0, n)
	for _, p := range parts {
		ids = append(ids, p...)
	}
	return ids, nil
}

// diagnose says which machine limit most likely stopped the connects: a
// dead instance, file descriptors, ephemeral ports, the connection
// tracking table, memory, or otherwise the first error the clients saw.
func diagnose(runErr error, samples []string, insts []*instance, limits, now measure.Kernel) string {
	for i, in := range insts {
		if gone, err := in.srv.exited(); gone {
			why := fmt.Sprintf("instance %d exited (%v)", i+1, err)
			if now.MemAvailableMB >= 0 && now.MemTotalMB > 0 && now.MemAvailableMB*20 < now.MemTotalMB {
				why += "; memory: " + strconv.FormatInt(now.MemAvailableMB, 10) + " MB available"
			}
			return why
		}
	}
	has := func(s string) string {
		for _, x := range samples {
			if strings.Contains(x, s) {
				return x
			}
		}
		return ""
	}
	if x := has("too many open files"); x != "" {
		return fmt.Sprintf("file descriptors: a process reached its limit of %d open files (%s)", limits.NoFile, x)
	}
	for i, in := range insts {
		if st, err := in.srv.ctl.Stats(context.Background()); err == nil && limits.NoFile > 0 && int64(st.FDs) >= limits.NoFile-int64(fdReserve)/4 {
			return fmt.Sprintf("file descriptors: instance %d holds %d of %d open files", i+1, st.FDs, limits.NoFile)
		}
	}
	if x := has("cannot assign requested address"); x != "" {
		return fmt.Sprintf("ephemeral ports: a source address ran out of its %d ports (%s)", limits.Ports(), x)
	}
	if now.ConntrackMax > 0 && now.ConntrackCount*20 >= now.ConntrackMax*19 {
		return fmt.Sprintf("connection tracking: %d of %d entries in use", now.ConntrackCount, now.ConntrackMax)
	}
	if now.MemAvailableMB >= 0 && now.MemTotalMB > 0 && now.MemAvailableMB*20 < now.MemTotalMB {
		return fmt.Sprintf("memory: %d MB of %d MB available", now.MemAvailableMB, now.MemTotalMB)
	}
	if runErr != nil {
		return "client processes: " + runErr.Error()
	}
	if len(samples) > 0 {
		return "no machine limit reached; first client error: " + samples[0]
	}
	return "no machine limit reached and no client error reported (connects timed out)"
}
