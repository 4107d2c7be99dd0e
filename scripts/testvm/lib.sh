# lib.sh - shared settings and helpers for scripts/testvm/*.sh (sourced, not run).
#
# Exit codes used by every testvm script (and therefore by `make test-vm`):
#   0        success
#   1        a test failed (run-tests.sh, the in-VM test)
#   2        usage error
#   3        image build failed (debootstrap / apt / dkms / mkfs; see the log it names)
#   80-89    "cannot run here" - nothing was tested:
#     80     a host tool is missing (qemu-system-x86_64, qemu-img, debootstrap, mkfs.ext4, go)
#            and could not be installed (not root, or apt-get failed)
#     81     not enough free disk space (cache dir or run dir)
#     82     building the image needs root
#     83     no usable cached image and COSTAR_TESTVM_NO_BUILD=1
#     84     another build holds the cache lock for too long
#   124      VM timed out
#   125      VM ended without writing an exit code (boot failure, kernel panic)
#   126      VM setup error (qemu refused to start, bad arguments)
#
# Environment:
#   COSTAR_TESTVM_CACHE   image cache directory (default /var/cache/costar-testvm)
#   COSTAR_TESTVM_RUNS    where run directories go (default ${TMPDIR:-/tmp}/costar-testvm)
#   COSTAR_TESTVM_MIRROR  Debian mirror (default: the host's own apt source for its release)
#   COSTAR_TESTVM_SECURITY_MIRROR  security mirror (default: the host's <release>-security source)
#   COSTAR_TESTVM_ACCEL   auto (default), kvm or tcg

# shellcheck shell=bash disable=SC2034

TESTVM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTVM_CACHE=${COSTAR_TESTVM_CACHE:-/var/cache/costar-testvm}
TESTVM_IMAGE=$TESTVM_CACHE/image
TESTVM_LOCK=$TESTVM_CACHE/.lock
TESTVM_RUNS=${COSTAR_TESTVM_RUNS:-${TMPDIR:-/tmp}/costar-testvm}

EX_TESTFAIL=1
EX_USAGE=2
EX_BUILD=3
EX_NOTOOL=80
EX_NOSPACE=81
EX_NOTROOT=82
EX_NOIMAGE=83
EX_LOCKED=84
EX_VMTIMEOUT=124
EX_VMDIED=125
EX_VMSETUP=126

# Free space (MiB) needed: building (debootstrap tree + apt/dkms work + the
# new image next to an old one) and one run (qcow2 overlay of the root image,
# scratch disk allocations, share).
TESTVM_BUILD_MIN_MB=${COSTAR_TESTVM_BUILD_MIN_MB:-6144}
TESTVM_RUN_MIN_MB=${COSTAR_TESTVM_RUN_MIN_MB:-3072}

tv_log() { echo "testvm: $*" >&2; }
tv_die() {
  local rc=$1
  shift
  echo "testvm: ERROR: $*" >&2
  exit "$rc"
}

# tv_recipe_hash prints a short hash of everything that decides the image's
# content: build-image.sh itself (package list, guest config, runner) and the
# extra packages asked for. A different hash means the cached image is stale.
# Only the recipe part of build-image.sh counts (from its "# ==== recipe"
# marker on), without comment-only and blank lines.
tv_recipe_hash() {
  {
    sed -n '/^# ==== recipe/,$p' "$TESTVM_DIR/build-image.sh" | grep -Ev '^[[:space:]]*(#|$)'
    echo "extra=${COSTAR_TESTVM_EXTRA_PKGS:-}"
  } | sha256sum | cut -c1-16
}

# tv_image_ok: a complete image built from the current recipe is cached.
tv_image_ok() {
  local f
  for f in rootfs.img vmlinuz initrd.img image.info stamp; do
    [ -s "$TESTVM_IMAGE/$f" ] || return 1
  done
  [ "$(cat "$TESTVM_IMAGE/stamp")" = "$(tv_recipe_hash)" ]
}

# tv_free_mb DIR: free MiB on the filesystem holding DIR (or its nearest
# existing parent).
tv_free_mb() {
  local d=$1
  while [ ! -d "$d" ]; do d=$(dirname "$d"); done
  df -Pm "$d" | awk 'NR==2 {print $4}'
}

tv_need_space() { # DIR MIN_MB WHAT
  local free
  free=$(tv_free_mb "$1")
  if [ "$free" -lt "$2" ]; then
    tv_die $EX_NOSPACE "not enough disk space for $3: $1 has ${free} MiB free, need ${2} MiB (set COSTAR_TESTVM_CACHE / COSTAR_TESTVM_RUNS elsewhere, or free space)"
  fi
}

# tv_need_tools "cmd:package" ...: make sure the commands exist. Missing ones
# are installed with apt-get when running as root; otherwise exit 80 with the
# command to run.
tv_need_tools() {
  local pair cmd pkg missing=() pkgs=()
  export PATH=$PATH:/usr/sbin:/sbin
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 && continue
    missing+=("$cmd")
    [[ " ${pkgs[*]} " == *" $pkg "* ]] || pkgs+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    tv_die $EX_NOTOOL "missing host tools: ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
  fi
  tv_log "installing host packages: ${pkgs[*]}"
  local aptlog
  aptlog=$(mktemp "${TMPDIR:-/tmp}/costar-testvm-apt.XXXXXX")
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } >"$aptlog" 2>&1; then
    tail -20 "$aptlog" >&2
    rm -f "$aptlog"
    tv_die $EX_NOTOOL "apt-get install ${pkgs[*]} failed; missing: ${missing[*]}"
  fi
  rm -f "$aptlog"
  for cmd in "${missing[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || tv_die $EX_NOTOOL "still missing after apt-get: $cmd"
  done
}

# tv_cannot_run RC: true for the "nothing was tested here" exit codes.
tv_cannot_run() { [ "$1" -ge 80 ] && [ "$1" -le 89 ]; }

# tv_host_mirror main|security prints the base URI of the host's own apt source for Debian (its
# release, or <release>-security), so the guest is built from wherever the host's apt works (a
# local mirror, a proxy cache); no mirror host name is written into the repository. Empty output
# (and status 1) when the host's apt names none.
tv_host_mirror() {
  local want=$1 uri
  uri=$(apt-get indextargets --no-release-info --format '$(TARGET_OF) $(RELEASE) $(REPO_URI)' 2>/dev/null |
    awk -v want="$want" '$1 == "deb" && ((want == "security" && $2 ~ /-security$/) || (want == "main" && $2 !~ /-/)) {print $3; exit}')
  uri=${uri%/}
  [ -n "$uri" ] || return 1
  echo "$uri"
}
