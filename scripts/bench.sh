#!/usr/bin/env bash
# bench.sh - stmfd vs tgt (or two builds of stmfd), side by side in one run, same LU size, same CPU
# pinning, same figures.
#
# Usage: scripts/bench.sh [-o OUTDIR] [-p PROFILE] [-m MODE] [--only REGEX] [--compare | --base REV | -M] [-h]
#   -o OUTDIR    results and raw logs (env BENCH_OUT, default out/bench)
#   -p PROFILE   unpinned (default) | pinned (targets and clients all on CPU 0: the best QD1 latency
#                on small VMs) | split (targets on the last CPU, clients on CPU 0)   (env BENCH_PROFILE)
#   -m MODE      figures (default) | stall | ats | qos | all (= figures, stall and ats)  (env BENCH_MODE)
#                qos: per-LU QoS, stmfd only: a second LU on the demo target; the demo LU limited to
#                BENCH_QOS_IOPS (2000) with stmfadm modify-lu -p qos-iops; 4 KiB random QD32 reads
#                (iscsi-perf, one session per LU) on the neighbour alone, then on both LUs at once
#                with the demo LU unlimited (the noisy neighbour) and limited; prints achieved IOPS
#                vs the limit and what the neighbour kept (OUTDIR/qos.md)
#                stall: BENCH_STALL_SECS (60) of 4 KiB random QD32 reads (iscsi-perf prints IOPS every
#                second; any second at 0 IOPS is a stall) and of 4 KiB QD32 writes (qemu-img bench
#                must finish within 3x its calibrated time), against each target; a stall fails the run
#                ats: VMware-style ATS heartbeat latency (cmd/costar-atsbench: a 1-block COMPARE AND
#                WRITE every BENCH_ATS_INTERVAL through its own session, p50/p99/max) alone and while a
#                4 KiB QD32 random-write load (fio, nbd engine, through qemu-nbd's iscsi:// driver) runs
#                on the same LU, next to the plain random-write figure; tgt has no ATS: "n/a"
#   --only REGEX run only the figures whose name matches
#   --compare    two builds instead of tgt: "old" = the merge-base of HEAD and main, "new" = this
#                tree (or STMFD_BIN); both run --demo with the same pinning, alternating from figure
#                to figure, and the report shows new/old ratios. No tgt, no root needed
#   --base REV   --compare against REV (any git revision) instead of the merge-base    (env BENCH_BASE)
#                The old build comes from `git archive REV` into a temp dir and `go build ./cmd/stmfd`
#   -M, --metrics  metrics off vs on instead of tgt: two stmfd of this build, "off" without and "on"
#                with --metrics-listen on loopback, scraped (GET /metrics) every BENCH_SCRAPE_SECS (1)
#                by curl while the figures run; the report shows on/off ratios and the scrape count.
#                The per-LU counters and histograms are kept in both (stmfadm list-stats reads them):
#                this measures the exporter and its scrapes; --base of a commit before the counters
#                measures the counters themselves                                  (env BENCH_METRICS=1)
#
# Environment (optional):
#   BENCH_SECS=10            seconds per figure and target
#   BENCH_TARGET_CPUS=LIST   taskset -c list for both targets (overrides the profile)
#   BENCH_CLIENT_CPUS=LIST   taskset -c list for iscsi-perf / qemu-img (overrides the profile)
#   BENCH_SIZE=1G            LU size of both targets (sparse files)
#   BENCH_PREFILL=1          write both LUs once (1 MiB QD8) first, so reads hit data and writes
#                            do not allocate
#   BENCH_QUIET_PCT=30       before each run wait until the machine is below this busy % of one core
#   BENCH_QUIET_WAIT=60      ... for at most this many seconds (this box is shared)
#   BENCH_TGT=1              0 = measure stmfd only
#   BENCH_ATS_INTERVAL=10ms  time between ATS heartbeats in -m ats (0 = back to back)
#   BENCH_CEIL_ROUNDS=3      runs of each ceiling (TCP ping-pong, iperf3); the best one is the ceiling
#   STMFD_BIN                use this stmfd binary instead of building ./cmd/stmfd (the "new" one)
#   BENCH_COMPARE=1          same as --compare
#
# Figures (reads: libiscsi iscsi-perf, READ16, duration based; writes: qemu-img bench through QEMU's
# libiscsi driver, count calibrated to ~BENCH_SECS): rand_read_4k_qd1, rand_read_4k_qd32,
# seq_read_4k_qd1, seq_read_4k_qd32, seq_read_1m_qd8, seq_write_4k_qd32, seq_write_1m_qd8.
# Then, through cmd/costar-loadgen (costar's own initiator, the same for both targets; it gives
# latency percentiles, several sessions, FUA and digests, which iscsi-perf and qemu-img cannot):
# lg_rand_read_4k_qd1, lg_rand_write_4k_qd1, sess{1,4,16,64}_rand_read_4k_qd32 (QD32 per session,
# aggregate IOPS; target RSS read after the 64-session run), lg_rand_write_4k_qd32,
# rand_write_4k_fua_qd32, mixed_70_30_4k_qd32 (70 % reads), rand_read_4k_qd32_crc32c and
# rand_write_4k_qd32_crc32c (HeaderDigest and DataDigest CRC32C; compare with sess1_... and
# lg_rand_write_4k_qd32). Ceilings (once per run, the best of BENCH_CEIL_ROUNDS runs, same pinning:
# server as the targets, client as the clients): ceil_tcp_pingpong_4k (one connection, 48 B out,
# 4144 B back, QD1: costar-loadgen -pingpong) and ceil_iperf3_1m (iperf3 -l 1M, one stream). Every
# figure reports the target's CPU seconds per million commands (utime+stime from /proc/PID/stat over
# the figure / commands), which survives a busy machine better than IOPS; loadgen figures add
# p50/p99/p99.9. The report ends with the goals of issue 14 and the ratio measured for each.
# Targets alternate order from figure to figure to cancel drift. tgt runs as a private tgtd
# (scripts/tgt-peer.sh, needs root) with a 1 GiB file LU; stmfd runs with --demo. Both are stopped
# at the end (only the PIDs this script started).
# Output: OUTDIR/bench.md (markdown table: figure, tgt, stmfd, ratio stmfd/tgt, target CPU use;
# with --compare: figure, old, new, ratio new/old, CPU use; with -m ats also an ATS latency table)
# and OUTDIR/bench.tsv (one row per figure and target: tgt/stmfd or old/new; OUTDIR/ats.tsv for
# the ATS runs). Not part of `make test`.
#
# Examples:
#   scripts/bench.sh                              # unpinned, 10 s per figure (~8 min on an idle 2-core machine)
#   BENCH_SECS=5 scripts/bench.sh -p pinned       # quick, everything on CPU 0
#   scripts/bench.sh -m stall                     # 60 s no-stall check against both targets
#   BENCH_SECS=5 scripts/bench.sh -m ats          # ATS heartbeat latency under random writes
#   BENCH_TARGET_CPUS=1 BENCH_CLIENT_CPUS=0 scripts/bench.sh --only 'qd1$'
#   BENCH_SECS=5 scripts/bench.sh -p pinned --compare    # this tree vs the merge-base with main
#   scripts/bench.sh --base v0.3.0 --only 'read_4k'      # this tree vs a tagged release
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/out/bench}
PROFILE=${BENCH_PROFILE:-unpinned}
MODE=${BENCH_MODE:-figures}
ONLY=${BENCH_ONLY:-}
SECS=${BENCH_SECS:-10}
STALL_SECS=${BENCH_STALL_SECS:-60}
SIZE=${BENCH_SIZE:-1G}
PREFILL=${BENCH_PREFILL:-1}
QUIET_PCT=${BENCH_QUIET_PCT:-30}
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
WITH_TGT=${BENCH_TGT:-1}
ATS_INTERVAL=${BENCH_ATS_INTERVAL:-10ms}
CEIL_ROUNDS=${BENCH_CEIL_ROUNDS:-3}
[[ $CEIL_ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_CEIL_ROUNDS must be a positive count" >&2; exit 2; }
COMPARE=${BENCH_COMPARE:-0}
BASE=${BENCH_BASE:-}
METRICS=${BENCH_METRICS:-0}
SCRAPE_SECS=${BENCH_SCRAPE_SECS:-1}
DEMO_IQN=iqn.2026-11.org.costar:demo
INIT=iqn.2026-11.org.costar:bench
HZ=$(getconf CLK_TCK)

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; }
log() { echo "bench: $*" >&2; }
die() { log "ERROR: $*"; exit 2; }

while (($# > 0)); do
  case $1 in
    -o | --out) OUT=${2:?}; shift 2 ;;
    -p | --profile) PROFILE=${2:?}; shift 2 ;;
    -m | --mode) MODE=${2:?}; shift 2 ;;
    --only) ONLY=${2:?}; shift 2 ;;
    --compare) COMPARE=1; shift ;;
    --base) BASE=${2:?}; COMPARE=1; shift 2 ;;
    -M | --metrics) METRICS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $MODE == figures || $MODE == stall || $MODE == ats || $MODE == qos || $MODE == all ]] || die "unknown mode $MODE"
