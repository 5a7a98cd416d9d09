#!/usr/bin/env bash
# ab-http.sh [-store mem|redis] [-rounds N] [-targets LIST] [-out DIR] BEFORE AFTER
#
# Before/after runs of tbload's http scenario (create, poll and the bare
# Fiber JSON handler, 64 connections, 5 s each) for two commits of this
# repository, interleaved: it builds tbload at BEFORE and at AFTER (any git
# revisions; "." is the working tree as it is), then runs them in turn for
# N rounds (default 3), swapping which goes first every round, so that a
# machine whose load drifts hurts both alike. On Redis every run gets a
# throw-away redis-server of its own (scripts/with-redis.sh). Each run writes
# its results JSON to DIR (default: a new temporary directory) and prints one
# line per load with the load average the run started at; a table of every
# run and the medians per side closes the output.
#
#   benchmarks/ab-http.sh -rounds 3 d8e445c 1ae1dd4
#   benchmarks/ab-http.sh -store redis -targets bridge,baseline -rounds 3 d8e445c 1ae1dd4
#
# -targets defaults to bridge,baseline (the bare handler runs in each
# server). Needs git, go and jq. Takes about 15 s per target per run.
#
# Then it prints the ratios of each round (the bridge's create and poll
# over its bare handler, its create over the baseline's, and its create
# after over before) and names the median round by create after/before:
# to publish one run of each side, copy that round's SIDE-ROUND.json
# files to benchmarks/results/ (see benchmarks/README.md).
set -euo pipefail

store=mem rounds=3 targets=bridge,baseline out=""
while [ $# -gt 0 ]; do
	case "$1" in
	-store) store=$2; shift 2 ;;
	-rounds) rounds=$2; shift 2 ;;
	-targets) targets=$2; shift 2 ;;
	-out) out=$2; shift 2 ;;
	-h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "ab-http: unknown flag $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -ne 2 ]; then
	echo "usage: $0 [-store mem|redis] [-rounds N] [-targets LIST] [-out DIR] BEFORE AFTER" >&2
	exit 2
fi
command -v jq >/dev/null || { echo "ab-http: jq is needed" >&2; exit 1; }
repo=$(git rev-parse --show-toplevel)
[ -n "$out" ] || out=$(mktemp -d /tmp/ab-http.XXXXXX)
mkdir -p "$out"

# build SIDE REV: tbload of REV into $out/SIDE/tbload.
build() {
	local side=$1 rev=$2 src
	mkdir -p "$out/$side"
	if [ "$rev" = "." ]; then
		src=$repo
	else
		src=$out/$side/src
		rm -rf "$src" && mkdir -p "$src"
		git -C "$repo" archive "$rev" | tar -x -C "$src"
	fi
	(cd "$src" && go build -o "$out/$side/tbload" ./benchmarks/cmd/tbload)
	echo "ab-http: $side = $rev ($(git -C "$repo" rev-parse --short "$( [ "$rev" = . ] && echo HEAD || echo "$rev")")$( [ "$rev" = . ] && echo ' + working tree'))" >&2
}
build before "$1"
build after "$2"
# tbload records the commit of the directory it runs in (this checkout);
# each side's results name the revision its binary was built from instead.
short() {
	if [ "$1" = . ]; then
		echo "$(git -C "$repo" rev-parse --short HEAD)+worktree"
	else
		git -C "$repo" rev-parse --short "$1"
	fi
}
declare -A revOf=([before]=$(short "$1") [after]=$(short "$2"))

# run SIDE ROUND: one tbload run, results in $out/SIDE-ROUND.json.
run() {
	local side=$1 round=$2 json="$out/$1-$2.json"
	local cmd=("$out/$side/tbload" -scenario http -store "$store" -targets "$targets" -q -out "$json")
	if [ "$store" = redis ]; then
		"$repo/scripts/with-redis.sh" "${cmd[@]}" >/dev/null 2>"$out/$side-$round.log"
	else
		"${cmd[@]}" >/dev/null 2>"$out/$side-$round.log"
	fi
	jq --arg rev "${revOf[$side]}" '.meta.commit = $rev' "$json" >"$json.tmp" && mv "$json.tmp" "$json"
	jq -r --arg side "$side" --arg round "$round" '
		def secs: if test("ms$") then rtrimstr("ms") | tonumber / 1e3
			elif test("µs$") then rtrimstr("µs") | tonumber / 1e6
			elif test("m") then split("m") | (.[0] | tonumber) * 60 + (.[1] | rtrimstr("s") | tonumber)
			else rtrimstr("s") | tonumber end;
		.meta.loadBefore[0] as $load | .scenarios[].runs[] | .target as $t | .http[] |
		[$side, $round, ($load|tostring), $t, .kind, (.rps|floor|tostring),
		 ((.serverCpu|secs) * 1e6 / (if .requests > 0 then .requests else 1 end) | . * 10 | floor / 10 | tostring)] | @tsv' "$json"
}

{
	printf 'side\tround\tload1\ttarget\tload\treq/s\tCPU µs/req\n'
	for r in $(seq 1 "$rounds"); do
		if [ $((r % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
		for side in $order; do
			run "$side" "$r"
		done
	done
} | tee "$out/runs.tsv"

echo
echo "medians over $rounds rounds (store $store; results in $out):"
jq -R -s -r '
	split("\n") | map(select(length > 0) | split("\t")) | .[1:] |
	group_by([.[0], .[3], .[4]]) | map({side: .[0][0], target: .[0][3], load: .[0][4],
		rps: (map(.[5]|tonumber) | sort | .[(length-1)/2|floor]),
		cpu: (map(.[6]|tonumber) | sort | .[(length-1)/2|floor])}) |
	(["side","target","load","req/s","CPU µs/req"] | @tsv), (.[] | [.side, .target, .load, (.rps|tostring), (.cpu|tostring)] | @tsv)
' "$out/runs.tsv" | column -t -s $'\t'

echo
echo "ratios per round (bridge):"
ratios='
	split("\n") | map(select(length > 0) | split("\t")) | .[1:] |
	map({side: .[0], round: .[1], target: .[3], load: .[4], rps: (.[5] | tonumber)}) as $rows |
	def rps($side; $round; $target; $load):
		first($rows[] | select(.side == $side and .round == $round and .target == $target and .load == $load) | .rps) // null;
	def r($a; $b): if $a == null or $b == null or $b == 0 then "n/a" else ($a / $b * 100 | round / 100 | tostring) + "x" end;
	($rows | map(.round) | unique) as $rounds |'
jq -R -s -r "$ratios"'
	(["round", "side", "create/bare", "poll/bare", "create/baseline create", "create after/before"] | @tsv),
	($rounds[] as $n | ("before", "after") as $side |
		[$n, $side,
		 r(rps($side; $n; "bridge"; "create"); rps($side; $n; "bridge"; "bare")),
		 r(rps($side; $n; "bridge"; "poll"); rps($side; $n; "bridge"; "bare")),
		 r(rps($side; $n; "bridge"; "create"); rps($side; $n; "baseline"; "create")),
		 (if $side == "after" then r(rps("after"; $n; "bridge"; "create"); rps("before"; $n; "bridge"; "create")) else "" end)] | @tsv)
' "$out/runs.tsv" | column -t -s $'\t'
jq -R -s -r "$ratios"'
	[$rounds[] as $n | {round: $n, g: ((rps("after"; $n; "bridge"; "create") // 0) / ((rps("before"; $n; "bridge"; "create") // 0) + 1e-9))}] |
		sort_by(.g) | .[(length - 1) / 2 | floor] | "median round by create after/before: \(.round)"
' "$out/runs.tsv"
