#!/usr/bin/env bash
# build-image.sh - build (once) and cache the Debian bookworm VM image the VM tests boot.
#
# Usage: scripts/testvm/build-image.sh [--force] [--check] [-h|--help]
#   (no flag)  build unless an image from the current recipe is cached (then exit 0 at once)
#   --force    rebuild even if the cached image is current
#   --check    only report whether the cached image is current (exit 0) or not (exit 83)
#
# The image: debootstrap bookworm (minbase, main+contrib), the stock linux-image-amd64 kernel,
# zfs-dkms built by dkms for that kernel, zfsutils-linux, open-iscsi, multipath-tools, fio,
# sg3-utils, lsscsi, e2fsprogs. The guest boots straight into costar-testvm-runner.service, which
# mounts the host share (9p) at /mnt/host, runs /mnt/host/test.sh as root, writes test.log, rc,
# dmesg.txt and journal.txt into the share and powers off. No network device, no ZFS auto-import,
# tgt not installed (so :3260 is free), multipathd with find_multipaths strict.
#
# Output in $COSTAR_TESTVM_CACHE/image (default /var/cache/costar-testvm/image): rootfs.img (raw
# ext4, sparse, read-only: every run boots a qcow2 overlay of it), vmlinuz, initrd.img, image.info
# and stamp (the recipe hash: a hash of this file and COSTAR_TESTVM_EXTRA_PKGS; when it changes the
# image is rebuilt). A failed build keeps $CACHE/build and resumes finished phases next time.
#
# Needs root, network access to a Debian mirror, about 6 GiB free in the cache dir. Installs its
# host tools with apt-get when missing: debootstrap, e2fsprogs, qemu-system-x86, qemu-utils.
# Takes about 8 minutes (most of it the zfs dkms build); later calls return at once.
#
# Environment: COSTAR_TESTVM_CACHE, COSTAR_TESTVM_MIRROR, COSTAR_TESTVM_SECURITY_MIRROR,
#   COSTAR_TESTVM_EXTRA_PKGS (more guest packages). Exit codes: see scripts/testvm/lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^set -/p' "$0" | grep '^#' | grep -v '^# shellcheck' | sed 's/^# \{0,1\}//'; }

FORCE=0 CHECK=0
for arg in "$@"; do
  case $arg in
    --force) FORCE=1 ;;
    --check) CHECK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-image: unknown argument: $arg" >&2; usage >&2; exit $EX_USAGE ;;
  esac
done

HASH=$(tv_recipe_hash)
if [ $CHECK = 1 ]; then
  if tv_image_ok; then echo "image current ($HASH) in $TESTVM_IMAGE"; exit 0; fi
  echo "no current image in $TESTVM_IMAGE (recipe $HASH)"; exit $EX_NOIMAGE
fi
if [ $FORCE = 0 ] && tv_image_ok; then
  tv_log "cached image is current (recipe $HASH): $TESTVM_IMAGE"
  exit 0
fi

[ "$(id -u)" = 0 ] || tv_die $EX_NOTROOT "building the VM image needs root (debootstrap, chroot, mounts); run: sudo $0"
tv_need_tools debootstrap:debootstrap mkfs.ext4:e2fsprogs chroot:coreutils flock:util-linux \
  qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils
mkdir -p "$TESTVM_CACHE"
tv_need_space "$TESTVM_CACHE" "$TESTVM_BUILD_MIN_MB" "building the VM image"

# One build at a time; runs (run-vm.sh) hold the lock shared while they boot.
exec 9>"$TESTVM_LOCK"
if ! flock -w 3600 9; then tv_die $EX_LOCKED "cache $TESTVM_CACHE is locked by another build/run for over an hour"; fi
if [ $FORCE = 0 ] && tv_image_ok; then
  tv_log "another process built the image meanwhile: $TESTVM_IMAGE"
  exit 0
fi

# ==== recipe: from here on, every non-comment line decides the image (tv_recipe_hash) ====
MIRROR=${COSTAR_TESTVM_MIRROR:-$(tv_host_mirror main)} ||
  tv_die $EX_NOTOOL "the host's apt configuration names no Debian source; set COSTAR_TESTVM_MIRROR"
