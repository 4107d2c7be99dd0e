#!/usr/bin/env bash
# tgt-peer.sh - start/stop a private Linux tgt (stgt) target: the benchmark and conformance peer.
#
# Usage: scripts/tgt-peer.sh up   -d WORKDIR [-p PORT] [-s SIZE] [-c CPUS] [-n IQN] [-L SECONDS]
#        scripts/tgt-peer.sh down -d WORKDIR [-k]
#   -d WORKDIR  holds the backing file, tgtd.log and tgt.env (the handle "down" needs); created
#   -p PORT     loopback portal port (default: a random free one)
#   -s SIZE     LUN 1 size, truncate(1) syntax (default 1G); a sparse file, bstype rdwr
#   -c CPUS     pin tgtd and all its threads with taskset -c CPUS (default unpinned)
#   -n IQN      target name (default iqn.2026-11.org.costar:tgt-peer)
#   -L SECONDS  hard lifetime cap for tgtd (default 7200), so a forgotten peer goes away
#   -k          (down) keep WORKDIR
# The LUN is bound to ALL initiators, no CHAP. "up" prints the URL of LUN 1 as the LAST stdout
# line, e.g. iscsi://127.0.0.1:23260/iqn.2026-11.org.costar:tgt-peer/1. tgtd needs root.
# "down" signals only the PIDs recorded in WORKDIR/tgt.env.
#
# Examples:
#   url=$(scripts/tgt-peer.sh up -d /tmp/tgt1 -c 1 | tail -n1)
#   iscsi-inq "$url"
#   scripts/tgt-peer.sh down -d /tmp/tgt1
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; }
log() { echo "tgt-peer: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin

CMD=${1:-}
case $CMD in
  up | down) ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
shift
WORKDIR="" PORT="" SIZE=1G CPUS="" IQN=iqn.2026-11.org.costar:tgt-peer LIFETIME=7200 KEEP=0
while getopts "d:p:s:c:n:L:kh" opt; do
  case $opt in
    d) WORKDIR=$OPTARG ;; p) PORT=$OPTARG ;; s) SIZE=$OPTARG ;; c) CPUS=$OPTARG ;;
    n) IQN=$OPTARG ;; L) LIFETIME=$OPTARG ;; k) KEEP=1 ;;
    h) usage; exit 0 ;; *) usage >&2; exit 2 ;;
  esac
done
[[ -n $WORKDIR ]] || die "-d WORKDIR is required"

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

down() {
  local env=$WORKDIR/tgt.env TGTD_PID="" WRAP_PID="" CTRL="" t tids
  [[ -f $env ]] || { log "no $env: nothing to stop"; return 0; }
  # shellcheck disable=SC1090
  . "$env"
  if alive "$TGTD_PID"; then
    # tgtd ignores SIGTERM; deleting the targets and then the "system" is its shutdown request.
    tids=$(timeout 15 tgtadm -C "$CTRL" --lld iscsi --mode target --op show 2>/dev/null |
      sed -n 's/^Target \([0-9]*\):.*/\1/p') || true
    for t in $tids; do
      timeout 15 tgtadm -C "$CTRL" --lld iscsi --mode target --op delete --force --tid "$t" >/dev/null 2>&1 || true
    done
    timeout 15 tgtadm -C "$CTRL" --mode system --op delete >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do alive "$TGTD_PID" || break; sleep 0.1; done
    if alive "$TGTD_PID"; then
      log "tgtd $TGTD_PID still running after 10 s; SIGKILL"
      kill -KILL "$TGTD_PID" 2>/dev/null || true
    fi
  fi
  for _ in $(seq 1 50); do alive "$WRAP_PID" || break; sleep 0.1; done
  if alive "$WRAP_PID"; then kill -KILL "$WRAP_PID" 2>/dev/null || true; fi
  rm -f "/var/run/tgtd/socket.$CTRL" "/var/run/tgtd/socket.$CTRL.lock"
  if [[ $KEEP == 1 ]]; then
    rm -f "$env"
    log "stopped tgtd $TGTD_PID; kept $WORKDIR"
  else
    rm -f "$env" "$WORKDIR/lun1.img" "$WORKDIR/tgtd.log"
    rmdir "$WORKDIR" 2>/dev/null || true
    log "stopped tgtd $TGTD_PID"
  fi
}