QOS_IOPS=${BENCH_QOS_IOPS:-2000}
if [[ $MODE == qos ]]; then
  WITH_TGT=0
  [[ $COMPARE == 1 ]] && die "-m qos measures one stmfd; it takes no --compare/--base"
fi
[[ -n $BASE ]] && COMPARE=1
if [[ $METRICS == 1 ]]; then
  [[ $COMPARE == 1 || $MODE == qos ]] && die "-M compares metrics off and on of one build; it takes no --compare/--base/-m qos"
  command -v curl >/dev/null 2>&1 || die "curl not found (needed by -M to scrape /metrics)"
fi
# REF and SUBJ are the two columns of the report: SUBJ/REF is the ratio.
if [[ $METRICS == 1 ]]; then
  WITH_TGT=0 REF=off SUBJ=on
elif [[ $COMPARE == 1 ]]; then
  WITH_TGT=0 REF=old SUBJ=new
else
  REF=tgt SUBJ=stmfd
fi

NCPU=$(nproc)
case $PROFILE in
  unpinned) def_t="" def_c="" ;;
  pinned) def_t=0 def_c=0 ;;
  split) def_t=$((NCPU - 1)) def_c=0 ;;
  *) die "unknown profile $PROFILE (unpinned|pinned|split)" ;;
esac
TCPUS=${BENCH_TARGET_CPUS:-$def_t}
CCPUS=${BENCH_CLIENT_CPUS:-$def_c}
TPIN=() CPIN=()
[[ -n $TCPUS ]] && TPIN=(taskset -c "$TCPUS")
[[ -n $CCPUS ]] && CPIN=(taskset -c "$CCPUS")

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
export PATH=$PATH:/usr/sbin:/sbin
for tool in iscsi-perf iscsi-inq iscsi-readcapacity16 qemu-img; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/install-test-deps.sh)"
done
if [[ $MODE == ats || $MODE == all ]]; then
  for tool in fio qemu-nbd; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run scripts/install-test-deps.sh)"
  done
fi
if [[ $WITH_TGT == 1 ]]; then
  command -v tgtd >/dev/null 2>&1 || die "tgtd not found (run scripts/install-test-deps.sh, or BENCH_TGT=0)"
  [[ $(id -u) == 0 ]] || die "tgtd needs root (or BENCH_TGT=0 for stmfd only)"
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/raw
rm -rf -- "$RAW"
mkdir -p "$RAW"

