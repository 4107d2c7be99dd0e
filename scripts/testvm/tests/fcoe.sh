#!/bin/bash
# fcoe.sh - runs INSIDE the test VM (scripts/testvm/run-vm.sh), as root, cwd /mnt/host.
#
# stmfd's software FCoE adapter (VN2VN) serves the demo LU to the Linux kernel FC initiator
# (fcoe/libfcoe/libfc, no fcoe-utils) over a veth pair, while the same LU is also served over
# iSCSI on 127.0.0.1:
#   veth pair veth-t (stmfd) / veth-i (kernel) with MTU 2500; stmfd --demo with
#   fc.adapters [{kind: fcoe, interface: veth-t}]; modprobe fcoe; ctlr_create on veth-i, mode
#   vn2vn, enabled; the fc_host comes Online with a VN2VN port ID; our rport appears as an FCP
#   target; fcinfo hba-port shows the port online with its port ID; stmfadm list-target -v
#   shows wwn.<WWPN> with the initiator's session; the LU is a /dev/sdX whose WWID equals the
#   one seen over iSCSI (and the LU GUID); fio randwrite crc32c verify over FC; persistent
#   reservations: a reservation held over iSCSI makes FC writes and reserves conflict, and the
#   reverse; ext4 on the FC disk survives ip link set down/up of veth-i (rediscovery, I/O
#   resumes, checksums match, fsck clean); dm-multipath with one FC and one iSCSI path keeps
#   I/O going when the FC path goes away.
# Prints PASS/FAIL/SKIP per check and "fcoe: N passed, M failed, K skipped"; exit 0 only with no
# FAIL. Needs in /mnt/host: stmfd, stmfadm, fcinfo (static). Settings (-e VAR=VALUE):
# STMFD_LOG_LEVEL (default info), FIO_SIZE (default 32M).
set -uo pipefail

HOST=/mnt/host
# shellcheck disable=SC1091
[ -f "$HOST/test.env" ] && . "$HOST/test.env"
STMFD=$HOST/stmfd
STMFADM=$HOST/stmfadm
FCINFO=$HOST/fcinfo
STATE=/tmp/stmfd-state
SLOG=/tmp/stmfd.log
IQN=iqn.2026-11.org.costar:demo
P1=127.0.0.1:3260
FIO_SIZE=${FIO_SIZE:-32M}
export STMFD_SOCKET=$STATE/stmfd.sock

# shellcheck source=lib/steps.sh
. "$HOST/steps.sh"

SPID=""
TPID=""
MAPS=()
CTLR=""
cleanup() {
  local m
  for m in "${MAPS[@]}"; do multipath -f "$m" >/dev/null 2>&1; done
  umount /mnt/fc 2>/dev/null
  timeout 30 iscsiadm -m node -T "$IQN" --logout >/dev/null 2>&1
  [ -n "$CTLR" ] && echo "${CTLR##*/}" >/sys/bus/fcoe/ctlr_destroy 2>/dev/null
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
    kill -TERM "$SPID"
    sleep 3
    kill -KILL "$SPID" 2>/dev/null
  fi
  cp "$SLOG" "$HOST/stmfd.log" 2>/dev/null
  if [ -n "$TPID" ]; then
    kill -INT "$TPID" 2>/dev/null
    sleep 1
  fi
  [ -f /tmp/fip.pcap ] && cp /tmp/fip.pcap "$HOST/"
}
trap cleanup EXIT

finish() {
  echo
  echo "fcoe: $NPASS passed, $NFAIL failed, $NSKIP skipped"
  [ "$NFAIL" = 0 ]
  exit $?
}

dump_evidence() {
  section "evidence: fc_host / rports"
  grep -H . /sys/class/fc_host/host*/{port_state,port_id,port_name} 2>&1 | indent
  grep -H . /sys/class/fc_remote_ports/rport-*/{port_state,port_id,port_name,roles} 2>&1 | indent
  section "evidence: kernel log (fcoe/libfc/scsi lines, last 60)"
  dmesg | grep -Ei 'fcoe|libfc|host[0-9]|rport|scsi|sd [0-9]|\[sd[a-z]+\]|I/O error|reservation|EXT4|multipath' | tail -60 | indent
  section "evidence: stmfd log (last 120 lines)"
  tail -120 "$SLOG" 2>/dev/null | indent
}

# ---------------------------------------------------------------------------------------------
section "environment"
echo "kernel $(uname -r), $(nproc) CPUs"
for b in "$STMFD" "$STMFADM" "$FCINFO"; do
  [ -x "$b" ] || { fail "binary $b present"; finish; }
