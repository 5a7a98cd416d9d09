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
#
# Results of a single scenario measured on their own are published too:
# results/http-mem.json and results/http-redis.json (an http run from
# benchmarks/ab-http.sh) are rendered next to the suite's files, and where
# both hold a scenario the later run decides the targets; the runs before
# a change, results/*-before.json, are what tbreport -before compares the
# growth targets with. The Redis round trips per route are counted by
# TestRoundTripsPerRoute (stores/redisstore) each time, into
# results/roundtrips.txt.
#
# REPORT_ONLY=1 runs no benchmark: it counts the round trips and
# regenerates the README from the results already in benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

out=benchmarks/results
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "publish: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
go build -o "$tmp/tbload" ./benchmarks/cmd/tbload

if [ "${REPORT_ONLY:-}" != 1 ]; then

"$tmp/tbload" -out "$out/mem.json" "$@"

rm -f "$out/redis.json"
if [ -x scripts/with-redis.sh ]; then
	scripts/with-redis.sh "$tmp/tbload" -store redis -out "$out/redis.json" "$@" ||
		echo "publish: the Redis pass failed; publishing the memory results only" >&2
fi

if [ "${SCALE:-}" = 1 ]; then
	scripts/with-redis.sh "$tmp/tbload" -store redis -scenario scale -out "$out/scale.json" ||
		echo "publish: the scale run failed; its results are published as they are" >&2
fi

echo "publish: micro benchmarks"
go test -run '^$' -bench . -benchmem ./benchmarks/micro | grep -E '^(Benchmark|goos|goarch|cpu)' > "$out/micro.txt"
fi

echo "publish: Redis round trips per route"
scripts/with-redis.sh go test -count=1 -run '^TestRoundTripsPerRoute$' -v ./stores/redisstore/ |
	grep -E 'round trips|^--- |^(ok|FAIL)' > "$out/roundtrips.txt" || true

files=() before=()
for f in mem redis scale http-mem http-redis; do
	if [ -f "$out/$f.json" ]; then
		files+=("$out/$f.json")
	fi
done
for f in "$out"/*-before.json; do
	if [ -f "$f" ]; then
		before+=("$f")
	fi
done
beforeList=$(IFS=,; echo "${before[*]}")
micro=()
if [ -f "$out/micro.txt" ]; then
	micro=(-micro "$out/micro.txt")
fi

go run ./benchmarks/cmd/tbreport -readme benchmarks/README.md "${micro[@]}" \
	-roundtrips "$out/roundtrips.txt" -before "$beforeList" "${files[@]}"
