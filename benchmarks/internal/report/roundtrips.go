package report

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// roundTripLine is a line of TestRoundTripsPerRoute's log (stores/redisstore,
// go test -v): "  create           1 round trips: EVALSHA".
var roundTripLine = regexp.MustCompile(`^\s+(\S+(?: \(\w+\))?)\s+(\d+) round trips: (.*)$`)

// RoundTripChecks reads the -v output of stores/redisstore's
// TestRoundTripsPerRoute, which counts the Redis round trips each route
// makes (a go-redis hook attributes every command to the request whose
// context it carries), and checks the performance issue's "one round trip
// per create and per poll" on Redis. Routes the output does not list are
// left out; a test that failed makes both checks fail.
func RoundTripChecks(r io.Reader) []Check {
	trips := map[string]string{}
	counts := map[string]int{}
	failed := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if m := roundTripLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			counts[m[1]], trips[m[1]] = n, m[3]
		}
		if strings.HasPrefix(line, "--- FAIL: TestRoundTripsPerRoute ") {
			failed = true
		}
	}
	var out []Check
	for _, route := range []string{"create", "poll"} {
		n, ok := counts[route]
		if !ok {
			continue
		}
		c := Check{SetBy: SetByPerformance, Target: "http (redis): round trips per " + route + " (TestRoundTripsPerRoute)",
			Want: "1", Got: fmt.Sprintf("%d (%s)", n, trips[route]), Verdict: verdict(n == 1 && !failed)}
		if failed {
			c.Got += "; the test failed"
		}
		out = append(out, c)
	}
	return out
}
