#!/bin/bash
# zvol-lu.sh - runs INSIDE the test VM (scripts/testvm/run-vm.sh), as root, cwd /mnt/host.
#
# zvol LUs on real OpenZFS, used by the Linux kernel iSCSI initiator:
#   create-lu -p zvol= (sparse zvol + LU in one step, blk= -> volblocksize), create-lu on an
#   existing zvol; the LU's identity in the zvol's org.costar:lu property; LU size == volsize;
#   VPD B0 granularity / READ CAPACITY (16) exponent from volblocksize; LBPME.
#   mkfs.ext4, mount, files, sha256; fio randwrite + crc32c verify; fstrim and `zfs get used`
#   falls (UNMAP -> BLKDISCARD); SYNCHRONIZE CACHE and wcd=true reach the ZIL (zil_commit_count);
#   modify-lu -s grows volsize online, `iscsiadm --rescan` sees the new size.
#   snapshot-lu + clone-lu (new GUID, data equals the snapshot); zfs snapshot + clone-lu of
#   pool/vol@snap; plain `zfs clone` + import-lu is recognised as a clone (new GUID);
#   zfs send -p | zfs recv under another name: import-lu renews the GUID, -p guid= keeps it.
#   Restart with the pool exported: LUs stay configured, Offline with a reason, and come online
#   by themselves after `zpool import`. import-lu on a fresh state dir keeps the GUID; a copy
#   received under the original name (another host) keeps it too.
#   Pool out of space answers SPACE ALLOCATION FAILED WRITE PROTECT (not a silent error).
#   zfs failing / missing: clear error naming the command and its stderr, nothing left behind.
#   delete-lu --destroy-zvol (refused while snapshots exist, LU kept).
# Every check prints "PASS name" or "FAIL name" (or "SKIP name: why"); the last line is
# "zvol-lu: N passed, M failed, K skipped". Exit 0 only with no FAIL.
# Needs in /mnt/host: stmfd and stmfadm (static). Settings (/mnt/host/test.env):
# STMFD_LOG_LEVEL (default info), FIO_SIZE (default 48M).
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
POOL=tank
FIO_SIZE=${FIO_SIZE:-48M}
export STMFD_SOCKET=$STATE/stmfd.sock
NAME=zvol-lu

# shellcheck source=lib/steps.sh
. "$HOST/steps.sh" # T0, NPASS/NFAIL/NSKIP, section, pass, fail, skip, indent, run, check, waitfor
finish() {
  echo
  if [ "$NFAIL" -gt 0 ]; then
    section "evidence: stmfd log (last 120 lines)"
    tail -120 "$SLOG" 2>/dev/null | indent
    section "evidence: kernel log (iscsi/sd lines, last 40)"
    dmesg | grep -E 'iscsi|sd [0-9]|\[sd[a-z]+\]|I/O error|zfs|ZFS' | tail -40 | indent
    echo
    echo "failed checks:"
    printf '  - %s\n' "${FAILED[@]}"
  fi
  echo "$NAME: $NPASS passed, $NFAIL failed, $NSKIP skipped ($(el | tr -d ' '))"
  [ "$NFAIL" = 0 ]
  exit $?
}

SPID=""
cleanup() {
  umount /mnt/lu 2>/dev/null
  timeout 30 iscsiadm -m node --logout >/dev/null 2>&1
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
    kill -TERM "$SPID"
    sleep 3
    kill -KILL "$SPID" 2>/dev/null
  fi
  cp "$SLOG" "$HOST/stmfd.log" 2>/dev/null
}
trap cleanup EXIT

