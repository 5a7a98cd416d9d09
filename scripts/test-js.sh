#!/usr/bin/env bash
# test-js.sh: the TypeScript client (clients/js) in Node.
#
# Makes sure node and npm are installed (apt-get when missing and running as
# root; otherwise it says so and skips, or fails under CI=true), installs the
# client's dev dependency (typescript) from the committed lockfile with
# `npm ci` (npm's cache makes repeats fast), and runs `npm test`: the build,
# then the Node tests against a quickstart the test script builds and
# starts itself. Finally it checks that the built client copied into the
# quickstart's demo page (_examples/quickstart/web/taskbridge/) is the one
# committed, so the embedded page never lags behind clients/js/src.
# Arguments go to node's test runner, e.g. --test-name-pattern=fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

log() { echo "test-js: $*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if ! is_root; then
		if [ "${CI:-}" = true ]; then
			log "node and npm are not installed and installing them needs root"
			exit 1
		fi
		log "skipped: node and npm are not installed and installing them needs root (apt-get install nodejs npm)"
		exit 0
	fi
	log "installing nodejs and npm with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq nodejs npm >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 || true; apt-get install -y -qq nodejs npm >/dev/null; }
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
	log "node $(node --version) is too old: the client needs node 20 or newer"
	exit 1
fi

(cd clients/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm test -- "$@")

if ! git diff --quiet -- _examples/quickstart/web/taskbridge || [ -n "$(git ls-files --others --exclude-standard -- _examples/quickstart/web/taskbridge)" ]; then
	log "the demo page's copy of the client differs from a fresh build: run (cd clients/js && npm run build) and commit _examples/quickstart/web/taskbridge"
	git status --short -- _examples/quickstart/web/taskbridge >&2
	exit 1
fi
log "passed"
