#!/bin/bash
# kernel-initiator.sh - runs INSIDE the test VM (scripts/testvm/run-vm.sh), as root, cwd /mnt/host.
#
# stmfd serves LUs; the Linux kernel iSCSI initiator (open-iscsi, iscsi_tcp) logs in over the
# VM's loopback and uses them as ordinary disks:
#   ZFS pool on the scratch disk + sparse zvol; stmfd --demo (file LU, LUN 0) on 127.0.0.1:3260
#   and 127.0.0.2:3260; if /mnt/host/stmfadm exists, also a block-device LU on the zvol
#   (stmfadm create-lu + add-view); SendTargets discovery; login; the /dev/sdX found by path;
#   lsblk/sg_inq/sg_vpd see the LU's NAA id and size; mkfs.ext4, mount, write files, sync,
#   remount and checksum, fsck; fio random and sequential write + crc32c verify (O_DIRECT,
#   libaio); second path via 127.0.0.2 + dm-multipath + fio through the map + losing a path;
#   logout; stmfd exits 0 on SIGTERM; restarted from its state dir it serves the same LU (same NAA
#   id, same data); no I/O, sense or connection errors in the kernel log. Then, from the `make
#   install` tree in /mnt/host/costar-install.tar: stmfd as a systemd service (start/readiness,
#   zvol and dm-delay LUs through the hardened unit, reload changes the log level, watchdog
#   pings, stop lets a read in flight complete, systemd-analyze security recorded).
# Every check prints "PASS name" or "FAIL name" (or "SKIP name: why"); the last line is
# "kernel-initiator: N passed, M failed, K skipped". Exit 0 only with no FAIL. stmfd's log, dmesg
# and the iSCSI session state end up in /mnt/host (stmfd.log, dmesg.txt) and, on failure, in
# the output.
# Needs in /mnt/host: stmfd (static), optionally stmfadm. Settings (run-tests.sh -e VAR=VALUE, via
# /mnt/host/test.env): STMFD_LOG_LEVEL (default info), FIO_SIZE (per fio job, default 96M),
# DEMO_SIZE (default 1G).
set -uo pipefail

HOST=/mnt/host
# shellcheck disable=SC1091
[ -f "$HOST/test.env" ] && . "$HOST/test.env"
STMFD=$HOST/stmfd
STMFADM=$HOST/stmfadm
STATE=/tmp/stmfd-state
SLOG=/tmp/stmfd.log
IQN=iqn.2026-11.org.costar:demo
P1=127.0.0.1:3260
P2=127.0.0.2:3260
POOL=tank
ZVOL=/dev/zvol/$POOL/vol1
DEMO_SIZE=${DEMO_SIZE:-1G}
FIO_SIZE=${FIO_SIZE:-96M}
export STMFD_SOCKET=$STATE/stmfd.sock

# shellcheck source=lib/steps.sh
. "$HOST/steps.sh" # T0, NPASS/NFAIL/NSKIP, section, pass, fail, skip, indent, run, check, waitfor

SPID=""
MAPS=()
cleanup() {
  local m
  for m in "${MAPS[@]}"; do multipath -f "$m" >/dev/null 2>&1; done
  umount /mnt/lu 2>/dev/null
  timeout 30 iscsiadm -m node -T "$IQN" --logout >/dev/null 2>&1
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
    kill -TERM "$SPID"
    sleep 5
    kill -KILL "$SPID" 2>/dev/null
  fi
  cp "$SLOG" "$HOST/stmfd.log" 2>/dev/null
}
trap cleanup EXIT

# dump_evidence: what a failure report needs.
dump_evidence() {
  section "evidence: iscsiadm -m session -P 3"
  timeout 10 iscsiadm -m session -P 3 2>&1 | indent
  section "evidence: kernel log (iscsi/scsi/sd/blk/multipath lines, last 80)"
  dmesg | grep -E 'iscsi|iSCSI|connection[0-9]|session[0-9]|scsi|sd [0-9]|\[sd[a-z]+\]|blk_|I/O error|device-mapper|multipath|alua|EXT4' | tail -80 | indent
  section "evidence: stmfd log (last 150 of $(wc -l <"$SLOG" 2>/dev/null || echo 0) lines; whole log in stmfd.log)"
  tail -150 "$SLOG" 2>/dev/null | indent
}

