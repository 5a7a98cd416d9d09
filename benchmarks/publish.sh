#!/usr/bin/env bash
# publish.sh [TBLOAD FLAGS...]
#
# Runs the whole benchmark suite twice, on the memory store and on Redis
# (through scripts/with-redis.sh, which starts a throw-away redis-server),
# then the micro benchmarks, writes the results to benchmarks/results/, and
# regenerates the results section of benchmarks/README.md from them with
# tbreport. Extra flags go to
# both tbload runs (e.g. -scenario fanout). Run it on a quiet machine: it
# prints the load average first, and the README records it.
#
# The scale scenarios (100,000 streams over several instances) are not
# rerun unless SCALE=1 is set; their last results (results/scale.json) are
# published with the others when present.
set -euo pipefail
cd "$(dirname "$0")/.."

out=benchmarks/results
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "publish: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
go build -o "$tmp/tbload" ./benchmarks/cmd/tbload

"$tmp/tbload" -out "$out/mem.json" "$@"
files=("$out/mem.json")

rm -f "$out/redis.json"
if [ -x scripts/with-redis.sh ]; then
	scripts/with-redis.sh "$tmp/tbload" -store redis -out "$out/redis.json" "$@" ||
		echo "publish: the Redis pass failed; publishing the memory results only" >&2
	if [ -f "$out/redis.json" ]; then
		files+=("$out/redis.json")
	fi
fi

if [ "${SCALE:-}" = 1 ]; then
	scripts/with-redis.sh "$tmp/tbload" -store redis -scenario scale -out "$out/scale.json" ||
		echo "publish: the scale run failed; its results are published as they are" >&2
fi
if [ -f "$out/scale.json" ]; then
	files+=("$out/scale.json")
fi

echo "publish: micro benchmarks"
go test -run '^$' -bench . -benchmem ./benchmarks/micro | grep -E '^(Benchmark|goos|goarch|cpu)' > "$out/micro.txt"

go run ./benchmarks/cmd/tbreport -readme benchmarks/README.md -micro "$out/micro.txt" "${files[@]}"
