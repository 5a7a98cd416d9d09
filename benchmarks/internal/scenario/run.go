package scenario

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/control"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/measure"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
)

// Runner runs scenarios with one Config. It is not safe for concurrent use.
type Runner struct {
	cfg   Config
	redis *redis.Client
}

// NewRunner returns a runner; with the redis store it connects to
// cfg.RedisAddr to sample redis-server.
func NewRunner(cfg Config) (*Runner, error) {
	r := &Runner{cfg: cfg}
	if cfg.Store == "redis" {
		if cfg.RedisAddr == "" {
			return nil, fmt.Errorf("scenario: the redis store needs a Redis address (-redis-addr or $TASKBRIDGE_REDIS_ADDR)")
		}
		r.redis = redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: 2})
	}
	return r, nil
}

// Close releases the runner's Redis client.
func (r *Runner) Close() {
	if r.redis != nil {
		r.redis.Close()
	}
}

func (r *Runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Run measures every spec against every target and returns the results.
// A target that fails to run gets a Run whose Problems say why; Run only
// returns an error when ctx ends.
func (r *Runner) Run(ctx context.Context, specs []Spec, args []string, smoke bool) (*report.File, error) {
	f := &report.File{Meta: collectMeta(args, smoke)}
	start := time.Now()
	for _, spec := range specs {
		if IsScale(spec.Kind) {
			spec.Instances = r.instancesFor(spec)
		}
		sc := report.Scenario{Name: spec.Name, Kind: spec.Kind, Params: report.Params{
			Transport: spec.Transport, Subscribers: spec.Subscribers, Tasks: spec.Tasks, Rate: spec.Rate,
			Duration: report.Duration(spec.Duration), Drops: spec.Drops, Concurrency: spec.Concurrency, Store: r.cfg.Store,
			Instances: spec.Instances, Stages: spec.Stages,
		}}
		for _, target := range r.cfg.Targets {
			if spec.Kind == report.KindHTTP && target == report.TargetRaw {
				continue // the raw server has no HTTP framework to compare
			}
			if IsScale(spec.Kind) && target != report.TargetBridge {
				continue // many instances on one store: the bridge's design only
			}
			var run report.Run
			var err error
			r.logf("%s/%s: start", spec.Name, target)
			switch {
			case spec.Kind == report.KindHTTP:
				run, err = r.runHTTP(ctx, spec, target)
			case IsScale(spec.Kind):
				run, err = r.runScale(ctx, spec)
			default:
				run, err = r.runStream(ctx, spec, target)
			}
			if ctx.Err() != nil {
				return f, ctx.Err()
			}
			if err != nil {
				run.Problems = append(run.Problems, "run failed: "+err.Error())
			}
			r.logf("%s/%s: done: %s", spec.Name, target, strings.Join(append([]string{"ok"}, run.Problems...)[min(1, len(run.Problems)):], "; "))
			sc.Runs = append(sc.Runs, run)
		}
		sc.ComputeRatios()
		f.Scenarios = append(f.Scenarios, sc)
	}
	f.Meta.LoadAfter = loadAvg()
	f.Meta.Elapsed = report.Duration(time.Since(start).Round(time.Second))
	return f, nil
}

func (r *Runner) storeOf(target string) string {
	if target == report.TargetRaw {
		return "-"
	}
	return r.cfg.Store
}

// sample is a reading of the server (and redis-server).
type sample struct {
	stats        control.Stats
	redisCPU     time.Duration
	redisClients int
}

func (r *Runner) sample(ctx context.Context, srv *serverProc, target string) (sample, error) {
	var s sample
	var err error
	if s.stats, err = srv.ctl.Stats(ctx); err != nil {
		return s, err
	}
	if r.redis != nil && target != report.TargetRaw {
		s.redisCPU, s.redisClients, err = redisInfo(ctx, r.redis)
	}
	return s, err
}

// redisInfo reads redis-server's CPU time (user+sys) and client count.
func redisInfo(ctx context.Context, c *redis.Client) (time.Duration, int, error) {
	info, err := c.Info(ctx, "cpu", "clients").Result()
	if err != nil {
		return 0, 0, err
	}
	return parseRedisInfo(info)
}

func parseRedisInfo(info string) (time.Duration, int, error) {
	var cpu float64
	clients := -1
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "used_cpu_sys", "used_cpu_user":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("redis info %s: %w", k, err)
			}
			cpu += f
		case "connected_clients":
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, 0, fmt.Errorf("redis info %s: %w", k, err)
			}
			clients = n
		}
	}
	if clients < 0 {
		return 0, 0, fmt.Errorf("redis info lacks connected_clients")
	}
	return time.Duration(cpu * float64(time.Second)), clients, nil
}