# ---------------------------------------------------------------------------------------------
section "environment"
echo "kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/{print $2 " kB"}' /proc/meminfo)"
echo "zfs $(cat /sys/module/zfs/version 2>/dev/null || dpkg-query -W -f='${Version}' zfsutils-linux), open-iscsi $(dpkg-query -W -f='${Version}' open-iscsi), fio $(fio --version)"
ls -l "$HOST" | indent
if [ ! -x "$STMFD" ]; then
  fail "stmfd binary present in $HOST"
  echo "kernel-initiator: $NPASS passed, $NFAIL failed, $NSKIP skipped"
  exit 1
fi
"$STMFD" --help 2>&1 | head -3 | indent

section "ZFS: pool and sparse zvol on the scratch disk"
run "modprobe zfs" 120 modprobe zfs
waitfor /dev/disk/by-id/virtio-scratch 30
run "zpool create $POOL" 120 zpool create -f -o ashift=12 -O compression=off -O atime=off $POOL /dev/disk/by-id/virtio-scratch
run "zfs create -s -V 1G $POOL/vol1" 60 zfs create -s -V 1G -o volblocksize=16k $POOL/vol1
udevadm settle -t 30
check "zvol device node $ZVOL" waitfor "$ZVOL" 30

section "initiator settings (fail fast instead of the 120 s defaults)"
sed -i -e 's/^node.session.timeo.replacement_timeout = .*/node.session.timeo.replacement_timeout = 15/' \
  -e 's/^node.conn\[0\].timeo.login_timeout = .*/node.conn[0].timeo.login_timeout = 15/' \
  -e 's/^node.session.initial_login_retry_max = .*/node.session.initial_login_retry_max = 2/' \
  /etc/iscsi/iscsid.conf
grep -E '^node.session.timeo.replacement_timeout|^node.conn\[0\].timeo.(login_timeout|noop)|^node.session.initial_login_retry_max' /etc/iscsi/iscsid.conf | indent
cat /etc/iscsi/initiatorname.iscsi | grep -v '^#' | indent
run "modprobe iscsi_tcp" 30 modprobe iscsi_tcp

section "stmfd --demo on $P1 and $P2"
rm -rf "$STATE"
mkdir -p "$STATE"
start_stmfd() { # PORTAL...
  local args=() p i from
  for p in "$@"; do args+=(--portal "$p"); done
  touch "$SLOG"
  from=$(($(wc -l <"$SLOG") + 1))
  "$STMFD" --demo --demo-size "$DEMO_SIZE" --state-dir "$STATE" "${args[@]}" \
    --log-level "${STMFD_LOG_LEVEL:-info}" >>"$SLOG" 2>&1 &
  SPID=$!
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "$SPID" 2>/dev/null; then
      wait "$SPID"
      echo "stmfd exited with $? during start-up:"
      tail -n "+$from" "$SLOG" | indent
      SPID=""
      return 1
    fi
    if tail -n "+$from" "$SLOG" | grep -q 'stmfd ready'; then
      for p in "$@"; do (exec 3<>"/dev/tcp/${p%:*}/${p##*:}") 2>/dev/null || { echo "not accepting on $p"; return 1; }; done
      return 0
    fi
    sleep 0.2
  done
  echo "stmfd not ready after 20 s"
  return 1
}
TWO_PORTALS=0
if start_stmfd "$P1" "$P2"; then
  TWO_PORTALS=1
  pass "stmfd started, listening on $P1 and $P2"
else
  fail "stmfd starts with two portals ($P1, $P2)"
  [ -n "$SPID" ] && { kill -TERM "$SPID"; wait "$SPID"; SPID=""; }
  rm -rf "$STATE"
  mkdir -p "$STATE"
  if start_stmfd "$P1"; then
    pass "stmfd started with one portal $P1 (multipath will be skipped)"
  else
    fail "stmfd starts on $P1"
    dump_evidence
    echo "kernel-initiator: $NPASS passed, $NFAIL failed, $NSKIP skipped"
    exit 1
  fi
fi
grep -E 'created demo configuration|stmfd ready' "$SLOG" | indent
DEMO_GUID=$(grep -o 'created demo configuration lu=[0-9A-Fa-f]\{32\}' "$SLOG" | grep -o '[0-9A-Fa-f]\{32\}$' | head -1)
[ -n "$DEMO_GUID" ] || DEMO_GUID=$(grep -o '"guid": *"[0-9A-Fa-f]\{32\}"' "$STATE/stmf.json" 2>/dev/null | grep -o '[0-9A-Fa-f]\{32\}' | head -1)
check "demo LU GUID known ($DEMO_GUID) and COMSTAR-style (600144F...)" grep -qi '^600144f' <<<"$DEMO_GUID"

# LUs under test: "LUN GUID SIZE_BYTES what"
LUS=("0 ${DEMO_GUID:-unknown} $(numfmt --from=iec "$DEMO_SIZE") demo-file-LU")

