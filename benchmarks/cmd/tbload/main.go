// Command tbload is the TaskBridge load generator. It measures the bridge
// (tbserver), the handwritten baseline (tbbaseline) and the raw TCP ceiling
// (tbraw) in one run, scenario by scenario, and prints a table with the
// ratios between them:
//
//	go run ./benchmarks/cmd/tbload -scenario fanout
//	go run ./benchmarks/cmd/tbload -scenario idle -sizes 1000,5000,15000
//	go run ./benchmarks/cmd/tbload -smoke          # every scenario, small, fails on any problem
//	scripts/with-redis.sh go run ./benchmarks/cmd/tbload -store redis -scenario many
//	scripts/with-redis.sh go run ./benchmarks/cmd/tbload -store redis -scenario scale   # 100k streams, 6 instances
//
// It starts every server and every client process itself, by re-executing
// its own binary: "tbload serve -kind raw|baseline|bridge ..." runs a
// server, "tbload child" a client process holding at most -per-child
// sockets (one process may hold at most ~19,900 here). See
// benchmarks/README.md.
package main

import (
	"context"
	"flag"
	"fmt"

	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/benchstore"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/loadclient"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/scenario"
	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/servers"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			exit(servers.Main("", os.Args[2:], os.Stdout))
		case "child":
			exit(loadclient.RunChild(context.Background(), os.Stdin, os.Stdout))
		}
	}
	os.Exit(run(os.Args[1:]))
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "tbload:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func run(args []string) int {
	fs := flag.NewFlagSet("tbload", flag.ContinueOnError)
	var (
		scen        = fs.String("scenario", "all", "scenarios to run, comma-separated: idle, fanout, many, resume, http, all (these five), scale (both of scale-hold and scale-many; Redis only)")
		targets     = fs.String("targets", "bridge,baseline,raw", "servers to measure, comma-separated")
		store       = fs.String("store", "mem", "store of bridge and baseline: mem or redis")
		redisAddr   = fs.String("redis-addr", os.Getenv(benchstore.RedisAddrEnv), "redis-server host:port (default $"+benchstore.RedisAddrEnv+")")
		smoke       = fs.Bool("smoke", false, "run every scenario at a small size, strictly, and fail on any problem")
		out         = fs.String("out", "", "write the results as JSON to this file")
		strict      = fs.Bool("strict", false, "decode every frame with the protocol's strict decoders")
		perChild    = fs.Int("per-child", 10_000, "most sockets per client process")
		subs        = fs.Int("n", 0, "subscribers (fanout, many, resume)")
		tasks       = fs.Int("tasks", 0, "tasks (fanout, many, resume; http: tasks polled)")
		rate        = fs.Float64("rate", 0, "events per second per task")
		duration    = fs.Duration("duration", 0, "emission duration (http: per load)")
		transport   = fs.String("transport", "", "sse, ws, poll or mix")
		drops       = fs.Int("drops", 0, "resume: drops per subscriber")
		sizes       = fs.String("sizes", "", "idle: connection counts, comma-separated (default 1000,5000,15000)")
		concurrency = fs.Int("concurrency", 0, "http: connections per load (default 64)")
		instances   = fs.Int("instances", 0, "scale: bridge instances (default: enough for -per-instance streams each)")
		perInstance = fs.Int("per-instance", 0, "scale: most streams per bridge instance when -instances is not given (default 17000)")
		stages      = fs.Int("stages", 0, "scale: connect stages (default 4)")
		tuneKernel  = fs.Bool("tune-kernel", false, "scale: raise the sysctls the plan needs and the machine has too low (root; recorded in the results)")
		failOn      = fs.Bool("fail-on-problems", false, "exit 1 when any run has a problem (always on with -smoke)")
		serverLog   = fs.String("server-log", "", "append the servers' stderr to this file (- for stderr)")
		quiet       = fs.Bool("q", false, "no progress lines on stderr")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tbload:", err)
		return 1
	}
	cfg := scenario.DefaultConfig(exe)
	cfg.Targets = splitList(*targets)
	cfg.Store, cfg.RedisAddr, cfg.Strict, cfg.PerChild = *store, *redisAddr, *strict, *perChild
	cfg.TuneKernel = *tuneKernel
	if *perInstance > 0 {
		cfg.PerInstance = *perInstance
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	switch *serverLog {
	case "":
	case "-":
		cfg.ServerLog = os.Stderr
	default:
		f, err := os.OpenFile(*serverLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tbload:", err)
			return 1
		}
		defer f.Close()
		cfg.ServerLog = f
	}

	var specs []scenario.Spec
	if *smoke {
		cfg = scenario.SmokeConfig(cfg)
		specs = scenario.SmokeSpecs()
		*failOn = true
	} else {
		o := scenario.Overrides{Subscribers: *subs, Tasks: *tasks, Rate: *rate, Duration: *duration,
			Transport: *transport, Drops: *drops, Concurrency: *concurrency, Instances: *instances, Stages: *stages}
		for _, s := range splitList(*sizes) {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "tbload: bad size %q\n", s)
				return 2
			}
			o.Sizes = append(o.Sizes, n)
		}
		kinds := splitList(*scen)
		if len(kinds) == 1 && kinds[0] == "all" {
			kinds = scenario.Kinds
		}
		for _, k := range kinds {
			ss, err := scenario.DefaultSpecs(k, o)
			if err != nil {
				fmt.Fprintln(os.Stderr, "tbload:", err)
				return 2
			}
			specs = append(specs, ss...)
		}
		for _, sp := range specs {
			if scenario.IsScale(sp.Kind) && cfg.Store != benchstore.Redis {
				fmt.Fprintln(os.Stderr, "tbload: the scale scenarios need -store redis (the instances share one store)")
				return 2
			}
		}
	}

	// A pass is one store; -smoke adds a Redis pass (bridge and baseline)
	// when a Redis address is known and -store was not given.
	// The scale scenarios run in the Redis pass only.
	type pass struct {
		store   string
		targets []string
	}
	passes := []pass{{cfg.Store, cfg.Targets}}
	storeSet := false
	fs.Visit(func(fl *flag.Flag) { storeSet = storeSet || fl.Name == "store" })
	if *smoke && !storeSet {
		if cfg.RedisAddr == "" {
			if os.Getenv("CI") == "true" {
				fmt.Fprintf(os.Stderr, "tbload: -smoke under CI needs Redis ($%s; run it through scripts/with-redis.sh)\n", benchstore.RedisAddrEnv)
				return 1
			}
			fmt.Fprintf(os.Stderr, "tbload: no Redis ($%s unset): the Redis pass and the scale scenarios are skipped\n", benchstore.RedisAddrEnv)
		} else {
			var withStore []string
			for _, t := range cfg.Targets {
				if t != report.TargetRaw {
					withStore = append(withStore, t)
				}
			}
			passes = append(passes, pass{"redis", withStore})
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	var f *report.File
	for i, p := range passes {
		cfg.Store, cfg.Targets = p.store, p.targets
		runner, err := scenario.NewRunner(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tbload:", err)
			return 2
		}
		passSpecs := specs
		if p.store != benchstore.Redis {
			passSpecs = nil
			for _, sp := range specs {
				if !scenario.IsScale(sp.Kind) {
					passSpecs = append(passSpecs, sp)
				}
			}
		}
		pf, err := runner.Run(ctx, passSpecs, args, *smoke)
		runner.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "tbload:", err)
			return 1
		}
		if i == 0 {
			f = pf
			continue
		}
		for _, sc := range pf.Scenarios {
			sc.Name += "-" + p.store
			f.Scenarios = append(f.Scenarios, sc)
		}
		f.Meta.LoadAfter = pf.Meta.LoadAfter
		f.Meta.Elapsed += pf.Meta.Elapsed
	}
	report.RenderText(os.Stdout, f)
	if *out != "" {
		if err := f.WriteFile(*out); err != nil {
			fmt.Fprintln(os.Stderr, "tbload:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "results written to %s\n", *out)
	}
	problems := f.Problems()
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "PROBLEM", p)
	}
	fmt.Fprintf(os.Stderr, "tbload: %d scenarios in %s, %d problems\n", len(f.Scenarios), time.Since(start).Round(time.Second), len(problems))
	if *failOn && len(problems) > 0 {
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
