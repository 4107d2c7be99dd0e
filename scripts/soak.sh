#!/usr/bin/env bash
# soak.sh - verified-I/O soak with chaos against a fresh stmfd (cmd/costar-soak): N sessions x QD of
# mixed reads/writes/FUA/SYNCHRONIZE CACHE where every block carries its LBA, a sequence number and
# a CRC-32C, while ABORT TASK, LUN RESET, abrupt disconnects, session reinstatement, NOP-In-ignoring
# sessions and view changes of a second LU hit the target. A benchmark-style runner, not a unit test.
#
# Usage: scripts/soak.sh [options] [-- extra costar-soak flags]
#   -d, --duration D     how long the load runs (env SOAK_DURATION, default 60s)
#   -s, --sessions N     sessions (env SOAK_SESSIONS, default 64)
#   -q, --qd N           commands in flight per session (env SOAK_QD, default 32)
#   -o, --out DIR        output directory (env SOAK_OUT, default out/soak): stmfd.log, soak.log
#       --chaos LIST     all (default), none, or abort,lun-reset,disconnect,reinstate,view,nop
#   -h, --help
#
# Environment (optional): STMFD_BIN, STMFADM_BIN, SOAK_BIN (prebuilt binaries), SOAK_LU_SIZE=1G,
# SOAK_RSS_LIMIT=0 (fail when stmfd's peak RSS exceeds it, e.g. 64M; 0 = report only),
# SOAK_SETTLE=30s (how long RSS and goroutines may take to return to idle after the run).
#
# The script builds stmfd (without -race: RSS is measured), starts it on a free loopback port with a
# temporary state dir and a 1 GiB demo LU, creates a second 16 MiB LU (no view: the chaos thread adds
# and removes it), runs costar-soak, stops stmfd (SIGTERM; only the PID it started) and removes the
# state dir. Exit status: costar-soak's (0 pass; 1 mismatch, lost acknowledged write, target not back
# at idle, ...; 2 setup), or 1 when stmfd dies or logs a panic.
#
# Examples:
#   scripts/soak.sh                          # 64 x QD32, 60 s (what make test runs via soak-short)
#   scripts/soak.sh -d 10m                   # the 10-minute record run (make soak)
#   scripts/soak.sh -s 8 -q 4 -d 20s         # a quick look
#   scripts/soak.sh --chaos none -d 30s      # load and verification only
#   scripts/soak.sh -- -write-pct 80 -region 64M
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${SOAK_DURATION:-60s}
SESSIONS=${SOAK_SESSIONS:-64}
QD=${SOAK_QD:-32}
OUT=${SOAK_OUT:-$ROOT/out/soak}
CHAOS=all
LU_SIZE=${SOAK_LU_SIZE:-1G}
IQN=iqn.2026-11.org.costar:demo

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print substr($0, 3)}' "$0"; }
die() { echo "soak: ERROR: $*" >&2; exit 2; }
log() { echo "soak: $*" >&2; }

EXTRA=()
while (($# > 0)); do
  case $1 in
    -d | --duration) DURATION=${2:?}; shift 2 ;;
    -s | --sessions) SESSIONS=${2:?}; shift 2 ;;
    -q | --qd) QD=${2:?}; shift 2 ;;
    -o | --out) OUT=${2:?}; shift 2 ;;
    --chaos) CHAOS=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "soak: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN=$OUT/bin
mkdir -p "$BIN"
STMFD=${STMFD_BIN:-$BIN/stmfd}
STMFADM=${STMFADM_BIN:-$BIN/stmfadm}
SOAK=${SOAK_BIN:-$BIN/costar-soak}
if [[ -z ${STMFD_BIN:-} || -z ${STMFADM_BIN:-} || -z ${SOAK_BIN:-} ]]; then
  log "building stmfd, stmfadm, costar-soak"
  (cd "$ROOT" && go build -o "$BIN/" ./cmd/stmfd ./cmd/stmfadm ./cmd/costar-soak) || die "go build failed"
fi

free_port() {
  local p _
  for _ in $(seq 1 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ $s != Z* ]]; }

STATE=$(mktemp -d "${TMPDIR:-/tmp}/costar-soak.XXXXXX")
TPID=""
cleanup() {
  local i
  if [[ -n $TPID ]] && alive "$TPID"; then
    kill -TERM "$TPID" 2>/dev/null || true
    for i in $(seq 1 150); do alive "$TPID" || break; sleep 0.1; done
    alive "$TPID" && kill -KILL "$TPID" 2>/dev/null || true
  fi
  [[ -n $TPID ]] && wait "$TPID" 2>/dev/null || true
  rm -rf -- "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(free_port) || die "no free loopback port"
TLOG=$OUT/stmfd.log
"$STMFD" --state-dir "$STATE" --portal "127.0.0.1:$PORT" --demo --demo-size "$LU_SIZE" --log-level warn </dev/null >"$TLOG" 2>&1 &
TPID=$!
SOCK=$STATE/stmfd.sock
for _ in $(seq 1 150); do
  alive "$TPID" || die "stmfd exited at start (see $TLOG)"
  "$STMFADM" --socket "$SOCK" list-lu >/dev/null 2>&1 && break
  sleep 0.2
done
LU2=$("$STMFADM" --socket "$SOCK" create-lu -p alias=soak-view -s 16M "$STATE/view.img" | sed -n 's/^Logical unit created: //p')
[[ -n $LU2 ]] || die "could not create the second LU"
log "stmfd pid ${TPID} on 127.0.0.1:$PORT; $SESSIONS sessions x QD$QD for $DURATION, chaos $CHAOS; load $(cut -d' ' -f1-3 /proc/loadavg)"

rc=0
"$SOAK" -sessions "$SESSIONS" -qd "$QD" -duration "$DURATION" -chaos "$CHAOS" -pid "$TPID" -socket "$SOCK" \
  -view-lu "$LU2" -rss-limit "${SOAK_RSS_LIMIT:-0}" -settle "${SOAK_SETTLE:-30s}" "${EXTRA[@]}" \
  "iscsi://127.0.0.1:$PORT/$IQN/0" 2>&1 | tee "$OUT/soak.log" || rc=${PIPESTATUS[0]}
if ! alive "$TPID"; then
  log "FAIL: stmfd died during the run (see $TLOG)"
  rc=1
fi
if grep -qE '^panic:|DATA RACE' "$TLOG"; then
  log "FAIL: stmfd logged a panic or data race (see $TLOG)"
  rc=1
fi
exit "$rc"
