#!/usr/bin/env bash
# run-tests.sh - the VM test suite (host side): build static costar binaries, make sure the cached
# VM image exists (building it once, ~8 min, as root), boot one VM per test script in
# scripts/testvm/tests/, print a summary, exit non-zero if anything failed.
#
# Usage: scripts/testvm/run-tests.sh [-k] [-t SECONDS] [-e VAR=VALUE]... [TEST...]
#   TEST     test names (kernel-initiator) or paths; default: every scripts/testvm/tests/*.sh
#   -k       keep every run directory (failed runs are always kept)
#   -t SECS  per-VM time limit (default 1200)
#   -e V=X   environment for the in-VM tests (e.g. -e STMFD_LOG_LEVEL=debug -e FIO_SIZE=256M)
# Environment:
#   COSTAR_TESTVM=skip            skip the VM suite entirely (prints SKIPPED, exits 0)
#   COSTAR_TESTVM_ALLOW_SKIP=1    when the suite cannot run here (no qemu, no disk space, no image
#                                 and not root: exit codes 80-89), say so and exit 0 instead
#   COSTAR_TESTVM_NO_BUILD=1      never build the image; without a current one exit 83
#   COSTAR_TESTVM_CACHE, COSTAR_TESTVM_RUNS, COSTAR_TESTVM_ACCEL: see lib.sh / run-vm.sh
# Exit codes: 0 all passed; 1 a test failed or the binaries do not build; 3 image build failed;
#   80-89 cannot run here (see lib.sh); 124/125/126 the VM timed out / died / could not start.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^set -/p' "$0" | grep '^#' | grep -v '^# shellcheck' | sed 's/^# \{0,1\}//'; }

KEEP=() VMTIMEOUT=1200 VMARGS=()
while getopts "kt:e:h" o; do
  case $o in
    k) KEEP=(-k) ;;
    t) VMTIMEOUT=$OPTARG ;;
    e) VMARGS+=(-e "$OPTARG") ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit "$EX_USAGE" ;;
  esac
done
shift $((OPTIND - 1))

if [ "${COSTAR_TESTVM:-}" = skip ]; then
  echo "test-vm: SKIPPED (COSTAR_TESTVM=skip)"
  exit 0
fi

cannot_run() { # RC: the suite could not run here
  echo "test-vm: CANNOT RUN here (exit $1): nothing was tested; see the message above" >&2
  if [ "${COSTAR_TESTVM_ALLOW_SKIP:-0}" = 1 ]; then
    echo "test-vm: SKIPPED (COSTAR_TESTVM_ALLOW_SKIP=1)"
    exit 0
  fi
  exit "$1"
}