# ---- targets ----
declare -A URL PID BS BYTES
TARGETS=()
SPIDS=() STATES=() NBDPID="" SRCDIR=""
TGTDIR=$OUT/tgt

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
free_port() {
  local p _
  for _ in $(seq 1 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if alive "$NBDPID"; then
    kill -TERM "$NBDPID" 2>/dev/null || true
    wait "$NBDPID" 2>/dev/null || true
  fi
  local p s
  for p in "${SPIDS[@]}"; do
    if alive "$p"; then
      kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 1 100); do alive "$p" || break; sleep 0.1; done
      alive "$p" && kill -KILL "$p" 2>/dev/null
      wait "$p" 2>/dev/null || true
    fi
  done
  if [[ -f $TGTDIR/tgt.env ]]; then "$ROOT/scripts/tgt-peer.sh" down -d "$TGTDIR" || true; fi
  for s in "${STATES[@]}"; do rm -rf -- "$s"; done
  if [[ -n $SRCDIR ]]; then rm -rf -- "$SRCDIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${STMFD_BIN:-} ]]; then
  STMFD=$STMFD_BIN
else
  STMFD=$OUT/stmfd
  log "building stmfd"
  (cd "$ROOT" && go build -o "$STMFD" ./cmd/stmfd) || die "go build ./cmd/stmfd failed"
fi
LOADGEN=$OUT/costar-loadgen
(cd "$ROOT" && go build -o "$LOADGEN" ./cmd/costar-loadgen) || die "go build ./cmd/costar-loadgen failed"
if [[ $MODE == qos ]]; then
  STMFADM=$OUT/stmfadm
  (cd "$ROOT" && go build -o "$STMFADM" ./cmd/stmfadm) || die "go build ./cmd/stmfadm failed"
fi
if [[ $COMPARE == 1 ]]; then
  if [[ -z $BASE ]]; then
    BASE=$(git -C "$ROOT" merge-base HEAD main) || die "no merge-base of HEAD and main (use --base REV)"
  fi
  BASE_COMMIT=$(git -C "$ROOT" rev-parse --verify "$BASE^{commit}") || die "unknown revision $BASE"
  BASE_DESC=$(git -C "$ROOT" describe --always "$BASE_COMMIT")
  [[ $BASE_COMMIT == $(git -C "$ROOT" rev-parse HEAD) ]] && log "note: $BASE is HEAD; old and new differ only by uncommitted changes"
  SRCDIR=$(mktemp -d "${TMPDIR:-/tmp}/costar-bench-src.XXXXXX")
  STMFD_OLD=$OUT/stmfd-old
  log "building stmfd of $BASE ($BASE_DESC) in $SRCDIR"
  git -C "$ROOT" archive "$BASE_COMMIT" | tar -x -C "$SRCDIR" || die "git archive $BASE failed"
  (cd "$SRCDIR" && go build -o "$STMFD_OLD" ./cmd/stmfd) || die "go build ./cmd/stmfd of $BASE failed"
fi

if [[ $WITH_TGT == 1 ]]; then
  tgt_args=(up -d "$TGTDIR" -s "$SIZE")
  [[ -n $TCPUS ]] && tgt_args+=(-c "$TCPUS")
  URL[tgt]=$("$ROOT/scripts/tgt-peer.sh" "${tgt_args[@]}" | tail -n1) || die "tgt did not start"
  PID[tgt]=$(sed -n 's/^TGTD_PID=//p' "$TGTDIR/tgt.env")
  TARGETS+=(tgt)
fi

start_stmfd() { # name binary [flag...]: a --demo stmfd on a free loopback port, added to TARGETS
  local name=$1 bin=$2 state port pid ready=0
  shift 2
  state=$(mktemp -d "${TMPDIR:-/tmp}/costar-bench.XXXXXX")
  STATES+=("$state")
  port=$(free_port) || die "no free port"
  URL[$name]=iscsi://127.0.0.1:$port/$DEMO_IQN/0
  log "starting ${TPIN[*]} $name ($bin) on 127.0.0.1:$port"
  "${TPIN[@]}" "$bin" --state-dir "$state" --portal "127.0.0.1:$port" --demo --demo-size "$SIZE" \
    --log-level info "$@" </dev/null >"$OUT/$name.log" 2>&1 &
  pid=$!
  SPIDS+=("$pid")
  for _ in $(seq 1 150); do
    alive "$pid" || break
    if timeout 5 iscsi-inq -i "$INIT" "${URL[$name]}" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
  done
  [[ $ready == 1 ]] || { tail -n 20 "$OUT/$name.log" >&2; die "$name did not become ready"; }
  PID[$name]=$pid
  TARGETS+=("$name")
}
if [[ $METRICS == 1 ]]; then
  start_stmfd off "$STMFD"
  MPORT=$(free_port) || die "no free port"
  MURL=http://127.0.0.1:$MPORT/metrics
  start_stmfd on "$STMFD" --metrics-listen "127.0.0.1:$MPORT"
  curl -fsS -o "$RAW/metrics.first.txt" "$MURL" || die "on: $MURL does not answer"
  # The scraper: a busy Prometheus. Bounded by the "on" stmfd's life and a day of scrapes.
  (
    n=0
    while ((n < 86400)) && alive "${PID[on]}"; do
      curl -fsS -o /dev/null --max-time 10 "$MURL" && n=$((n + 1)) && echo "$n" >"$RAW/scrapes"
      sleep "$SCRAPE_SECS"
    done
  ) </dev/null >/dev/null 2>"$RAW/scraper.err" &
  SPIDS+=("$!")
elif [[ $COMPARE == 1 ]]; then
  start_stmfd old "$STMFD_OLD"
  start_stmfd new "$STMFD"
else
  start_stmfd stmfd "$STMFD"
fi

for t in "${TARGETS[@]}"; do
  rc16=$(timeout 15 iscsi-readcapacity16 -i "$INIT" "${URL[$t]}" 2>&1) || die "$t: readcapacity16 failed: $rc16"
  BS[$t]=$(sed -n 's/^LOGICAL BLOCK LENGTH IN BYTES:\([0-9]*\).*/\1/p' <<<"$rc16")
  BYTES[$t]=$(sed -n 's/^Total size:\([0-9]*\).*/\1/p' <<<"$rc16")
  [[ -n ${BS[$t]} && -n ${BYTES[$t]} ]] || die "$t: cannot parse readcapacity16 output"
  timeout 20 qemu-img info -f raw "${URL[$t]}" >/dev/null 2>&1 ||
    die "$t: qemu-img cannot open ${URL[$t]} (is qemu-block-extra installed?)"
  log "$t: ${URL[$t]} pid ${PID[$t]} block ${BS[$t]} size ${BYTES[$t]}"
done

# ---- measuring helpers ----
cpu_ticks() { # utime+stime of a process (all threads), or empty
  [[ -r /proc/$1/stat ]] || return 0
  awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"
}
# CPU steal: time the hypervisor ran something else while our vCPUs wanted to run. The report states
# it so that a run disturbed by the host can be told from a slow one.
steal_now() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
steal_pct() { # "steal total" at the start, at the end -> % of all CPU time
  awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); d = y[2] - x[2]
    if (d <= 0) print "0.0"; else printf "%.1f", (y[1] - x[1]) * 100 / d}'
}
sys_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) a b pct
  # The previous figure's dirty pages are written back now, not while this one runs (a 1 MiB write
  # figure leaves up to a whole LU dirty; its writeback had landed in the next figure of one target).
  sync
  while :; do
    a=$(sys_busy); sleep 1; b=$(sys_busy)
    pct=$(((b - a) * 100 / HZ))
    ((pct <= QUIET_PCT)) && return 0
    if ((SECONDS >= deadline)); then
      log "machine still ${pct}% busy after ${QUIET_WAIT}s; measuring anyway"
      return 0
    fi
  done
}
want() { [[ -z $ONLY || $1 =~ $ONLY ]]; }
fmt_rate() { # iops bytes -> "31.2k IOPS" or "1.95 GB/s"
  awk -v i="$1" -v b="$2" 'BEGIN {
    if (i == "" || i == "-") { print "-"; exit }
    if (b >= 65536) printf "%.2f GB/s", i * b / 1e9
    else if (i >= 1000) printf "%.1fk IOPS", i / 1000
    else printf "%.0f IOPS", i }'
}

TSV=$OUT/bench.tsv
printf 'figure\ttarget\ttool\tqd\tbytes\tiops\tMBps\tlat_us\ttarget_cpu_pct\twall_s\trc\tcommands\tcpu_s_per_mcmd\tp50_us\tp99_us\tp999_us\n' >"$TSV"
declare -A RES CPU CPM PCT RSS
FAILED=0

# record fig target tool qd bytes iops wall t0ticks rc [commands [p50 p99 p999]]
# commands defaults to iops x wall; CPU s per million commands = target CPU ticks over the figure
# / commands.
record() {
  local fig=$1 t=$2 tool=$3 qd=$4 bytes=$5 iops=$6 wall=$7 t0=$8 rc=$9 ops=${10:-} p50=${11:--} p99=${12:--} p999=${13:--}
  local t1 cpu="-" cpm="-" mbps lat
  [[ -n $ops ]] || ops=$(awk -v i="$iops" -v w="$wall" 'BEGIN {if (i == "-") print "-"; else printf "%.0f", i * w}')
  t1=$(cpu_ticks "${PID[$t]}")
  if [[ -n $t0 && -n $t1 ]]; then
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v w="$wall" 'BEGIN {printf "%.0f", (b - a) / hz / w * 100}')
    cpm=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v n="$ops" 'BEGIN {if (n == "-" || n == 0) print "-"; else printf "%.2f", (b - a) / hz / n * 1e6}')
  fi
  mbps=$(awk -v i="$iops" -v b="$bytes" 'BEGIN {if (i == "-") print "-"; else printf "%.1f", i * b / 1e6}')
  lat=$(awk -v i="$iops" -v q="$qd" 'BEGIN {if (i == "-" || i == 0) print "-"; else printf "%.1f", q / i * 1e6}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fig" "$t" "$tool" "$qd" "$bytes" "$iops" "$mbps" "$lat" "$cpu" "$wall" "$rc" "$ops" "$cpm" "$p50" "$p99" "$p999" >>"$TSV"
  RES[$fig,$t]=$iops
  CPU[$fig,$t]=$cpu
  CPM[$fig,$t]=$cpm
  [[ $p50 == - ]] || PCT[$fig,$t]="$p50 / $p99 / $p999"
  log "$(printf '%-26s %-6s %12s  lat %8sus  target cpu %4s%%  %7s s/M cmds  p50/p99/p99.9 %s' "$fig" "$t" "$(fmt_rate "$iops" "$bytes")" "$lat" "$cpu" "$cpm" "${PCT[$fig,$t]:--}")"
}