start_stmfd() { # [env assignments for stmfd...]
  local i from
  touch "$SLOG"
  from=$(($(wc -l <"$SLOG") + 1))
  env "$@" "$STMFD" --demo --demo-size 64M --state-dir "$STATE" --portal "$P1" \
    --log-level "${STMFD_LOG_LEVEL:-info}" >>"$SLOG" 2>&1 &
  SPID=$!
  for ((i = 0; i < 150; i++)); do
    if ! kill -0 "$SPID" 2>/dev/null; then
      wait "$SPID"
      echo "stmfd exited with $? during start-up:"
      tail -n "+$from" "$SLOG" | indent
      SPID=""
      return 1
    fi
    tail -n "+$from" "$SLOG" | grep -q 'stmfd ready' && return 0
    sleep 0.2
  done
  echo "stmfd not ready after 30 s"
  return 1
}
stop_stmfd() {
  local i
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID"
  for ((i = 0; i < 200; i++)); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$SPID" 2>/dev/null; then
    fail "stmfd exits within 40 s of SIGTERM"
    kill -KILL "$SPID"
  fi
  wait "$SPID" 2>/dev/null
  SPID=""
}
adm() { timeout 300 "$STMFADM" "$@"; }
guid_of() { grep -o '[0-9A-Fa-f]\{32\}' <<<"$1" | tail -1; }
lu_field() { # GUID FIELD: a field of stmfadm list-lu -v for one LU
  adm list-lu -v "$1" 2>/dev/null | sed -n "s/^[[:space:]]*$2[[:space:]]*:[[:space:]]*//p" | head -1
}
zget() { zfs get -Hp -o value "$1" "$2" 2>/dev/null; }
dev_of() { # LUN -> /dev/sdX (waits)
  local b=/dev/disk/by-path/ip-$P1-iscsi-$IQN-lun-$1
  waitfor "$b" 30 && readlink -f "$b"
}
wwn_of() { lsblk -dno WWN "$1" 2>/dev/null | tr -d ' ' | tr 'A-F' 'a-f'; }
zil_commits() { awk '$1 == "zil_commit_count" {print $3}' /proc/spl/kstat/zfs/zil; }
rescan() { timeout 60 iscsiadm -m session --rescan >/dev/null 2>&1; udevadm settle -t 30; }
lower() { tr 'A-F' 'a-f' <<<"$1"; }
failed_with() { # RC OUTPUT PATTERN...: the command failed and its output has every pattern
  local rc=$1 out=$2 p
  shift 2
  [ "$rc" != 0 ] || return 1
  for p; do grep -qi -- "$p" <<<"$out" || return 1; done
}

# ---------------------------------------------------------------------------------------------
section "environment"
echo "kernel $(uname -r), zfs $(cat /sys/module/zfs/version 2>/dev/null), $(nproc) CPUs"
for b in "$STMFD" "$STMFADM"; do
  if [ ! -x "$b" ]; then
    fail "$b present"
    finish
  fi
done

section "ZFS pool, iSCSI initiator settings, stmfd"
run "modprobe zfs" 120 modprobe zfs
waitfor /dev/disk/by-id/virtio-scratch 30
run "zpool create $POOL" 120 zpool create -f -o ashift=12 -O compression=off -O atime=off $POOL /dev/disk/by-id/virtio-scratch || finish
sed -i -e 's/^node.session.timeo.replacement_timeout = .*/node.session.timeo.replacement_timeout = 15/' \
  -e 's/^node.conn\[0\].timeo.login_timeout = .*/node.conn[0].timeo.login_timeout = 15/' \
  -e 's/^node.session.initial_login_retry_max = .*/node.session.initial_login_retry_max = 2/' /etc/iscsi/iscsid.conf
modprobe iscsi_tcp
rm -rf "$STATE"
mkdir -p "$STATE" /mnt/lu
if start_stmfd; then pass "stmfd started on $P1"; else fail "stmfd starts"; finish; fi

# ---------------------------------------------------------------------------------------------
section "create-lu -p zvol= (sparse zvol + LU in one step), create-lu on an existing zvol"
out=$(adm create-lu -p zvol=$POOL/z1 -p blk=16384 -p alias=z1 -s 1G 2>&1)
echo "$out" | indent
G1=$(guid_of "$out")
check "create-lu -p zvol=$POOL/z1 -p blk=16384 -s 1G -> GUID ${G1:-none}" test -n "$G1" || finish
zfs get -Hp volsize,volblocksize,refreservation,org.costar:lu $POOL/z1 2>&1 | indent
check "zvol $POOL/z1: volsize 1G" test "$(zget volsize $POOL/z1)" = $((1 << 30))
check "zvol $POOL/z1: volblocksize 16384 (from blk=)" test "$(zget volblocksize $POOL/z1)" = 16384
check "zvol $POOL/z1 is sparse (refreservation 0)" test "$(zget refreservation $POOL/z1)" = 0
meta=$(zget org.costar:lu $POOL/z1)
check "org.costar:lu holds the GUID and the zvol's own name" \
  bash -c "grep -qi '\"guid\":\"$G1\"' <<<'$meta' && grep -q '\"zvol\":\"$POOL/z1\"' <<<'$meta' && grep -q '\"v\":1' <<<'$meta'"
