// Command tbreport renders results files written by tbload -out as
// Markdown. With -readme it replaces the generated section of that file
// (between the results markers) instead of printing, so the README's table
// is always the output of an actual run:
//
//	go run ./benchmarks/cmd/tbreport -readme benchmarks/README.md \
//		-micro benchmarks/results/micro.txt benchmarks/results/*.json
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
	var before []*report.File
	for _, path := range strings.Split(*beforeList, ",") {
		if path = strings.TrimSpace(path); path == "" {
			continue
		}
		f, err := report.ReadFile(path)
		if err != nil {
			fail(err)
		}
		before = append(before, f)
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
	checks = append(checks, report.MicroAllocCheck(bytes.NewReader(microData))...)
	if len(checks) > 0 {
		out.WriteString("#### Targets, checked against the results below\n\n")
		out.WriteString("Each target is worded as the goal that set it; no tolerance is added. " +
			"A target about growth needs two data points and reads \"not judged\" with one.\n\n")
		report.RenderChecks(&out, checks)
		out.WriteString("\n")
	}
	for i, f := range files {
		if i > 0 {
			out.WriteString("\n")
		}
		fmt.Fprintf(&out, "<!-- from %s -->\n\n", flag.Arg(i))
		report.RenderMarkdown(&out, f)
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