run_iperf() { # fig target bytes qd random secs logfile -> sets IOPS, WALL, RC
  local t=$2 bytes=$3 qd=$4 rnd=$5 secs=$6 logf=$7 a b args
  args=(-i "$INIT" -m "$qd" -t "$secs" -b $((bytes / BS[$t])))
  [[ $rnd == 1 ]] && args+=(-r)
  a=$(date +%s.%N)
  RC=0
  timeout -k 5 $((secs + 30)) "${CPIN[@]}" iscsi-perf "${args[@]}" "${URL[$t]}" >"$logf" 2>&1 || RC=$?
  b=$(date +%s.%N)
  WALL=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b - a}')
  IOPS=$(tr '\r' '\n' <"$logf" | sed -n 's/^iops average \([0-9]*\).*/\1/p' | tail -n1)
  [[ -n $IOPS ]] || { IOPS="-"; [[ $RC != 0 ]] || RC=1; }
}

run_lg() { # target logfile loadgen-flags... -> sets IOPS, WALL, RC, OPS, P50, P99, P999, QDTOT
  local t=$1 logf=$2 a b line
  shift 2
  a=$(date +%s.%N)
  RC=0
  timeout -k 5 $((SECS + 150)) "${CPIN[@]}" "$LOADGEN" -i "$INIT" -duration "${SECS}s" "$@" "${URL[$t]}" >"$logf" 2>&1 || RC=$?
  b=$(date +%s.%N)
  WALL=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b - a}')
  line=$(grep '^RESULT ' "$logf" | tail -n1) || true
  lgf() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  IOPS=$(lgf iops) OPS=$(lgf ops) P50=$(lgf p50_us) P99=$(lgf p99_us) P999=$(lgf p999_us)
  # the target's CPU ran over the whole wall time (logins included), the commands over secs
  [[ -n $IOPS ]] || { IOPS="-" OPS="-" P50="-" P99="-" P999="-"; [[ $RC != 0 ]] || RC=1; }
  local s=1 q=1 prev=""
  for arg in "$@"; do
    [[ $prev == -sessions ]] && s=$arg
    [[ $prev == -qd ]] && q=$arg
    prev=$arg
  done
  QDTOT=$((s * q))
}
qb_once() { # target count qd bytes logfile -> prints seconds; writes
  local t=$1
  timeout -k 5 $((SECS * 6 + 120)) "${CPIN[@]}" qemu-img bench -f raw -t none -w --pattern=0xa5 \
    -c "$2" -d "$3" -s "$4" "${URL[$t]}" >"$5" 2>&1 || return 1
  sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' "$5"
}
calibrate() { # target qd bytes secs -> prints a count that runs ~secs seconds
  local t=$1 qd=$2 bytes=$3 secs=$4 count tm _
  count=$((bytes >= 1048576 ? 64 : 2000))
  for _ in 1 2 3 4 5 6; do
    tm=$(qb_once "$t" "$count" "$qd" "$bytes" "$RAW/calibrate.log") || return 1
    awk -v t="$tm" 'BEGIN {exit !(t >= 0.5)}' && break
    count=$((count * 4))
  done
  awk -v c="$count" -v t="$tm" -v s="$secs" 'BEGIN {n = int(c * s / t); if (n < c) n = c; print n}'
}
run_qbench() { # fig target bytes qd secs logfile -> sets IOPS, WALL, RC, COUNT
  local t=$2 bytes=$3 qd=$4 secs=$5 logf=$6 tm
  RC=0
  COUNT=$(calibrate "$t" "$qd" "$bytes" "$secs") || { RC=1; IOPS="-"; WALL=0; return 0; }
  wait_quiet
  T0=$(cpu_ticks "${PID[$t]}")
  local a b
  a=$(date +%s.%N)
  tm=$(qb_once "$t" "$COUNT" "$qd" "$bytes" "$logf") || RC=$?
  b=$(date +%s.%N)
  WALL=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b - a}')
  if [[ $RC == 0 && -n $tm ]]; then
    IOPS=$(awk -v c="$COUNT" -v t="$tm" 'BEGIN {printf "%.0f", c / t}')
  else
    IOPS="-"
    [[ $RC != 0 ]] || RC=1
  fi
}

FIGS=()
fig_order() { # index -> target order, alternating
  if (($1 % 2 == 0)); then echo "${TARGETS[@]}"; else printf '%s\n' "${TARGETS[@]}" | tac | tr '\n' ' '; fi
}
figure() { # idx name kind bytes qd [random (read) | "costar-loadgen flags" (lg)]
  local idx=$1 fig=$2 kind=$3 bytes=$4 qd=$5 rnd=${6:-0} t
  want "$fig" || return 0
  FIGS+=("$fig:$bytes")
  for t in $(fig_order "$idx"); do
    if [[ $kind == read ]]; then
      wait_quiet
      T0=$(cpu_ticks "${PID[$t]}")
      run_iperf "$fig" "$t" "$bytes" "$qd" "$rnd" "$SECS" "$RAW/$fig.$t.log"
      record "$fig" "$t" iscsi-perf "$qd" "$bytes" "$IOPS" "$WALL" "$T0" "$RC"
    elif [[ $kind == lg ]]; then
      wait_quiet
      T0=$(cpu_ticks "${PID[$t]}")
      local sampler=""
      if [[ $fig == sess64_* ]]; then # RSS while the 64 sessions run
        (sleep $((SECS / 2 + 1)); rss_of "${PID[$t]}" >"$RAW/rss.$t") &
        sampler=$!
      fi
      run_lg "$t" "$RAW/$fig.$t.log" -bs "$bytes" -qd "$qd" $rnd
      if [[ -n $sampler ]]; then
        wait "$sampler" 2>/dev/null || true
        RSS[$t]=$(cat "$RAW/rss.$t" 2>/dev/null || echo -)
      fi
      record "$fig" "$t" costar-loadgen "$QDTOT" "$bytes" "$IOPS" "$WALL" "$T0" "$RC" "$OPS" "$P50" "$P99" "$P999"
    else
      run_qbench "$fig" "$t" "$bytes" "$qd" "$SECS" "$RAW/$fig.$t.log"
      record "$fig" "$t" "qemu-img bench" "$qd" "$bytes" "$IOPS" "$WALL" "$T0" "$RC"
    fi
    if [[ $RC != 0 ]]; then
      FAILED=1
      log "$fig against $t FAILED (rc $RC, see $RAW/$fig.$t.log)"
    fi
    alive "${PID[$t]}" || die "$t died during $fig"
  done
}