done
if ! check "kernel has the fcoe, libfcoe and libfc modules" modinfo -F filename fcoe libfcoe libfc; then finish; fi
modinfo -F filename fcoe libfcoe libfc 2>&1 | indent

section "veth pair veth-t (stmfd) / veth-i (kernel initiator), MTU 2500"
ip link del veth-t 2>/dev/null
run "ip link add veth-t type veth peer name veth-i" 10 ip link add veth-t mtu 2500 type veth peer name veth-i mtu 2500
run "veth up" 10 bash -c "ip link set veth-t up && ip link set veth-i up"
ip -br link show type veth | indent
TMAC=$(cat /sys/class/net/veth-t/address)
echo "target MAC $TMAC"
# Headers of every FIP and FCoE frame, for a failure's post-mortem (fip.pcap in the run dir).
tcpdump -i veth-t -w /tmp/fip.pcap -s 96 -c 200000 'ether proto 0x8914 or ether proto 0x8906' >/dev/null 2>&1 &
TPID=$!

section "stmfd --demo with an fcoe adapter on veth-t"
rm -rf "$STATE" && mkdir -p "$STATE"
cat >/tmp/stmfd.yaml <<YAML
fc:
  adapters:
    - kind: fcoe
      interface: veth-t
YAML
"$STMFD" --demo --demo-size 512M --state-dir "$STATE" --portal "$P1" --config /tmp/stmfd.yaml \
  --log-level "${STMFD_LOG_LEVEL:-info}" >>"$SLOG" 2>&1 &
SPID=$!
ready=0
for ((i = 0; i < 100; i++)); do
  kill -0 "$SPID" 2>/dev/null || break
  grep -q 'stmfd ready' "$SLOG" && { ready=1; break; }
  sleep 0.2
done
if ! check "stmfd ready with the fcoe adapter" test $ready = 1; then dump_evidence; finish; fi
# The port WWN is derived from the MAC (NAA 2: 2001 + MAC); fcinfo says which.
WWPN_HEX=$(timeout 30 "$FCINFO" hba-port 2>/dev/null | sed -n 's/^HBA Port WWN: *\([0-9a-f]\{16\}\)$/\1/p' | head -1)
check "fcinfo hba-port names the port derived from the MAC (${WWPN_HEX:-none})" test "$WWPN_HEX" = "2001$(tr -d : <<<"$TMAC")"
GUID=$(timeout 30 "$STMFADM" list-lu 2>/dev/null | sed -n 's/^LU Name: *\([0-9A-Fa-f]\{32\}\)$/\1/p' | head -1)
echo "demo LU $GUID"
for ((i = 0; i < 50; i++)); do grep -q 'fcoe vn2vn claim up' "$SLOG" && break; sleep 0.2; done
check "stmfd claimed a VN2VN N_Port ID" grep -q 'fcoe vn2vn claim up' "$SLOG"
grep -E 'fcoe|fc link' "$SLOG" | indent

