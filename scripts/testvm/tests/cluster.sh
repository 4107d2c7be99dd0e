#!/bin/bash
# cluster.sh - runs INSIDE the test VM (scripts/testvm/run-vm.sh), as root, cwd /mnt/host.
#
# Cluster mode end to end with the Linux kernel initiator: a three-member etcd (costar-etcd, one
# process, 127.0.0.1), two stmfd nodes a and b (own state dirs, sockets, node ids 1/2), two portals
# each: a serves iqn...:node-a on its default portal group (two --portal: 127.0.0.1:3260 and
# 127.0.0.5:3260, tag 1), b serves iqn...:node-b through its own portal group (itadm create-tpg with
# 127.0.0.2:3260 and 127.0.0.6:3260, tag 2); list-cluster shows both groups with both portals; one
# shared backing file LU created through a and seen on b. Node a talks to etcd
# member 0 only and node b to member 1 only, so stopping one member (costar-etcd SIGUSR1/SIGUSR2)
# cuts exactly one node from etcd while the majority (two members) stays up.
#   dm-multipath with prio alua / hardware_handler "1 alua" / group_by_prio: four paths, the
#   owner's two in the active group and the other's two ghost (standby) in the other group;
#   sg_persist register (all four paths: each is an I_T nexus) + reserve (Write
#   Exclusive - Registrants Only); then, each while fio randwrite crc32c verify runs and a dd
#   probe writes 4 KiB every 0.1 s: (c) stmfadm move-lu to the other node, (a) SIGKILL of the
#   owner (then it is restarted and rejoins as standby), (b) the owner cut from etcd (its member
#   stopped) but not from the initiator. Each time: the other node owns the LU, fio ends with 0
#   verify errors, I/O resumed; the longest pause between completed probe writes after the
#   event is printed as "FAILOVER <case> ...". After each, sg_persist -k/-r match the start.
# Prints PASS/FAIL/SKIP per check and "cluster: N passed, M failed, K skipped"; exit 0 only with
# no FAIL. Needs in /mnt/host: stmfd, stmfadm, itadm, costar-etcd (static). Settings
# (-e VAR=VALUE): STMFD_LOG_LEVEL (default info), FIO_SIZE (per case, default 24M),
# FIO_RATE (default 2m: the write phase must outlast the event), LEASE_TTL (default 5s, stmfd's).
set -uo pipefail

HOST=/mnt/host
# shellcheck disable=SC1091
[ -f "$HOST/test.env" ] && . "$HOST/test.env"
STMFD=$HOST/stmfd
ETCD=$HOST/costar-etcd
IQNA=iqn.2026-11.org.costar:node-a
IQNB=iqn.2026-11.org.costar:node-b
PA=127.0.0.1:3260
PA2=127.0.0.5:3260 # a's second default portal
PB=127.0.0.2:3260
PB2=127.0.0.6:3260 # b's portal group's second portal
PB_DEFAULT=127.0.0.3:3260 # b's default portal group (tag 1 like a's) serves no target
FIO_SIZE=${FIO_SIZE:-24M}
FIO_RATE=${FIO_RATE:-2m}
LEASE_TTL=${LEASE_TTL:-5s}
SHARED=/tmp/shared.img
PROBE_OFF=102400 # 4 KiB blocks: the probe writes at 400 MiB, away from fio's first FIO_SIZE

# shellcheck source=lib/steps.sh
. "$HOST/steps.sh"