K4=4096 M1=1048576
rss_of() { # pid -> "RSS / peak RSS MiB" (VmRSS / VmHWM)
  awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {if (r == "") print "-"; else printf "%.1f / %.1f MiB", r / 1024, h / 1024}' "/proc/$1/status" 2>/dev/null || echo "-"
}
# ---- ceilings: what loopback TCP allows with the same pinning ----
declare -A CEIL
slash_list() { local s; s=$(printf '%s / ' "$@"); printf '%s' "${s% / }"; } # a / b / c
gbs() { awk -v b="${1:-0}" 'BEGIN {printf "%.2f GB/s", b / 1e9}'; } # bytes/s -> "1.23 GB/s"
ceilings() {
  local port spid line r v all st
  if want ceil_tcp_pingpong_4k; then
    port=$(free_port) || die "no free port"
    "${TPIN[@]}" "$LOADGEN" -pingpong-serve "127.0.0.1:$port" -req 48 -resp 4144 >"$RAW/pingpong-serve.log" 2>&1 &
    spid=$!
    SPIDS+=("$spid")
    for _ in $(seq 1 50); do ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break; sleep 0.1; done
    # The best of CEIL_ROUNDS: loopback round trips are bimodal on small VMs (both ends on one vCPU, or
    # each on its own and every round trip wakes a halted one), and the ceiling is what the path allows.
    all=()
    for r in $(seq 1 "$CEIL_ROUNDS"); do
      wait_quiet
      st=$(steal_now)
      timeout -k 5 $((SECS + 30)) "${CPIN[@]}" "$LOADGEN" -pingpong "127.0.0.1:$port" -req 48 -resp 4144 \
        -duration "${SECS}s" >"$RAW/ceil_tcp_pingpong_4k.$r.log" 2>&1 || true
      line=$(grep '^RESULT ' "$RAW/ceil_tcp_pingpong_4k.$r.log" | tail -n1) || true
      v=$(sed -n 's/.* iops=\([^ ]*\).*/\1/p' <<<"$line")
      all+=("${v:--} (steal $(steal_pct "$st" "$(steal_now)") %)")
      if [[ -n $v ]] && awk -v a="$v" -v b="${CEIL[pingpong]:-0}" 'BEGIN {exit !(a > b)}'; then
        CEIL[pingpong]=$v
        CEIL[pingpong_pct]="$(sed -n 's/.* p50_us=\([^ ]*\) p99_us=\([^ ]*\) p999_us=\([^ ]*\).*/\1 \/ \2 \/ \3/p' <<<"$line")"
      fi
    done
    CEIL[pingpong_all]=$(slash_list "${all[@]}")
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    log "ceiling: TCP ping-pong 48 B -> 4144 B, one connection: best ${CEIL[pingpong]:-?} round trips/s of ${CEIL[pingpong_all]:-?} (p50/p99/p99.9 ${CEIL[pingpong_pct]:-?} us)"
  fi
  if want ceil_iperf3_1m; then
    if command -v iperf3 >/dev/null 2>&1; then
      all=()
      for r in $(seq 1 "$CEIL_ROUNDS"); do
        port=$(free_port) || die "no free port"
        timeout -k 5 $((SECS + 30)) "${TPIN[@]}" iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$RAW/iperf3-s.$r.log" 2>&1 &
        spid=$!
        for _ in $(seq 1 50); do ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break; sleep 0.1; done
        wait_quiet
        st=$(steal_now)
        timeout -k 5 $((SECS + 20)) "${CPIN[@]}" iperf3 -c 127.0.0.1 -p "$port" -l 1M -t "$SECS" -f m \
          >"$RAW/ceil_iperf3_1m.$r.log" 2>&1 || true
        wait "$spid" 2>/dev/null || true
        # "... receiver" line: Mbits/sec -> bytes/s
        v=$(awk '/receiver/ {for (i = 1; i <= NF; i++) if ($i ~ /bits\/sec/) v = $(i - 1)} END {if (v != "") printf "%.0f", v * 1e6 / 8}' "$RAW/ceil_iperf3_1m.$r.log")
        all+=("$(gbs "$v") (steal $(steal_pct "$st" "$(steal_now)") %)")
        if [[ -n $v ]] && ((v > ${CEIL[iperf3]:-0})); then CEIL[iperf3]=$v; fi
      done
      CEIL[iperf3_all]=$(slash_list "${all[@]}")
      log "ceiling: iperf3 -l 1M one stream: best $(gbs "${CEIL[iperf3]:-}") of ${CEIL[iperf3_all]}"
    else
      log "iperf3 not installed (scripts/install-test-deps.sh): no 1 MiB ceiling"
    fi
  fi
}
PREFILLED=0
prefill() { # once per run: reads hit data, writes do not allocate
  [[ $PREFILL == 1 && $PREFILLED == 0 ]] || return 0
  for t in "${TARGETS[@]}"; do
    log "prefilling $t (${BYTES[$t]} bytes, 1 MiB writes, QD8)"
    timeout -k 5 900 "${CPIN[@]}" qemu-img bench -f raw -t none -w --pattern=0x5a -c $((BYTES[$t] / M1)) -d 8 \
      -s $M1 "${URL[$t]}" >"$RAW/prefill.$t.log" 2>&1 || die "prefill of $t failed (see $RAW/prefill.$t.log)"
  done
  PREFILLED=1
}
STALLS=()
STEAL0=$(steal_now)
# ---- per-LU QoS (-m qos) ----
if [[ $MODE == qos ]]; then
  t=stmfd
  adm() { "$STMFADM" --socket "${STATES[0]}/stmfd.sock" "$@"; }
  demo_guid=$(adm list-lu | sed -n '1s/^LU Name: //p')
  other_guid=$(adm create-lu -s "$SIZE" "${STATES[0]}/qos-neighbour.img" | sed -n 's/^Logical unit created: //p')
  [[ -n $demo_guid && -n $other_guid ]] || die "cannot set up the two LUs"
  adm add-view -n 1 "$other_guid" >/dev/null || die "add-view of the neighbour LU failed"
  URL1=${URL[$t]%/0}/1
  # iscsi-perf's closing "iops average" is its last, partial second; the mean of its per-second
  # samples without the last (the drain) and, with three or more, the first (the ramp and burst) is the rate.
  perf() { # url initiator logfile: 4 KiB random QD32 reads for SECS; prints the IOPS
    timeout -k 5 $((SECS + 30)) "${CPIN[@]}" iscsi-perf -i "$2" -m 32 -t "$SECS" -b $((4096 / BS[$t])) -r "$1" >"$3" 2>&1 || true
    tr '\r' '\n' <"$3" | sed -n 's/.*iops current \([0-9]*\).*/\1/p' |
      awk '{v[NR] = $1} END {a = NR >= 3 ? 2 : 1; for (i = a; i < NR; i++) {s += v[i]; n++} if (n) printf "%d\n", s / n}'
  }
  pair() { # tag: both LUs at once, each through its own session; sets P0 P1
    perf "${URL[$t]}" "$INIT-a" "$RAW/qos_$1.lun0.log" >"$RAW/qos_$1.lun0.iops" &
    local bg=$!
    P1=$(perf "$URL1" "$INIT-b" "$RAW/qos_$1.lun1.log")
    wait "$bg" || true
    P0=$(cat "$RAW/qos_$1.lun0.iops")
  }
  wait_quiet
  log "qos: neighbour LU alone, ${SECS}s"
  ALONE=$(perf "$URL1" "$INIT-b" "$RAW/qos_alone.lun1.log")
  log "qos: both LUs, demo LU unlimited"
  pair noisy; NOISY0=$P0 NOISY1=$P1
  adm modify-lu -p "qos-iops=$QOS_IOPS" "$demo_guid" || die "modify-lu -p qos-iops=$QOS_IOPS failed"
  log "qos: both LUs, demo LU limited to $QOS_IOPS IOPS"
  pair limited; LIM0=$P0 LIM1=$P1
  adm modify-lu -p qos-iops=0 "$demo_guid" >/dev/null || true
  pct() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN {if (b == 0) print "-"; else printf "%+.1f %%", 100 * (a - b) / b}'; }
  share() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN {if (b == 0) print "-"; else printf "%.0f %%", 100 * a / b}'; }
  {
    echo "# stmfd per-LU QoS"
    echo
    echo "- date: $(date -u +%FT%TZ); stmfd $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); $NCPU cores"
    echo "- 4 KiB random reads, QD32, iscsi-perf, ${SECS}s per run, one session per LU; pinning: $PROFILE"
    echo
    echo "| run | demo LU (LUN 0) IOPS | vs limit | neighbour (LUN 1) IOPS | neighbour vs alone |"
    echo "|---|---:|---:|---:|---:|"
    echo "| neighbour alone | - | - | ${ALONE:--} | 100 % |"
    echo "| demo unlimited (noisy) | ${NOISY0:--} | - | ${NOISY1:--} | $(share "$NOISY1" "$ALONE") |"
    echo "| demo qos-iops=$QOS_IOPS | ${LIM0:--} | $(pct "$LIM0" "$QOS_IOPS") | ${LIM1:--} | $(share "$LIM1" "$ALONE") |"
  } >"$OUT/qos.md"
  cat "$OUT/qos.md"
  awk -v a="${LIM0:-0}" -v l="$QOS_IOPS" 'BEGIN {exit !(a > 0 && (a - l) / l <= 0.05 && (l - a) / l <= 0.05)}' || {
    log "achieved ${LIM0:-?} IOPS is not within 5 % of the $QOS_IOPS limit"
    exit 1
  }
  exit 0
