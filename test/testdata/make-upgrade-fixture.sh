#!/usr/bin/env bash
# make-upgrade-fixture.sh - write the state directory of a previous release for the upgrade test
# (test/mgmt/upgrade_test.go): test/testdata/upgrade/fixture.tar.gz and test/testdata/upgrade/expected.
#
# Usage: test/testdata/make-upgrade-fixture.sh [REV]
#   REV   the release whose stmfd writes the state (default: the merge-base of HEAD and main)
#
# Builds stmfd, stmfadm and itadm of REV (git archive into a temp dir), starts that stmfd on a
# random loopback port with a fresh state dir, configures it with stmfadm/itadm/sbdadm (LUs with
# various properties, one offline; host and target groups; views with LUN numbers; targets, one
# bound to a portal group on 127.0.0.2, one offline; an initiator with CHAP; defaults; ALUA
# standby for portal group 2), writes a known pattern into the data LU with qemu-io, registers a
# persistent reservation key with APTPL and reserves with it (prkey, internal/initiator), stops
# it, restarts it on the same state to record what its CLIs list (expected), and stops it again.
# The state dir and the sparse LU files are packed into fixture.tar.gz. The fixture's directory,
# the portal group's port and the default portal are replaced by @ROOT@, @TPGPORT@ and @PORTAL@
# in stmf.json and expected; the test puts its own back. Only the PIDs this script started are
# stopped. Needs go, git, qemu-io (qemu-block-extra), ss, tar.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUTDIR=$ROOT/test/testdata/upgrade
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
export PATH=$PATH:/usr/sbin:/sbin
REV=${1:-$(git -C "$ROOT" merge-base HEAD main)}
REV=$(git -C "$ROOT" rev-parse --verify "$REV^{commit}")

# The facts the test checks (keep in step with test/mgmt/upgrade_test.go).
T1=iqn.2026-11.org.costar.upgrade:default # auth none, default portal group: the test logs in here
T2=iqn.2026-11.org.costar.upgrade:fast    # portal group "fast" (tag 2, ALUA standby), target group tg-fast
T3=iqn.2026-11.org.costar.upgrade:offline # offline, auth from the defaults (chap)
HOLDER=iqn.2026-11.org.costar.upgrade:holder
PRKEY=0123456789abcdef

