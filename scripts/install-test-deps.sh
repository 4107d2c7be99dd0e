#!/usr/bin/env bash
# install-test-deps.sh - make sure the tools costar's tests and benchmarks drive are installed.
#
# Usage: scripts/install-test-deps.sh [--check] [-h|--help]
#   --check   only report; exit 1 when something is missing (never installs)
#
# Tools and the Debian packages that provide them:
#   iscsi-test-cu iscsi-inq iscsi-ls iscsi-readcapacity16 iscsi-perf   libiscsi-bin
#   tgtd tgtadm (benchmark peer)                                       tgt
#   qemu-img qemu-io qemu-nbd                                          qemu-utils
#   QEMU's iscsi:// block driver (block-iscsi.so)                      qemu-block-extra
#   fio, iperf3                                                        fio, iperf3
#   prometheus promtool (the metrics test's real Prometheus server)     prometheus
#     (on a host running systemd the package also enables its own service on :9090;
#     the test starts a private one on a free loopback port and never uses that one)
#   freeradius (RADIUS CHAP test peer)                                 freeradius
#   isnsd, isnsadm (iSNS test peer)                                    open-isns-server, open-isns-utils
#     (the tests start private servers on free loopback ports, never the packages' services)
#   timeout stdbuf (coreutils), taskset (util-linux), ss (iproute2), ps (procps)
#
# As root, missing packages are installed with apt-get (apt-get update runs only when
# something is missing). As another user it prints the apt-get command to run and exits 1.
# Idempotent: a second run with everything present does nothing and exits 0.
#
# Examples:
#   scripts/install-test-deps.sh            # install what is missing (root)
#   scripts/install-test-deps.sh --check    # just tell me
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; }

CHECK_ONLY=0
for arg in "$@"; do
  case $arg in
    --check) CHECK_ONLY=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install-test-deps: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

log() { echo "install-test-deps: $*" >&2; }

# tgtd, freeradius, isnsd and isnsadm live in /usr/sbin, which a non-root PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

# "command-or-file package" pairs. A leading / means a file that must exist.
REQUIRED=(
  "iscsi-test-cu libiscsi-bin"
  "iscsi-inq libiscsi-bin"
  "iscsi-ls libiscsi-bin"
  "iscsi-readcapacity16 libiscsi-bin"
  "iscsi-perf libiscsi-bin"
  "tgtd tgt"
  "tgtadm tgt"
  "qemu-img qemu-utils"
  "qemu-io qemu-utils"
  "qemu-nbd qemu-utils"
  "fio fio"
  "iperf3 iperf3"
  "prometheus prometheus"
  "promtool prometheus"
  "freeradius freeradius"
  "isnsd open-isns-server"
  "isnsadm open-isns-utils"
  "timeout coreutils"
  "stdbuf coreutils"
  "taskset util-linux"
  "ss iproute2"
  "ps procps"
  "systemd-analyze systemd"
)

have_qemu_iscsi() {
  # qemu-block-extra ships the iscsi:// driver as a loadable module.
  compgen -G '/usr/lib/*/qemu/block-iscsi.so' >/dev/null ||
    compgen -G '/usr/lib/qemu/block-iscsi.so' >/dev/null ||
    compgen -G '/usr/lib64/qemu/block-iscsi.so' >/dev/null
}

missing_pkgs=()
add_pkg() {
  local p
  for p in "${missing_pkgs[@]}"; do [[ $p == "$1" ]] && return 0; done
  missing_pkgs+=("$1")
}
scan() {
  missing_pkgs=()
  local pair tool pkg
  for pair in "${REQUIRED[@]}"; do
    read -r tool pkg <<<"$pair"
    command -v "$tool" >/dev/null 2>&1 || add_pkg "$pkg"
  done
  have_qemu_iscsi || add_pkg qemu-block-extra
}

scan
if ((${#missing_pkgs[@]} == 0)); then
  log "all test tools present"
  exit 0
fi

log "missing packages: ${missing_pkgs[*]}"
if ((CHECK_ONLY)); then
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  log "not root; install them with:"
  log "  sudo apt-get update && sudo apt-get install -y ${missing_pkgs[*]}"
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found; install the equivalent of: ${missing_pkgs[*]}"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -qq
log "apt-get install -y --no-install-recommends ${missing_pkgs[*]}"
apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >&2

scan
if ((${#missing_pkgs[@]} > 0)); then
  log "still missing after install: ${missing_pkgs[*]}"
  exit 1
fi
log "installed; all test tools present"