check "list-lu -v: size 1073741824 (LU size == volsize, no in-band header)" test "$(lu_field "$G1" Size)" = 1073741824
check "list-lu -v: data file /dev/zvol/$POOL/z1" test "$(lu_field "$G1" 'Data File')" = /dev/zvol/$POOL/z1

run "zfs create -s -V 512M $POOL/z0" 60 zfs create -s -V 512M -o volblocksize=8k $POOL/z0
udevadm settle -t 30
out=$(adm create-lu -p alias=z0 /dev/zvol/rdsk/$POOL/z0 2>&1) # the illumos spelling
echo "$out" | indent
G0=$(guid_of "$out")
check "create-lu /dev/zvol/rdsk/$POOL/z0 (illumos path) -> ${G0:-none}" test -n "$G0"
check "z0: LU size == volsize (536870912)" test "$(lu_field "$G0" Size)" = 536870912
run "add-view -n 1 $G1" 60 "$STMFADM" add-view -n 1 "$G1"
run "add-view -n 2 $G0" 60 "$STMFADM" add-view -n 2 "$G0"

section "login, identity and geometry"
out=$(timeout 60 iscsiadm -m discovery -t sendtargets -p "$P1" 2>&1)
echo "$out" | indent
run "iscsiadm login" 90 iscsiadm -m node -T "$IQN" -p "$P1" --login || finish
udevadm settle -t 30
D1=$(dev_of 1)
D0=$(dev_of 2)
check "LUN 1 (z1) block device ${D1:-none}" test -b "${D1:-/nonexistent}" || finish
lsblk -o NAME,SIZE,WWN,LOG-SEC,PHY-SEC,MIN-IO,OPT-IO,DISC-GRAN,DISC-MAX "$D1" "${D0:-}" 2>&1 | indent
check "z1: size 1G" test "$(blockdev --getsize64 "$D1")" = $((1 << 30))
check "z1: WWN = GUID" test "$(wwn_of "$D1")" = "0x$(lower "$G1")"
check "z0: WWN = GUID" test "$(wwn_of "$D0")" = "0x$(lower "$G0")"
bl=$(timeout 30 sg_vpd -p bl "$D1" 2>&1)
echo "$bl" | grep -Ei 'granularity|maximum unmap|transfer length' | indent
check "z1: VPD B0 optimal transfer length granularity = volblocksize (32 blocks)" grep -Eq 'Optimal transfer length granularity: 32 blocks' <<<"$bl"
rc16=$(timeout 30 sg_readcap -l "$D1" 2>&1)
echo "$rc16" | indent
check "z1: READ CAPACITY (16): 8 logical blocks per physical block (4 KiB, the ESXi 512e maximum)" grep -Eq 'Logical blocks per physical block exponent=3' <<<"$rc16"
check "z1: READ CAPACITY (16): thin provisioned (LBPME=1)" grep -Eq 'Logical block provisioning: lbpme=1' <<<"$rc16"
check "z1: kernel sees minimum_io_size = volblocksize (16384)" test "$(cat /sys/block/${D1#/dev/}/queue/minimum_io_size)" = 16384
check "z1: kernel sees discards (UNMAP advertised)" test "$(cat /sys/block/${D1#/dev/}/queue/discard_max_bytes)" != 0

# ---------------------------------------------------------------------------------------------
section "file system, fstrim gives space back to the pool"
run "mkfs.ext4 z1" 300 mkfs.ext4 -q -F -E nodiscard "$D1" || finish
run "mount z1" 60 mount -o noatime "$D1" /mnt/lu || finish
run "write files (160 MiB) to z1" 300 bash -c '
  set -e; mkdir -p /mnt/lu/d
  for i in $(seq 1 20); do head -c $(( (RANDOM % 256 + 1) * 1024 )) /dev/urandom >/mnt/lu/d/s$i; done
  head -c 160M /dev/urandom >/mnt/lu/big
  cd /mnt/lu && find . -type f -print0 | sort -z | xargs -0 sha256sum >/tmp/SUMS'