// plan spreads a spec's subscribers over tasks, transports and children.
func (r *Runner) plan(spec Spec, ids []string, addr string) []*loadclient.Assignment {
	n := spec.Subscribers
	per := max(r.cfg.PerChild, 1)
	kids := max((n+per-1)/per, 1)
	transports := transportsOf(spec.Transport)
	out := make([]*loadclient.Assignment, kids)
	for k := range out {
		a := &loadclient.Assignment{
			Addr: addr, Token: r.cfg.Token, Strict: r.cfg.Strict,
			SourceIPs:       []string{fmt.Sprintf("127.0.0.%d", 2+k%250)},
			DialConcurrency: r.cfg.DialConcurrency,
			ConnectTimeout:  r.cfg.ConnectTimeout,
		}
		if spec.Drops > 0 {
			a.Drops = spec.Drops
			a.DropFrom = spec.Duration / 10
			a.DropTo = spec.Duration * 8 / 10
		}
		lo, hi := k*n/kids, (k+1)*n/kids
		for i := lo; i < hi; i++ {
			task, tr := ids[i%len(ids)], transports[i%len(transports)]
			if g := len(a.Groups) - 1; g >= 0 && a.Groups[g].TaskID == task && a.Groups[g].Transport == tr {
				a.Groups[g].Count++
				continue
			}
			a.Groups = append(a.Groups, loadclient.Group{TaskID: task, Transport: tr, Count: 1})
		}
		out[k] = a
	}
	return out
}

// startChildren starts one client child per assignment and waits until they
// connected.
func (r *Runner) startChildren(ctx context.Context, plan []*loadclient.Assignment) (children, int, int, error) {
	kids, reports, err := r.startChildrenReports(ctx, plan, r.cfg.ConnectTimeout)
	connected, failed := 0, 0
	for _, rep := range reports {
		connected += rep.Connected
		failed += rep.Failed
	}
	return kids, connected, failed, err
}

// startChildrenReports starts one client child per assignment and returns
// each one's connected report, in plan order. The children connect for at
// most connectTimeout.
func (r *Runner) startChildrenReports(ctx context.Context, plan []*loadclient.Assignment, connectTimeout time.Duration) (children, []loadclient.Report, error) {
	var kids children
	for _, a := range plan {
		c, err := startChild(&r.cfg)
		if err != nil {
			kids.closeAll()
			return nil, nil, err
		}
		kids = append(kids, c)
		if err := c.send(loadclient.Command{Cmd: "start", Assign: a}); err != nil {
			kids.closeAll()
			return nil, nil, err
		}
	}
	reports, err := kids.awaitAll(ctx, "connected", connectTimeout+30*time.Second)
	return kids, reports, err
}

// finish collects the children's merged result.
func (r *Runner) finish(ctx context.Context, kids children, expected map[string]uint64, timeout time.Duration) (*loadclient.Result, error) {
	if err := kids.sendAll(loadclient.Command{Cmd: "finish", Expected: expected, Drain: time.Second}); err != nil {
		return nil, err
	}
	reports, err := kids.awaitAll(ctx, "result", timeout)
	total := &loadclient.Result{}
	for _, rep := range reports {
		if rep.Result != nil {
			total.Merge(rep.Result)
		}
	}
	return total, err
}

// target is a started server plus the control endpoint that emits to it:
// the server's own, or on Redis a separate emitter process (a worker in
// another process, as the stores allow), so that the server's CPU is its
// streaming work only.
type target struct {
	srv  *serverProc
	emit *control.Client
	stop func()
}

func (r *Runner) startTarget(ctx context.Context, spec Spec, name string, extra ...string) (*target, error) {
	onRedis := r.cfg.Store == "redis" && name != report.TargetRaw
	var prefix string
	if onRedis {
		prefix = benchstore.NewKeyPrefix()
		extra = append(extra, "-redis-prefix", prefix)
	}
	srv, err := startServer(ctx, &r.cfg, name, extra...)
	if err != nil {
		return nil, err
	}
	stopSrv := func() {
		if err := srv.stop(); err != nil {
			r.logf("%s/%s: server stop: %v", spec.Name, name, err)
		}
	}
	t := &target{srv: srv, emit: srv.ctl, stop: stopSrv}
	if onRedis {
		em, err := startServer(ctx, &r.cfg, "emitter", "-redis-prefix", prefix)
		if err != nil {
			stopSrv()
			return nil, err
		}
		t.emit = em.ctl
		t.stop = func() {
			if err := em.stop(); err != nil {
				r.logf("%s/%s: emitter stop: %v", spec.Name, name, err)
			}
			stopSrv()
		}
	}
	return t, nil
}

