#!/usr/bin/env bash
# test-browser.sh: the quickstart's demo page, and the TypeScript client it
# is built on, in real headless Chromium.
#
# Makes sure Debian's chromium is installed (apt-get when missing and running
# as root; otherwise it says so and skips), installs playwright-core from the
# committed lockfile into the git-ignored _examples/quickstart/e2e/node_modules,
# builds the quickstart, starts it on a free loopback port (-addr 127.0.0.1:0,
# the bound address read from its log; -max-streams 3 for the client's 429
# test), waits for /health, and runs the Node tests
# (_examples/quickstart/e2e/demo.test.mjs and client.test.mjs). The server is
# stopped on exit, also on failure or interrupt. Exits non-zero when any
# assertion fails.
#
# Artifacts go to artifacts/ (git-ignored): demo.png, the screenshot of the
# finished page, and quickstart.log, the server's log.
# Arguments go to node's test runner, e.g. --test-name-pattern=drop.
# UPDATE_SCREENSHOT=1 also copies the screenshot to docs/demo.png (the
# README's picture).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
E2E=_examples/quickstart/e2e
ARTIFACTS=${ARTIFACTS_DIR:-$root/artifacts}
export PATH="/usr/local/go/bin:$PATH"

log() { echo "test-browser: $*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }
# skip REASON: exits 0 saying why, or 1 under CI=true, where a missing
# browser must fail the run rather than pass it untested.
skip() {
	if [ "${CI:-}" = "true" ]; then
		log "FAILED: $* (CI=true: the browser test must run)"
		exit 1
	fi
	log "skipped: $*"
	exit 0
}

# apt_install PACKAGE...: quiet install, refreshing the package lists once
# when the first attempt fails (stale or missing lists on a fresh machine).
apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
	apt-get update -qq >/dev/null 2>&1 || true
	apt-get install -y -qq "$@" >/dev/null
}

started=$(date +%s)

if [ ! -x "$CHROMIUM" ]; then
	if ! is_root; then
		skip "$CHROMIUM is not installed and installing it needs root (apt-get install chromium)"
	fi
	log "installing chromium with apt-get"
	apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if ! is_root; then
		skip "node and npm are not installed and installing them needs root (apt-get install nodejs npm)"
	fi
	log "installing nodejs and npm with apt-get"
	apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
	log "node $(node --version) is too old: playwright-core needs node 20 or newer"
	exit 1
fi

log "installing playwright-core into $E2E/node_modules"
(cd "$E2E" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)

tmp=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building the quickstart"
go build -o "$tmp/quickstart" ./_examples/quickstart

mkdir -p "$ARTIFACTS"
server_log="$ARTIFACTS/quickstart.log"
"$tmp/quickstart" -addr 127.0.0.1:0 -max-streams 3 2>"$server_log" &
server_pid=$!

# The kernel picked the port; the quickstart logs the address it bound.
addr=
for _ in $(seq 1 200); do
	addr=$(sed -n 's/.*"msg":"quickstart listening".*"addr":"\([^"]*\)".*/\1/p' "$server_log" | head -n1)
	[ -n "$addr" ] && break
	if ! kill -0 "$server_pid" 2>/dev/null; then
		log "the quickstart exited before listening:"
		cat "$server_log" >&2
		exit 1
	fi
	sleep 0.1
done
if [ -z "$addr" ]; then
	log "the quickstart did not report its address within 20 s:"
	cat "$server_log" >&2
	exit 1
fi
base="http://$addr"

for _ in $(seq 1 100); do
	if node -e 'fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$base/health"; then
		break
	fi
	sleep 0.1
done
log "quickstart on $base (log: ${server_log#"$root"/})"

status=0
(cd "$E2E" && BASE_URL="$base" ARTIFACTS_DIR="$ARTIFACTS" CHROMIUM="$CHROMIUM" \
	node --test --test-reporter=spec "$@" demo.test.mjs client.test.mjs) || status=$?

if [ "$status" -eq 0 ] && [ "${UPDATE_SCREENSHOT:-}" = 1 ]; then
	mkdir -p docs
	cp "$ARTIFACTS/demo.png" docs/demo.png
	log "copied the screenshot to docs/demo.png"
fi
if [ "$status" -ne 0 ]; then
	log "FAILED after $(($(date +%s) - started)) s; server log: ${server_log#"$root"/}"
else
	log "passed in $(($(date +%s) - started)) s; screenshot: ${ARTIFACTS#"$root"/}/demo.png"
fi
exit "$status"