run "sync" 120 sync
zpool sync $POOL
U1=$(zget used $POOL/z1)
rm -f /mnt/lu/big
sed -i '/ \.\/big$/d' /tmp/SUMS
sync # ext4 frees the blocks when the journal commits
run "fstrim z1 (UNMAP of the freed blocks)" 120 fstrim -v /mnt/lu
sync
zpool sync $POOL
sleep 2
U2=$(zget used $POOL/z1)
echo "zfs used of $POOL/z1: $U1 before fstrim, $U2 after"
check "zfs get used fell by more than 100 MiB after fstrim ($U1 -> $U2)" test $((U1 - U2)) -gt $((100 << 20))
run "umount z1" 60 umount /mnt/lu
echo 3 >/proc/sys/vm/drop_caches
run "fsck z1" 300 e2fsck -fn "$D1"
run "remount z1, files intact" 120 bash -c "mount -o noatime '$D1' /mnt/lu && cd /mnt/lu && sha256sum --quiet -c /tmp/SUMS"
umount /mnt/lu

section "raw I/O with verification"
run "fio randwrite 4k-256k qd16 $FIO_SIZE crc32c (z1)" 600 \
  fio --name=rand --filename="$D1" --rw=randwrite --bsrange=4k-256k --size="$FIO_SIZE" --offset=512M \
  --direct=1 --ioengine=libaio --iodepth=16 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
  --randrepeat=0 --output-format=terse --terse-version=3
run "fio seq write 1M qd4 $FIO_SIZE crc32c (z0)" 600 \
  fio --name=seq --filename="$D0" --rw=write --bs=1M --size="$FIO_SIZE" \
  --direct=1 --ioengine=libaio --iodepth=4 --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
  --output-format=terse --terse-version=3

section "SYNCHRONIZE CACHE, FUA and wcd=true reach the ZIL"
c0=$(zil_commits)
run "sg_sync z1 (SYNCHRONIZE CACHE)" 60 sg_sync "$D1"
c1=$(zil_commits)
check "SYNCHRONIZE CACHE committed the ZIL (zil_commit_count $c0 -> $c1)" test "$c1" -gt "$c0"
run "modify-lu -p wcd=true z1" 60 "$STMFADM" modify-lu -p wcd=true "$G1"
c2=$(zil_commits)
run "one O_DIRECT 4 KiB write to z1 (write cache disabled)" 60 dd if=/dev/urandom of="$D1" bs=4k count=1 seek=1000 oflag=direct status=none
c3=$(zil_commits)
check "a write with wcd=true committed the ZIL ($c2 -> $c3)" test "$c3" -gt "$c2"
run "modify-lu -p wcd=false z1" 60 "$STMFADM" modify-lu -p wcd=false "$G1"
check "wcd is stored in the zvol property" bash -c "zfs get -Hp -o value org.costar:lu $POOL/z1 | grep -q '\"wcd\":false'"

# ---------------------------------------------------------------------------------------------
section "online resize: modify-lu -s grows volsize"
dmesg -C
run "modify-lu -s 2G z1" 120 "$STMFADM" modify-lu -s 2G "$G1"
dd if="$D1" of=/dev/null bs=4k count=1 iflag=direct status=none # the next command gets the unit attention
check "the initiator got CAPACITY DATA HAS CHANGED" bash -c "dmesg | grep -q 'Capacity data has changed'"
check "volsize of $POOL/z1 is 2G" test "$(zget volsize $POOL/z1)" = $((2 << 30))
rescan
for _ in 1 2 3 4 5; do [ "$(blockdev --getsize64 "$D1")" = $((2 << 30)) ] && break; sleep 1; rescan; done
check "iscsiadm --rescan: the initiator sees 2G" test "$(blockdev --getsize64 "$D1")" = $((2 << 30))
check "list-lu -v: size 2G" test "$(lu_field "$G1" Size)" = $((2 << 30))
out=$(adm modify-lu -s 1G "$G1" 2>&1)
rc=$?
echo "$out" | indent
check "modify-lu -s smaller than the zvol is refused (exit $rc)" test "$rc" != 0

