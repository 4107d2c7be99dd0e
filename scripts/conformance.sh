#!/usr/bin/env bash
# conformance.sh - run libiscsi's conformance suite (iscsi-test-cu) against stmfd family by
# family, and ratchet the results against scripts/conformance-expected.tsv.
#
# Usage: scripts/conformance.sh [options]
#   -o, --out DIR          output directory (env CONF_OUT, default out/conformance)
#   -u, --url URL          test an already running target instead of starting stmfd (env CONF_URL),
#                          e.g. iscsi://127.0.0.1:3260/iqn.2026-11.org.costar:demo/0 (its data is destroyed)
#   -f, --families LIST    space separated families (env CONF_FAMILIES, default: the list below);
#                          "ALL" = every family iscsi-test-cu lists
#   -e, --expected FILE    expected results (env CONF_EXPECTED, default scripts/conformance-expected.tsv)
#       --update           rewrite the expected file from this run (only the families that ran
#                          normally; other families' rows are kept)
#   -h, --help
#
# Environment (optional):
#   CONF_TIMEOUT=60        seconds per family; a family still running then is a HANG
#   CONF_MAX_ABNORMAL=5    after this many hung/crashed families the rest are NOTRUN
#   CONF_INIT1, CONF_INIT2 initiator names (-i / -I)
#   CONF_DATALOSS=1        pass --dataloss (write families need it)
#   CONF_RACE=0            1 = build stmfd with -race (a reported race fails the run)
#   CONF_EXTRA_ARGS=""     more iscsi-test-cu arguments (e.g. -V for SCSI traces)
#   STMFD_BIN              use this stmfd binary instead of building ./cmd/stmfd
#   CONF_TARGET_PID        with --url: PID of the target, so a crash is detected
#   CONF_LU=thick          thick: the demo LU (LUN 0); thin: a thin LU (-p thin=true) created with
#                          stmfadm and tested at LUN 1 (UNMAP, WRITE SAME UNMAP, GET LBA STATUS);
#                          wp: a write-protected thin LU (-p wp=true) at LUN 1 (the ReadOnly family)
#   CONF_MULTIPATH=0       1 = a second path to the same LU for ALL.MultipathIO (and any test that
#                          uses one): our stmfd gets a second --portal; with --url set CONF_MPATH_URL
#   CONF_MPATH_URL         with --url: the second path's URL
#
# Without --url the script builds stmfd, starts it with --demo and a temp state dir on a random
# free loopback port, and restarts it (same state dir) after a family that hung or killed it.
# Only processes this script started are signalled, by PID.
#
# Outputs in OUT: results.tsv (family, test, PASS|FAIL|SKIP|INCOMPLETE|NOTRUN, note),
# families.tsv, summary.txt, <family>/text.log, stmfd.log, list.txt.
# A test is SKIP when CUnit says "passed" after libiscsi printed "[SKIPPED]".
# Ratchet (exit 1): a test expected PASS is not PASS (or expected SKIP became FAIL), a family
# hangs or the target dies/becomes unreachable, or the target reports a data race or panic.
# Tests of a family that has rows in the expected file but no row for that test count as
# expected PASS; families without any rows are reported but not ratcheted.
# Tests that now do better than expected are listed ("ratchet: update expected file").
# Last stdout line:  conformance: P passed, F failed, S skipped   (failed = FAIL+INCOMPLETE+NOTRUN)
#
# Examples:
#   scripts/conformance.sh                                  # default families, fresh stmfd
#   CONF_FAMILIES="Inquiry Read10" scripts/conformance.sh   # a quick subset
#   scripts/conformance.sh -f ALL -o out/conf-all           # everything (make conformance-all)
#   scripts/conformance.sh --update                         # after fixing tests: ratchet forward
#   scripts/conformance.sh -u iscsi://127.0.0.1:3260/iqn.2026-11.org.costar:demo/0
set -euo pipefail