SECMIRROR=${COSTAR_TESTVM_SECURITY_MIRROR:-$(tv_host_mirror security)} ||
  tv_die $EX_NOTOOL "the host's apt configuration names no Debian security source; set COSTAR_TESTVM_SECURITY_MIRROR"
SUITE=bookworm
GUEST_PKGS=(linux-image-amd64 linux-headers-amd64 systemd-sysv udev kmod iproute2 procps util-linux
  open-iscsi multipath-tools fio sg3-utils lsscsi e2fsprogs ca-certificates tcpdump strace less)
# shellcheck disable=SC2206
EXTRA_PKGS=(${COSTAR_TESTVM_EXTRA_PKGS:-})
ZFS_PKGS=(dkms zfs-dkms zfsutils-linux)

WORK=$TESTVM_CACHE/build
R=$WORK/rootfs
NEW=$TESTVM_CACHE/image.new
T0=$(date +%s)
step() { echo "[build-image +$(($(date +%s) - T0))s] $*" >&2; }
fail() {
  local log=$1
  shift
  echo "build-image: FAILED: $*" >&2
  [ -f "$log" ] && { echo "--- last lines of $log:" >&2; tail -40 "$log" >&2; }
  echo "build-image: the work dir $WORK is kept; the next run resumes finished phases" >&2
  exit $EX_BUILD
}

umount_chroot() {
  local m
  for m in run dev/pts dev sys proc; do
    if mountpoint -q "$R/$m" 2>/dev/null; then umount -l "$R/$m" || true; fi
  done
}
trap umount_chroot EXIT

# Resume a failed build only if it was for the same recipe.
if [ -d "$WORK" ] && [ "$(cat "$WORK/recipe" 2>/dev/null)" != "$HASH" ]; then
  umount_chroot
  rm -rf "$WORK"
fi
mkdir -p "$WORK"
echo "$HASH" >"$WORK/recipe"
rm -rf "$NEW"
step "recipe $HASH, cache $TESTVM_CACHE, mirror $MIRROR"

# --- phase 1: debootstrap
if [ ! -e "$WORK/debootstrap.done" ]; then
  step "debootstrap $SUITE (minbase) -> $R"
  umount_chroot
  rm -rf "$R"
  timeout 1800 debootstrap --variant=minbase --components=main,contrib "$SUITE" "$R" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || fail "$WORK/debootstrap.log" "debootstrap"
  touch "$WORK/debootstrap.done"
fi

cat >"$R/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main contrib
deb $MIRROR $SUITE-updates main contrib
deb $SECMIRROR $SUITE-security main contrib
EOF
# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
echo costar-testvm >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcostar-testvm\n' >"$R/etc/hosts"
umount_chroot
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
mount -t tmpfs tmpfs "$R/run"
in_chroot() { DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 chroot "$R" "$@"; }

# --- phase 2: kernel and tools
if [ ! -e "$WORK/packages.done" ]; then
  step "apt-get install ${GUEST_PKGS[*]} ${EXTRA_PKGS[*]}"
  timeout 600 env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 chroot "$R" apt-get update -q \
    >"$WORK/apt.log" 2>&1 || fail "$WORK/apt.log" "apt-get update in the chroot"
  timeout 1800 env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 chroot "$R" \
    apt-get install -y -q --no-install-recommends "${GUEST_PKGS[@]}" "${EXTRA_PKGS[@]}" \
    >>"$WORK/apt.log" 2>&1 || fail "$WORK/apt.log" "installing guest packages"
  touch "$WORK/packages.done"