# ---------------------------------------------------------------------------------------------
section "snapshot-lu and clone-lu"
head -c 16M /dev/urandom >/tmp/pat1
head -c 16M /dev/urandom >/tmp/pat2
run "write pattern 1 to z1" 120 dd if=/tmp/pat1 of="$D1" bs=1M oflag=direct status=none
S1=$(sha256sum </tmp/pat1 | cut -d' ' -f1)
out=$(adm snapshot-lu "$G1" s1 2>&1)
echo "$out" | indent
check "snapshot-lu $G1 s1 -> $POOL/z1@s1" bash -c "zfs list -H -o name $POOL/z1@s1 >/dev/null 2>&1"
run "overwrite z1 with pattern 2" 120 dd if=/tmp/pat2 of="$D1" bs=1M oflag=direct status=none
out=$(adm clone-lu -p alias=c1 "$G1@s1" 2>&1)
echo "$out" | indent
G2=$(grep -o 'Logical unit created: [0-9A-Fa-f]\{32\}' <<<"$out" | grep -o '[0-9A-Fa-f]\{32\}$')
check "clone-lu $G1@s1 -> new LU ${G2:-none}" test -n "$G2" -a "$G2" != "$G1"
check "clone zvol $POOL/z1-s1 exists with origin $POOL/z1@s1" test "$(zget origin $POOL/z1-s1)" = "$POOL/z1@s1"
check "the clone's org.costar:lu names the clone and its new GUID" \
  bash -c "zget() { zfs get -Hp -o value \"\$1\" \"\$2\"; }; m=\$(zget org.costar:lu $POOL/z1-s1); grep -qi '\"guid\":\"$G2\"' <<<\"\$m\" && grep -q '\"zvol\":\"$POOL/z1-s1\"' <<<\"\$m\""
run "zfs snapshot $POOL/z1@ext (outside stmfadm)" 60 zfs snapshot $POOL/z1@ext
out=$(adm clone-lu -p zvol=$POOL/extclone "$POOL/z1@ext" 2>&1)
echo "$out" | indent
G3=$(grep -o 'Logical unit created: [0-9A-Fa-f]\{32\}' <<<"$out" | grep -o '[0-9A-Fa-f]\{32\}$')
check "clone-lu $POOL/z1@ext -> new LU ${G3:-none}" test -n "$G3" -a "$G3" != "$G1" -a "$G3" != "${G2:-x}"
run "add-view -n 3 (clone of s1)" 60 "$STMFADM" add-view -n 3 "${G2:-none}"
run "add-view -n 4 (clone of ext)" 60 "$STMFADM" add-view -n 4 "${G3:-none}"
rescan
D2=$(dev_of 3)
D3=$(dev_of 4)
check "clone LU (LUN 3) has the clone's GUID as WWN" test "$(wwn_of "${D2:-/x}")" = "0x$(lower "${G2:-x}")"
sum=$(dd if="${D2:-/x}" bs=1M count=16 iflag=direct status=none | sha256sum | cut -d' ' -f1)
check "clone of s1 holds pattern 1 (the snapshot's data)" test "$sum" = "$S1"
sum=$(dd if="${D3:-/x}" bs=1M count=16 iflag=direct status=none | sha256sum | cut -d' ' -f1)
check "clone of ext holds pattern 2" test "$sum" = "$(sha256sum </tmp/pat2 | cut -d' ' -f1)"

section "plain zfs clone + import-lu: recognised as a clone"
run "zfs clone $POOL/z1@s1 $POOL/manual" 60 zfs clone $POOL/z1@s1 $POOL/manual
udevadm settle -t 30
out=$(adm import-lu /dev/zvol/$POOL/manual 2>&1)
echo "$out" | indent
G4=$(guid_of "$out")
check "import-lu of a plain zfs clone gives a new GUID (${G4:-none} != $G1)" test -n "$G4" -a "$G4" != "$G1"
run "delete-lu --destroy-zvol (manual clone)" 120 "$STMFADM" delete-lu --destroy-zvol "${G4:-none}"
check "$POOL/manual is destroyed" bash -c "! zfs list $POOL/manual >/dev/null 2>&1"