DEFAULT_FAMILIES="Inquiry Mandatory ModeSense6 NoMedia Prefetch10 Prefetch16 Read6 Read10 Read12 Read16
ReadCapacity10 ReadCapacity16 ReportSupportedOpcodes StartStopUnit TestUnitReady Verify10 Verify12
Verify16 Write10 Write12 Write16 WriteVerify10 WriteVerify12 WriteVerify16 iSCSIcmdsn iSCSIdatasn
iSCSIResiduals"
DEMO_IQN=iqn.2026-11.org.costar:demo
PROBE_INIT=iqn.2026-11.org.costar:conformance-probe

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${CONF_OUT:-$ROOT/out/conformance}
URL=${CONF_URL:-}
MPATH=${CONF_MULTIPATH:-0}
LUKIND=${CONF_LU:-thick}
case $LUKIND in thick) TLUN=0 ;; thin | wp) TLUN=1 ;; *) echo "conformance: CONF_LU must be thick, thin or wp" >&2; exit 2 ;; esac
URL2=${CONF_MPATH_URL:-}
FAMILY_LIST=${CONF_FAMILIES:-$DEFAULT_FAMILIES}
EXPECTED=${CONF_EXPECTED:-$ROOT/scripts/conformance-expected.tsv}
UPDATE=0
TMO=${CONF_TIMEOUT:-60}
MAX_ABNORMAL=${CONF_MAX_ABNORMAL:-5}
INIT1=${CONF_INIT1:-iqn.2026-11.org.costar:conformance-init1}
INIT2=${CONF_INIT2:-iqn.2026-11.org.costar:conformance-init2}
DATALOSS=${CONF_DATALOSS:-1}
RACE=${CONF_RACE:-0}
read -r -a EXTRA <<<"${CONF_EXTRA_ARGS:-}"

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; }
die() { echo "conformance: ERROR: $*" >&2; exit 2; }
log() { echo "conformance: $*" >&2; }

while (($# > 0)); do
  case $1 in
    -o | --out) OUT=${2:?}; shift 2 ;;
    -u | --url) URL=${2:?}; shift 2 ;;
    -f | --families) FAMILY_LIST=${2:?}; shift 2 ;;
    -e | --expected) EXPECTED=${2:?}; shift 2 ;;
    --update) UPDATE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "conformance: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v iscsi-test-cu >/dev/null 2>&1 || die "iscsi-test-cu not found (scripts/install-test-deps.sh installs libiscsi-bin)"