fi
KVER=$(find "$R/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
[ -n "$KVER" ] || fail /dev/null "no kernel in $R/lib/modules"
step "guest kernel $KVER"

# --- phase 3: ZFS via dkms, built for the guest kernel (not the host's)
if [ ! -e "$WORK/zfs.done" ]; then
  step "apt-get install ${ZFS_PKGS[*]} (dkms builds zfs for $KVER; ~5 min)"
  echo "zfs-dkms zfs-dkms/note-incompatible-licenses note" | in_chroot debconf-set-selections
  timeout 3600 env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 chroot "$R" \
    apt-get install -y -q --no-install-recommends "${ZFS_PKGS[@]}" \
    >>"$WORK/apt.log" 2>&1 || fail "$WORK/apt.log" "installing zfs-dkms"
  # The postinst builds for `uname -r` (the host kernel, whose headers are not
  # in the chroot); make sure the module exists for the guest kernel.
  if ! in_chroot dkms status -k "$KVER" 2>/dev/null | grep installed >/dev/null; then
    step "dkms autoinstall -k $KVER"
    timeout 3600 env LC_ALL=C.UTF-8 chroot "$R" dkms autoinstall -k "$KVER" \
      >"$WORK/dkms.log" 2>&1 || fail "$WORK/dkms.log" "dkms build of zfs for $KVER"
  fi
  [ -n "$(find "$R/lib/modules/$KVER" -name 'zfs.ko*')" ] || fail "$WORK/apt.log" "zfs.ko was not built for $KVER"
  touch "$WORK/zfs.done"
fi
ZFSVER=$(in_chroot dpkg-query -W -f='${Version}' zfsutils-linux)
step "zfs $ZFSVER built for $KVER"

# --- phase 4: guest configuration (cheap; redone on every resume)
step "configuring the guest"
rm -f "$R/usr/sbin/policy-rc.d"
echo 'LABEL=costar-testvm / ext4 rw,errors=remount-ro 0 1' >"$R/etc/fstab"
in_chroot passwd -d root >/dev/null
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$R/etc/systemd/journald.conf.d/costar-testvm.conf"
grep -qx 9pnet_virtio "$R/etc/modules" || echo 9pnet_virtio >>"$R/etc/modules"

install -m 0755 /dev/stdin "$R/usr/local/sbin/costar-testvm-runner" <<'EOF'
#!/bin/bash
# costar-testvm-runner: mount the host share, run /mnt/host/test.sh as root (cwd /mnt/host),
# keep its output in /mnt/host/test.log and on the console, write its exit code to
# /mnt/host/rc, save dmesg and the journal next to it, power off.
# Kernel command line: costar.timeout=SECONDS bounds the test (default 1800);
# costar.noshutdown=1 leaves the VM up (debugging via a serial getty).
con=/dev/console
say() { echo "COSTAR-TESTVM: $*" >$con; }
mkdir -p /mnt/host
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt/host; then
  say "cannot mount the 9p host share"; sync; poweroff -f
fi
limit=$(sed -n 's/.*costar\.timeout=\([0-9]*\).*/\1/p' /proc/cmdline)
say "test start uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
rc=127
if [ -f /mnt/host/test.sh ]; then
  cd /mnt/host || exit 1
  timeout -k 10 "${limit:-1800}" bash /mnt/host/test.sh 2>&1 | tee /mnt/host/test.log >$con
  rc=${PIPESTATUS[0]}
else
  say "no /mnt/host/test.sh in the share"
fi
dmesg -T >/mnt/host/dmesg.txt 2>&1 || true
journalctl -b --no-pager -o short-monotonic >/mnt/host/journal.txt 2>&1 || true
echo "$rc" >/mnt/host/rc
say "test end rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
grep -q 'costar.noshutdown=1' /proc/cmdline && exit 0
umount /mnt/host || true
poweroff -f
EOF
cat >"$R/etc/systemd/system/costar-testvm-runner.service" <<'EOF'
[Unit]
Description=costar testvm: run /mnt/host/test.sh, then power off
After=local-fs.target systemd-modules-load.service iscsid.socket multipathd.service
Wants=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/costar-testvm-runner
StandardOutput=journal
StandardError=journal
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
in_chroot systemctl enable costar-testvm-runner.service >/dev/null 2>&1
# Faster, quieter boot: every run gets a fresh scratch disk, so no ZFS import
# or mount at boot (that also drops systemd-udev-settle, slow under TCG); no
# timers; no VGA gettys (serial-getty@ttyS0 stays for debugging).
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  dpkg-db-backup.timer zfs.target zfs-import.target zfs-import-cache.service zfs-import-scan.service \
  zfs-mount.service zfs-share.service zfs-zed.service zfs-volumes.target zfs-volume-wait.service \
  zfs-load-module.service; do
  in_chroot systemctl disable "$u" >/dev/null 2>&1 || true
done
for u in systemd-networkd-wait-online.service getty@tty1.service getty-static.service \
  systemd-udev-settle.service; do
  in_chroot systemctl mask "$u" >/dev/null 2>&1 || true
done
# multipath assembles only WWIDs added with `multipath -a`; never virtio
# disks or zvols.
cat >"$R/etc/multipath.conf" <<'EOF'
defaults {
    user_friendly_names no
    find_multipaths strict
}
blacklist {
    devnode "^(vd|zd)[a-z0-9]*"
}
EOF
# Small initramfs: root is ext4 on virtio-blk, found by label.
sed -i 's/^MODULES=.*/MODULES=list/' "$R/etc/initramfs-tools/initramfs.conf"
for m in virtio_pci virtio_blk ext4 crc32c_generic; do
  grep -qx "$m" "$R/etc/initramfs-tools/modules" || echo "$m" >>"$R/etc/initramfs-tools/modules"
done
in_chroot update-initramfs -u -k "$KVER" >"$WORK/initramfs.log" 2>&1 || fail "$WORK/initramfs.log" "update-initramfs"
in_chroot lsinitramfs "/boot/initrd.img-$KVER" >"$WORK/initramfs.list"
grep virtio_blk "$WORK/initramfs.list" >/dev/null || fail "$WORK/initramfs.log" "virtio_blk missing from the initramfs"
in_chroot apt-get clean
rm -rf "$R/var/lib/apt/lists/"* "$R/var/cache/debconf/"*-old
# Empty machine-id: systemd makes a fresh one per boot.
: >"$R/etc/machine-id"
umount_chroot

# --- phase 5: the image files
step "mkfs.ext4 -d $R -> rootfs.img"
mkdir -p "$NEW"
cp "$R/boot/vmlinuz-$KVER" "$NEW/vmlinuz"
cp "$R/boot/initrd.img-$KVER" "$NEW/initrd.img"
USED_MB=$(du -sm "$R" | cut -f1)
IMG_MB=$((USED_MB + 2048)) # room for the demo LU, ext4 tests and logs in the overlay
truncate -s "${IMG_MB}M" "$NEW/rootfs.img"
mkfs.ext4 -q -F -L costar-testvm -d "$R" "$NEW/rootfs.img" >"$WORK/mkfs.log" 2>&1 || fail "$WORK/mkfs.log" "mkfs.ext4 -d"
T_TOTAL=$(($(date +%s) - T0))
cat >"$NEW/image.info" <<EOF
recipe=$HASH
built=$(date -u +%FT%TZ)
suite=$SUITE
kernel=$KVER
zfs=$ZFSVER
open_iscsi=$(in_chroot dpkg-query -W -f='${Version}' open-iscsi)
multipath_tools=$(in_chroot dpkg-query -W -f='${Version}' multipath-tools)
fio=$(in_chroot dpkg-query -W -f='${Version}' fio)
rootfs_used_mb=$USED_MB
image_apparent_mb=$IMG_MB
image_allocated_mb=$(du -m "$NEW/rootfs.img" | cut -f1)
build_seconds=$T_TOTAL
EOF
echo "$HASH" >"$NEW/stamp"
chmod 0444 "$NEW"/*
# Swap in atomically enough: a run that already opened the old image keeps its inode.
rm -rf "$TESTVM_IMAGE.old"
[ -d "$TESTVM_IMAGE" ] && mv "$TESTVM_IMAGE" "$TESTVM_IMAGE.old"
mv "$NEW" "$TESTVM_IMAGE"
rm -rf "$TESTVM_IMAGE.old" "$WORK"
step "done in ${T_TOTAL}s: $TESTVM_IMAGE"
cat "$TESTVM_IMAGE/image.info" >&2
