// Package report holds the load generator's results: the JSON document a
// run writes (File), the problems that make a run fail (Run.Check), the
// ratios between the bridge, the baseline and the raw ceiling, and their
// rendering as a text table for the terminal and as Markdown for
// benchmarks/README.md (regenerated from a results file by tbreport).
package report
