# TaskBridge for Fiber: developer and CI entry points.
#
#   make test         make vet, make test-counts, make test-race, then
#                     make test-temporal
#   make test-counts  the allocation tests (allocations per request, event
#                     and call), which do not run under -race
#   make test-race    race tests of every package and example of the root
#                     module (starts a throw-away redis-server for the
#                     Redis tests)
#   make test-temporal race tests of the modules of their own (MODULES: the
#                     Temporal adapter, its example, the host app example)
#                     on a throw-away Temporal dev server and redis-server
#                     (builds and caches the temporal CLI on first use:
#                     about five minutes on 2 cores)
#   make vet          gofmt, go mod tidy -diff, go vet and staticcheck (of
#                     the root module and of each module of its own)
#   make bench        micro benchmarks (go test -bench) with allocation counts
#   make test-browser the quickstart's demo page and the TypeScript client
#                     in headless Chromium
#   make test-js      the TypeScript client (clients/js) in Node: npm ci,
#                     build, tests against a quickstart it starts, and a
#                     check that the demo page embeds the current build
#   make bench-smoke  every load scenario at small N against the bridge, the
#                     baseline and the raw server, on memory and Redis, plus
#                     the multi-instance scale scenarios (two bridge
#                     instances, a few hundred streams); fails on any error,
#                     gap or duplicate (about a minute and a half)

GO       ?= go
# Modules of their own inside the repository: ./... of the root skips them,
# so they are vetted and tested from their directories.
MODULES  := adapters/temporal _examples/temporal _examples/hostapp
# ./... skips directories starting with "_", so examples are named one by one.
EXAMPLES := $(filter-out $(addsuffix /,$(MODULES)),$(wildcard _examples/*/))
EXAMPLE_PKGS := $(patsubst %/,./%/...,$(EXAMPLES))
WITH_REDIS := $(if $(wildcard scripts/with-redis.sh),scripts/with-redis.sh,)
WITH_TEMPORAL := scripts/with-temporal.sh

.PHONY: test test-counts test-race test-temporal vet tidy-check fmt-check bench bench-smoke test-browser test-js

test: vet test-counts
	$(MAKE) test-race
	$(MAKE) test-temporal

# Allocation counts per request, per event and per call (the tests under
# //go:build !race: the race detector allocates on its own), without -race;
# make test runs them after vet.
ALLOC_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' '^//go:build !race' .)))

test-counts:
	$(GO) test -count=1 -run 'Alloc' $(ALLOC_PKGS)

test-race:
	$(WITH_REDIS) $(GO) test -race -count=1 ./... $(EXAMPLE_PKGS)

test-temporal:
	$(WITH_REDIS) $(WITH_TEMPORAL) sh -c 'set -e; for m in $(MODULES); do (cd $$m && $(GO) test -race -count=1 ./...); done'

# vet fails when go.mod/go.sum are not tidy, on go vet findings and on
# staticcheck findings (a pinned version through go run: nothing to install).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet: fmt-check tidy-check
	$(GO) vet ./... $(EXAMPLE_PKGS)
	$(GO) run $(STATICCHECK) ./... $(EXAMPLE_PKGS)
	@set -e; for m in $(MODULES); do echo "vet $$m"; \
		(cd $$m && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...); done

tidy-check:
	@out=$$($(GO) mod tidy -diff 2>&1) || { echo "go.mod/go.sum are not tidy (run go mod tidy):"; echo "$$out"; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench:
	$(WITH_REDIS) $(GO) test -run '^$$' -bench . -benchmem ./...

bench-smoke:
	$(WITH_REDIS) $(GO) run ./benchmarks/cmd/tbload -smoke -q

test-browser:
	scripts/test-browser.sh

test-js:
	scripts/test-js.sh
