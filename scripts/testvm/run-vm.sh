#!/usr/bin/env bash
# run-vm.sh - boot the cached test VM, run one test script inside it as root, return its exit code.
#
# Usage: scripts/testvm/run-vm.sh [options] TEST_SCRIPT [FILE...]
#   TEST_SCRIPT becomes /mnt/host/test.sh in the VM (run with bash, cwd /mnt/host). Each FILE (e.g.
#   a static stmfd binary) is copied next to it: /mnt/host/<basename>. /mnt/host is a 9p share of
#   <rundir>/share on the host, so whatever the test writes there comes back out.
# Options:
#   -t SECONDS  hard limit for the whole VM run (default 1200); the test itself gets SECONDS-120
#   -m MEM      guest memory (default 3G)
#   -c CPUS     guest vCPUs (default 2)
#   -d SIZE     sparse scratch disk, /dev/vdb = /dev/disk/by-id/virtio-scratch (default 8G; 0 = none)
#   -o DIR      use DIR as the run directory and keep it
#   -k          keep the run directory even on success
#   -q          do not stream the test output while it runs
#   -e VAR=VAL  put VAR=VAL into <share>/test.env (repeatable); tests source it if they want
#   -h          this help
# Run directory (default: new dir under $COSTAR_TESTVM_RUNS, /tmp/costar-testvm): share/ (test.sh,
#   your files, test.log, rc, dmesg.txt, journal.txt), console.log (serial console: kernel, systemd,
#   test output), root.qcow2 (this run's writes on top of the read-only cached rootfs.img),
#   scratch.img. It is deleted on success unless -k/-o; kept (and named) on failure.
# The VM has no network device (-nic none): target and initiator talk over the guest's loopback
#   (127.0.0.1, 127.0.0.2, ... are all local). Accel: COSTAR_TESTVM_ACCEL=auto picks KVM only with
#   real VT-x/AMD-V and a normal kvm module; on a KVM-PVM host (kvm_pvm loaded, e.g. nested in
#   Firecracker) stock kernels hang early, so it uses TCG (software emulation, ~10x slower).
# Extra kernel arguments: COSTAR_TESTVM_APPEND (e.g. costar.noshutdown=1). COSTAR_TESTVM_VERBOSE=1
#   shows the whole boot log on the console instead of `quiet`.
# Exit codes: the test's own exit code; 124 VM timeout; 125 the VM ended without an exit code (boot
#   failure, panic); 126 setup error; 80-89 cannot run here (see lib.sh).
# shellcheck disable=SC2054 # qemu's comma-separated options
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^set -/p' "$0" | grep '^#' | grep -v '^# shellcheck' | sed 's/^# \{0,1\}//'; }

TIMEOUT=1200 MEM=3G CPUS=2 SCRATCH=8G RUNDIR="" KEEP=0 QUIET=0 TESTENV=()
while getopts "t:m:c:d:o:kqe:h" o; do
  case $o in
    t) TIMEOUT=$OPTARG ;;
    m) MEM=$OPTARG ;;
    c) CPUS=$OPTARG ;;
    d) SCRATCH=$OPTARG ;;
    o) RUNDIR=$OPTARG KEEP=1 ;;
    k) KEEP=1 ;;
    q) QUIET=1 ;;
    e) [[ $OPTARG =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || tv_die "$EX_USAGE" "-e wants VAR=VALUE, got $OPTARG"
      TESTENV+=("$OPTARG") ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit "$EX_USAGE" ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { usage >&2; exit "$EX_USAGE"; }
TEST=$1
shift
[ -f "$TEST" ] || tv_die "$EX_USAGE" "no such test script: $TEST"
for f in "$@"; do [ -e "$f" ] || tv_die "$EX_USAGE" "no such file: $f"; done
if ! [[ $TIMEOUT =~ ^[0-9]+$ ]] || [ "$TIMEOUT" -lt 180 ]; then tv_die "$EX_USAGE" "-t needs at least 180 seconds"; fi

tv_need_tools qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils flock:util-linux
mkdir -p "$TESTVM_RUNS"
tv_need_space "$TESTVM_RUNS" "$TESTVM_RUN_MIN_MB" "a VM run"
[ -d "$TESTVM_CACHE" ] || tv_die "$EX_NOIMAGE" "no VM image cache at $TESTVM_CACHE; run scripts/testvm/build-image.sh (as root, ~8 min)"

# Shared lock: a rebuild waits until this run has started from the image.
exec 9>"$TESTVM_LOCK"
flock -s -w 3600 9 || tv_die "$EX_LOCKED" "cache $TESTVM_CACHE is locked (image build in progress?)"
tv_image_ok || tv_die "$EX_NOIMAGE" "no current VM image in $TESTVM_IMAGE (recipe $(tv_recipe_hash)); run scripts/testvm/build-image.sh"

ACCEL=${COSTAR_TESTVM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
  ACCEL=tcg
  if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; fi
fi
case $ACCEL in
  kvm) [ -w /dev/kvm ] || tv_die "$EX_VMSETUP" "COSTAR_TESTVM_ACCEL=kvm but /dev/kvm is not usable"
    ACCEL_ARGS=(-machine q35,accel=kvm -cpu host) ;;
  tcg) ACCEL_ARGS=(-machine q35 -accel tcg,thread=multi,tb-size=512 -cpu max) ;;
  *) tv_die "$EX_USAGE" "COSTAR_TESTVM_ACCEL must be auto, kvm or tcg" ;;