fi

if [[ $MODE == figures || $MODE == all ]]; then
  prefill
  figure 0 rand_read_4k_qd1 read $K4 1 1
  figure 1 rand_read_4k_qd32 read $K4 32 1
  figure 2 seq_read_4k_qd1 read $K4 1 0
  figure 3 seq_read_4k_qd32 read $K4 32 0
  figure 4 seq_read_1m_qd8 read $M1 8 0
  figure 5 seq_write_4k_qd32 write $K4 32
  figure 6 seq_write_1m_qd8 write $M1 8
  figure 7 lg_rand_read_4k_qd1 lg $K4 1 "-rw randread"
  figure 8 lg_rand_write_4k_qd1 lg $K4 1 "-rw randwrite"
  i=9
  for n in 1 4 16 64; do
    figure $((i++)) "sess${n}_rand_read_4k_qd32" lg $K4 32 "-rw randread -sessions $n"
    if [[ $n == 64 ]] && want "sess64_rand_read_4k_qd32"; then
      log "RSS / peak with 64 sessions running: $(for t in "${TARGETS[@]}"; do printf '%s %s  ' "$t" "${RSS[$t]:--}"; done)"
    fi
  done
  figure 13 lg_rand_write_4k_qd32 lg $K4 32 "-rw randwrite"
  figure 14 rand_write_4k_fua_qd32 lg $K4 32 "-rw randwrite -fua"
  figure 15 mixed_70_30_4k_qd32 lg $K4 32 "-rw randrw -rwmix 70"
  figure 16 rand_read_4k_qd32_crc32c lg $K4 32 "-rw randread -digests"
  figure 17 rand_write_4k_qd32_crc32c lg $K4 32 "-rw randwrite -digests"
  ceilings
fi

if [[ $MODE == stall || $MODE == all ]]; then
  : >"$OUT/stall.tsv"
  FIGS+=("stall_rand_read_4k_qd32:$K4" "stall_write_4k_qd32:$K4")
  for t in "${TARGETS[@]}"; do
    f=stall_rand_read_4k_qd32
    log "stall check: $f against $t for ${STALL_SECS}s"
    wait_quiet
    T0=$(cpu_ticks "${PID[$t]}")
    run_iperf "$f" "$t" $K4 32 1 "$STALL_SECS" "$RAW/$f.$t.log"
    record "$f" "$t" iscsi-perf 32 $K4 "$IOPS" "$WALL" "$T0" "$RC"
    # per-second samples: "HH:MM:SS - lba N, iops current X (...)"
    read -r n zero min < <(tr '\r' '\n' <"$RAW/$f.$t.log" |
      sed -n 's/.*iops current \([0-9]*\).*/\1/p' |
      awk 'BEGIN {m = -1} {n++; if ($1 == 0) z++; if (m < 0 || $1 < m) m = $1} END {printf "%d %d %d\n", n, z, m}')
    echo -e "$f\t$t\tsamples=$n zero_seconds=$zero min_iops=$min" >>"$OUT/stall.tsv"
    if [[ $RC != 0 ]] || ((n < STALL_SECS / 2 || zero > 0)); then
      STALLS+=("$t: $f rc=$RC samples=$n zero_seconds=$zero")
    fi
    log "stall check $t: $n per-second samples, $zero at 0 IOPS, min $min IOPS"

    f=stall_write_4k_qd32
    log "stall check: $f against $t for ~${STALL_SECS}s"
    run_qbench "$f" "$t" $K4 32 "$STALL_SECS" "$RAW/$f.$t.log"
    record "$f" "$t" "qemu-img bench" 32 $K4 "$IOPS" "$WALL" "$T0" "$RC"
    if [[ $RC != 0 ]] || awk -v w="$WALL" -v s="$STALL_SECS" 'BEGIN {exit !(w > 3 * s)}'; then
      STALLS+=("$t: $f rc=$RC took ${WALL}s for a ~${STALL_SECS}s calibrated run")
    fi
  done
fi