section "zfs send -p | zfs recv under another name"
run "zfs send -p $POOL/z1@s1 | zfs recv $POOL/recv1" 300 bash -c "zfs send -p $POOL/z1@s1 | zfs recv $POOL/recv1"
udevadm settle -t 30
out=$(adm import-lu /dev/zvol/$POOL/recv1 2>&1)
echo "$out" | indent
G5=$(guid_of "$out")
check "import-lu of a copy received under another name renews the GUID (${G5:-none})" test -n "$G5" -a "$G5" != "$G1"
run "delete-lu (recv1)" 60 "$STMFADM" delete-lu "${G5:-none}"
GX=600144F0C0A80101000067A1B2C3F00D
out=$(adm import-lu -p guid=$GX /dev/zvol/$POOL/recv1 2>&1)
echo "$out" | indent
check "import-lu -p guid=$GX keeps the GUID given" test "$(guid_of "$out")" = "$GX"
check "... and it is stored in the zvol" bash -c "zfs get -Hp -o value org.costar:lu $POOL/recv1 | grep -qi '$GX'"

section "delete-lu --destroy-zvol refuses a zvol with snapshots"
out=$(adm delete-lu --destroy-zvol "$G1" 2>&1)
rc=$?
echo "$out" | indent
check "delete-lu --destroy-zvol $G1 fails (snapshots exist) with zfs's message" failed_with "$rc" "$out" "zfs destroy"
check "... and the LU is still there, online" test "$(lu_field "$G1" 'Operational Status')" = Online

# ---------------------------------------------------------------------------------------------
section "pool out of space: SPACE ALLOCATION FAILED WRITE PROTECT"
truncate -s 192M /tmp/small.img
run "zpool create small (192 MiB file vdev)" 60 zpool create -f small /tmp/small.img
out=$(adm create-lu -p zvol=small/v -s 1G 2>&1)
echo "$out" | indent
G6=$(guid_of "$out")
if check "create-lu -p zvol=small/v -s 1G (thin) -> ${G6:-none}" test -n "$G6"; then
  adm add-view -n 5 "$G6" >/dev/null
  rescan
  D6=$(dev_of 5)
  dmesg -C
  out=$(timeout 300 dd if=/dev/urandom of="${D6:-/x}" bs=1M count=400 oflag=direct status=none 2>&1)
  rc=$?
  echo "$out" | indent
  check "writing 400 MiB to a 1G thin LU on a 192 MiB pool fails (dd exit $rc)" test "$rc" != 0
  dmesg | grep -Ei 'sense|space allocation|protect' | head -5 | indent
  check "the initiator got DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT" bash -c "dmesg | grep -qi 'space allocation failed write protect'"
  check "stmfd logged the full pool" grep -q 'backing store is full' "$SLOG"
fi

section "zfs failing: clear error, nothing half-made"
out=$(adm create-lu -p zvol=nopool/x -s 1G 2>&1)
rc=$?
echo "$out" | indent
check "create-lu -p zvol=nopool/x fails naming the zfs command and its stderr" \
  failed_with "$rc" "$out" "zfs create" "no such pool"
out=$(adm create-lu -p zvol=$POOL/z1 -s 1G 2>&1)
rc=$?
echo "$out" | indent
check "create-lu -p zvol= of a zvol an LU uses fails (in use)" failed_with "$rc" "$out" "in use"
check "... and $POOL/z1 still belongs to $G1" bash -c "zfs get -Hp -o value org.costar:lu $POOL/z1 | grep -qi '$G1'"
zfs create -s -V 64M $POOL/other
out=$(adm create-lu -p zvol=$POOL/other -s 64M 2>&1)
rc=$?
echo "$out" | indent
check "create-lu -p zvol= of an existing zvol fails with zfs's 'already exists'" failed_with "$rc" "$out" "already exists"
check "... and that zvol is left alone (not destroyed)" bash -c "zfs list $POOL/other >/dev/null 2>&1"
out=$(adm create-lu -p zvol=$POOL/half -p guid="$G1" -s 64M 2>&1)
echo "$out" | indent
check "create-lu -p zvol= with a GUID in use fails and leaves no zvol behind" bash -c "! zfs list $POOL/half >/dev/null 2>&1"