section "kernel FCoE initiator in VN2VN mode on veth-i"
run "modprobe fcoe" 60 modprobe fcoe
run "ctlr_create veth-i" 30 bash -c 'echo veth-i >/sys/bus/fcoe/ctlr_create'
CTLR=$(ls -d /sys/bus/fcoe/devices/ctlr_* 2>/dev/null | head -1)
echo "controller $CTLR"
run "mode vn2vn" 10 bash -c "echo vn2vn >$CTLR/mode"
run "enabled 1" 10 bash -c "echo 1 >$CTLR/enabled"
FCHOST=""
for ((i = 0; i < 100; i++)); do
  for h in "$CTLR"/host*; do [ -e "$h" ] && FCHOST=/sys/class/fc_host/${h##*/}; done
  [ -n "$FCHOST" ] && [ "$(cat "$FCHOST/port_state" 2>/dev/null)" = Online ] && break
  sleep 0.2
done
grep -H . "$FCHOST"/{port_state,port_id,port_name,node_name,port_type} 2>&1 | indent
if ! check "fc_host ${FCHOST##*/} Online" test "$(cat "$FCHOST/port_state" 2>/dev/null)" = Online; then dump_evidence; finish; fi
IWWPN=$(sed 's/^0x//' "$FCHOST/port_name")
find_rport() {
  local r
  for r in /sys/class/fc_remote_ports/rport-*; do
    [ "$(cat "$r/port_name" 2>/dev/null)" = "0x$WWPN_HEX" ] && { echo "$r"; return 0; }
  done
  return 1
}
RPORT=""
for ((i = 0; i < 150; i++)); do
  RPORT=$(find_rport) && [ "$(cat "$RPORT/port_state")" = Online ] && grep -q 'FCP Target' "$RPORT/roles" && break
  sleep 0.2
done
grep -H . "$RPORT"/{port_state,port_id,port_name,roles} 2>&1 | indent
if ! check "rport of our WWPN $WWPN_HEX is an Online FCP Target" \
  bash -c "[ -n '$RPORT' ] && [ \"\$(cat $RPORT/port_state)\" = Online ] && grep -q 'FCP Target' $RPORT/roles"; then
  dump_evidence
  finish
fi

section "management view: fcinfo and stmfadm"
out=$(timeout 30 "$FCINFO" hba-port 2>&1)
echo "$out" | indent
check "fcinfo hba-port: our port, online, with a port ID" \
  bash -c "grep -qi '$WWPN_HEX' <<<'$out' && grep -q 'State: online' <<<'$out' && grep -qE 'Port ID: [0-9a-f]+' <<<'$out'"
out=$(timeout 30 "$FCINFO" remote-port -p "$WWPN_HEX" 2>&1)
echo "$out" | indent
check "fcinfo remote-port lists the kernel initiator $IWWPN" grep -qi "$IWWPN" <<<"$out"
out=$(timeout 30 "$STMFADM" list-target -v 2>&1)
echo "$out" | indent
check "stmfadm list-target -v: wwn.${WWPN_HEX^^} with the initiator's session" \
  bash -c "grep -q 'wwn.${WWPN_HEX^^}' <<<'$out' && grep -qi 'wwn.$IWWPN' <<<'$out'"

section "the LU over FC"
FCDEV=""
for ((i = 0; i < 100; i++)); do
  b=$(ls -d /sys/class/scsi_host/"${FCHOST##*/}"/device/rport-*/target*/*:*:*:0/block/* 2>/dev/null | head -1)
  [ -n "$b" ] && FCDEV=/dev/${b##*/} && [ -b "$FCDEV" ] && break
  sleep 0.2
done
if ! check "LUN 0 over FC is a block device (${FCDEV:-none})" test -n "$FCDEV" -a -b "$FCDEV"; then dump_evidence; finish; fi
FCWWID=$(/lib/udev/scsi_id -g -u "$FCDEV")
echo "FC: $FCDEV WWID $FCWWID"
check "FC WWID is the LU's NAA (3${GUID,,})" test "$FCWWID" = "3${GUID,,}"
timeout 20 sg_vpd -p di "$FCDEV" 2>&1 | tee /tmp/vpd.fc | indent
run "modprobe iscsi_tcp" 30 modprobe iscsi_tcp
timeout 60 iscsiadm -m discovery -t sendtargets -p "$P1" 2>&1 | indent
ISDEV=""
if run "iscsiadm login via $P1" 90 iscsiadm -m node -T "$IQN" -p "$P1" --login; then
  udevadm settle -t 30
  b=/dev/disk/by-path/ip-$P1-iscsi-$IQN-lun-0
  waitfor "$b" 30 && ISDEV=$(readlink -f "$b")
fi
ISWWID=$( [ -n "$ISDEV" ] && /lib/udev/scsi_id -g -u "$ISDEV")
echo "iSCSI: ${ISDEV:-none} WWID ${ISWWID:-none}"
check "same WWID over FC and iSCSI" test -n "$ISWWID" -a "$ISWWID" = "$FCWWID"
if [ -n "$ISDEV" ]; then
  timeout 20 sg_vpd -p di "$ISDEV" >/tmp/vpd.is 2>&1
  RFC=$(sed -n 's/.*Relative target port: *\(0x[0-9a-f]*\).*/\1/p' /tmp/vpd.fc | head -1)
  RIS=$(sed -n 's/.*Relative target port: *\(0x[0-9a-f]*\).*/\1/p' /tmp/vpd.is | head -1)
  check "FC and iSCSI target ports have distinct relative target port IDs (FC $RFC, iSCSI $RIS)" test -n "$RFC" -a -n "$RIS" -a "$RFC" != "$RIS"
  check "VPD 0x83 of the FC port has no unexpected NAA" bash -c "! grep -q unexpected /tmp/vpd.fc"
fi

run "FC: fio randwrite 4k-128k qd16 $FIO_SIZE verify=crc32c" 600 \
  fio --name=fc --filename="$FCDEV" --rw=randwrite --bsrange=4k-128k --size="$FIO_SIZE" \
  --direct=1 --ioengine=libaio --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
  --output-format=terse --terse-version=3
head -c 4M /dev/urandom >/tmp/pat
if [ -n "$ISDEV" ]; then
  run "write 4M over FC, read back over iSCSI" 120 bash -c \
    "dd if=/tmp/pat of=$FCDEV bs=1M seek=64 oflag=direct status=none && dd if=$ISDEV bs=1M skip=64 count=4 iflag=direct status=none | cmp - /tmp/pat"
fi

# ---------------------------------------------------------------------------------------------
section "persistent reservations across FC and iSCSI"
# expect_conflict NAME CMD...: the command must fail (sg_persist: 24 = reservation conflict).
expect_conflict() {
  local name=$1 rc
  shift
  timeout 30 "$@" >/tmp/pr.out 2>&1
  rc=$?
  indent </tmp/pr.out
  check "$name (exit $rc)" test "$rc" != 0 -a "$rc" != 124
}
if [ -z "$ISDEV" ]; then
  skip "reservations: no iSCSI device"
else
  run "FC: register key 0x1" 30 sg_persist -n --out --register --param-sark=0x1 "$FCDEV"
  run "iSCSI: register key 0x2" 30 sg_persist -n --out --register --param-sark=0x2 "$ISDEV"
  out=$(timeout 30 sg_persist -n --in --read-keys "$FCDEV" 2>&1)
  echo "$out" | indent
  check "FC sees both keys" bash -c "grep -q 0x1 <<<'$out' && grep -q 0x2 <<<'$out'"
  run "iSCSI: reserve Write Exclusive with key 0x2" 30 sg_persist -n --out --reserve --param-rk=0x2 --prout-type=1 "$ISDEV"
  out=$(timeout 30 sg_persist -n --in --read-reservation "$FCDEV" 2>&1)
  echo "$out" | indent
  check "FC reads the iSCSI reservation (key 0x2)" grep -q 'Key=0x2' <<<"$out"
  expect_conflict "FC reserve conflicts with the iSCSI reservation" sg_persist -n --out --reserve --param-rk=0x1 --prout-type=1 "$FCDEV"
  expect_conflict "FC write conflicts with the iSCSI reservation" dd if=/tmp/pat of="$FCDEV" bs=4k count=1 seek=1000 oflag=direct status=none
  run "iSCSI write under its own reservation" 30 dd if=/tmp/pat of="$ISDEV" bs=4k count=1 seek=1000 oflag=direct status=none
  run "iSCSI: release" 30 sg_persist -n --out --release --param-rk=0x2 --prout-type=1 "$ISDEV"
  run "FC: reserve Write Exclusive with key 0x1" 30 sg_persist -n --out --reserve --param-rk=0x1 --prout-type=1 "$FCDEV"
  expect_conflict "iSCSI reserve conflicts with the FC reservation" sg_persist -n --out --reserve --param-rk=0x2 --prout-type=1 "$ISDEV"
  expect_conflict "iSCSI write conflicts with the FC reservation" dd if=/tmp/pat of="$ISDEV" bs=4k count=1 seek=1000 oflag=direct status=none
  run "FC: clear" 30 sg_persist -n --out --clear --param-rk=0x1 "$FCDEV"
  # CLEAR raises RESERVATIONS PREEMPTED on the iSCSI nexus (SPC-4 5.14.11.2.6): the first PR IN
  # there may report that unit attention; sg_persist does not retry it, so ask again.
  for _ in 1 2 3; do
    out=$(timeout 30 sg_persist -n --in --read-keys "$ISDEV" 2>&1)
    grep -qi 'unit attention' <<<"$out" || break
    echo "$out" | indent
  done
  echo "$out" | indent
  check "no keys left" grep -qi 'no registered reservation keys' <<<"$out"
fi

# ---------------------------------------------------------------------------------------------
section "ext4 on the FC disk across ip link set veth-i down/up"
mkdir -p /mnt/fc
if run "mkfs.ext4" 120 mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$FCDEV" &&
  run "mount" 30 mount "$FCDEV" /mnt/fc; then
  run "write files before the bounce" 120 bash -c 'for i in 1 2 3 4; do head -c 3M /dev/urandom >/mnt/fc/before$i; done; sync'
  (cd /mnt/fc && sha256sum before* >/tmp/sums)
  run "ip link set veth-i down" 10 ip link set veth-i down
  sleep 3
  check "rport left Online while the link is down" bash -c "[ \"\$(cat $RPORT/port_state 2>/dev/null)\" != Online ]"
  run "ip link set veth-i up" 10 ip link set veth-i up
  T=$(date +%s)
  for ((i = 0; i < 300; i++)); do
    r=$(find_rport) && [ "$(cat "$r/port_state")" = Online ] && break
    sleep 0.2
  done
  st=""
  r=$(find_rport) && st=$(cat "$r/port_state")
  check "rport Online again after the bounce ($(($(date +%s) - T)) s)" test "$st" = Online
  grep -H . /sys/class/fc_remote_ports/rport-*/{port_state,port_id,port_name} 2>&1 | indent
  run "write files after the bounce (I/O resumes)" 120 bash -c 'for i in 1 2; do head -c 3M /dev/urandom >/mnt/fc/after$i; done; sync'
  (cd /mnt/fc && sha256sum after* >>/tmp/sums)
  run "umount" 60 umount /mnt/fc
  run "remount" 30 mount "$FCDEV" /mnt/fc &&
    run "checksums match after remount" 60 bash -c 'cd /mnt/fc && sha256sum -c --quiet /tmp/sums' &&
    run "umount" 60 umount /mnt/fc
  run "fsck clean" 120 fsck.ext4 -n -f "$FCDEV"
fi

# ---------------------------------------------------------------------------------------------
section "dm-multipath: one FC path and one iSCSI path"
if [ -z "$ISDEV" ]; then
  skip "multipath: no iSCSI device"
else
  # Fail FC I/O over to the other path 5 s after the rport blocks (the default waits for
  # dev_loss_tmo, 60 s).
  r=$(find_rport) && { echo 5 >"$r/fast_io_fail_tmo"; echo 30 >"$r/dev_loss_tmo"; grep -H . "$r"/{fast_io_fail_tmo,dev_loss_tmo} | indent; }
  multipath -a "$FCDEV" 2>&1 | indent
  multipath -r 2>&1 | indent
  udevadm settle -t 30
  MP=/dev/mapper/$FCWWID
  if check "multipath map $MP assembled" waitfor "$MP" 30; then
    MAPS+=("$FCWWID")
    sleep 1
    out=$(multipath -ll "$FCWWID" 2>&1)
    echo "$out" | indent
    check "multipath map has 2 active paths" test "$(grep -c 'active ready running' <<<"$out")" = 2
    run "multipath: write 4M pattern" 60 dd if=/tmp/pat of="$MP" bs=1M oflag=direct status=none
    run "multipath: fio randwrite through the map while veth-i goes down" 300 bash -c "
      (sleep 2; ip link set veth-i down) &
      fio --name=mp --filename=$MP --rw=randwrite --bs=16k --size=16M --offset=32M --direct=1 --ioengine=libaio \
        --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --output-format=terse --terse-version=3"
    multipath -ll "$FCWWID" 2>&1 | indent
    run "multipath: pattern reads back with the FC path gone" 60 \
      bash -c "dd if='$MP' bs=1M count=4 iflag=direct status=none | cmp - /tmp/pat"
    ip link set veth-i up
    for ((i = 0; i < 150; i++)); do
      r=$(find_rport) && [ "$(cat "$r/port_state")" = Online ] && break
      sleep 0.2
    done
    sleep 2
    multipath -r >/dev/null 2>&1
    sleep 2
    out=$(multipath -ll "$FCWWID" 2>&1)
    echo "$out" | indent
    if check "multipath: FC path back (2 active paths)" test "$(grep -c 'active ready running' <<<"$out")" = 2; then
      run "multipath: fio randwrite through the map while the iSCSI path logs out (I/O moves to FC)" 300 bash -c "
        (sleep 2; iscsiadm -m node -T $IQN -p $P1 --logout >/dev/null) &
        fio --name=mp2 --filename=$MP --rw=randwrite --bs=16k --size=16M --offset=64M --direct=1 --ioengine=libaio \
          --iodepth=8 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --output-format=terse --terse-version=3"
      multipath -ll "$FCWWID" 2>&1 | indent
      run "multipath: pattern reads back over FC alone" 60 \
        bash -c "dd if='$MP' bs=1M count=4 iflag=direct status=none | cmp - /tmp/pat"
    fi
    run "multipath: flush map" 60 multipath -f "$FCWWID" && MAPS=()
  fi
fi

section "kernel log"
errs=$(dmesg | grep -E 'BUG:|Kernel panic|Call Trace|WARNING:' | head -20)
check "no kernel BUG/WARNING" test -z "$errs"
echo "$errs" | indent
dmesg | grep -Ei 'fcoe|libfc|host[0-9]+: |reservation|offlin|timeout' | tail -40 | indent
grep -E 'fcoe adapter stopped|frames dropped' "$SLOG" | indent
[ "$NFAIL" = 0 ] || dump_evidence
finish