declare -A PID PORTAL ENDPOINT NID IQN
PORTAL[a]=$PA PORTAL[b]=$PB_DEFAULT
NID[a]=1 NID[b]=2
IQN[a]=$IQNA IQN[b]=$IQNB
EPID=""
MAPS=()
cleanup() {
  local m n
  rm -f /tmp/probe.run
  for m in "${MAPS[@]}"; do timeout 30 multipath -f "$m" >/dev/null 2>&1; done
  timeout 30 iscsiadm -m node --logoutall=all >/dev/null 2>&1
  for n in a b; do
    if [ -n "${PID[$n]:-}" ] && kill -0 "${PID[$n]}" 2>/dev/null; then
      kill -TERM "${PID[$n]}"
      sleep 2
      kill -KILL "${PID[$n]}" 2>/dev/null
    fi
    cp "/tmp/stmfd-$n.log" "$HOST/stmfd-$n.log" 2>/dev/null
  done
  [ -n "$EPID" ] && kill -TERM "$EPID" 2>/dev/null
  cp /tmp/etcd.log "$HOST/etcd.log" 2>/dev/null
  cp /tmp/probe.log "$HOST/probe.log" 2>/dev/null
}
trap cleanup EXIT

finish() {
  echo
  echo "cluster: $NPASS passed, $NFAIL failed, $NSKIP skipped"
  [ "$NFAIL" = 0 ]
  exit $?
}

# adm NODE TOOL ARGS...: stmfadm/itadm against NODE's socket (a file, so that timeout can run it)
printf '%s\n' '#!/bin/sh' 'n=$1 tool=$2' 'shift 2' \
  'STMFD_SOCKET=/tmp/node-$n/stmfd.sock exec timeout 30 /mnt/host/$tool "$@"' >/tmp/adm
chmod +x /tmp/adm
adm() { /tmp/adm "$@"; }

dump_evidence() {
  section "evidence: iscsiadm -m session -P 3"
  timeout 10 iscsiadm -m session -P 3 2>&1 | indent
  section "evidence: multipath -ll"
  timeout 10 multipath -ll 2>&1 | indent
  section "evidence: kernel log (iscsi/scsi/alua/multipath lines, last 80)"
  dmesg | grep -Ei 'iscsi|connection[0-9]|session[0-9]|scsi|\[sd[a-z]+\]|I/O error|device-mapper|multipath|alua|reservation' | tail -80 | indent
  local n
  for n in a b; do
    section "evidence: stmfd $n log (last 60 lines)"
    tail -60 "/tmp/stmfd-$n.log" 2>/dev/null | indent
  done
}

start_node() { # NAME: start (or restart) a node, wait until it is ready
  local n=$1 before i
  mkdir -p "/tmp/node-$n"
  local portals=(--portal "${PORTAL[$n]}")
  [ "$n" = a ] && portals+=(--portal "$PA2")
  before=$(grep -c 'stmfd ready' "/tmp/stmfd-$n.log" 2>/dev/null)
  "$STMFD" --state-dir "/tmp/node-$n" "${portals[@]}" --cluster-endpoints "${ENDPOINT[$n]}" \
    --node-name "$n" --node-id "${NID[$n]}" --cluster-lease-ttl "$LEASE_TTL" \
    --log-level "${STMFD_LOG_LEVEL:-info}" >>"/tmp/stmfd-$n.log" 2>&1 &
  PID[$n]=$!
  for ((i = 0; i < 300; i++)); do
    kill -0 "${PID[$n]}" 2>/dev/null || return 1
    [ "$(grep -c 'stmfd ready' "/tmp/stmfd-$n.log")" -gt "${before:-0}" ] && return 0
    sleep 0.2
  done
  return 1
}

owner() { # NODE: the LU's owner as NODE sees it ("none" when nobody holds it)
  adm "$1" stmfadm list-lu -v "$GUID" 2>/dev/null | sed -n 's/^ *Owner *: *//p' | head -1
}