up() {
  command -v tgtd >/dev/null || die "tgtd not found (scripts/install-test-deps.sh installs tgt)"
  command -v tgtadm >/dev/null || die "tgtadm not found"
  [[ $(id -u) == 0 ]] || die "tgtd needs root (it creates /var/run/tgtd/socket.N)"
  mkdir -p "$WORKDIR"
  WORKDIR=$(cd "$WORKDIR" && pwd)
  local env=$WORKDIR/tgt.env
  if [[ -f $env ]]; then
    local TGTD_PID=""
    # shellcheck disable=SC1090
    TGTD_PID=$(. "$env"; echo "$TGTD_PID")
    alive "$TGTD_PID" && die "a tgtd from $WORKDIR is still running (pid $TGTD_PID); run: $0 down -d $WORKDIR"
    rm -f "$env"
  fi
  if [[ -z $PORT ]]; then
    for _ in $(seq 1 50); do
      PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
      listening "$PORT" || [[ -e /var/run/tgtd/socket.$PORT ]] || break
    done
  fi
  listening "$PORT" && die "port $PORT already has a listener"
  # tgtd's control "port" only names its socket /var/run/tgtd/socket.N; N must be < 32768.
  local ctrl logf=$WORKDIR/tgtd.log backing=$WORKDIR/lun1.img
  for _ in $(seq 1 50); do
    ctrl=$((1000 + RANDOM % 31000))
    [[ -e /var/run/tgtd/socket.$ctrl ]] || break
  done
  local pin=()
  [[ -n $CPUS ]] && pin=(taskset -c "$CPUS")
  truncate -s "$SIZE" "$backing"
  log "starting ${pin[*]} tgtd -f -C $ctrl --iscsi portal=127.0.0.1:$PORT (lifetime ${LIFETIME}s)"
  timeout -k 10 "$LIFETIME" "${pin[@]}" tgtd -f -C "$ctrl" --iscsi "portal=127.0.0.1:$PORT" </dev/null >"$logf" 2>&1 &
  local wrap=$! pid=""
  for _ in $(seq 1 50); do
    pid=$(ps -o pid= --ppid "$wrap" 2>/dev/null | tr -d ' ' | head -n1) || true
    [[ -n $pid ]] && break
    alive "$wrap" || break
    sleep 0.1
  done
  [[ -n $pid ]] || { cat "$logf" >&2; die "tgtd did not start"; }
  printf 'TGTD_PID=%s\nWRAP_PID=%s\nCTRL=%s\nPORT=%s\nURL=%s\n' "$pid" "$wrap" "$ctrl" "$PORT" \
    "iscsi://127.0.0.1:$PORT/$IQN/1" >"$env"

  local tgtadm=(timeout 15 tgtadm -C "$ctrl" --lld iscsi) ok=0
  for _ in $(seq 1 200); do
    alive "$pid" || break
    if listening "$PORT" && "${tgtadm[@]}" --mode target --op show >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
  done
  if [[ $ok == 1 ]] &&
    "${tgtadm[@]}" --mode target --op new --tid 1 --targetname "$IQN" &&
    "${tgtadm[@]}" --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$backing" --bstype rdwr &&
    "${tgtadm[@]}" --mode target --op bind --tid 1 --initiator-address ALL &&
    # offer CRC32C digests as stmfd does (an initiator asking None still gets None)
    "${tgtadm[@]}" --mode target --op update --tid 1 --name HeaderDigest --value CRC32C,None &&
    "${tgtadm[@]}" --mode target --op update --tid 1 --name DataDigest --value CRC32C,None; then
    :
  else
    log "tgtd setup failed; log:"
    cat "$logf" >&2 || true
    down
    exit 1
  fi
  log "tgtd pid $pid on 127.0.0.1:$PORT, LUN 1 = $backing ($SIZE)"
  echo "iscsi://127.0.0.1:$PORT/$IQN/1"
}

"$CMD"