section "block-device LU on the zvol (stmfadm)"
if [ ! -x "$STMFADM" ]; then
  skip "zvol LU: no stmfadm binary in $HOST (cmd/stmfadm not built yet); testing the demo file LU only"
else
  out=$(timeout 60 "$STMFADM" create-lu "$ZVOL" 2>&1)
  rc=$?
  echo "$out" | indent
  ZGUID=$(grep -o 'Logical unit created: [0-9A-Fa-f]\{32\}' <<<"$out" | grep -o '[0-9A-Fa-f]\{32\}$')
  if [ $rc = 0 ] && [ -n "$ZGUID" ]; then
    pass "stmfadm create-lu $ZVOL -> $ZGUID"
    if run "stmfadm add-view $ZGUID" 60 "$STMFADM" add-view "$ZGUID"; then
      out=$(timeout 60 "$STMFADM" list-view -l "$ZGUID" 2>&1)
      echo "$out" | indent
      ZLUN=$(sed -n 's/^[[:space:]]*LUN[[:space:]]*:[[:space:]]*\([0-9]\+\)$/\1/p' <<<"$out" | head -1)
      check "stmfadm list-view shows a LUN for the zvol LU (${ZLUN:-none})" test -n "$ZLUN"
    fi
    out=$(timeout 60 "$STMFADM" list-lu -v 2>&1)
    echo "$out" | indent
    # The LU's size is what stmfadm reports (the zvol minus any in-band metadata).
    ZSIZE=$(sed -n "/^LU Name: $ZGUID\$/,/^LU Name:/s/^[[:space:]]*Size[[:space:]]*:[[:space:]]*\([0-9]\+\)\$/\1/p" <<<"$out" | head -1)
    vsize=$(blockdev --getsize64 "$ZVOL")
    echo "zvol $vsize bytes, LU $ZSIZE bytes"
    if check "stmfadm list-lu -v size of the zvol LU (${ZSIZE:-none}) is >0 and <= the zvol ($vsize)" \
      test -n "$ZSIZE" -a "${ZSIZE:-0}" -gt 0 -a "${ZSIZE:-0}" -le "$vsize" && [ -n "${ZLUN:-}" ]; then
      LUS+=("$ZLUN $ZGUID $ZSIZE zvol-LU")
    fi
  else
    fail "stmfadm create-lu $ZVOL (exit $rc); testing the demo file LU only"
  fi
fi

section "SendTargets discovery"
out=$(timeout 60 iscsiadm -m discovery -t sendtargets -p "$P1" 2>&1)
rc=$?
echo "$out" | indent
if check "discovery via $P1 (exit $rc) lists $IQN" grep -q "^$P1,[0-9]* $IQN\$" <<<"$out"; then :; else
  dump_evidence
  echo "kernel-initiator: $NPASS passed, $NFAIL failed, $NSKIP skipped"
  exit 1
fi
if [ $TWO_PORTALS = 1 ]; then
  if ! check "discovery lists the second portal $P2 for $IQN" grep -q "^$P2,[0-9]* $IQN\$" <<<"$out"; then
    iscsiadm -m node -T "$IQN" -p "$P2" -o new 2>&1 | indent # carry on: add the path by hand
  fi
fi

section "login via $P1"
if ! run "iscsiadm login $IQN via $P1" 90 iscsiadm -m node -T "$IQN" -p "$P1" --login; then
  dump_evidence
  echo "kernel-initiator: $NPASS passed, $NFAIL failed, $NSKIP skipped"
  exit 1
fi
udevadm settle -t 30
timeout 10 iscsiadm -m session -P 3 2>&1 | grep -Ei 'Target:|Portal|State|HeaderDigest|DataDigest|MaxRecvDataSegmentLength|MaxBurstLength|FirstBurstLength|ImmediateData|InitialR2T|MaxOutstandingR2T|Attached scsi disk' | indent
lsscsi 2>&1 | indent