wait_owner() { # ASK_NODE WANT SECONDS
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    [ "$(owner "$1")" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

other() { if [ "$1" = a ]; then echo b; else echo a; fi; }

# The probe: one 4 KiB O_DIRECT write to the multipath map every 0.1 s, each logged with its
# start and end time, to measure how long I/O stopped.
probe_loop() {
  local i=0 s
  head -c 4096 /dev/urandom >/tmp/blk4k
  while [ -e /tmp/probe.run ]; do
    s=$(date +%s.%N)
    if dd if=/tmp/blk4k of="$MP" bs=4k seek=$((PROBE_OFF + i % 256)) count=1 oflag=direct conv=notrunc status=none 2>/dev/null; then
      echo "$s $(date +%s.%N)" >>/tmp/probe.log
    else
      echo "$s $(date +%s.%N) ERR" >>/tmp/probe.log
    fi
    i=$((i + 1))
    sleep 0.1
  done
}

# pause EVENT_TS: "LONGEST FIRST ERRS": the longest time between completed probe writes from
# the event on (the time without I/O), the time from the event to the end of the first write
# issued after it, and the probe writes that failed.
pause() {
  awk -v ev="$1" '
    $1 >= ev - 0 && !first { first = $2 - ev }
    $2 >= ev { if ($3 == "ERR") errs++; else { gap = $2 - last; if (gap > longest) longest = gap; last = $2 } next }
    $3 != "ERR" { last = $2 }
    END { printf "%.2f %.2f %d\n", longest, first, errs }' /tmp/probe.log
}

pr_state() { # DEV: registered keys and the reservation, as sg_persist prints them
  { timeout 30 sg_persist -n -k "$1"; timeout 30 sg_persist -n -r "$1"; } 2>&1 | sed 's/PR generation=0x[0-9a-fA-F]*, *//'
}

# failover CASE FROM TO ACTION...: fio + probe while ACTION makes TO the owner.
failover() {
  local cse=$1 from=$2 to=$3 fpid ev rc longest first errs verr sw
  shift 3
  section "($cse) $* — owner $from -> $to, fio randwrite crc32c verify running"
  fio --name="$cse" --filename="$MP" --rw=randwrite --bsrange=4k-64k --size="$FIO_SIZE" --rate="$FIO_RATE" \
    --direct=1 --ioengine=libaio --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 \
    --verify_state_save=0 --output="/tmp/fio-$cse.txt" >/dev/null 2>&1 &
  fpid=$!
  sleep 3
  ev=$(date +%s.%N)
  echo "event at $(date -d "@$ev" +%T.%N | cut -c1-12): $*"
  "$@" 2>&1 | indent
  check "($cse) $to owns the LU" wait_owner "$to" "$to" 60
  sw=$(awk -v a="$ev" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
  timeout -k 5 300 tail --pid="$fpid" -f /dev/null
  wait "$fpid"
  rc=$?
  indent <"/tmp/fio-$cse.txt"
  verr=$(grep -ciE 'verify failed|bad magic|bad header|crc32c.*(fail|wanted)' "/tmp/fio-$cse.txt")
  check "($cse) fio ends without error (exit $rc) and $verr verify errors" test "$rc" = 0 -a "$verr" = 0
  sleep 2 # let the probe write a few more after fio
  read -r longest first errs <<<"$(pause "$ev")"
  echo "FAILOVER ($cse) $*: no I/O for ${longest}s (longest pause between completed writes after the event); first write issued after the event done in ${first}s; $errs probe writes failed; fio verify errors $verr; $to named owner after ${sw}s"
  echo "FAILOVER ($cse) longest=${longest}s first=${first}s probe_errors=$errs verify_errors=$verr owner_after=${sw}s" >>"$HOST/failover-times.txt"
  check "($cse) I/O resumed through $to without a failed write ($errs failed)" \
    awk -v ev="$ev" -v e="$errs" 'BEGIN{ok=0} $1 > ev && $3 != "ERR" {ok=1} END{exit !(ok && e == 0)}' /tmp/probe.log
}

# ---------------------------------------------------------------------------------------------
section "environment"
echo "kernel $(uname -r), $(nproc) CPUs; open-iscsi $(dpkg-query -W -f='${Version}' open-iscsi), multipath-tools $(dpkg-query -W -f='${Version}' multipath-tools), fio $(fio --version)"
for b in "$STMFD" "$HOST/stmfadm" "$HOST/itadm" "$ETCD"; do
  [ -x "$b" ] || { fail "binary $b present"; finish; }
done
rm -f "$HOST/failover-times.txt"

section "etcd: three members in one costar-etcd process"
# Data on tmpfs: etcd's fsyncs on the guest's qcow2 disk under TCG made its round trips take seconds.
"$ETCD" -data-dir /dev/shm/etcd -members 3 >/tmp/etcd.out 2>/tmp/etcd.log &
EPID=$!
for ((i = 0; i < 300; i++)); do
  [ -s /tmp/etcd.out ] && break
  kill -0 "$EPID" 2>/dev/null || break
  sleep 0.2
done
IFS=, read -r -a EPS </tmp/etcd.out
if ! check "costar-etcd up with 3 members (${EPS[*]:-none})" test "${#EPS[@]}" = 3; then
  indent </tmp/etcd.log
  finish
fi
ENDPOINT[a]=${EPS[0]} ENDPOINT[b]=${EPS[1]}
echo "node a -> ${ENDPOINT[a]} (member 0), node b -> ${ENDPOINT[b]} (member 1)"

section "two stmfd nodes, one shared LU, a target on each"
for n in a b; do
  if ! check "stmfd $n started (portal ${PORTAL[$n]}, node id ${NID[$n]}, lease TTL $LEASE_TTL)" start_node $n; then
    dump_evidence
    finish
  fi
done
truncate -s 512M "$SHARED"
out=$(adm a stmfadm create-lu "$SHARED" 2>&1)
echo "$out" | indent
GUID=$(grep -o 'Logical unit created: [0-9A-Fa-f]\{32\}' <<<"$out" | grep -o '[0-9A-Fa-f]\{32\}$')
if ! check "create-lu $SHARED through node a (${GUID:-no GUID})" test -n "$GUID"; then dump_evidence; finish; fi
run "add-view $GUID (all hosts, LUN 0) through node a" 30 /tmp/adm a stmfadm add-view -n 0 "$GUID"
run "itadm create-target $IQNA on node a" 30 /tmp/adm a itadm create-target -n "$IQNA"
seen=0
for ((i = 0; i < 100; i++)); do
  adm b stmfadm list-view -l "$GUID" 2>/dev/null | grep -q 'LUN *: *0' && { seen=1; break; }
  sleep 0.2
done
check "node b sees the LU and its view created on node a" test $seen = 1
run "itadm create-tpg b $PB $PB2 on node b" 30 /tmp/adm b itadm create-tpg b "$PB" "$PB2"
run "itadm create-target $IQNB -t b on node b" 30 /tmp/adm b itadm create-target -n "$IQNB" -t b
for ((i = 0; i < 150; i++)); do
  OWNER=$(owner a)
  [ -n "$OWNER" ] && [ "$OWNER" != none ] && [ "$OWNER" = "$(owner b)" ] && break
  sleep 0.2
done
lc_groups() { # list-cluster on a names each node's group with both portals
  local out
  out=$(adm a stmfadm list-cluster 2>&1)
  grep -Eq "Port Group 1 *: ports [0-9]+; portals $PA,$PA2\$" <<<"$out" &&
    grep -Eq "Port Group 2 *: ports [0-9]+; portals $PB,$PB2\$" <<<"$out"
}
for ((i = 0; i < 50; i++)); do lc_groups && break; sleep 0.2; done
adm a stmfadm list-cluster 2>&1 | indent
check "list-cluster: group 1 with $PA,$PA2 and group 2 with $PB,$PB2" lc_groups
check "the LU has an owner (${OWNER:-none}) and both nodes agree" test -n "$OWNER" -a "$OWNER" != none -a "$OWNER" = "$(owner b)"

section "kernel initiator: a path through each node's two portals (replacement_timeout 5 s)"
# SD[n]/SD2[n]: node n's path through its first/second portal
declare -A SD SD2 P1 P2
P1[a]=$PA P2[a]=$PA2 P1[b]=$PB P2[b]=$PB2
for n in a b; do
  timeout 60 iscsiadm -m discovery -t sendtargets -p "${P1[$n]}" 2>&1 | indent
  for p in "${P1[$n]}" "${P2[$n]}"; do
    timeout 10 iscsiadm -m node -T "${IQN[$n]}" -p "$p" -o update -n node.session.timeo.replacement_timeout -v 5 2>&1 | indent
    run "login to ${IQN[$n]} via $p" 90 iscsiadm -m node -T "${IQN[$n]}" -p "$p" --login
    udevadm settle -t 30
    bp=/dev/disk/by-path/ip-$p-iscsi-${IQN[$n]}-lun-0
    if check "node $n path: $bp" waitfor "$bp" 30; then
      if [ "$p" = "${P1[$n]}" ]; then SD[$n]=$(readlink -f "$bp"); else SD2[$n]=$(readlink -f "$bp"); fi
    fi
  done
done
if [ -z "${SD[a]:-}" ] || [ -z "${SD[b]:-}" ] || [ -z "${SD2[a]:-}" ] || [ -z "${SD2[b]:-}" ]; then dump_evidence; finish; fi
W1=$(/lib/udev/scsi_id -g -u "${SD[a]}") W2=$(/lib/udev/scsi_id -g -u "${SD[b]}")
check "the four paths report the same WWID ($W1 / $W2)" bash -c 'w=$1; shift; [ -n "$w" ] || exit 1; for d in "$@"; do [ "$(/lib/udev/scsi_id -g -u "$d")" = "$w" ] || exit 1; done' \
  _ "$W1" "${SD[a]}" "${SD2[a]}" "${SD[b]}" "${SD2[b]}"
for n in a b; do
  echo "sg_rtpg via node $n (${SD[$n]}):"
  timeout 30 sg_rtpg -d "${SD[$n]}" 2>&1 | indent
  cat "/sys/block/${SD[$n]##*/}/device/dh_state" 2>/dev/null | sed "s/^/dh_state: /" | indent
done

section "dm-multipath: prio alua, hardware_handler 1 alua, group_by_prio"
cat >/etc/multipath.conf <<'EOF'
defaults {
    user_friendly_names no
    find_multipaths strict
    polling_interval 1
}
blacklist {
    devnode "^(vd|zd)[a-z0-9]*"
}
devices {
    device {
        vendor "COSTAR"
        product "COMSTAR"
        path_grouping_policy group_by_prio
        prio alua
        hardware_handler "1 alua"
        path_checker tur
        failback immediate
        no_path_retry 60
    }
}
EOF
run "systemctl restart multipathd" 60 systemctl restart multipathd
multipath -a "${SD[a]}" 2>&1 | indent
multipath -r 2>&1 | indent
udevadm settle -t 30
MP=/dev/mapper/$W1
if ! check "multipath map $MP assembled" waitfor "$MP" 30; then dump_evidence; finish; fi
MAPS+=("$W1")
OWNER=$(owner a)
echo "owner now: $OWNER"
ok=0
for ((i = 0; i < 30; i++)); do
  out=$(multipath -ll "$W1" 2>&1)
  grep -q 'prio=50 status=active' <<<"$out" && grep -q 'prio=1 status=enabled' <<<"$out" && { ok=1; break; }
  sleep 1
done
echo "$out" | indent
check "multipath -ll: one active/optimized group (prio 50, active) and one standby group (prio 1, enabled)" test $ok = 1
O=$OWNER S=$(other "$OWNER")
check "the owner's two paths are ready (${SD[$O]##*/} ${SD2[$O]##*/})" \
  bash -c 'grep -q "$1 .*active ready" <<<"$3" && grep -q "$2 .*active ready" <<<"$3"' _ "${SD[$O]##*/}" "${SD2[$O]##*/}" "$out"
check "the standby's two paths are ghosts (${SD[$S]##*/} ${SD2[$S]##*/})" \
  bash -c 'grep -q "$1 .*active ghost" <<<"$3" && grep -q "$2 .*active ghost" <<<"$3"' _ "${SD[$S]##*/}" "${SD2[$S]##*/}" "$out"
check "hardware handler is alua" grep -q "hwhandler='1 alua'" <<<"$out"

section "sg_persist: register all four paths, reserve Write Exclusive - Registrants Only"
for n in a b; do
  run "register key 0xc1a5 via node $n ${P1[$n]}" 30 sg_persist -n --out --register --param-sark=0xc1a5 "${SD[$n]}"
  run "register key 0xc1a5 via node $n ${P2[$n]}" 30 sg_persist -n --out --register --param-sark=0xc1a5 "${SD2[$n]}"
done
run "reserve type 5 (WERO) with key 0xc1a5 via the owner $OWNER" 30 \
  sg_persist -n --out --reserve --param-rk=0xc1a5 --prout-type=5 "${SD[$OWNER]}"
PR0=$(pr_state "${SD[$OWNER]}")
echo "$PR0" | indent
check "4 registrations and a WERO reservation held" bash -c 'grep -q "4 registered reservation keys" <<<"$1" && grep -qi "Write Exclusive, registrants only" <<<"$1"' _ "$PR0"
check "node $(other "$OWNER") shows the same keys and reservation" test "$(pr_state "${SD[$(other "$OWNER")]}")" = "$PR0"
pr_same() { # CASE NODE
  local got
  got=$(pr_state "${SD[$2]}")
  check "($1) sg_persist -k/-r via node $2 show the same keys and reservation" test "$got" = "$PR0" || echo "$got" | indent
}

rm -f /tmp/probe.log
touch /tmp/probe.run
probe_loop &
PROBE_PID=$!

# (c) planned switchover
FROM=$(owner a) TO=$(other "$(owner a)")
failover c "$FROM" "$TO" adm "$FROM" stmfadm move-lu "$GUID" "$TO"
pr_same c "$TO"
multipath -ll "$W1" 2>&1 | indent

# (a) SIGKILL of the owner; it comes back as the standby node
FROM=$(owner "$TO") TO=$(other "$(owner "$TO")")
failover a "$FROM" "$TO" kill -KILL "${PID[$FROM]}"
pr_same a "$TO"
wait "${PID[$FROM]}" 2>/dev/null
check "node $FROM restarted after SIGKILL (rejoins as standby)" start_node "$FROM"
ok=0
for ((i = 0; i < 60; i++)); do
  out=$(multipath -ll "$W1" 2>&1)
  grep -q "${SD[$FROM]##*/} .*active ghost running" <<<"$out" && grep -q "${SD2[$FROM]##*/} .*active ghost running" <<<"$out" && { ok=1; break; }
  sleep 1
done
echo "$out" | indent
check "multipath: node $FROM's two paths are back as ghost (standby) paths" test $ok = 1
pr_same a "$FROM"

# (b) the owner cut from etcd (its only etcd member stopped), not from the initiator
FROM=$(owner "$TO") TO=$(other "$(owner "$TO")")
sig=USR1
[ "$FROM" = b ] && sig=USR2
failover b "$FROM" "$TO" kill -"$sig" "$EPID"
pr_same b "$TO"
sg_turs "${SD[$FROM]}" >/tmp/turs.out 2>&1
rc=$?
indent </tmp/turs.out
check "the node cut from etcd ($FROM) answers TEST UNIT READY with NOT READY (self-fenced; exit $rc)" test "$rc" = 2
rm -f /tmp/probe.run
wait "$PROBE_PID"

section "failover times"
indent <"$HOST/failover-times.txt"
if [ "$NFAIL" != 0 ]; then dump_evidence; fi
finish
