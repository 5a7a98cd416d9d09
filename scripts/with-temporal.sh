#!/usr/bin/env bash
# with-temporal.sh COMMAND [ARG...]
# with-temporal.sh --prepare
#
# Runs COMMAND with a throwaway Temporal development server: it builds the
# temporal CLI from the Go module proxy at a pinned version once and caches
# the binary (${XDG_CACHE_HOME:-$HOME/.cache}/taskbridge/temporal-<version>/),
# starts `temporal server start-dev --headless` on a free loopback port with
# an in-memory store, waits until its frontend answers a health check,
# exports TASKBRIDGE_TEMPORAL_ADDR=127.0.0.1:<port> (and the server's pid as
# TASKBRIDGE_TEMPORAL_PID), runs COMMAND, stops the
# server on exit (also on failure or interrupt) and exits with COMMAND's
# status.
#
# When the CLI cannot be built or the server does not start, COMMAND runs
# without TASKBRIDGE_TEMPORAL_ADDR and the Temporal tests skip, saying so;
# under CI=true the script fails instead.
#
# The cold build takes about five minutes on a 2-core machine (the module
# downloads and the Go build cache make later builds of other versions
# faster); TEMPORAL_CLI is a prebuilt binary to use instead. --prepare only
# builds the CLI (when it is not cached yet) and exits: .ci/run starts it in
# the background first thing, so the build overlaps the other tests. Builds
# take a lock in the cache directory, so a run that needs the CLI while
# another one builds it waits for that build instead of compiling it again.
set -euo pipefail

if [ "$#" -eq 0 ]; then
	echo "usage: $0 COMMAND [ARG...] | $0 --prepare" >&2
	exit 2
fi

# v1.5.1 is the newest release whose module builds with `go install`
# (later ones carry replace directives) and with the Go of go.mod.
CLI_VERSION="v1.5.1"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/taskbridge/temporal-$CLI_VERSION"

log() { echo "with-temporal: $*" >&2; }

# give_up REASON COMMAND...: fail under CI=true, else run COMMAND without
# the server.
give_up() {
	local reason="$1"
	shift
	if [ "${CI:-}" = "true" ]; then
		log "$reason (failing: CI=true)"
		exit 1
	fi
	log "$reason; running without TASKBRIDGE_TEMPORAL_ADDR: the Temporal tests will skip."
	unset TASKBRIDGE_TEMPORAL_ADDR TASKBRIDGE_TEMPORAL_PID
	exec "$@"
}

# ensure_cli sets cli to a temporal binary, building it when needed.
ensure_cli() {
	if [ -n "${TEMPORAL_CLI:-}" ]; then
		cli="$TEMPORAL_CLI"
		[ -x "$cli" ]
		return
	fi
	cli="$CACHE_DIR/temporal"
	if [ -x "$cli" ]; then
		return 0
	fi
	command -v go >/dev/null 2>&1 || return 1
	mkdir -p "$CACHE_DIR"
	# One build at a time: the lock is held until this script exits (fd 9
	# stays open), and a waiter finds the binary the holder built.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$CACHE_DIR/build.lock"
		if ! flock -n 9; then
			log "another run is building the temporal CLI; waiting for it"
			flock 9
		fi
		if [ -x "$cli" ]; then
			return 0
		fi
	fi
	local tmp
	tmp="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
	log "building the temporal CLI $CLI_VERSION (cached in $CACHE_DIR; the first build takes minutes)"
	local start=$SECONDS
	# Outside any module, so the repository's go.mod and go.work play no
	# part; GOFLAGS from the environment could, so they are cleared.
	if ! (cd "$tmp" && GOFLAGS= GOBIN="$tmp" go install "github.com/temporalio/cli/cmd/temporal@$CLI_VERSION") >&2; then
		rm -rf "$tmp"
		return 1
	fi
	mv "$tmp/temporal" "$cli" # atomic: a concurrent run sees all or nothing
	rm -rf "$tmp"
	log "built the temporal CLI in $((SECONDS - start)) s"
}

free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
		return
	fi
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	return 1
}

if [ "$1" = "--prepare" ]; then
	if ! ensure_cli; then
		log "could not build the temporal CLI $CLI_VERSION"
		exit 1
	fi
	log "the temporal CLI $CLI_VERSION is ready: $cli"
	exit 0
fi

if ! ensure_cli; then
	give_up "could not build the temporal CLI $CLI_VERSION" "$@"
fi
exec 9>&- # the build lock, if this run built the CLI

dir="$(mktemp -d "${TMPDIR:-/tmp}/with-temporal.XXXXXX")"
pid=""

stop_server() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -CONT "$pid" 2>/dev/null || true
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_command runs "$@" as a child and waits for it; INT and TERM are
# passed on to it, so that an interrupted run still stops the server.
run_command() {
	set +e
	"$@" &
	local child=$!
	trap 'kill -INT "$child" 2>/dev/null' INT
	trap 'kill -TERM "$child" 2>/dev/null' TERM
	local rc
	while :; do
		wait "$child"
		rc=$?
		if ! kill -0 "$child" 2>/dev/null; then
			break
		fi
	done
	trap 'exit 130' INT
	trap 'exit 143' TERM
	return "$rc"
}

started=""
for _ in 1 2 3; do
	port="$(free_port)"
	"$cli" server start-dev --headless --ip 127.0.0.1 --port "$port" \
		--log-level warn >"$dir/server.log" 2>&1 &
	pid=$!
	# The dev server answers within a few seconds; give a loaded machine a
	# minute.
	for _ in $(seq 1 600); do
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		if "$cli" operator cluster health --address "127.0.0.1:$port" >/dev/null 2>&1; then
			started=1
			break
		fi
		sleep 0.1
	done
	if [ -n "$started" ]; then
		break
	fi
	# The port was taken between the probe and the start, or the server
	# never answered: stop it and try another port.
	stop_pid="$pid"
	pid=""
	kill -KILL "$stop_pid" 2>/dev/null || true
	wait "$stop_pid" 2>/dev/null || true
done

if [ -z "$started" ]; then
	cat "$dir/server.log" >&2 2>/dev/null || true
	trap - EXIT
	stop_server
	give_up "the Temporal dev server did not start; its log is above" "$@"
fi

export TASKBRIDGE_TEMPORAL_ADDR="127.0.0.1:$port"
# The server's pid, for benchmarks that read its CPU time from /proc.
export TASKBRIDGE_TEMPORAL_PID="$pid"
log "temporal dev server (CLI $CLI_VERSION) on $TASKBRIDGE_TEMPORAL_ADDR"
run_command "$@"
exit $?