# ---------------------------------------------------------------------------------------------
# Per LU: identity and size, then a filesystem, then raw fio with verification.
declare -A DEV
test_lu() { # LUN GUID SIZE WHAT
  local lun=$1 guid=$2 size=$3 what=$4 bypath dev got wwn vpd i
  bypath=/dev/disk/by-path/ip-$P1-iscsi-$IQN-lun-$lun
  section "$what: LUN $lun GUID $guid"
  if ! check "$what: block device at $bypath" waitfor "$bypath" 30; then
    ls -l /dev/disk/by-path/ 2>&1 | indent
    return 1
  fi
  dev=$(readlink -f "$bypath")
  DEV[$lun]=$dev
  echo "device $dev"
  lsblk -o NAME,SIZE,TYPE,VENDOR,MODEL,REV,SERIAL,WWN,LOG-SEC,PHY-SEC,MIN-IO,OPT-IO,DISC-GRAN,DISC-MAX,RO "$dev" 2>&1 | indent
  got=$(blockdev --getsize64 "$dev")
  check "$what: size $got bytes = $size" test "$got" = "$size"
  wwn=$(lsblk -dno WWN "$dev" | tr -d ' ')
  check "$what: lsblk WWN $wwn = 0x${guid,,}" test "${wwn,,}" = "0x${guid,,}"
  run "$what: sg_inq standard INQUIRY" 30 sg_inq "$dev"
  vpd=$(timeout 30 sg_vpd -p di "$dev" 2>&1)
  echo "$vpd" | indent
  check "$what: sg_vpd device identification has NAA ${guid,,}" grep -qi "0x${guid}" <<<"$vpd"
  run "$what: sg_readcap -l" 30 sg_readcap -l "$dev"
  for i in 0xb0 0xb2; do timeout 30 sg_vpd -p "$i" "$dev" 2>&1 | indent; done

  # Filesystem: files written, synced, read back after a remount with cold caches.
  mkdir -p /mnt/lu
  run "$what: mkfs.ext4 (discards the device if the LU advertises UNMAP)" 300 mkfs.ext4 -q -F "$dev" || return 1
  run "$what: mount" 60 mount -o noatime "$dev" /mnt/lu || return 1
  if ! run "$what: write files" 300 bash -c '
      set -e
      mkdir -p /mnt/lu/d
      for i in $(seq 1 40); do head -c $(( (RANDOM % 512 + 1) * 1024 )) /dev/urandom >/mnt/lu/d/small$i; done
      head -c 48M /dev/urandom >/mnt/lu/big
      cd /mnt/lu && find . -type f ! -name SUMS -print0 | sort -z | xargs -0 sha256sum >/tmp/SUMS
      du -sh /mnt/lu'; then
    umount /mnt/lu
    return 1
  fi
  run "$what: sync" 120 sync
  run "$what: umount" 60 umount /mnt/lu
  echo 3 >/proc/sys/vm/drop_caches
  run "$what: fsck -fn after unmount" 300 e2fsck -fn "$dev"
  run "$what: remount" 60 mount -o noatime "$dev" /mnt/lu || return 1
  run "$what: sha256sum -c after remount" 300 bash -c 'cd /mnt/lu && sha256sum --quiet -c /tmp/SUMS'
  if [ "$(cat "/sys/block/${dev#/dev/}/queue/discard_max_bytes" 2>/dev/null || echo 0)" != 0 ]; then
    rm -f /mnt/lu/big
    run "$what: fstrim (UNMAP of freed blocks)" 120 fstrim -v /mnt/lu
    sed -i '/ \.\/big$/d' /tmp/SUMS
    echo 3 >/proc/sys/vm/drop_caches
    run "$what: sha256sum -c after fstrim" 300 bash -c 'cd /mnt/lu && sha256sum --quiet -c /tmp/SUMS'
  else
    skip "$what: fstrim: the LU does not advertise UNMAP (discard_max_bytes 0)"
  fi
  run "$what: final umount" 60 umount /mnt/lu

  # Raw device, O_DIRECT through libaio: random writes of mixed sizes, then a sequential
  # pass with big blocks (many R2Ts / Data-Out bursts), each verified with crc32c.
  run "$what: fio randwrite 4k-256k qd16 $FIO_SIZE verify=crc32c" 600 \
    fio --name=rand --filename="$dev" --rw=randwrite --bsrange=4k-256k --size="$FIO_SIZE" \
    --direct=1 --ioengine=libaio --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
    --randrepeat=0 --norandommap=0 --output-format=normal
  run "$what: fio seq write 1M qd4 $FIO_SIZE at offset 256M verify=crc32c" 600 \
    fio --name=seq --filename="$dev" --rw=write --bs=1M --offset=256M --size="$FIO_SIZE" \
    --direct=1 --ioengine=libaio --iodepth=4 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
    --output-format=normal
}
for l in "${LUS[@]}"; do
  # shellcheck disable=SC2086
  test_lu $l
done

# ---------------------------------------------------------------------------------------------
section "second path via $P2 and dm-multipath"
if [ $TWO_PORTALS = 0 ]; then
  skip "multipath: stmfd did not serve two portals"
elif [ -z "${DEV[0]:-}" ]; then
  skip "multipath: no LUN 0 device on the first path"
elif run "iscsiadm login $IQN via $P2" 90 iscsiadm -m node -T "$IQN" -p "$P2" --login; then
  udevadm settle -t 30
  b2=/dev/disk/by-path/ip-$P2-iscsi-$IQN-lun-0
  if check "second path block device at $b2" waitfor "$b2" 30; then
    SDA=${DEV[0]} SDB=$(readlink -f "$b2")
    W1=$(/lib/udev/scsi_id -g -u "$SDA") W2=$(/lib/udev/scsi_id -g -u "$SDB")
    echo "paths $SDA ($W1) and $SDB ($W2)"
    check "both paths report the same WWID" test -n "$W1" -a "$W1" = "$W2"
    timeout 30 sg_vpd -p di "$SDB" 2>&1 | indent
    timeout 30 sg_rtpg -d "$SDA" 2>&1 | indent # ALUA, if the target reports TPGS
    multipath -a "$SDA" 2>&1 | indent
    multipath -r 2>&1 | indent
    udevadm settle -t 30
    MP=/dev/mapper/$W1
    if check "multipath map $MP assembled" waitfor "$MP" 30; then
      MAPS+=("$W1")
      sleep 1
      out=$(multipath -ll "$W1" 2>&1)
      echo "$out" | indent
      check "multipath map has 2 active paths" test "$(grep -c 'active ready running' <<<"$out")" = 2
      run "multipath: fio randwrite 4k-128k qd16 48M verify=crc32c" 600 \
        fio --name=mp --filename="$MP" --rw=randwrite --bsrange=4k-128k --size=48M \
        --direct=1 --ioengine=libaio --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
        --output-format=terse --terse-version=3
      head -c 16M /dev/urandom >/tmp/pat
      run "multipath: write 16M pattern" 120 dd if=/tmp/pat of="$MP" bs=1M oflag=direct status=none
      run "multipath: logout of $P1 (path loss)" 60 iscsiadm -m node -T "$IQN" -p "$P1" --logout
      sleep 2
      multipath -ll "$W1" 2>&1 | indent
      run "multipath: pattern reads back via the remaining path $P2" 120 \
        bash -c "dd if='$MP' bs=1M count=16 iflag=direct status=none | cmp - /tmp/pat"
      run "multipath: flush map" 60 multipath -f "$W1" && MAPS=()
    fi
  fi
fi

section "logout"
# Remember what LUN 0 holds (first 64 MiB, read O_DIRECT) to check it after a restart.
SUM0=""
for d in /dev/disk/by-path/ip-*-iscsi-$IQN-lun-0; do
  [ -e "$d" ] || continue
  SUM0=$(timeout 120 dd if="$d" bs=1M count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1)
  echo "LUN 0 first 64 MiB sha256 $SUM0 (via $d)"
  break
done
run "iscsiadm logout of all $IQN sessions" 60 iscsiadm -m node -T "$IQN" --logout
sleep 1
check "no iSCSI session left" bash -c '! iscsiadm -m session >/dev/null 2>&1'

# Crash consistency of acknowledged writes (tests/lib/crash.sh), on this boot: LUs on dm-log-writes.
if [ -f "$HOST/crash.sh" ]; then
  # shellcheck source=lib/crash.sh
  . "$HOST/crash.sh"
  crash_consistency "$IQN" "$P1"
else
  skip "crash consistency: $HOST/crash.sh missing"
fi

stop_stmfd() { # WHAT
  local i src
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID"
  for ((i = 0; i < 200; i++)); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$SPID" 2>/dev/null; then
    fail "$1: stmfd exits within 40 s of SIGTERM"
    kill -KILL "$SPID"
    wait "$SPID" 2>/dev/null
  else
    wait "$SPID"
    src=$?
    check "$1: stmfd exits 0 on SIGTERM (exit $src)" test "$src" = 0
  fi
  SPID=""
  tail -2 "$SLOG" | indent
}
section "stmfd shutdown"
stop_stmfd "shutdown"

section "restart from the same state dir: same LU, same data"
if start_stmfd "$P1"; then
  pass "stmfd restarts from $STATE"
  if run "login again via $P1" 90 iscsiadm -m node -T "$IQN" -p "$P1" --login; then
    udevadm settle -t 30
    b=/dev/disk/by-path/ip-$P1-iscsi-$IQN-lun-0
    if check "LUN 0 is back at $b" waitfor "$b" 30; then
      wwn=$(lsblk -dno WWN "$b" | tr -d ' ')
      check "LUN 0 keeps its NAA id after the restart ($wwn)" test "${wwn,,}" = "0x${DEMO_GUID,,}"
      sum=$(timeout 120 dd if="$b" bs=1M count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1)
      check "LUN 0 data survived the restart (sha256 of first 64 MiB)" test -n "$SUM0" -a "$sum" = "$SUM0"
    fi
    run "logout after the restart" 60 iscsiadm -m node -T "$IQN" --logout
  fi
  stop_stmfd "after restart"
else
  fail "stmfd restarts from $STATE"
fi

check "stmfd log has no panic or data race" bash -c "! grep -Eq '^panic:|^fatal error:|DATA RACE|goroutine [0-9]+ \[' '$SLOG'"
n=$(grep -c 'level=ERROR' "$SLOG")
echo "stmfd log: $(wc -l <"$SLOG") lines, $n at level=ERROR, $(grep -c 'level=WARN' "$SLOG") at level=WARN"
grep -E 'level=(ERROR|WARN)' "$SLOG" | head -20 | indent

section "kernel log"
# "Power-on or device reset occurred" is the POWER ON/RESET unit attention every new I_T nexus
# gets first: expected, not an error. Logging out of a path (even under multipath) is clean.
bad=$(dmesg | grep -Ei 'I/O error|blk_update_request|Buffer I/O|detected conn error|iscsi: .*(recovery|timed out)|session recovery timed out|Sense Key|FAILED Result|rejecting I/O|reset|abort|EXT4-fs (error|warning)|Unaligned|hung_task|blocked for more than' |
  grep -v 'Power-on or device reset occurred' || true)
echo "$bad" | grep -v '^$' | indent
check "kernel log has no I/O, SCSI sense or iSCSI connection errors" test -z "$bad"

# (After the kernel log check: stopping the service under a logged-in session breaks that
# session on purpose, and the kernel logs it.)
# ---------------------------------------------------------------------------------------------
# stmfd as a systemd service (systemd is PID 1 here), installed from the tree `make install
# DESTDIR=` produced on the host (run-tests.sh ships it as costar-install.tar).
SVC_TAR=$HOST/costar-install.tar
SVC_IQN=iqn.2026-11.org.costar:svc
SLOWDEV=costar-slow
# The installed CLIs on their default socket (/var/lib/stmfd/stmfd.sock); `run` needs programs,
# not functions.
svcadm=/usr/local/sbin/stmfadm
svcitadm=/usr/local/sbin/itadm
svclog() { journalctl -u stmfd --no-pager -o cat "$@"; }
# wait_journal SINCE PATTERN SECONDS: the service logged PATTERN after SINCE.
wait_journal() {
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    svclog --since "$1" | grep -q -- "$2" && return 0
    sleep 0.2
  done
  return 1
}
svc_test() {
  local out rc since lun0 lun1 dev0 dev1 sectors t_stop t_end took wd0 i
  unset STMFD_SOCKET # the first part's daemon is gone
  run "service: unpack the make install tree into /" 60 tar -C / --no-same-owner -xf "$SVC_TAR" || return 1
  ls -l /usr/local/sbin /usr/local/lib/systemd/system/stmfd.service /etc/stmfd/stmfd.yaml \
    /usr/local/share/man/man8 /usr/local/share/bash-completion/completions 2>&1 | indent
  check "service: shipped /etc/stmfd/stmfd.yaml serves $P1" grep -q "^  - $P1\$" /etc/stmfd/stmfd.yaml
  run "service: systemctl daemon-reload" 60 systemctl daemon-reload
  run "service: systemd-analyze verify stmfd.service" 60 systemd-analyze verify --man=no stmfd.service
  run "service: man stmfd renders" 30 bash -c 'MANPAGER=cat man -l /usr/local/share/man/man8/stmfd.8 >/dev/null 2>&1 || test -s /usr/local/share/man/man8/stmfd.8'
  # Type=notify: start returns only after READY=1, which stmfd sends once the state is
  # restored and the portal listens, so the portal must accept at once.
  if ! run "service: systemctl start stmfd (returns after READY=1)" 120 systemctl start stmfd; then
    svclog | tail -40 | indent
    return 1
  fi
  check "service: systemctl is-active stmfd = active" test "$(systemctl is-active stmfd)" = active
  check "service: $P1 accepts right after start returned" bash -c "exec 3<>/dev/tcp/${P1%:*}/${P1##*:}"
  systemctl show -p StatusText -p MainPID -p Type -p NotifyAccess -p WatchdogUSec stmfd | indent
  wd0=$(systemctl show -p WatchdogTimestampMonotonic --value stmfd)

  section "service: LUs through the hardened unit (zvol via zfs(8), block device), target, login"
  run "service: stmfadm create-lu -p zvol=$POOL/svc0 (zfs under the unit's sandbox)" 120 \
    "$svcadm" create-lu -p zvol=$POOL/svc0 -p alias=svc0 -s 64M || { svclog | tail -30 | indent; return 1; }
  run "service: zfs create -V 64M $POOL/slow" 60 zfs create -V 64M $POOL/slow
  udevadm settle -t 30
  waitfor /dev/zvol/$POOL/slow 30
  sectors=$(blockdev --getsz /dev/zvol/$POOL/slow)
  local delay=0
  if modprobe dm_delay 2>/dev/null && command -v dmsetup >/dev/null &&
    dmsetup create $SLOWDEV --table "0 $sectors delay /dev/zvol/$POOL/slow 0 0" 2>&1 | indent; then
    delay=1
    udevadm settle -t 30
    out=$("$svcadm" create-lu -p alias=slow /dev/mapper/$SLOWDEV 2>&1)
    rc=$?
    echo "$out" | indent
    check "service: stmfadm create-lu /dev/mapper/$SLOWDEV (dm-delay over a zvol) (exit $rc)" test $rc = 0
  else
    skip "service: dm-delay unavailable (no dm_delay module or dmsetup): the drain check uses a plain zvol"
    run "service: stmfadm create-lu /dev/zvol/$POOL/slow" 60 "$svcadm" create-lu -p alias=slow /dev/zvol/$POOL/slow
  fi
  "$svcadm" list-lu -v 2>&1 | indent
  for g in $("$svcadm" list-lu | sed -n 's/^LU Name: //p'); do "$svcadm" add-view "$g" 2>&1 | indent; done
  run "service: itadm create-target -n $SVC_IQN" 60 "$svcitadm" create-target -n $SVC_IQN
  out=$(timeout 60 iscsiadm -m discovery -t sendtargets -p "$P1" 2>&1)
  echo "$out" | indent
  check "service: discovery lists $SVC_IQN" grep -q " $SVC_IQN\$" <<<"$out"
  run "service: login to $SVC_IQN" 90 iscsiadm -m node -T $SVC_IQN -p "$P1" --login || return 1
  udevadm settle -t 30
  lun0=$("$svcadm" list-view -l "$("$svcadm" list-lu -v | awk '/^LU Name:/{g=$3} /Alias *: svc0/{print g}')" | sed -n 's/^ *LUN *: *//p')
  lun1=$("$svcadm" list-view -l "$("$svcadm" list-lu -v | awk '/^LU Name:/{g=$3} /Alias *: slow/{print g}')" | sed -n 's/^ *LUN *: *//p')
  dev0=/dev/disk/by-path/ip-$P1-iscsi-$SVC_IQN-lun-${lun0:-x}
  dev1=/dev/disk/by-path/ip-$P1-iscsi-$SVC_IQN-lun-${lun1:-x}
  check "service: zvol LU (LUN ${lun0:-?}) and slow LU (LUN ${lun1:-?}) appear" bash -c "$(declare -f waitfor); waitfor $dev0 30 && waitfor $dev1 30"
  head -c 4M /dev/urandom >/tmp/svc0.pat
  run "service: 4 MiB written to the zvol LU read back equal" 120 bash -c \
    "dd if=/tmp/svc0.pat of=$dev0 bs=1M oflag=direct status=none && dd if=$dev0 bs=1M count=4 iflag=direct status=none | cmp - /tmp/svc0.pat"
  head -c 1M /dev/urandom >/tmp/svc1.pat
  run "service: 1 MiB pattern at 32 MiB of the slow LU" 120 \
    dd if=/tmp/svc1.pat of="$dev1" bs=1M seek=32 oflag=direct conv=fsync status=none

  section "service: systemctl reload changes the log level"
  check "service: no debug lines at log-level info" bash -c "! journalctl -u stmfd --no-pager -o cat | grep -q level=DEBUG"
  sed -i 's/^log-level: info$/log-level: debug/' /etc/stmfd/stmfd.yaml
  since=$(date '+%Y-%m-%d %H:%M:%S')
  sleep 1
  run "service: systemctl reload stmfd" 60 systemctl reload stmfd
  check "service: reload applied log-level debug" wait_journal "$since" 'change="log-level: debug"' 20
  svclog --since "$since" | indent
  timeout 30 iscsiadm -m discovery -t sendtargets -p "$P1" >/dev/null 2>&1 # a discovery session logs at debug
  check "service: debug lines after the reload" wait_journal "$since" 'level=DEBUG' 20
  check "service: active after reload" test "$(systemctl is-active stmfd)" = active
  # systemd moves the watchdog timestamp on every WATCHDOG=1 (stmfd pings every 15 s).
  for ((i = 0; i < 100; i++)); do
    out=$(systemctl show -p WatchdogTimestampMonotonic --value stmfd)
    [ "$out" != "$wd0" ] && break
    sleep 0.2
  done
  check "service: watchdog pings arrive (timestamp $wd0 -> $out)" test "$out" != "$wd0"

  section "service: systemctl stop drains a read in flight"
  if [ $delay = 1 ]; then
    # From now on every read of the slow LU's backing store takes 3 s.
    dmsetup suspend $SLOWDEV && dmsetup load $SLOWDEV --table \
      "0 $sectors delay /dev/zvol/$POOL/slow 0 3000 /dev/zvol/$POOL/slow 0 0" && dmsetup resume $SLOWDEV
    dmsetup table $SLOWDEV | indent
  fi
  sync
  echo 3 >/proc/sys/vm/drop_caches
  rm -f /tmp/svc1.read /tmp/svc1.rc /tmp/svc1.end
  (dd if="$dev1" of=/tmp/svc1.read bs=64K skip=512 count=1 iflag=direct status=none
    echo $? >/tmp/svc1.rc
    date +%s.%N >/tmp/svc1.end) &
  local ddpid=$!
  if [ $delay = 1 ]; then
    # Stop only once stmfd counts the read in flight on the slow LU (list-stats in_flight): under
    # a loaded host the read may take seconds to leave the initiator, and one not yet sent is not
    # "in flight". The read is one 64 KiB command (3 s in dm-delay): stop must let it finish.
    check "service: stmfd has the read in flight (list-stats in_flight > 0)" bash -c \
      "for ((i = 0; i < 60; i++)); do \"$svcadm\" list-stats -o json slow 2>/dev/null | grep -Eq '\"in_flight\": ?[1-9]' && exit 0; sleep 0.3; done; exit 1"
  else
    sleep 1
  fi
  t_stop=$(date +%s.%N)
  run "service: systemctl stop stmfd" 120 systemctl stop stmfd
  took=$(awk -v a="$t_stop" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  wait $ddpid
  t_end=$(cat /tmp/svc1.end 2>/dev/null || echo 0)
  echo "stop took ${took}s; the read ended $(awk -v a="$t_stop" -v b="$t_end" 'BEGIN{printf "%.1f", b-a}')s after stop began"
  if [ $delay = 1 ]; then
    check "service: the read was in flight when stop began (ended after it)" awk -v a="$t_stop" -v b="$t_end" 'BEGIN{exit !(b > a)}'
  fi
  check "service: the read in flight completed (dd exit $(cat /tmp/svc1.rc 2>/dev/null))" test "$(cat /tmp/svc1.rc 2>/dev/null)" = 0
  check "service: it returned the data written" cmp -n 65536 /tmp/svc1.read /tmp/svc1.pat
  out=$(systemctl show -p Result -p ExecMainStatus -p ActiveState stmfd | tr '\n' ' ')
  check "service: clean stop ($out)" bash -c "grep -q 'Result=success' <<<'$out' && grep -q 'ExecMainStatus=0' <<<'$out'"
  svclog | tail -8 | indent
  check "service: journal has no panic or data race" bash -c "! journalctl -u stmfd --no-pager -o cat | grep -Eq '^panic:|^fatal error:|DATA RACE'"
  timeout 60 iscsiadm -m node -T $SVC_IQN --logout >/dev/null 2>&1
  [ $delay = 1 ] && dmsetup remove $SLOWDEV 2>/dev/null

  section "service: systemd-analyze security stmfd"
  systemd-analyze security --no-pager stmfd.service >"$HOST/systemd-security.txt" 2>&1
  indent <"$HOST/systemd-security.txt" | tail -60
  echo "systemd-analyze security: $(grep -a 'Overall exposure level' "$HOST/systemd-security.txt")"
  return 0
}
if [ -f "$SVC_TAR" ]; then
  section "systemd service from make install: start, readiness, reload, stop drains I/O"
  svc_test || fail "service test stopped early (see above)"
  svclog >"$HOST/stmfd-service.log" 2>&1
else
  skip "systemd service: no $SVC_TAR (run through run-tests.sh)"
fi

echo
if [ "$NFAIL" -gt 0 ]; then
  dump_evidence
  echo
  echo "failed checks:"
  printf '  - %s\n' "${FAILED[@]}"
fi
echo "kernel-initiator: $NPASS passed, $NFAIL failed, $NSKIP skipped ($(el | tr -d ' '))"
[ "$NFAIL" = 0 ]
