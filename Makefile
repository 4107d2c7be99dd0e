# costar - build, test, conformance and benchmark entry points.
#
#   make build            go build -o bin/ ./cmd/...
#   make run              build, then bin/stmfd --demo in the foreground (state in ./var/stmfd,
#                         portal $(PORTAL)); Ctrl-C stops it cleanly
#   make test             what CI runs (.ci/run): test deps, gofmt, go vet, go test -race ./...
#                         (integration tests included, tools required), fuzz smoke, conformance
#   make unit             go test -race ./... only
#   make conformance      scripts/conformance.sh (ratcheted against scripts/conformance-expected.tsv)
#   make conformance-all  every iscsi-test-cu family (exploration; out/conformance-all)
#   make fuzz             every fuzz target for $(FUZZTIME_LONG)
#   make bench            scripts/bench.sh: stmfd vs tgt side by side (BENCH_SECS, BENCH_PROFILE, ...)
#   make clean            remove bin/ and out/ (make distclean also removes var/)
#
# Variables: PORTAL=127.0.0.1:3260  FUZZTIME=10s  FUZZTIME_LONG=2m  GOTEST_TIMEOUT=25m

export PATH := $(PATH):/usr/local/go/bin

GO             ?= go
PORTAL         ?= 127.0.0.1:3260
STATE_DIR      ?= var/stmfd
FUZZTIME       ?= 10s
FUZZTIME_LONG  ?= 2m
GOTEST_TIMEOUT ?= 25m

.PHONY: all build run test deps fmt-check vet unit fuzz-smoke fuzz conformance conformance-all bench clean distclean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

run: build
	mkdir -p $(STATE_DIR)
	bin/stmfd --state-dir $(STATE_DIR) --portal $(PORTAL) --demo

# Steps run in order (and stop at the first failure) even under make -j.
test:
	scripts/install-test-deps.sh
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory vet
	COSTAR_REQUIRE_TOOLS=1 $(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory fuzz-smoke
	CONF_RACE=1 $(MAKE) --no-print-directory conformance

deps:
	scripts/install-test-deps.sh

fmt-check:
	@files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$files"; exit 1; fi; \
	echo "gofmt: ok"

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout $(GOTEST_TIMEOUT) ./...

fuzz-smoke:
	scripts/fuzz.sh -t $(FUZZTIME)

fuzz:
	scripts/fuzz.sh -t $(FUZZTIME_LONG)

conformance:
	scripts/conformance.sh

conformance-all:
	CONF_MULTIPATH=1 scripts/conformance.sh --families ALL --out out/conformance-all

bench:
	scripts/bench.sh

clean:
	rm -rf bin out

distclean: clean
	rm -rf var
