#!/usr/bin/env bash
# fuzz.sh - run every Go fuzz target in the module for a fixed time each.
#
# Usage: scripts/fuzz.sh [-t FUZZTIME] [-p PKG-REGEX] [-h]
#   -t FUZZTIME    per target, go test -fuzztime syntax (env FUZZTIME, default 10s)
#   -p PKG-REGEX   only packages whose import path matches (env FUZZ_PKGS)
# Targets are discovered, not listed: every package with a func Fuzz* in a _test.go file is
# asked with `go test -list '^Fuzz'`, so new targets are picked up automatically. Each target
# runs alone (go test -run '^$' -fuzz '^Name$'); its seed corpus is also run as a plain test by
# `go test ./...`. A failing input is written by Go under the package's testdata/fuzz/ and the
# script exits 1 after running the remaining targets. A run that ends in a bare "context deadline
# exceeded" without a failing input (a hang, or go.dev/issue/75804's spurious report at the
# -fuzztime boundary in Go < 1.27, likelier for slow targets on a loaded machine) is run once more
# with a count budget instead of a time budget (-fuzztime Nx, N = the executions the first run
# reached): the same work with no wall-clock deadline to race, so a failure then is real (a hang
# ends at the go test -timeout and fails the gate).
# The last stdout line is
#   fuzz: N passed, F failed
#
# Examples:
#   scripts/fuzz.sh                          # smoke: 10 s per target (make test)
#   scripts/fuzz.sh -t 5m                    # longer (make fuzz)
#   scripts/fuzz.sh -t 30s -p portprovider   # one area
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; }

FUZZTIME=${FUZZTIME:-10s}
PKGS=${FUZZ_PKGS:-}
while getopts "t:p:h" opt; do
  case $opt in
    t) FUZZTIME=$OPTARG ;; p) PKGS=$OPTARG ;;
    h) usage; exit 0 ;; *) usage >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
log() { echo "fuzz: $*" >&2; }
# go test -timeout: fuzztime plus room for building and the seed corpus; a stuck target ends here
TEST_TIMEOUT=${FUZZ_TEST_TIMEOUT:-10m}

# packages (directories) that declare at least one fuzz target
mapfile -t dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . 2>/dev/null |
  grep -v '/testdata/' | xargs -r -n1 dirname | sort -u)
passed=0 failed=0 retried=0
failures=()
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for dir in "${dirs[@]}"; do
  pkg=$(go list "$dir") || { log "cannot list $dir"; failed=$((failed + 1)); failures+=("$dir (go list)"); continue; }
  if [[ -n $PKGS && ! $pkg =~ $PKGS ]]; then continue; fi
  if ! names=$(go test -list '^Fuzz' "$pkg" 2>&1); then
    log "go test -list failed for $pkg:"
    echo "$names" >&2
    failed=$((failed + 1))
    failures+=("$pkg (does not build)")
    continue
  fi
  for name in $(grep -E '^Fuzz' <<<"$names" || true); do
    log "$pkg $name ($FUZZTIME)"
    ok=0
    budget=$FUZZTIME
    for attempt in 1 2; do
      rc=0
      go test -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" -timeout "$TEST_TIMEOUT" "$pkg" 2>&1 |
        tee "$tmp" >&2 || rc=$?
      if ((rc == 0)); then
        ok=1
        break
      fi
      if ((attempt == 1)) && ! grep -q 'Failing input written to' "$tmp" && grep -q 'context deadline exceeded' "$tmp"; then
        execs=$(grep -oE 'execs: [0-9]+' "$tmp" | tail -1 | grep -oE '[0-9]+' || true)
        budget="$((${execs:-0} > 100 ? ${execs:-0} : 100))x"
        log "$pkg $name: 'context deadline exceeded' without a failing input; running it once more for $budget"
        retried=$((retried + 1))
        continue
      fi
      break
    done
    if ((ok)); then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      failures+=("$pkg $name")
    fi
  done
done
((passed + failed > 0)) || log "no fuzz targets found"
for f in "${failures[@]}"; do log "FAILED: $f"; done
((retried == 0)) || log "$retried target(s) were run twice after a bare deadline (see above)"
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
