# costar - build, test, conformance and benchmark entry points.
#
#   make build            go build -o bin/ ./cmd/...
#   make run              build, then bin/stmfd --demo in the foreground (state in ./var/stmfd,
#                         portal $(PORTAL)); Ctrl-C stops it cleanly
#   make test             what CI runs (.ci/run): test deps, gofmt, go vet, go test -race ./...
#                         (integration tests included, tools required), fuzz smoke, conformance
#   make unit             go test -race ./... only
#   make conformance      every iscsi-test-cu family on a thick LU and on a thin LU, each with a
#                         second path (MultipathIO), then ReadOnly on a write-protected LU; ratcheted
#                         against scripts/conformance-expected{,-thin,-wp}.tsv
#   make conformance-quick  the data-path families only (scripts/conformance.sh defaults)
#   make test-vm          scripts/testvm: Debian VM with OpenZFS, the Linux kernel initiator and
#                         multipath against stmfd (image built once, ~5 min, into /var/cache/costar-testvm)
#   make fuzz             every fuzz target for $(FUZZTIME_LONG)
#   make soak             scripts/soak.sh for 10 minutes: 64 sessions x QD32 of verified I/O with
#                         chaos against a fresh stmfd (SOAK_DURATION, SOAK_SESSIONS, SOAK_QD)
#   make soak-short       the same for 60 s (part of make test, after conformance)
#   make bench            scripts/bench.sh: stmfd vs tgt side by side (BENCH_SECS, BENCH_PROFILE, ...);
#                         BENCH_COMPARE=1 (or BENCH_BASE=REV): this tree vs the merge-base with main (or REV)
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

.PHONY: all build run test deps fmt-check vet unit fuzz-smoke fuzz soak soak-short conformance conformance-thick conformance-thin conformance-wp conformance-quick test-vm bench clean distclean

all: build

build:
	$(GO) build -o bin/ ./cmd/...
	ln -sf stmfadm bin/sbdadm

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
	$(MAKE) --no-print-directory soak-short
	$(MAKE) --no-print-directory test-vm

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

conformance: conformance-thick conformance-thin conformance-wp

conformance-thick:
	CONF_MULTIPATH=1 scripts/conformance.sh --families ALL --out out/conformance-thick \
		--expected scripts/conformance-expected.tsv

conformance-thin:
	CONF_LU=thin CONF_MULTIPATH=1 scripts/conformance.sh --families ALL --out out/conformance-thin \
		--expected scripts/conformance-expected-thin.tsv

conformance-wp:
	CONF_LU=wp scripts/conformance.sh --families ReadOnly --out out/conformance-wp \
		--expected scripts/conformance-expected-wp.tsv

conformance-quick:
	scripts/conformance.sh --out out/conformance-quick

# VM suite (scripts/testvm): Debian bookworm VM under qemu (TCG where KVM is unusable) with ZFS,
# the Linux kernel iSCSI initiator and dm-multipath against stmfd. The image is built once (~5 min,
# as root) into /var/cache/costar-testvm ($$COSTAR_TESTVM_CACHE); a run takes 2.5-7 min.
# COSTAR_TESTVM=skip skips it; COSTAR_TESTVM_ALLOW_SKIP=1 turns "cannot run here" (exit 80-89:
# no qemu, no disk space, not root for the image build) into a loud SKIPPED instead of a failure.
test-vm:
	scripts/testvm/run-tests.sh

# Soak (scripts/soak.sh, cmd/costar-soak): fails on any mismatch or lost acknowledged write, an
# unanswered-NOP session the target keeps, peak RSS over SOAK_RSS_LIMIT (64M), or RSS/heap/goroutines
# not back at idle after the run.
soak:
	SOAK_DURATION=$${SOAK_DURATION:-10m} SOAK_SETTLE=$${SOAK_SETTLE:-60s} SOAK_RSS_LIMIT=$${SOAK_RSS_LIMIT:-64M} scripts/soak.sh -o out/soak

soak-short:
	SOAK_DURATION=60s SOAK_SETTLE=20s SOAK_RSS_LIMIT=$${SOAK_RSS_LIMIT:-64M} scripts/soak.sh -o out/soak-short

bench:
	scripts/bench.sh

clean:
	rm -rf bin out

distclean: clean
	rm -rf var
