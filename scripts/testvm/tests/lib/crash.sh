# crash.sh - crash consistency of acknowledged writes (sourced by an in-VM test, after steps.sh).
# shellcheck shell=bash
#
# crash_consistency IQN PORTAL: for each mode, an LU whose backing device is a dm-log-writes device
# (data and log on loop devices over sparse files in /tmp), written through the kernel initiator by
# costar-crashcheck:
#   sync  default write-back cache; every round ends with fdatasync = SYNCHRONIZE CACHE
#   fua   default write-back cache; every write is O_DIRECT|O_DSYNC = WRITE with FUA
#   wcd   -p wcd=true: the kernel sees a write-through disk and sends neither; a write is
#         durable when it completes
# After each round the workload puts a mark into the log. The log is then replayed entry by entry:
# at every flush/FUA entry every sector written must be whole, at every mark every write
# acknowledged as durable must be present. Prints one line per mode with the counts.
# Needs: stmfd running (STMFD_SOCKET set), $HOST/stmfadm, $HOST/costar-crashcheck, dmsetup,
# the dm-log-writes module, and no other session to IQN open. CRASH_ROUNDS (default 60).
crash_consistency() {
  local iqn=$1 portal=$2 mode lun guid dev data log dm out rc i
  local -A CC_GUID CC_LUN CC_DATA CC_LOG CC_DM
  local cc=$HOST/costar-crashcheck rounds=${CRASH_ROUNDS:-60} modes=(sync fua wcd)
  section "crash consistency of acknowledged writes (dm-log-writes; ${modes[*]})"
  if [ ! -x "$cc" ] || [ ! -x "$STMFADM" ]; then
    fail "crash consistency: $cc and $STMFADM are needed"
    return 1
  fi
  if ! run "modprobe dm-log-writes" 30 modprobe dm-log-writes; then return 1; fi
  lun=20
  for mode in "${modes[@]}"; do
    data=/tmp/cc-$mode.data log=/tmp/cc-$mode.log dm=costar-lw-$mode
    rm -f "$data" "$log"
    truncate -s 64M "$data" && truncate -s 512M "$log"
    CC_DATA[$mode]=$(losetup -f --show "$data") && CC_LOG[$mode]=$(losetup -f --show "$log") || {
      fail "crash consistency $mode: loop devices"
      return 1
    }
    if ! run "crash consistency $mode: dmsetup create $dm (log-writes ${CC_DATA[$mode]} ${CC_LOG[$mode]})" 30 \
      dmsetup create "$dm" --table "0 $(blockdev --getsz "${CC_DATA[$mode]}") log-writes ${CC_DATA[$mode]} ${CC_LOG[$mode]}"; then
      return 1
    fi
    CC_DM[$mode]=$dm
    local props=(-p "alias=crash-$mode")
    [ "$mode" = wcd ] && props+=(-p wcd=true)
    out=$(timeout 60 "$STMFADM" create-lu "${props[@]}" "/dev/mapper/$dm" 2>&1)
    rc=$?
    echo "$out" | indent
    guid=$(grep -o 'Logical unit created: [0-9A-Fa-f]\{32\}' <<<"$out" | grep -o '[0-9A-Fa-f]\{32\}$')
    if [ $rc != 0 ] || [ -z "$guid" ]; then
      fail "crash consistency $mode: stmfadm create-lu /dev/mapper/$dm (exit $rc)"
      return 1
    fi
    CC_GUID[$mode]=$guid CC_LUN[$mode]=$lun
    run "crash consistency $mode: add-view -n $lun" 60 "$STMFADM" add-view -n "$lun" "$guid" || return 1
    lun=$((lun + 1))
  done

  run "crash consistency: login via $portal" 90 iscsiadm -m node -T "$iqn" -p "$portal" --login || return 1
  udevadm settle -t 30
  for mode in "${modes[@]}"; do
    dev=/dev/disk/by-path/ip-$portal-iscsi-$iqn-lun-${CC_LUN[$mode]}
    if ! check "crash consistency $mode: disk at $dev" waitfor "$dev" 30; then continue; fi
    dev=$(readlink -f "$dev")
    local ct fua
    ct=$(cat /sys/block/"${dev#/dev/}"/device/scsi_disk/*/cache_type 2>/dev/null)
    fua=$(cat /sys/block/"${dev#/dev/}"/queue/fua 2>/dev/null)
    echo "$dev: cache_type '$ct', fua $fua"
    if [ "$mode" = wcd ]; then
      check "crash consistency $mode: the kernel sees a write-through disk ($ct)" test "$ct" = "write through"
    else
      check "crash consistency $mode: the kernel sees a write-back disk ($ct)" test "$ct" = "write back"
    fi
    run "crash consistency $mode: costar-crashcheck write ($rounds rounds)" 600 \
      "$cc" write -dev "$dev" -dm "${CC_DM[$mode]}" -mode "$mode" -rounds "$rounds" -journal "/tmp/cc-$mode.journal"
  done
  # costar-crashcheck's last close makes udev probe the disk again (a buffered read); a logout under
  # that read fails it with "Buffer I/O error", which the kernel-log check then reports. udevd
  # queues that event from inotify, so give it a moment before settling.
  sleep 1
  udevadm settle -t 30
  run "crash consistency: logout" 60 iscsiadm -m node -T "$iqn" -p "$portal" --logout
  udevadm settle -t 30

  for mode in "${modes[@]}"; do
    # Deleting the LU closes the device; removing the dm device writes the log's last super block.
    run "crash consistency $mode: delete-lu" 60 "$STMFADM" delete-lu "${CC_GUID[$mode]}"
    for i in 1 2 3 4 5; do dmsetup remove "${CC_DM[$mode]}" 2>/dev/null && break; sleep 1; done
    check "crash consistency $mode: dmsetup remove ${CC_DM[$mode]}" bash -c "! dmsetup info '${CC_DM[$mode]}' >/dev/null 2>&1"
    # Read the log through its file, not the loop device: the device's page cache may hold what udev
    # read at creation, while dm-log-writes' bios went past it.
    losetup -d "${CC_DATA[$mode]}" "${CC_LOG[$mode]}" 2>/dev/null
    if [ -f "/tmp/cc-$mode.journal" ]; then
      out=$(timeout 300 "$cc" replay -log "/tmp/cc-$mode.log" -journal "/tmp/cc-$mode.journal" -mode "$mode" 2>&1)
      rc=$?
      echo "$out" | indent
      local res
      res=$(grep '^RESULT ' <<<"$out" | tail -1)
      check "crash consistency $mode: replay finds every acknowledged-durable write, no torn sector (exit $rc): ${res#RESULT }" \
        test "$rc" = 0
      cp "/tmp/cc-$mode.journal" "$HOST/" 2>/dev/null
      echo "$res" >>"$HOST/crash-consistency.txt"
    fi
    rm -f "/tmp/cc-$mode.data" "/tmp/cc-$mode.log"
  done
}
