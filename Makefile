# Arbor's build. `make test` is what CI runs (.ci/run); it installs nothing
# that a fresh machine with Go, gcc, make and git lacks for these targets.

GO        ?= go
FUZZTIME  ?= 5s
BENCHTIME ?= 2s

.PHONY: all build test fmt-check vet unit allocs fuzz bench-test bench bench-check chaos clean tools gen gen-check bridge-test console-screenshot otel-test

all: build test

build:
	$(GO) build ./...

test: fmt-check vet gen-check unit allocs fuzz bench-test bridge-test otel-test

fmt-check:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd bench && $(GO) vet -tags noarbor ./... # the harness builds without Arbor too (bench/main.go)
	cd bridgetest && $(GO) vet ./...
	# Every package and its tests build off Linux too (Unix-only tests
	# carry build tags and skip, saying why, elsewhere).
	for os in windows darwin; do \
		GOOS=$$os $(GO) vet ./... && (cd bench && GOOS=$$os $(GO) vet ./...) && (cd otel && GOOS=$$os $(GO) vet ./...) || exit 1; \
	done

# What the tests need beyond Go: redis-server for the cache package's Redis
# tests, protoc for codegen's protoc-path test, curl for the bridge's
# Connect JSON test, chromium for the admin console's (Debian's packages).
# A service the package starts is stopped again: the tests start their own
# servers.
.PHONY: tools
tools:
	@if ! command -v redis-server >/dev/null 2>&1; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq redis-server >/dev/null || exit 1; \
		$$sudo service redis-server stop >/dev/null 2>&1 || $$sudo systemctl stop redis-server >/dev/null 2>&1 || true; \
	fi
	@missing=; command -v protoc >/dev/null 2>&1 || missing="$$missing protobuf-compiler"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi

# Generated code checked into the repository: each .proto, its -I
# directory and where its Go lands (paths=source_relative under the -I
# directory). gen regenerates it; gen-check regenerates into a scratch
# directory and fails on any difference.
GENERATED = proto:arbor/v1/options.proto \
	examples/routeguide:routeguide/route_guide.proto \
	internal:demo/greeter/greeter.proto \
	bench:echopb/echo.proto

gen:
	@set -e; for g in $(GENERATED); do \
		inc=$${g%%:*}; file=$${g#*:}; \
		$(GO) run ./cmd/arbor gen -I $$inc --paths=source_relative --out $$inc $$inc/$$file; \
	done

gen-check:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(GO) build -o $$tmp/arbor ./cmd/arbor; \
	for g in $(GENERATED); do \
		inc=$${g%%:*}; file=$${g#*:}; dir=$$(dirname $$file); \
		mkdir -p $$tmp/out/$$inc; \
		$$tmp/arbor gen -I $$inc --paths=source_relative --out $$tmp/out/$$inc $$inc/$$file; \
		for f in $$tmp/out/$$inc/$$dir/*.go; do \
			if ! diff -u $$inc/$$dir/$$(basename $$f) $$f; then \
				echo "$$inc/$$dir/$$(basename $$f) is out of date: run make gen"; exit 1; \
			fi; \
		done; \
	done; echo "generated code is up to date"

unit: tools
	$(GO) test -race -count=1 ./...

# Allocation budgets are only meaningful without the race detector.
allocs:
	$(GO) test -count=1 -run 'Allocs|Allocations|LargeEchoBytes' ./...

# Every Fuzz target in the main module runs for FUZZTIME (seed corpus first).
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v -e '^./bench/' -e '^./otel/'); do \
		dir=$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "fuzz $$dir $$t ($(FUZZTIME))"; \
			if ! out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$dir 2>&1); then \
				echo "$$out"; \
				if echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q -e 'Failing input written' -e 'panic:'; then \
					echo "  (Go 1.26's fuzz coordinator reported its own -fuzztime deadline, golang/go#75804, and found nothing; replaying the corpus)"; \
					$(GO) test -count=1 -run "^$$t$$" $$dir; \
				else exit 1; fi; \
			else echo "$$out" | tail -1; fi; \
		done; \
	done

# The bridge called by grpc-go's client and grpcurl, in a module of its
# own so that grpc-go never enters the main module.
bridge-test: tools
	cd bridgetest && $(GO) test -race -count=1 ./...

# The OpenTelemetry module (otel/, its own go.mod so that OTel enters only
# the builds that import it): vet, tests with the race detector, the
# allocation bar without it, and its fuzz target.
otel-test:
	cd otel && $(GO) vet ./... && $(GO) test -race -count=1 ./... && $(GO) test -count=1 -run 'Allocs' ./... && \
		$(GO) test -run '^$$' -fuzz '^FuzzTraceparent$$' -fuzztime $(FUZZTIME) .

# The benchmark module's own tests: every runner echoes correctly.
bench-test:
	cd bench && $(GO) test -count=1 ./...

# Arbor beside every peer (grpc-go, connect-go, rpcx, Kitex, drpc, net/rpc,
# Cap'n Proto) and the floor; prints the tables and ratios. Kitex needs its
# build tag and -checklinkname=0 (bench/kitex.go).
bench:
	cd bench && $(GO) run -tags kitex -ldflags=-checklinkname=0 . -d $(BENCHTIME)

# Regression guard (not part of make test: a benchmark, not a test): a few
# key cells, Arbor beside grpc-go and the floor in one run, failing when a
# ratio drops below its recorded bar (bench/check.go, checkBars). About 30 s
# with the default 1 s per cell; a loaded machine can fail it.
CHECKTIME ?= 1s
bench-check:
	cd bench && $(GO) run . -mode check -d $(CHECKTIME)

# The hostile-client suite (cmd/arbor/chaos_test.go) for a minute per
# scenario against real `arbor serve` processes; each reports the server's
# peak RSS. `make test` runs the same scenarios for 2 s each.
CHAOS_DURATION ?= 60s
chaos:
	ARBOR_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -count=1 -run 'Chaos|NoFalsePositives' -v -timeout 30m ./cmd/arbor/

# The console screenshot the README shows, from the browser test.
console-screenshot: tools
	ARBOR_CONSOLE_SCREENSHOT=$(CURDIR)/admin/console.png $(GO) test -count=1 -run TestConsoleInBrowser ./admin/

clean:
	$(GO) clean -testcache