REPO=$(cd "$TESTVM_DIR/../.." && pwd)
TESTS=()
if [ $# = 0 ]; then
  for t in "$TESTVM_DIR"/tests/*.sh; do TESTS+=("$t"); done
else
  for t in "$@"; do
    if [ -f "$t" ]; then TESTS+=("$t")
    elif [ -f "$TESTVM_DIR/tests/$t.sh" ]; then TESTS+=("$TESTVM_DIR/tests/$t.sh")
    else tv_die "$EX_USAGE" "no such VM test: $t (have: $(cd "$TESTVM_DIR/tests" && ls -- *.sh | sed 's/\.sh$//' | tr '\n' ' '))"
    fi
  done
fi
T0=$(date +%s)

# 1. Can the VM run here at all? qemu (installed via apt when root), disk space, the cached image
#    (built once, ~8 min, when root).
(tv_need_tools qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils flock:util-linux) || cannot_run $?
mkdir -p "$TESTVM_RUNS" 2>/dev/null
(tv_need_space "$TESTVM_RUNS" "$TESTVM_RUN_MIN_MB" "a VM run") || cannot_run $?
if ! tv_image_ok; then
  if [ "${COSTAR_TESTVM_NO_BUILD:-0}" = 1 ]; then
    tv_log "no current VM image in $TESTVM_IMAGE and COSTAR_TESTVM_NO_BUILD=1"
    cannot_run "$EX_NOIMAGE"
  fi
  echo "test-vm: building the VM image once (about 8 minutes; cached in $TESTVM_CACHE)"
  "$TESTVM_DIR/build-image.sh"
  rc=$?
  if tv_cannot_run "$rc"; then cannot_run "$rc"; fi
  [ "$rc" = 0 ] || { echo "test-vm: FAIL: image build failed (exit $rc)" >&2; exit "$rc"; }
fi

# 2. Static binaries for the guest (it has no Go and no network).
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || { tv_log "go is not installed (looked in PATH and /usr/local/go/bin)"; cannot_run "$EX_NOTOOL"; }
BIN=$(mktemp -d "${TMPDIR:-/tmp}/costar-testvm-bin.XXXXXX") || exit "$EX_VMSETUP"
trap 'rm -rf "$BIN"' EXIT
FILES=("$TESTVM_DIR/tests/lib/steps.sh" "$TESTVM_DIR/tests/lib/crash.sh") # step helpers the tests source from /mnt/host
for cmd in stmfd stmfadm itadm fcinfo costar-crashcheck costar-etcd; do
  if [ "$cmd" != stmfd ] && ! (cd "$REPO" && go list "./cmd/$cmd" >/dev/null 2>&1); then
    echo "test-vm: ./cmd/$cmd has no Go package yet; the VM tests run without it"
    continue
  fi
  echo "test-vm: CGO_ENABLED=0 go build ./cmd/$cmd"
  if ! (cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$BIN/$cmd" "./cmd/$cmd"); then
    echo "test-vm: FAIL: ./cmd/$cmd does not build" >&2
    exit "$EX_TESTFAIL"
  fi
  FILES+=("$BIN/$cmd")
done

# The systemd service steps (kernel-initiator.sh) install exactly what `make install` installs.
echo "test-vm: CGO_ENABLED=0 make install DESTDIR=<tmp> (for the systemd service steps)"
if (cd "$REPO" && CGO_ENABLED=0 make --no-print-directory install DESTDIR="$BIN/root" >"$BIN/install.log" 2>&1) &&
  tar -C "$BIN/root" -cf "$BIN/costar-install.tar" etc usr; then
  FILES+=("$BIN/costar-install.tar")
else
  cat "$BIN/install.log" >&2
  echo "test-vm: FAIL: make install" >&2
  exit "$EX_TESTFAIL"
fi

# 3. One VM per test.
declare -A RESULT
WORST=0
for t in "${TESTS[@]}"; do
  name=$(basename "$t" .sh)
  echo
  echo "test-vm: ===== $name ====="
  out=$(mktemp "${TMPDIR:-/tmp}/costar-testvm-out.XXXXXX")
  TS=$(date +%s)
  "$TESTVM_DIR/run-vm.sh" "${KEEP[@]}" "${VMARGS[@]}" -t "$VMTIMEOUT" "$t" "${FILES[@]}" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  if tv_cannot_run "$rc"; then rm -f "$out"; cannot_run "$rc"; fi
  summary=$(grep -a "^$name: [0-9]* passed" "$out" | tail -1)
  RESULT[$name]="exit $rc, $(($(date +%s) - TS))s: ${summary:-no summary line}"
  fails=$(grep -a '^FAIL ' "$out")
  [ -n "$fails" ] && RESULT[$name]+=$'\n'$(sed 's/^/      /' <<<"$fails")
  rm -f "$out"
  if [ "$rc" != 0 ] && [ "$WORST" = 0 ]; then WORST=$rc; fi
done

echo
echo "test-vm: summary ($(($(date +%s) - T0))s)"
for t in "${TESTS[@]}"; do
  name=$(basename "$t" .sh)
  echo "  $name: ${RESULT[$name]}"
done
if [ "$WORST" = 0 ]; then echo "test-vm: PASS"; else echo "test-vm: FAIL"; fi
exit "$WORST"
