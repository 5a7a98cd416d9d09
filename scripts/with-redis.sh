#!/usr/bin/env bash
# with-redis.sh COMMAND [ARG...]
#
# Runs COMMAND with a throwaway redis-server: it makes sure redis-server is
# installed (apt-get when missing and running as root), starts it on a free
# loopback port without persistence in a temporary directory, waits until it
# answers PING, exports TASKBRIDGE_REDIS_ADDR=127.0.0.1:<port>, runs COMMAND,
# stops the server on exit (also on failure or interrupt) and exits with
# COMMAND's status. Without redis-server (and no way to install it) COMMAND
# runs without TASKBRIDGE_REDIS_ADDR, so the Redis tests skip, saying so;
# under CI (CI=true) it exits 1 instead, before running COMMAND, so that a
# CI machine without Redis fails rather than passing by skipping.
set -euo pipefail

if [ "$#" -eq 0 ]; then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi

log() { echo "with-redis: $*" >&2; }

ensure_redis() {
	command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
	if [ "$(id -u)" -ne 0 ]; then
		log "redis-server is not installed and this user cannot install it (not root);"
		log "install it (apt-get install redis-server) to run the Redis tests."
		return 1
	fi
	log "installing redis-server with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -qq redis-server >/dev/null 2>&1; then
		apt-get update -qq >/dev/null 2>&1 || true
		if ! apt-get install -y -qq redis-server >/dev/null 2>&1; then
			log "apt-get could not install redis-server."
			return 1
		fi
	fi
	# The package starts a system-wide server on 6379 where an init system
	# runs; we use our own instance and leave that one alone.
	command -v redis-server >/dev/null 2>&1
}

free_port() {
	# Ask the kernel for a free loopback port.
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

# no_redis: go on without Redis (the Redis tests skip), or fail under CI.
no_redis() {
	if [ "${CI:-}" = "true" ]; then
		log "CI=true: failing, because the Redis tests must run under CI."
		exit 1
	fi
	unset TASKBRIDGE_REDIS_ADDR
}

if ! ensure_redis; then
	no_redis
	exec "$@"
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/with-redis.XXXXXX")"
pidfile="$dir/redis.pid"
port=""

stop_redis() {
	if [ -f "$pidfile" ]; then
		local pid
		pid="$(cat "$pidfile" 2>/dev/null || true)"
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			kill -CONT "$pid" 2>/dev/null || true # in case a test left it paused
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -rf "$dir"
}
trap stop_redis EXIT
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
		# wait returns >128 when a trapped signal interrupted it; the child
		# may still be running then.
		if ! kill -0 "$child" 2>/dev/null; then
			break
		fi
	done
	trap 'exit 130' INT
	trap 'exit 143' TERM
	return "$rc"
}

started=""
for _ in 1 2 3 4 5; do
	port="$(free_port)"
	if redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$dir" --daemonize yes --pidfile "$pidfile" \
		--logfile "$dir/redis.log" --protected-mode yes >/dev/null 2>&1; then
		for _ in $(seq 1 100); do
			if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; then
				started=1
				break
			fi
			sleep 0.05
		done
	fi
	if [ -n "$started" ]; then
		break
	fi
	# The port was taken between the probe and the start, or the server
	# never answered: stop what may run and try another port.
	failed_pid="$(cat "$pidfile" 2>/dev/null || true)"
	if [ -n "$failed_pid" ]; then
		kill -TERM "$failed_pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
done

if [ -z "$started" ]; then
	log "redis-server did not start; its log follows."
	cat "$dir/redis.log" >&2 2>/dev/null || true
	no_redis
	log "the Redis tests will skip."
	run_command "$@"
	exit $?
fi

export TASKBRIDGE_REDIS_ADDR="127.0.0.1:$port"
log "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $TASKBRIDGE_REDIS_ADDR"
run_command "$@"
exit $?