# ---- ATS heartbeat latency under a random-write load (-m ats) ----
# Three runs per target, on the same LU: 4 KiB QD32 random writes alone (fio's nbd engine through
# qemu-nbd, whose iscsi:// driver keeps 32 commands in flight), ATS heartbeats alone, and both at
# once. The heartbeat block (LBA $ATS_LBA) lies below the 1 MiB the write load starts at, as VMFS's
# heartbeat region is apart from the VMs' data: every miscompare would be a false one.
declare -A ATS FIOLAT ATSP
ATS_LBA=8
ATS_FIGS=()
nbd_up() { # target -> NBDSOCK, NBDPID
  NBDSOCK=$RAW/nbd.$1.sock
  rm -f -- "$NBDSOCK"
  "${CPIN[@]}" qemu-nbd -f raw -t -e 2 -k "$NBDSOCK" "${URL[$1]}" >"$RAW/qemu-nbd.$1.log" 2>&1 &
  NBDPID=$!
  for _ in $(seq 1 100); do [[ -S $NBDSOCK ]] && return 0; alive "$NBDPID" || break; sleep 0.1; done
  die "qemu-nbd did not export ${URL[$1]} (see $RAW/qemu-nbd.$1.log)"
}
nbd_down() {
  if alive "$NBDPID"; then kill -TERM "$NBDPID" 2>/dev/null || true; fi
  wait "$NBDPID" 2>/dev/null || true
  NBDPID=""
}
run_fio() { # target secs logfile -> writes the terse line to logfile
  local t=$1 secs=$2
  timeout -k 5 $((secs + 60)) "${CPIN[@]}" fio --name=randwrite --ioengine=nbd --uri="nbd+unix:///?socket=$NBDSOCK" \
    --rw=randwrite --bs=4k --iodepth=32 --time_based --runtime="$secs" --offset=1m \
    --size=$((BYTES[$t] - M1)) --norandommap --randrepeat=0 --output-format=terse --terse-version=3 >"$3" 2>&1
}
parse_fio() { # logfile -> "iops clat_p50_us clat_p99_us" of the write side (terse v3)
  awk -F';' '$1 == 3 {
      for (i = 1; i <= NF; i++) if ($i ~ /^1\.000000%=/ && ++n == 2) { w = i; break }
      if (!w) exit 1
      for (i = w; i < w + 20; i++) { split($i, kv, "="); if (kv[1] == "50.000000%") p50 = kv[2]; if (kv[1] == "99.000000%") p99 = kv[2] }
      print $(w - 10), p50, p99; found = 1; exit
    } END { if (!found) exit 1 }' "$1"
}
run_ats() { # target secs logfile -> sets ATSLINE, ATSRCODE
  ATSRCODE=0
  timeout -k 5 $(($2 + 90)) "${CPIN[@]}" "$ATSBENCH" -i "$INIT" -lba "$ATS_LBA" -interval "$ATS_INTERVAL" \
    -duration "${2}s" "${URL[$1]}" >"$3" 2>&1 || ATSRCODE=$?
  ATSLINE=$(grep '^RESULT ' "$3" | tail -n1) || true
}
ats_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
ats_record() { # fig target
  local fig=$1 t=$2 line=$ATSLINE
  if [[ $ATSRCODE == 3 ]]; then
    ATS[$fig,$t]="n/a (no COMPARE AND WRITE)"
  elif [[ $ATSRCODE != 0 || -z $line ]]; then
    ATS[$fig,$t]="FAILED (rc $ATSRCODE)"
    FAILED=1
  else
    ATS[$fig,$t]="$(ats_field p50_us "$line") / $(ats_field p99_us "$line") / $(ats_field p999_us "$line") / $(ats_field max_us "$line") µs ($(ats_field ops "$line") ops, $(ats_field miscompares "$line") miscompares)"
    if [[ $fig == ats_under_rand_write ]]; then
      ATSP[p99,$t]=$(ats_field p99_us "$line") ATSP[p999,$t]=$(ats_field p999_us "$line") ATSP[mis,$t]=$(ats_field miscompares "$line")
    fi
    (($(ats_field miscompares "$line") == 0)) || { log "$t: $fig: false ATS miscompares"; FAILED=1; }
  fi
  printf '%s\t%s\t%s\t%s\n' "$fig" "$t" "$ATSRCODE" "${line#RESULT }" >>"$OUT/ats.tsv"
  log "$(printf '%-28s %-6s %s' "$fig" "$t" "${ATS[$fig,$t]}")"
}
fio_record() { # fig target logfile wall t0 rc
  local fig=$1 t=$2 v iops="-" p50="-" p99="-"
  if [[ $6 == 0 ]] && v=$(parse_fio "$3"); then read -r iops p50 p99 <<<"$v"; fi
  RC=$6
  if [[ $iops == "-" && $RC == 0 ]]; then RC=1; fi
  record "$fig" "$t" "fio nbd" 32 $K4 "$iops" "$4" "$5" "$RC"
  FIOLAT[$fig,$t]="$p50 / $p99 µs"
  if [[ $RC != 0 ]]; then FAILED=1; log "$fig against $t FAILED (rc $RC, see $3)"; fi
}
if [[ $MODE == ats || $MODE == all ]]; then
  ATSBENCH=$OUT/costar-atsbench
  log "building costar-atsbench"
  (cd "$ROOT" && go build -o "$ATSBENCH" ./cmd/costar-atsbench) || die "go build ./cmd/costar-atsbench failed"
  printf 'figure\ttarget\trc\tresult\n' >"$OUT/ats.tsv"
  prefill
  ATS_FIGS=(ats_idle ats_under_rand_write)
  FIGS+=("rand_write_4k_qd32:$K4" "rand_write_4k_qd32_with_ats:$K4")
  for t in $(fig_order 0); do
    nbd_up "$t"
    f=rand_write_4k_qd32
    wait_quiet
    T0=$(cpu_ticks "${PID[$t]}") a=$(date +%s.%N) rc=0
    run_fio "$t" "$SECS" "$RAW/$f.$t.log" || rc=$?
    b=$(date +%s.%N)
    fio_record "$f" "$t" "$RAW/$f.$t.log" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b - a}')" "$T0" "$rc"

    wait_quiet
    run_ats "$t" "$SECS" "$RAW/ats_idle.$t.log"
    ats_record ats_idle "$t"

    f=rand_write_4k_qd32_with_ats
    wait_quiet
    T0=$(cpu_ticks "${PID[$t]}") a=$(date +%s.%N) rc=0
    run_fio "$t" $((SECS + 2)) "$RAW/$f.$t.log" &
    fpid=$!
    sleep 1
    run_ats "$t" "$SECS" "$RAW/ats_under_rand_write.$t.log"
    wait "$fpid" || rc=$?
    b=$(date +%s.%N)
    ats_record ats_under_rand_write "$t"
    fio_record "$f" "$t" "$RAW/$f.$t.log" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b - a}')" "$T0" "$rc"
    nbd_down
    alive "${PID[$t]}" || die "$t died during the ATS figures"
  done
fi