# ---------------------------------------------------------------------------------------------
section "restart with the pool exported: LUs wait offline, come online after zpool import"
SUM1=$(dd if="$D1" bs=1M count=16 iflag=direct status=none | sha256sum | cut -d' ' -f1)
run "logout" 60 iscsiadm -m node -T "$IQN" --logout
stop_stmfd
run "zpool export $POOL" 120 zpool export $POOL
if start_stmfd; then pass "stmfd restarts without the pool"; else fail "stmfd restarts without the pool"; finish; fi
st=$(lu_field "$G1" 'Operational Status')
det=$(adm list-lu -v "$G1" 2>&1)
echo "$det" | indent
check "z1 is configured and Offline while its pool is missing ($st)" test "$st" = Offline
check "list-lu -v says why (waiting for the zvol)" grep -qi 'waiting for zvol' <<<"$det"
run "zpool import $POOL" 120 zpool import -d /dev/disk/by-id $POOL
ok=0
for _ in $(seq 1 60); do
  [ "$(lu_field "$G1" 'Operational Status')" = Online ] && [ "$(lu_field "${G2:-x}" 'Operational Status')" = Online ] && { ok=1; break; }
  sleep 1
done
check "z1 and its clone come online by themselves after zpool import (no restart)" test $ok = 1
run "login again" 90 iscsiadm -m node -T "$IQN" -p "$P1" --login
udevadm settle -t 30
D1=$(dev_of 1)
check "z1 keeps its GUID" test "$(wwn_of "${D1:-/x}")" = "0x$(lower "$G1")"
sum=$(dd if="${D1:-/x}" bs=1M count=16 iflag=direct status=none | sha256sum | cut -d' ' -f1)
check "z1 keeps its data" test "$sum" = "$SUM1"
run "logout" 60 iscsiadm -m node -T "$IQN" --logout
stop_stmfd

section "fresh state dir: import-lu restores the GUID; a copy received under the same name keeps it"
rm -rf "$STATE"
mkdir -p "$STATE"
if start_stmfd; then pass "stmfd starts on a fresh state dir"; else fail "stmfd starts on a fresh state dir"; finish; fi
out=$(adm import-lu /dev/zvol/$POOL/z1 2>&1)
echo "$out" | indent
check "import-lu /dev/zvol/$POOL/z1 on a fresh state dir keeps $G1" test "$(guid_of "$out")" = "$G1"
run "delete-lu $G1" 60 "$STMFADM" delete-lu "$G1"
stop_stmfd
run "zfs send -p $POOL/z1@s1 > stream; destroy $POOL/z1 and its dependents; zfs recv $POOL/z1 < stream (another host)" 300 \
  bash -c "zfs send -p $POOL/z1@s1 >/tmp/z1.stream && zfs destroy -R $POOL/z1 && zfs recv $POOL/z1 </tmp/z1.stream && rm -f /tmp/z1.stream"
udevadm settle -t 30
rm -rf "$STATE"
mkdir -p "$STATE"
start_stmfd || { fail "stmfd starts"; finish; }
out=$(adm import-lu /dev/zvol/$POOL/z1 2>&1)
echo "$out" | indent
check "a copy received under the LU's own name keeps its GUID ($G1)" test "$(guid_of "$out")" = "$G1"
stop_stmfd

section "zfs command missing"
if start_stmfd PATH=/nonexistent; then
  out=$(adm create-lu -p zvol=$POOL/nozfs -s 64M 2>&1)
  rc=$?
  echo "$out" | indent
  check "without a zfs command create-lu -p zvol= fails saying so, naming the command it ran" \
    failed_with "$rc" "$out" "zfs command is not available" "\"zfs " "executable file not found"
  stop_stmfd
else
  fail "stmfd starts without zfs in PATH"
fi

check "stmfd log has no panic or data race" bash -c "! grep -Eq '^panic:|^fatal error:|DATA RACE' '$SLOG'"
finish
