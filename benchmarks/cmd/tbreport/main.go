// Command tbreport renders results files written by tbload -out as
// Markdown. With -readme it replaces the generated section of that file
// (between the results markers) instead of printing, so the README's table
// is always the output of an actual run:
//
//	go run ./benchmarks/cmd/tbreport -readme benchmarks/README.md \
//		-micro benchmarks/results/micro.txt benchmarks/results/*.json
//
// Where two files hold the same scenario, the later run decides the
// targets and the earlier is marked superseded. -before names results of
// a run before a change on the same machine (growth targets compare with
// them; they are rendered last), -roundtrips the go test -v output of
// stores/redisstore's TestRoundTripsPerRoute (the Redis round trips per
// route).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/taskbridge/taskbridge-fiber/benchmarks/internal/report"
)

func main() {
	readme := flag.String("readme", "", "replace the generated section of this Markdown file instead of printing")
	micro := flag.String("micro", "", "append this go test -bench output (the micro benchmarks) as a code block")
	beforeList := flag.String("before", "", "comma-separated results files of a run before the change (same machine), for growth targets")
	roundTrips := flag.String("roundtrips", "", "go test -v output of stores/redisstore's TestRoundTripsPerRoute, for the round-trip targets")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tbreport [-readme FILE] RESULTS.json...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var files []*report.File
	for _, path := range flag.Args() {
		f, err := report.ReadFile(path)
		if err != nil {
			fail(err)
		}
		files = append(files, f)
	}
	var (
		before      []*report.File
		beforePaths []string
	)
	for _, path := range strings.Split(*beforeList, ",") {
		if path = strings.TrimSpace(path); path == "" {
			continue
		}
		f, err := report.ReadFile(path)
		if err != nil {
			fail(err)
		}
		before = append(before, f)
		beforePaths = append(beforePaths, path)
	}
	var tripsData []byte
	if *roundTrips != "" {
		var err error
		if tripsData, err = os.ReadFile(*roundTrips); err != nil {
			fail(err)
		}
	}
	var microData []byte
	if *micro != "" {
		var err error
		if microData, err = os.ReadFile(*micro); err != nil {
			fail(err)
		}
	}

	var out bytes.Buffer
	checks := report.Checks(files, before)
	checks = append(checks, report.RoundTripChecks(bytes.NewReader(tripsData))...)
	checks = append(checks, report.MicroAllocCheck(bytes.NewReader(microData))...)
	if len(checks) > 0 {
		out.WriteString("#### Targets, checked against the results below\n\n")
		out.WriteString("Each target is worded as the goal that set it; no tolerance is added. " +
			"A target about growth needs two data points and reads \"not judged\" with one.\n\n")
		report.RenderChecks(&out, checks)
		out.WriteString("\n")
	}
	superseded := report.Superseded(files)
	pathOf := map[*report.File]string{}
	for i, f := range files {
		pathOf[f] = flag.Arg(i)
	}
	note := func(s *report.Scenario) string {
		if later, ok := superseded[s]; ok {
			return fmt.Sprintf("*Superseded by the later run of this scenario in `%s`, which the targets above are checked against.*",
				pathOf[later])
		}
		return ""
	}
	for i, f := range files {
		if i > 0 {
			out.WriteString("\n")
		}
		fmt.Fprintf(&out, "<!-- from %s -->\n\n", flag.Arg(i))
		report.RenderMarkdownWith(&out, f, note)
	}
	for i, f := range before {
		fmt.Fprintf(&out, "\n<!-- from %s -->\n\n", beforePaths[i])
		out.WriteString("**Before the change**, on the same machine (the growth targets above compare with these runs):\n\n")
		report.RenderMarkdown(&out, f)
	}
	if *roundTrips != "" {
		fmt.Fprintf(&out, "\n#### Redis round trips per route\n\n<!-- from %s -->\n\n```\n%s\n```\n", *roundTrips, bytes.TrimSpace(tripsData))
	}
	if *micro != "" {
		fmt.Fprintf(&out, "\n#### Micro benchmarks\n\n<!-- from %s -->\n\n```\n%s\n```\n", *micro, bytes.TrimSpace(microData))
	}
	if *readme == "" {
		os.Stdout.Write(out.Bytes())
		return
	}
	doc, err := os.ReadFile(*readme)
	if err != nil {
		fail(err)
	}
	updated, err := report.ReplaceSection(doc, out.Bytes())
	if err != nil {
		fail(fmt.Errorf("%s: %w", *readme, err))
	}
	if err := os.WriteFile(*readme, updated, 0o644); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "tbreport: %s updated from %d results file(s)\n", *readme, flag.NArg())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tbreport:", err)
	os.Exit(1)
}
