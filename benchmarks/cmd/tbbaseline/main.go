// Command tbbaseline runs the handwritten baseline (per-connection blocking
// store reads, the way taskbridge-fastapi does it) as a bench server for tbload.
// It serves the protocol's routes on -listen and the generator's
// control endpoint on -control, and prints one "TBREADY {...}" line with
// both addresses and its pid once it serves:
//
//	go run ./benchmarks/cmd/tbbaseline -listen 127.0.0.1:8080 -control 127.0.0.1:8081
//
// tbload starts its servers itself; run this command to look at a server by
// hand or to profile it. SIGINT or SIGTERM stops it.
package main

import (
	"fmt"
	"os"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/servers"
)

func main() {
	if err := servers.Main(servers.Baseline, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tbbaseline:", err)
		os.Exit(1)
	}
}