esac

if [ -z "$RUNDIR" ]; then
  RUNDIR=$(mktemp -d "$TESTVM_RUNS/run.XXXXXX") || tv_die "$EX_VMSETUP" "cannot create a run dir in $TESTVM_RUNS"
fi
mkdir -p "$RUNDIR/share" || tv_die "$EX_VMSETUP" "cannot create $RUNDIR/share"
rm -f "$RUNDIR/share/"{rc,test.log,test.env,dmesg.txt,journal.txt} "$RUNDIR/console.log" "$RUNDIR/root.qcow2" "$RUNDIR/scratch.img"
cp "$TEST" "$RUNDIR/share/test.sh" || tv_die "$EX_VMSETUP" "cannot copy $TEST"
for f in "$@"; do cp -a "$f" "$RUNDIR/share/" || tv_die "$EX_VMSETUP" "cannot copy $f"; done
for e in "${TESTENV[@]}"; do printf '%s=%q\n' "${e%%=*}" "${e#*=}"; done >"$RUNDIR/share/test.env"

# The cached root image is only ever a read-only backing file.
qemu-img create -q -f qcow2 -F raw -b "$TESTVM_IMAGE/rootfs.img" "$RUNDIR/root.qcow2" ||
  tv_die "$EX_VMSETUP" "qemu-img create overlay failed"
DRIVES=(-drive "file=$RUNDIR/root.qcow2,format=qcow2,if=none,id=root,cache=unsafe"
  -device virtio-blk-pci,drive=root,serial=root)
if [ "$SCRATCH" != 0 ]; then
  truncate -s "$SCRATCH" "$RUNDIR/scratch.img" || tv_die "$EX_VMSETUP" "cannot create scratch disk"
  DRIVES+=(-drive "file=$RUNDIR/scratch.img,format=raw,if=none,id=scratch,cache=unsafe,discard=unmap"
    -device virtio-blk-pci,drive=scratch,serial=scratch)
fi

QUIETARGS="quiet loglevel=4 systemd.show_status=false"
[ "${COSTAR_TESTVM_VERBOSE:-0}" = 1 ] && QUIETARGS=""
APPEND="root=LABEL=costar-testvm rw console=ttyS0,115200 panic=1 costar.timeout=$((TIMEOUT - 120)) $QUIETARGS ${COSTAR_TESTVM_APPEND:-}"

tv_log "booting VM (accel=$ACCEL, ${CPUS} vCPU, $MEM, timeout ${TIMEOUT}s), run dir $RUNDIR"
T0=$(date +%s)
# -no-reboot + panic=1: a panic or reboot ends qemu instead of looping.
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
  "${ACCEL_ARGS[@]}" -m "$MEM" -smp "$CPUS" \
  -nographic -nodefaults -monitor none -serial "file:$RUNDIR/console.log" \
  -no-reboot -nic none \
  -kernel "$TESTVM_IMAGE/vmlinuz" -initrd "$TESTVM_IMAGE/initrd.img" -append "$APPEND" \
  "${DRIVES[@]}" \
  -virtfs "local,path=$RUNDIR/share,mount_tag=hostshare,security_model=none,id=hostshare" \
  -device virtio-rng-pci \
  >"$RUNDIR/qemu.out" 2>&1 &
QPID=$!
TPID=""
if [ "$QUIET" = 0 ]; then
  touch "$RUNDIR/share/test.log"
  tail -n +1 -F --pid="$QPID" "$RUNDIR/share/test.log" 2>/dev/null &
  TPID=$!
fi
trap 'kill "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null; exit 130' INT TERM
wait "$QPID"
QRC=$?
trap - INT TERM
[ -n "$TPID" ] && wait "$TPID" 2>/dev/null
ELAPSED=$(($(date +%s) - T0))

if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
  RC=$EX_VMTIMEOUT
  tv_log "VM TIMEOUT after ${TIMEOUT}s"
elif [ -s "$RUNDIR/share/rc" ]; then
  RC=$(cat "$RUNDIR/share/rc")
else
  RC=$EX_VMDIED
  tv_log "VM ended (qemu exit $QRC) without a test exit code: boot failure or panic; last console lines:"
  tail -25 "$RUNDIR/console.log" >&2 2>/dev/null
fi
if [ -s "$RUNDIR/qemu.out" ]; then
  tv_log "qemu said:"
  cat "$RUNDIR/qemu.out" >&2
  if [ "$RC" = "$EX_VMDIED" ] && [ ! -s "$RUNDIR/console.log" ]; then RC=$EX_VMSETUP; fi
fi
START=$(grep -ao 'COSTAR-TESTVM: test start uptime=[0-9.]*' "$RUNDIR/console.log" 2>/dev/null | grep -o '[0-9.]*$')
END=$(grep -ao 'COSTAR-TESTVM: test end rc=[0-9]* uptime=[0-9.]*' "$RUNDIR/console.log" 2>/dev/null | grep -o '[0-9.]*$')
tv_log "rc=$RC accel=$ACCEL wall=${ELAPSED}s boot=${START:-?}s test_end=${END:-?}s (guest uptime)"
if [ "$RC" = 0 ] && [ "$KEEP" = 0 ]; then
  rm -rf "$RUNDIR"
else
  tv_log "run dir kept: $RUNDIR (share/test.log, share/dmesg.txt, share/journal.txt, console.log)"
fi
exit "$RC"