# ---- report ----
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || a == "" || b == "" || a == 0) print "-"; else printf "%.2f", b / a}'; }
# goal "text" value op threshold: one line, "met" or "NOT met" (or "not measured" without a value)
goal() {
  local verdict
  if [[ -z $2 || $2 == - ]]; then verdict="not measured"
  elif awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN {exit !((op == ">=" && v >= t) || (op == "<=" && v <= t) || (op == "<" && v < t))}'; then verdict="met"
  else verdict="**NOT met**"; fi
  echo "- $1: $2 (goal $3 $4): $verdict"
}
ran() { [[ -n ${RES[$1,$SUBJ]:-} ]]; } # the figure ran in this run
goals() { # issue 14's goals from this run's figures
  local f r s q
  echo
  echo "Goals (issue 14), from this run:"
  echo
  if [[ $COMPARE == 0 && $WITH_TGT == 1 ]]; then
    for f in rand_read_4k_qd32 seq_read_4k_qd32 seq_write_4k_qd32 sess1_rand_read_4k_qd32 lg_rand_write_4k_qd32 rand_write_4k_fua_qd32 mixed_70_30_4k_qd32; do
      ran "$f" && goal "$f stmfd/tgt" "$(ratio_of "${RES[$f,tgt]:--}" "${RES[$f,stmfd]:--}")" ">=" 2.3
    done
    for f in rand_read_4k_qd1 lg_rand_read_4k_qd1 lg_rand_write_4k_qd1; do
      ran "$f" && goal "$f stmfd/tgt (profile $PROFILE)" "$(ratio_of "${RES[$f,tgt]:--}" "${RES[$f,stmfd]:--}")" ">=" 1.25
    done
  fi
  for f in rand_read_4k_qd1 lg_rand_read_4k_qd1; do
    ran "$f" && goal "$f $SUBJ / TCP ping-pong ceiling (p50 / p99 / p99.9 ${PCT[$f,$SUBJ]:--} µs)" "$(ratio_of "${CEIL[pingpong]:--}" "${RES[$f,$SUBJ]:--}")" ">=" 0.67
  done
  r=${CEIL[iperf3]:--}
  ran seq_read_1m_qd8 && goal "seq_read_1m_qd8 $SUBJ / iperf3 -l 1M" "$(ratio_of "$r" "$(awk -v i="${RES[seq_read_1m_qd8,$SUBJ]:--}" 'BEGIN {if (i == "-") print "-"; else print i * 1048576}')")" ">=" 0.9
  ran seq_write_1m_qd8 && goal "seq_write_1m_qd8 $SUBJ / iperf3 -l 1M" "$(ratio_of "$r" "$(awk -v i="${RES[seq_write_1m_qd8,$SUBJ]:--}" 'BEGIN {if (i == "-") print "-"; else print i * 1048576}')")" ">=" 0.7
  for f in rand_read_4k_qd32 sess1_rand_read_4k_qd32; do
    q=${CPM[$f,$SUBJ]:--}
    ran "$f" && goal "$f $SUBJ 4K read IOPS per target core (1e6 / CPU s per M)" \
      "$(awk -v c="$q" 'BEGIN {if (c == "-" || c == 0) print "-"; else printf "%.0f", 1e6 / c}')" ">=" 117000
  done
  if ran sess64_rand_read_4k_qd32; then
    s=$(sed -n 's/^\([0-9.]*\) .*/\1/p' <<<"${RSS[$SUBJ]:-}")
    goal "$SUBJ RSS with 64 sessions x QD32 running (MiB)" "${s:--}" "<=" 64
    for f in sess1 sess4 sess16 sess64; do
      ran "${f}_rand_read_4k_qd32" || continue
      echo "- scaling $f: $(fmt_rate "${RES[${f}_rand_read_4k_qd32,$SUBJ]:--}" $K4), p99 $(cut -d/ -f2 <<<"${PCT[${f}_rand_read_4k_qd32,$SUBJ]:-- / - / -}" | tr -d ' ') µs"
    done
  fi
  ran rand_read_4k_qd32_crc32c && goal "rand_read_4k_qd32 $SUBJ with CRC32C digests / without" "$(ratio_of "${RES[sess1_rand_read_4k_qd32,$SUBJ]:--}" "${RES[rand_read_4k_qd32_crc32c,$SUBJ]:--}")" ">=" 0.9
  ran rand_write_4k_qd32_crc32c && goal "rand_write_4k_qd32 $SUBJ with CRC32C digests / without" "$(ratio_of "${RES[lg_rand_write_4k_qd32,$SUBJ]:--}" "${RES[rand_write_4k_qd32_crc32c,$SUBJ]:--}")" ">=" 0.9
  if [[ $MODE == ats || $MODE == all ]]; then
    goal "ATS p99 under 4K QD32 random writes, $SUBJ (µs)" "${ATSP[p99,$SUBJ]:--}" "<" 1000
    goal "ATS p99.9 under 4K QD32 random writes, $SUBJ (µs)" "${ATSP[p999,$SUBJ]:--}" "<" 10000
    goal "ATS false miscompares, $SUBJ" "${ATSP[mis,$SUBJ]:--}" "<=" 0
  fi
}
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
{
  if [[ $METRICS == 1 ]]; then
    echo "# stmfd metrics off vs on benchmark"
  elif [[ $COMPARE == 1 ]]; then echo "# stmfd new vs old benchmark"; else echo "# stmfd vs tgt benchmark"; fi
  echo
  echo "- date: $(date -u +%FT%TZ)"
  echo "- host: ${cpu_model:-unknown CPU}, $NCPU cores, $(uname -r)"
  echo "- pinning: profile $PROFILE, targets ${TCPUS:-unpinned}, clients ${CCPUS:-unpinned}"
  if [[ $METRICS == 1 ]]; then
    echo "- ${SECS}s per figure and target, alternating order; LU ${SIZE} (both: --demo), prefill=$PREFILL"
    echo "- stmfd $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); off: no --metrics-listen; on: --metrics-listen 127.0.0.1:$MPORT, $(cat "$RAW/scrapes" 2>/dev/null || echo 0) scrapes of /metrics (every ${SCRAPE_SECS}s)"
  elif [[ $COMPARE == 1 ]]; then
    echo "- ${SECS}s per figure and target, alternating order; LU ${SIZE} (both: --demo), prefill=$PREFILL"
    echo "- old: stmfd $BASE_DESC ($BASE); new: stmfd $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')${STMFD_BIN:+ ($STMFD_BIN)}; $(dpkg-query -W -f '${Package} ${Version}' libiscsi-bin 2>/dev/null)"
  else
    echo "- ${SECS}s per figure and target, alternating order; LU ${SIZE} (tgt: rdwr file; stmfd: --demo), prefill=$PREFILL"
    echo "- stmfd $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); $(dpkg-query -W -f '${Package} ${Version}' tgt 2>/dev/null || echo 'tgt ?'); $(dpkg-query -W -f '${Package} ${Version}' libiscsi-bin 2>/dev/null)"
  fi
  echo
  echo "- load while measuring: $(cut -d' ' -f1-3 /proc/loadavg) (load average at the end); CPU steal over the run: $(steal_pct "$STEAL0" "$(steal_now)") % of vCPU time"
  echo
  echo "CPU s/M = target CPU seconds per million commands (lower is better); p50 / p99 / p99.9 in µs (costar-loadgen figures)."
  echo
  echo "| figure | $REF | $SUBJ | ratio ($SUBJ/$REF) | $REF CPU % | $SUBJ CPU % | $REF CPU s/M | $SUBJ CPU s/M | $REF p50 / p99 / p99.9 | $SUBJ p50 / p99 / p99.9 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for fb in "${FIGS[@]}"; do
    fig=${fb%%:*} bytes=${fb##*:}
    a=${RES[$fig,$REF]:--} b=${RES[$fig,$SUBJ]:--}
    ratio=$(ratio_of "$a" "$b")
    echo "| $fig | $(fmt_rate "$a" "$bytes") | $(fmt_rate "$b" "$bytes") | $ratio | ${CPU[$fig,$REF]:--} | ${CPU[$fig,$SUBJ]:--} | ${CPM[$fig,$REF]:--} | ${CPM[$fig,$SUBJ]:--} | ${PCT[$fig,$REF]:--} | ${PCT[$fig,$SUBJ]:--} |"
  done
  if [[ -n ${CEIL[pingpong]:-}${CEIL[iperf3]:-}${RSS[$SUBJ]:-} ]]; then
    echo
    [[ -z ${CEIL[pingpong]:-} ]] || echo "- ceiling: TCP ping-pong 48 B -> 4144 B, one connection, QD1: ${CEIL[pingpong]} round trips/s, the best of ${CEIL[pingpong_all]} (p50 / p99 / p99.9 ${CEIL[pingpong_pct]} µs)"
    [[ -z ${CEIL[iperf3]:-} ]] || echo "- ceiling: iperf3 -l 1M, one stream: $(gbs "${CEIL[iperf3]}"), the best of ${CEIL[iperf3_all]}"
    [[ -z ${RSS[$SUBJ]:-} ]] || echo "- RSS / peak RSS (VmRSS / VmHWM) halfway through the 64-session figure: $REF ${RSS[$REF]:--}, $SUBJ ${RSS[$SUBJ]:--}"
  fi
  goals
  if [[ $MODE == stall || $MODE == all ]]; then
    echo
    echo "Stall check (${STALL_SECS}s each):"
    echo
    sed 's/^/    /' "$OUT/stall.tsv"
    if ((${#STALLS[@]} > 0)); then printf -- '- STALL: %s\n' "${STALLS[@]}"; else echo "- no stall"; fi
  fi
  if [[ $MODE == ats || $MODE == all ]]; then
    echo
    echo "ATS heartbeat (costar-atsbench: 1-block COMPARE AND WRITE every ${ATS_INTERVAL}, own session, LBA $ATS_LBA)"
    echo "next to 4 KiB QD32 random writes (fio nbd engine via qemu-nbd, LBA >= 1 MiB) on the same LU, ${SECS}s each:"
    echo
    echo "| figure | $REF | $SUBJ |"
    echo "|---|---:|---:|"
    for f in rand_write_4k_qd32 rand_write_4k_qd32_with_ats; do
      echo "| $f (IOPS) | $(fmt_rate "${RES[$f,$REF]:--}" $K4) | $(fmt_rate "${RES[$f,$SUBJ]:--}" $K4) |"
      echo "| $f (write clat p50 / p99) | ${FIOLAT[$f,$REF]:--} | ${FIOLAT[$f,$SUBJ]:--} |"
    done
    for f in "${ATS_FIGS[@]}"; do
      echo "| $f (ATS p50 / p99 / p99.9 / max) | ${ATS[$f,$REF]:--} | ${ATS[$f,$SUBJ]:--} |"
    done
  fi
} >"$OUT/bench.md"
cat "$OUT/bench.md"

if ((${#STALLS[@]} > 0)); then exit 1; fi
if ((FAILED)); then exit 1; fi
exit 0