log() { echo "make-upgrade-fixture: $*" >&2; }
die() { log "ERROR: $*"; exit 2; }
for tool in git go qemu-io ss tar; do command -v "$tool" >/dev/null 2>&1 || die "$tool not found"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/costar-upg.XXXXXX")
FIX=$WORK/fix
BIN=$WORK/bin
SPID=""
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
stop() {
  if alive "$SPID"; then
    kill -TERM "$SPID"
    for _ in $(seq 1 300); do alive "$SPID" || break; sleep 0.1; done
    alive "$SPID" && { kill -KILL "$SPID"; die "stmfd pid $SPID ignored SIGTERM"; }
  fi
  wait "$SPID" 2>/dev/null || true
  SPID=""
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() { stop || true; rm -rf -- "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building stmfd, stmfadm, itadm of $REV"
mkdir -p "$WORK/src" "$BIN" "$FIX/state" "$FIX/lu"
git -C "$ROOT" archive "$REV" | tar -x -C "$WORK/src"
(cd "$WORK/src" && go build -o "$BIN/" ./cmd/stmfd ./cmd/stmfadm ./cmd/itadm) || die "go build of $REV failed"
ln -s stmfadm "$BIN/sbdadm"
(cd "$ROOT" && go build -o "$BIN/prkey" ./test/testdata/upgrade/prkey) || die "go build prkey failed"

export STMFD_SOCKET=$FIX/state/stmfd.sock
S() { "$BIN/stmfadm" "$@"; }
I() { "$BIN/itadm" "$@"; }
start() {
  "$BIN/stmfd" --state-dir "$FIX/state" --portal 127.0.0.1:0 --socket "$STMFD_SOCKET" --log-level info \
    </dev/null >>"$WORK/stmfd.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 300); do
    alive "$SPID" || break
    if out=$(S list-state -o json 2>/dev/null); then
      PORTAL=$(grep -o '127\.0\.0\.1:[0-9]*' <<<"$out" | head -n1)
      [[ -n $PORTAL ]] && return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$WORK/stmfd.log" >&2
  die "stmfd did not start"
}
free_port() { # on 127.0.0.2
  local p _
  for _ in $(seq 1 50); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
guid() { sed -n 's/^Logical unit created: //p'; }

start
log "stmfd of $REV pid $SPID on $PORTAL, state in $FIX/state"
TPGPORT=$(free_port) || die "no free port"
printf 'target-chap-secret-1\n' >"$WORK/tsecret"
printf 'initiator-secret-1\n' >"$WORK/isecret"
printf 'radius-secret-12\n' >"$WORK/rsecret"

truncate -s 4M "$FIX/lu/data.img"
truncate -s 2M "$FIX/lu/thin4k.img" "$FIX/lu/sidecar.img"
G_DATA=$(S create-lu -p alias=upg-data -p serial=UPG0001 -p wcd=false "$FIX/lu/data.img" | guid)
G_THIN=$(S create-lu -p alias=upg-thin4k -p blk=4096 -p thin=true -p soft-threshold=85 -p wcd=true \
  -s 2M "$FIX/lu/thin4k.img" | guid)
G_SIDE=$(S create-lu -p meta="$FIX/lu/sidecar.meta" -p wp=true -p vid=ACME -p pid=UPGRADE -p oui=00a0b8 \
  -p mgmt-url=http://127.0.0.1/lu "$FIX/lu/sidecar.img" | guid)
[[ -n $G_DATA && -n $G_THIN && -n $G_SIDE ]] || die "create-lu failed"
S offline-lu "$G_SIDE"

S create-hg esx
S add-hg-member -g esx iqn.1998-01.com.vmware:esx-a iqn.1998-01.com.vmware:esx-b
S create-hg empty
S create-tg tg-fast

I create-tpg fast "127.0.0.2:$TPGPORT"
I create-target -n "$T1" -l "upgrade default" -a none
I create-target -n "$T2" -t fast -a chap -u tgtuser -S "$WORK/tsecret"
I create-target -n "$T3"
S offline-target "$T2"
S add-tg-member -g tg-fast "$T2"
S online-target "$T2"
S offline-target "$T3"
I create-initiator -u esxa -S "$WORK/isecret" iqn.1998-01.com.vmware:esx-a
I create-initiator iqn.1998-01.com.vmware:esx-b
I modify-defaults -a chap -r 127.0.0.1:1812 -D "$WORK/rsecret"

S add-view -n 0 "$G_DATA"
S add-view -h esx -t tg-fast -n 5 "$G_THIN"
S add-view -h esx -n 7 "$G_SIDE"
S add-view -h empty "$G_THIN"
S set-alua-state -g 2 standby

log "writing the pattern (qemu-io) and the PR key (prkey)"
qemu-io -f raw -c "write -P 0xa5 0 1M" -c "write -P 0x3c 3M 512" "iscsi://$PORTAL/$T1/0" >"$WORK/qemu-io.log" 2>&1 ||
  { cat "$WORK/qemu-io.log" >&2; die "qemu-io failed"; }
"$BIN/prkey" -portal "$PORTAL" -target "$T1" -initiator "$HOLDER" -isid 7 -lun 0 -key "$PRKEY"
stop

log "restarting it to record its listings"
start
LISTING=$WORK/expected
: >"$LISTING"
cmds=("stmfadm list-lu -v")
for g in "$G_DATA" "$G_THIN" "$G_SIDE"; do cmds+=("stmfadm list-view -l $g"); done
cmds+=("stmfadm list-hg -v" "stmfadm list-tg -v" "stmfadm list-target -v" "stmfadm list-state" "sbdadm list-lu"
  "itadm list-target -v" "itadm list-tpg -v" "itadm list-initiator -v" "itadm list-defaults")
for c in "${cmds[@]}"; do
  read -r -a argv <<<"$c"
  echo "\$ $c" >>"$LISTING"
  "$BIN/${argv[0]}" "${argv[@]:1}" >>"$LISTING" || die "$c failed"
done
stop

# Placeholders for what differs from run to run.
placeholders() { sed -e "s|$FIX|@ROOT@|g" -e "s|127\.0\.0\.2:$TPGPORT|127.0.0.2:@TPGPORT@|g" -e "s|$PORTAL|@PORTAL@|g" "$@"; }
placeholders -i "$FIX/state/stmf.json"
# The LU metadata also names its data file, but only as information: stmfd rewrites it when an LU
# was moved (lu.Open), which the upgrade test exercises. Anything else must not hold the path.
if grep -rlF "$FIX" "$FIX/state"; then die "the fixture's path is stored in more state files than stmf.json"; fi
rm -f -- "$STMFD_SOCKET"
mkdir -p "$OUTDIR"
placeholders "$LISTING" >"$OUTDIR/expected"
tar -C "$FIX" --sparse --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -czf "$OUTDIR/fixture.tar.gz" state lu
echo "$REV" >"$OUTDIR/REVISION"
log "wrote $OUTDIR/{fixture.tar.gz,expected,REVISION} ($(stat -c %s "$OUTDIR/fixture.tar.gz") bytes) from $REV"