command -v iscsi-inq >/dev/null 2>&1 || die "iscsi-inq not found (libiscsi-bin)"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[[ $EXPECTED == /* ]] || EXPECTED=$PWD/$EXPECTED
LIST=$OUT/list.txt
timeout 30 iscsi-test-cu --list >"$LIST" 2>&1 || die "iscsi-test-cu --list failed: $(head -3 "$LIST")"

# ---- families ----
read -r -a FAMILIES <<<"$(echo "$FAMILY_LIST" | tr '\n' ' ')"
if [[ ${FAMILIES[*]} == ALL ]]; then
  mapfile -t FAMILIES < <(awk -F. '$1 == "ALL" && NF == 2 {print $2}' "$LIST")
fi
for i in "${!FAMILIES[@]}"; do
  FAMILIES[i]=${FAMILIES[i]#ALL.}
  grep -qx "ALL\.${FAMILIES[i]}" "$LIST" || die "unknown family ${FAMILIES[i]} (see iscsi-test-cu --list)"
done
((${#FAMILIES[@]} > 0)) || die "no families to run"

# ---- expected file: family \t test \t PASS|FAIL|SKIP \t reason ----
if [[ -f $EXPECTED ]]; then
  bad=$(awk -F'\t' '/^#/ || NF == 0 || $1 == "family" {next}
    NF < 3 || ($3 != "PASS" && $3 != "FAIL" && $3 != "SKIP") {print NR": malformed: "$0; next}
    $3 != "PASS" && $4 == "" {print NR": "$1" "$2" "$3" needs a reason"}' "$EXPECTED")
  [[ -z $bad ]] || die "bad rows in $EXPECTED:"$'\n'"$bad"
else
  log "no expected file $EXPECTED: nothing is ratcheted"
  [[ $UPDATE == 1 ]] || log "(run with --update to create it)"
fi

# ---- target handling ----
OWN=0
TPID=${CONF_TARGET_PID:-}
STATE=""
STMFD=""
TLOG=$OUT/stmfd.log

alive() { # pid -> 0 when running (a zombie counts as dead)
  local s
  [[ -n $1 ]] || return 1
  s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $s != Z* ]]
}
port_free() {
  if command -v ss >/dev/null 2>&1; then
    if ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then return 1; fi
  elif (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    return 1
  fi
  return 0
}
free_port() {
  local p _
  for _ in $(seq 1 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_free "$p" && { echo "$p"; return 0; }
  done
  return 1
}
probe() { # -> 0 when an initiator can log in and INQUIRY works
  local _
  for _ in 1 2 3; do
    timeout 10 iscsi-inq -i "$PROBE_INIT" "$URL" >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}
start_target() {
  local attempt port i
  for attempt in 1 2 3; do
    port=$(free_port) || die "no free loopback port"
    URL=iscsi://127.0.0.1:$port/$DEMO_IQN/0
    portals=(--portal "127.0.0.1:$port")
    URLT=iscsi://127.0.0.1:$port/$DEMO_IQN/$TLUN
    if [[ $MPATH == 1 ]]; then
      port2=$(free_port) || die "no free loopback port"
      [[ $port2 != "$port" ]] || port2=$((port + 1))
      URL2=iscsi://127.0.0.1:$port2/$DEMO_IQN/$TLUN
      portals+=(--portal "127.0.0.1:$port2")
    fi
    echo "=== $(date -u +%FT%TZ) starting stmfd ${portals[*]} (attempt $attempt)" >>"$TLOG"
    "$STMFD" --state-dir "$STATE" "${portals[@]}" --demo --log-level info </dev/null >>"$TLOG" 2>&1 &
    TPID=$!
    for i in $(seq 1 150); do # ~30 s
      alive "$TPID" || break
      if ((i % 5 == 0)) && timeout 5 iscsi-inq -i "$PROBE_INIT" "$URL" >/dev/null 2>&1; then
        # The demo LU proves the daemon is up; the LU under test may be another.
        if [[ $LUKIND != thick ]] && ! make_test_lu; then
          log "could not create the $LUKIND LU"
          return 1
        fi
        URL=$URLT
        log "stmfd pid $TPID ready at $URL${URL2:+ and $URL2}"
        return 0
      fi
      sleep 0.2
    done
    log "stmfd did not become ready (attempt $attempt); log tail:"
    tail -n 20 "$TLOG" >&2 || true
    stop_target || true
  done
  return 1
}
# make_test_lu creates (once per state dir) the 1 GiB thin or write-protected LU, as LUN 1.
make_test_lu() {
  local sock=$STATE/stmfd.sock guid props=(-p thin=true)
  [[ $LUKIND == wp ]] && props+=(-p wp=true) # thin too: ReadOnly also checks UNMAP
  if [[ -f $STATE/$LUKIND.img ]]; then return 0; fi
  guid=$("$STMFADM" --socket "$sock" create-lu "${props[@]}" -p "alias=conformance-$LUKIND" -s 1G "$STATE/$LUKIND.img" |
    sed -n 's/^Logical unit created: //p') || return 1
  [[ -n $guid ]] || return 1
  "$STMFADM" --socket "$sock" add-view -n 1 "$guid" >>"$TLOG" 2>&1
}
STOP_RC=""
stop_target() { # SIGTERM, SIGKILL after 15 s; sets STOP_RC to the exit status (never in a subshell)
  local pid=$TPID i rc=0
  STOP_RC=""
  [[ $OWN == 1 && -n $pid ]] || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "stmfd $pid ignored SIGTERM for 15 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  TPID=""
  STOP_RC=$rc
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ $OWN == 1 && -n $TPID ]]; then stop_target || true; fi
  if [[ -n $STATE && -d $STATE ]]; then rm -rf -- "$STATE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $URL ]]; then
  OWN=1
  if [[ -n ${STMFD_BIN:-} ]]; then
    STMFD=$STMFD_BIN
  else
    STMFD=$OUT/stmfd
    bflags=(); [[ $RACE == 1 ]] && bflags=(-race)
    log "building stmfd ${bflags[*]}"
    (cd "$ROOT" && go build "${bflags[@]}" -o "$STMFD" ./cmd/stmfd) || die "go build ./cmd/stmfd failed"
  fi
  STMFADM=${STMFADM_BIN:-$OUT/stmfadm}
  if [[ -z ${STMFADM_BIN:-} && $LUKIND != thick ]]; then
    (cd "$ROOT" && go build -o "$STMFADM" ./cmd/stmfadm) || die "go build ./cmd/stmfadm failed"
  fi
  [[ -x $STMFD ]] || die "$STMFD is not executable"
  STATE=$(mktemp -d "${TMPDIR:-/tmp}/costar-conformance.XXXXXX")
  : >"$TLOG"
  start_target || die "could not start stmfd (see $TLOG)"
else
  probe || log "WARNING: $URL is not reachable before the run"
fi

ARGS=(-i "$INIT1" -I "$INIT2")
[[ $DATALOSS == 1 ]] && ARGS+=(--dataloss)
ARGS+=("${EXTRA[@]}")

{
  echo "# conformance.sh $(date -u +%FT%TZ)"
  echo "# target: $([[ $OWN == 1 ]] && echo "stmfd (own, $STMFD, race=$RACE, $LUKIND LU $URL)" || echo "external $URL")${URL2:+, second path $URL2}"
  echo "# iscsi-test-cu ${ARGS[*]} (timeout ${TMO}s per family); $(dpkg-query -W -f '${Package} ${Version}' libiscsi-bin 2>/dev/null || echo 'libiscsi-bin ?')"
} >"$OUT/meta.txt"

# ---- parse one family's verbose CUnit log -> family \t test \t result \t note ----
parse_log() { # family logfile
  awk -v fam="$1" '
    function clean(s) { gsub(/[\t\r]/, " ", s); gsub(/^ +| +$/, "", s); return substr(s, 1, 240) }
    function note_from(s, tag) { s = substr(s, index(s, tag)); return s }
    function flush(   r, n) {
      if (!open) return
      r = verdict
      if (r == "") r = "INCOMPLETE"
      else if (r == "PASS" && skipped) r = "SKIP"
      n = ""
      if (r == "SKIP") n = skipmsg
      else if (r == "FAIL" || r == "INCOMPLETE") n = (failmsg != "" ? failmsg : assertmsg)
      printf "%s\t%s\t%s\t%s\n", fam, name, r, clean(n)
      open = 0
    }
    function look(s) {
      if (index(s, "[SKIPPED]")) { skipped = 1; if (skipmsg == "") skipmsg = note_from(s, "[SKIPPED]") }
      if (index(s, "[FAILED]") && failmsg == "") failmsg = note_from(s, "[FAILED]")
    }
    /^Suite: / { flush(); next }
    /^  Test: / {
      flush()
      open = 1; verdict = ""; skipped = 0; skipmsg = ""; failmsg = ""; assertmsg = ""
      line = substr($0, 9); p = index(line, " ...")
      if (p) { name = substr(line, 1, p - 1); rest = substr(line, p + 4) } else { name = line; rest = "" }
      if (rest ~ /^passed/) verdict = "PASS"
      else if (rest ~ /^FAILED/) verdict = "FAIL"
      else look(rest)
      next
    }
    /^Run Summary:/ { flush(); next }
    !open { next }
    verdict == "" && /^passed/ { verdict = "PASS"; next }
    verdict == "" && /^FAILED/ { verdict = "FAIL"; next }
    verdict == "FAIL" && /^    [0-9]+\. / { if (assertmsg == "") assertmsg = $0; next }
    verdict == "" { look($0) }
    END { flush() }
  ' "$2"
}

# ---- run ----
printf 'family\ttest\tresult\tnote\n' >"$OUT/results.tsv"
printf 'family\ttests\tpass\tfail\tskip\tnotrun\tsecs\tstatus\n' >"$OUT/families.tsv"
abnormal=0
for fam in "${FAMILIES[@]}"; do
  d=$OUT/$fam
  rm -rf -- "$d"
  mkdir -p "$d"
  status=ok
  if ((abnormal >= MAX_ABNORMAL)); then
    status="SKIPPED(too many abnormal families)"
    : >"$d/text.log"
    rc=-1
    secs=0
  else
    t0=$(date +%s.%N)
    rc=0
    urls=("$URL")
    [[ -n $URL2 ]] && urls+=("$URL2")
    timeout -k 5 "$TMO" stdbuf -oL -eL iscsi-test-cu "${ARGS[@]}" -t "ALL.$fam" "${urls[@]}" >"$d/text.log" 2>&1 &
    cu=$!
    # libiscsi keeps reconnecting to a dead target until the timeout: cut that short
    died_during=0
    while alive "$cu"; do
      if [[ -n $TPID ]] && ! alive "$TPID"; then
        died_during=1
        sleep 3
        kill -TERM "$cu" 2>/dev/null || true
        break
      fi
      sleep 0.5
    done
    wait "$cu" || rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    case $rc in
      0 | 1) grep -q '^Run Summary:' "$d/text.log" || status="NO-SUMMARY(rc=$rc)" ;;
      124 | 137 | 143) if [[ $died_during == 1 ]]; then status="stopped"; else status="HANG(>${TMO}s)"; fi ;;
      *) if grep -qi 'failed to connect\|login failed' "$d/text.log"; then status="CONNECT-FAILED(rc=$rc)"
         elif ((rc > 128)); then status="INITIATOR-CRASH(signal $((rc - 128)))"
         else status="ERROR(rc=$rc)"; fi ;;
    esac
    restart=0
    if [[ -n $TPID ]] && ! alive "$TPID"; then
      status="$status;TARGET-DIED"
      restart=1
      if [[ $OWN == 1 ]]; then stop_target; status="$status(exit $STOP_RC)"; fi
    elif ! probe; then
      status="$status;TARGET-UNREACHABLE"
      restart=1
    elif [[ $status == HANG* ]]; then
      restart=1
    fi
    if [[ $status != ok ]]; then
      abnormal=$((abnormal + 1))
      log "family $fam: $status"
    fi
    if [[ $restart == 1 && $OWN == 1 ]]; then
      if [[ -n $TPID ]]; then stop_target; fi
      echo "=== restart after family $fam: $status" >>"$TLOG"
      start_target || die "could not restart stmfd after family $fam (see $TLOG)"
    fi
  fi
  echo "$rc" >"$d/rc"
  parse_log "$fam" "$d/text.log" >"$d/parsed.tsv"
  # plus the tests the suite lists for the family that never started
  awk -F'\t' -v fam="$fam" -v st="$status" -v parsed="$d/parsed.tsv" '
    BEGIN { while ((getline line < parsed) > 0) { print line; split(line, f, "\t"); seen[f[2]] = 1 } }
    { n = split($0, a, ".") }
    n == 3 && a[1] == "ALL" && a[2] == fam && !(a[3] in seen) { printf "%s\t%s\tNOTRUN\t%s\n", fam, a[3], st }
  ' "$LIST" >"$d/results.tsv"
  cat "$d/results.tsv" >>"$OUT/results.tsv"
  read -r n p f s nr < <(awk -F'\t' '{c[$3]++; n++}
    END {printf "%d %d %d %d %d\n", n, c["PASS"], c["FAIL"] + c["INCOMPLETE"] + c["NOTRUN"], c["SKIP"], c["NOTRUN"]}' "$d/results.tsv")
  printf '%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n' "$fam" "$n" "$p" "$f" "$s" "$nr" "$secs" "$status" >>"$OUT/families.tsv"
  printf 'conformance: %-24s pass=%-3d fail=%-3d skip=%-3d %5ss %s\n' "$fam" "$p" "$f" "$s" "$secs" "$status" >&2
done

# ---- stop our target; a race report or panic in its log is a failure ----
target_problem=""
if [[ $OWN == 1 ]]; then
  stop_target
  exit_rc=$STOP_RC
  echo "# stmfd exit status after SIGTERM: $exit_rc" >>"$OUT/meta.txt"
  [[ $exit_rc == 0 ]] || log "WARNING: stmfd exited with status $exit_rc after SIGTERM"
  if grep -q 'WARNING: DATA RACE' "$TLOG"; then target_problem="data race reported (see $TLOG)"; fi
  if grep -q '^panic: \|^fatal error: ' "$TLOG"; then target_problem="${target_problem:+$target_problem; }panic (see $TLOG)"; fi
fi

# ---- compare with the expected file ----
cmp_out=$OUT/compare.txt
awk -F'\t' -v expfile="$([[ -f $EXPECTED ]] && echo "$EXPECTED" || echo /dev/null)" '
  function rank(r) { return r == "PASS" ? 2 : (r == "SKIP" ? 1 : 0) }
  BEGIN {
    while ((getline line < expfile) > 0) {
      if (line ~ /^#/ || line == "") continue
      split(line, a, "\t")
      if (a[1] == "family") continue
      want[a[1] SUBSEP a[2]] = a[3]; why[a[1] SUBSEP a[2]] = a[4]; hasfam[a[1]] = 1
    }
  }
  NR == 1 { next }
  {
    k = $1 SUBSEP $2; ran[k] = 1; ranfam[$1] = 1
    if (!($1 in hasfam)) { unr[$1]++; next }
    e = (k in want) ? want[k] : "PASS"
    if (rank($3) < rank(e)) printf "REGRESSION\t%s.%s\texpected %s, got %s\t%s\n", $1, $2, e, $3, $4
    else if (rank($3) > rank(e)) printf "IMPROVED\t%s.%s\texpected %s, got %s\t(was: %s)\n", $1, $2, e, $3, why[k]
    else if ($3 != e) printf "CHANGED\t%s.%s\texpected %s, got %s\t%s\n", $1, $2, e, $3, $4
  }
  END {
    for (k in want) { split(k, b, SUBSEP); if ((b[1] in ranfam) && !(k in ran)) printf "STALE\t%s.%s\tin expected file, not run\t\n", b[1], b[2] }
    for (f in unr) printf "UNRATCHETED\t%s\t%d tests, family not in expected file\t\n", f, unr[f]
  }' "$OUT/results.tsv" | sort >"$cmp_out"

# ---- optional: rewrite the expected file ----
if [[ $UPDATE == 1 ]]; then
  tmp=$(mktemp "$EXPECTED.XXXXXX")
  good_fams=$(awk -F'\t' 'NR > 1 && $8 == "ok" {print $1}' "$OUT/families.tsv" | tr '\n' ' ')
  {
    echo "# Expected iscsi-test-cu results for stmfd (scripts/conformance.sh ratchets against this file)."
    echo "# family<TAB>test<TAB>PASS|FAIL|SKIP<TAB>reason (required for FAIL and SKIP)."
    echo "# Regenerate with: scripts/conformance.sh --update  (then review the reasons; TODO marks new ones)"
    printf 'family\ttest\texpected\treason\n'
    awk -F'\t' -v good=" $good_fams" -v expfile="$([[ -f $EXPECTED ]] && echo "$EXPECTED" || echo /dev/null)" '
      BEGIN {
        while ((getline line < expfile) > 0) {
          if (line ~ /^#/ || line == "") continue
          split(line, a, "\t")
          if (a[1] == "family") continue
          k = a[1] SUBSEP a[2]; want[k] = a[3]; why[k] = a[4]
          if (!(a[1] in seen)) { seen[a[1]] = 1; order[++nf] = a[1] }
          rows[a[1]] = rows[a[1]] line "\n"
        }
      }
      NR == 1 { next }
      index(good, " " $1 " ") {
        r = $3; if (r != "PASS" && r != "SKIP") r = "FAIL"
        k = $1 SUBSEP $2
        reason = ""
        if (r != "PASS") reason = (want[k] == r && why[k] != "") ? why[k] : "TODO: " ($4 != "" ? $4 : "no message")
        if (!($1 in newrows)) { if (!($1 in seen)) { seen[$1] = 1; order[++nf] = $1 } }
        newrows[$1] = newrows[$1] $1 "\t" $2 "\t" r "\t" reason "\n"
        next
      }
      END { for (i = 1; i <= nf; i++) { f = order[i]; printf "%s", ((f in newrows) ? newrows[f] : rows[f]) } }
    ' "$OUT/results.tsv"
  } >"$tmp"
  mv -- "$tmp" "$EXPECTED"
  log "updated $EXPECTED (families: ${good_fams:-none})"
fi

# ---- summary ----
regress=$(grep -c '^REGRESSION' "$cmp_out" || true)
improved=$(grep -c '^IMPROVED' "$cmp_out" || true)
bad_fams=$(awk -F'\t' 'NR > 1 && $8 != "ok" {printf "%s[%s] ", $1, $8}' "$OUT/families.tsv")
{
  cat "$OUT/meta.txt"
  printf '%-24s %5s %5s %5s %5s %6s %7s  %s\n' family tests pass fail skip notrun secs status
  awk -F'\t' 'NR > 1 {printf "%-24s %5d %5d %5d %5d %6d %7s  %s\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$OUT/families.tsv"
  echo
  echo "not passing:"
  awk -F'\t' 'NR > 1 && $3 != "PASS" {printf "  %-6s %s.%s  %s\n", $3, $1, $2, $4}' "$OUT/results.tsv"
  echo
  if [[ -s $cmp_out ]]; then
    echo "against $(basename "$EXPECTED"):"
    awk -F'\t' '{printf "  %-11s %s  %s  %s\n", $1, $2, $3, $4}' "$cmp_out"
  fi
  if ((improved > 0)); then
    echo "ratchet: $improved test(s) now do better than expected: update expected file (scripts/conformance.sh --update)"
  fi
  echo "abnormal families: ${bad_fams:-none}"
  [[ -z $target_problem ]] || echo "target problem: $target_problem"
  verdict=OK
  if [[ -n $bad_fams || -n $target_problem ]] || ((regress > 0 && UPDATE == 0)); then verdict=FAILED; fi
  echo "ratchet: $verdict ($regress regression(s), $improved improvement(s))"
  awk -F'\t' 'NR > 1 {c[$3]++} END {printf "conformance: %d passed, %d failed, %d skipped\n", c["PASS"], c["FAIL"] + c["INCOMPLETE"] + c["NOTRUN"], c["SKIP"]}' "$OUT/results.tsv"
} | tee "$OUT/summary.txt"

# With --update a regression has just been written down (and is printed above), not fatal.
if [[ -n $bad_fams || -n $target_problem ]] || ((regress > 0 && UPDATE == 0)); then
  exit 1
fi
exit 0
