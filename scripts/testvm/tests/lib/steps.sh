# steps.sh - step bookkeeping shared by the in-VM tests (sourced from /mnt/host/steps.sh).
# Each check prints "PASS|FAIL|SKIP [elapsed] name"; the test prints the totals at the end.
# shellcheck shell=bash
T0=$(date +%s.%N)
NPASS=0 NFAIL=0 NSKIP=0
FAILED=()
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1fs", b-a}'; }
section() { echo; echo "=== [$(el)] $*"; }
pass() { NPASS=$((NPASS + 1)); echo "PASS [$(el)] $*"; }
fail() { NFAIL=$((NFAIL + 1)); FAILED+=("$*"); echo "FAIL [$(el)] $*"; }
skip() { NSKIP=$((NSKIP + 1)); echo "SKIP [$(el)] $*"; }
indent() { sed 's/^/    /'; }
# run NAME SECONDS CMD...: run CMD (output indented), PASS/FAIL on its exit code.
run() {
  local name=$1 secs=$2 rc
  shift 2
  timeout -k 5 "$secs" "$@" 2>&1 | indent
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then pass "$name"; return 0; fi
  [ "$rc" = 124 ] && name="$name (timed out after ${secs}s)"
  fail "$name (exit $rc)"
  return 1
}
# check NAME COND...: PASS/FAIL on a test without output.
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; return 0; fi
  fail "$name"
  return 1
}
waitfor() { # PATH SECONDS
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    [ -e "$1" ] && return 0
    sleep 0.2
  done
  return 1
}