func (r *Runner) runStream(ctx context.Context, spec Spec, target string) (report.Run, error) {
	run := report.Run{Target: target, Store: r.storeOf(target), Subscribers: spec.Subscribers}
	var extra []string
	if target == report.TargetBridge {
		hb := r.cfg.Heartbeat
		if spec.Kind == report.KindIdle {
			hb = r.cfg.IdleHeartbeat
		}
		extra = append(extra, "-heartbeat", hb.String())
	}
	tg, err := r.startTarget(ctx, spec, target, extra...)
	if err != nil {
		return run, err
	}
	defer tg.stop()
	srv := tg.srv
	ids, err := srv.ctl.CreateTasks(ctx, spec.Tasks)
	if err != nil {
		return run, err
	}
	idle := spec.Kind == report.KindIdle
	if idle {
		if err := srv.ctl.GC(ctx); err != nil {
			return run, err
		}
	}
	before, err := r.sample(ctx, srv, target)
	if err != nil {
		return run, err
	}
	t0 := time.Now()
	kids, connected, failed, err := r.startChildren(ctx, r.plan(spec, ids, srv.ready.Data))
	defer kids.closeAll()
	run.Connected, run.ConnectFailures = connected, failed
	if err != nil {
		return run, err
	}
	r.logf("%s/%s: %d connected, %d failed in %s", spec.Name, target, connected, failed, time.Since(t0).Round(time.Millisecond))

	var expected map[string]uint64
	var after sample
	if idle {
		sleepCtx(ctx, r.cfg.Settle)
		if err := srv.ctl.GC(ctx); err != nil {
			return run, err
		}
		if after, err = r.sample(ctx, srv, target); err != nil {
			return run, err
		}
		// The window's CPU is read from /proc by this process, so that
		// the server does no measuring work inside it.
		cpu0, err := procCPU(srv.ready.PID)
		if err != nil {
			return run, err
		}
		sleepCtx(ctx, r.cfg.IdleWindow)
		cpu1, err := procCPU(srv.ready.PID)
		if err != nil {
			return run, err
		}
		end, err := r.sample(ctx, srv, target)
		if err != nil {
			return run, err
		}
		run.IdleWindow = report.Duration(r.cfg.IdleWindow)
		run.IdleCPU = report.Duration(cpu1 - cpu0)
		run.IdleRedisCPU = report.Duration(end.redisCPU - after.redisCPU)
		if connected > 0 {
			run.RSSPerConn = float64(int64(after.stats.RSS)-int64(before.stats.RSS)) / float64(connected)
			run.GoroutinesPerConn = float64(after.stats.Goroutines-before.stats.Goroutines) / float64(connected)
		}
	} else {
		if before, err = r.sample(ctx, srv, target); err != nil {
			return run, err
		}
		if err := kids.sendAll(loadclient.Command{Cmd: "go"}); err != nil {
			return run, err
		}
		start := time.Now()
		emit, err := tg.emit.Emit(ctx, control.EmitRequest{TaskIDs: ids, EventsPerTask: spec.EventsPerTask(), RatePerTask: spec.Rate})
		if err != nil {
			return run, err
		}
		run.EmitAppended, run.EmitErrors = emit.Appended, emit.Errors
		run.EmitMaxLag, run.EmitElapsed = report.Duration(emit.MaxLag), report.Duration(emit.Elapsed)
		expected = emit.LastSeq
		if err := kids.sendAll(loadclient.Command{Cmd: "drain", Expected: expected, Drain: r.cfg.Drain}); err != nil {
			return run, err
		}
		drained, err := kids.awaitAll(ctx, "drained", r.cfg.Drain+30*time.Second)
		if err != nil {
			return run, err
		}
		elapsed := time.Since(start)
		for _, d := range drained {
			run.Behind += d.Behind
		}
		if after, err = r.sample(ctx, srv, target); err != nil {
			return run, err
		}
		run.Elapsed = report.Duration(elapsed)
		run.ServerCPU = report.Duration(after.stats.CPU - before.stats.CPU)
		run.RedisCPU = report.Duration(after.redisCPU - before.redisCPU)
		r.logf("%s/%s: %d appended in %s (max lag %s), drained after %s", spec.Name, target, emit.Appended,
			emit.Elapsed.Round(time.Millisecond), emit.MaxLag.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	}
	run.RSSBefore, run.RSSAfter = before.stats.RSS, after.stats.RSS
	run.GoroutinesBefore, run.GoroutinesAfter = before.stats.Goroutines, after.stats.Goroutines
	run.RedisClientsBefore, run.RedisClientsAfter = before.redisClients, after.redisClients

	res, err := r.finish(ctx, kids, expected, 60*time.Second)
	if err != nil {
		return run, err
	}
	fillRun(&run, res, spec, ids, expected)
	if !idle && run.Elapsed > 0 {
		run.DeliveredPerSec = float64(run.Events) / time.Duration(run.Elapsed).Seconds()
		if cpu := time.Duration(run.ServerCPU + run.RedisCPU); cpu > 0 {
			run.DeliveriesPerCPUSec = float64(run.Events) / cpu.Seconds()
		}
		if run.Events > 0 {
			run.CPUPerEventUs = float64(time.Duration(run.ServerCPU+run.RedisCPU)/time.Microsecond) / float64(run.Events)
		}
	}
	run.Check()
	return run, nil
}

// fillRun copies the clients' merged result into run. Subscriber i follows
// ids[i mod len(ids)], as plan assigns them.
func fillRun(run *report.Run, res *loadclient.Result, spec Spec, ids []string, expected map[string]uint64) {
	run.Events, run.Gaps, run.Dups, run.Missing = res.Events, res.Gaps, res.Dups, res.Missing
	run.Errors, run.ProtocolErrors, run.Reconnects, run.Heartbeats = res.Errors, res.ProtocolErrors, res.Reconnects, res.Heartbeats
	run.ErrorSamples = res.ErrorSamples
	run.ClientCPU = report.Duration(res.ClientCPU)
	if res.Latency != nil {
		run.LatencyUs = res.Latency.Summarize()
	}
	if res.ConnectFailures > run.ConnectFailures {
		run.ConnectFailures = res.ConnectFailures
	}
	for i := 0; i < spec.Subscribers && len(ids) > 0; i++ {
		run.Expected += expected[ids[i%len(ids)]]
	}
}

func (r *Runner) runHTTP(ctx context.Context, spec Spec, target string) (report.Run, error) {
	run := report.Run{Target: target, Store: r.storeOf(target)}
	tg, err := r.startTarget(ctx, spec, target)
	if err != nil {
		return run, err
	}
	defer tg.stop()
	srv := tg.srv
	ids, err := srv.ctl.CreateTasks(ctx, spec.PollTasks)
	if err != nil {
		return run, err
	}
	if _, err := tg.emit.Emit(ctx, control.EmitRequest{TaskIDs: ids, EventsPerTask: 10}); err != nil {
		return run, err
	}
	for i, kind := range []string{loadclient.HTTPCreate, loadclient.HTTPPoll, loadclient.HTTPBare} {
		before, err := r.sample(ctx, srv, target)
		if err != nil {
			return run, err
		}
		a := &loadclient.Assignment{Addr: srv.ready.Data, Token: r.cfg.Token,
			SourceIPs: []string{fmt.Sprintf("127.0.0.%d", 2+i)},
			HTTP:      &loadclient.HTTPLoad{Kind: kind, Concurrency: spec.Concurrency, Duration: spec.Duration, TaskIDs: ids}}
		kids, _, _, err := r.startChildren(ctx, []*loadclient.Assignment{a})
		if err != nil {
			kids.closeAll()
			return run, err
		}
		if err := kids.sendAll(loadclient.Command{Cmd: "go"}); err != nil {
			kids.closeAll()
			return run, err
		}
		res, err := r.finish(ctx, kids, nil, spec.Duration+60*time.Second)
		kids.closeAll()
		if err != nil {
			return run, err
		}
		after, err := r.sample(ctx, srv, target)
		if err != nil {
			return run, err
		}
		h := report.HTTPRun{Kind: kind, ServerCPU: report.Duration(after.stats.CPU - before.stats.CPU)}
		if res.HTTP != nil {
			h.Requests, h.Errors, h.BadStatus, h.RPS = res.HTTP.Requests, res.HTTP.Errors, res.HTTP.BadStatus, res.HTTP.RPS()
			if res.HTTP.LatencyUs != nil {
				h.LatencyUs = res.HTTP.LatencyUs.Summarize()
			}
		}
		run.ErrorSamples = append(run.ErrorSamples, res.ErrorSamples...)
		run.HTTP = append(run.HTTP, h)
		r.logf("%s/%s: %s %.0f req/s", spec.Name, target, kind, h.RPS)
	}
	run.Check()
	return run, nil
}

// procCPU reads the CPU time process pid has used, from /proc.
func procCPU(pid int) (time.Duration, error) {
	p, err := measure.ReadProc(pid)
	return p.CPU, err
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// collectMeta describes this machine and run.
func collectMeta(args []string, smoke bool) report.Meta {
	m := report.Meta{Date: time.Now().UTC().Round(time.Second), Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
		Args: args, Smoke: smoke, LoadBefore: loadAvg()}
	m.Host, _ = os.Hostname()
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				m.MemTotalMB = kb / 1024
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

func loadAvg() [3]float64 {
	var l [3]float64
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(data))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}
