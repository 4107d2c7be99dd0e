package lu

import (
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// How to add a command: add one row to commandTable (the opcode and any
// service action go in scsi/opcodes.go) deciding every field of command
// (command.go): CDB length and usage, data direction, block layout, lock,
// reservation and ALUA classes, inline or not; then write its handler,
// which finds the decoded LBA and length with blockRange(t). Nothing else.

var (
	ff4 = []byte{0xff, 0xff, 0xff, 0xff}
	ff8 = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// commandTable lists every command the device server knows; each LU
// keeps the rows that apply to it (command.only) in d.cmds. Read-only.
var commandTable = []command{
	{op: scsi.OpTestUnitReady, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x00, 0, 0, 0, 0, 0}, dir: scsi.DirNone, lock: lockNone, resv: resvPROnly, alua: onlyActive, fn: (*Device).testUnitReady},
	{op: scsi.OpRequestSense, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x03, 0x01, 0, 0, 0xff, 0}, dir: scsi.DirRead, lock: lockNone, resv: resvAlways, alua: inAnyState, fn: (*Device).requestSense},
	{op: scsi.OpRead6, sa: -1, cdbLen: 6, timeout: 60, usage: []byte{0x08, 0x1f, 0xff, 0xff, 0xff, 0}, dir: scsi.DirRead, layout: layout6, lock: lockRead, resv: resvRead, alua: onlyActive, inline: true, kind: stmf.KindRead, fn: (*Device).read},
	{op: scsi.OpWrite6, sa: -1, cdbLen: 6, timeout: 60, usage: []byte{0x0a, 0x1f, 0xff, 0xff, 0xff, 0}, dir: scsi.DirWrite, layout: layout6, lock: lockWrite, resv: resvWrite, alua: onlyActive, inline: true, kind: stmf.KindWrite, fn: (*Device).write},
	{op: scsi.OpInquiry, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x12, 0x01, 0xff, 0xff, 0xff, 0}, dir: scsi.DirRead, lock: lockNone, resv: resvAlways, alua: inAnyState, fn: (*Device).inquiry},
	{op: scsi.OpModeSelect6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x15, 0x10, 0, 0, 0xff, 0}, dir: scsi.DirWrite, lock: lockNone, resv: resvWrite, alua: inStandby, fn: (*Device).modeSelect},
	{op: scsi.OpModeSense6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x1a, 0x08, 0xff, 0xff, 0xff, 0}, dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: inStandby, fn: (*Device).modeSense},
	{op: scsi.OpStartStopUnit, sa: -1, cdbLen: 6, timeout: 60, usage: []byte{0x1b, 0x01, 0, 0x0f, 0xf7, 0}, dir: scsi.DirNone, lock: lockNone, resv: resvUnlessHarmless, harmless: startsUnit, alua: onlyActive, fn: (*Device).startStopUnit},
	// READ CAPACITY works on a standby port too (SPC-4 lets a standby port
	// serve more than its list; LIO does the same): Linux sizes a disk once,
	// at scan, and a path that logged in on the standby node would stay 0
	// blocks long after it turns active.
	{op: scsi.OpReadCapacity10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0}, dir: scsi.DirRead, lock: lockNone, resv: resvAlways, alua: inStandby, fn: (*Device).readCapacity10},
	{op: scsi.OpRead10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x28, 0x18}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirRead, layout: layout10, lock: lockRead, resv: resvRead, alua: onlyActive, inline: true, kind: stmf.KindRead, fn: (*Device).read},
	{op: scsi.OpWrite10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x2a, 0x18}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirWrite, layout: layout10, lock: lockWrite, resv: resvWrite, alua: onlyActive, inline: true, kind: stmf.KindWrite, fn: (*Device).write},
	{op: scsi.OpWriteVerify10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x2e, 0x12}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirWrite, layout: layout10, lock: lockWrite, resv: resvWrite, alua: onlyActive, kind: stmf.KindWrite, fn: (*Device).writeVerify},
	{op: scsi.OpVerify10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x2f, 0x16}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirWrite, layout: layout10, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).verify},
	{op: scsi.OpPrefetch10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x34, 0x02}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirNone, layout: layout10, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).prefetch},
	{op: scsi.OpSyncCache10, sa: -1, cdbLen: 10, timeout: 120, usage: cat([]byte{0x35, 0x02}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirNone, layout: layout10, lock: lockNone, resv: resvWrite, alua: onlyActive, kind: stmf.KindFlush, fn: (*Device).syncCache},
	{op: scsi.OpModeSelect10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{0x55, 0x10, 0, 0, 0, 0, 0, 0xff, 0xff, 0}, dir: scsi.DirWrite, lock: lockNone, resv: resvWrite, alua: inStandby, fn: (*Device).modeSelect},
	{op: scsi.OpModeSense10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0}, dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: inStandby, fn: (*Device).modeSense},
	{op: scsi.OpRead16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x88, 0x18}, ff8, ff4, []byte{0, 0}), dir: scsi.DirRead, layout: layout16, lock: lockRead, resv: resvRead, alua: onlyActive, inline: true, kind: stmf.KindRead, fn: (*Device).read},
	{op: scsi.OpWrite16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x8a, 0x18}, ff8, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layout16, lock: lockWrite, resv: resvWrite, alua: onlyActive, inline: true, kind: stmf.KindWrite, fn: (*Device).write},
	{op: scsi.OpWriteVerify16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x8e, 0x12}, ff8, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layout16, lock: lockWrite, resv: resvWrite, alua: onlyActive, kind: stmf.KindWrite, fn: (*Device).writeVerify},
	{op: scsi.OpVerify16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x8f, 0x16}, ff8, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layout16, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).verify},
	{op: scsi.OpPrefetch16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x90, 0x02}, ff8, ff4, []byte{0, 0}), dir: scsi.DirNone, layout: layout16, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).prefetch},
	{op: scsi.OpSyncCache16, sa: -1, cdbLen: 16, timeout: 120, usage: cat([]byte{0x91, 0x02}, ff8, ff4, []byte{0, 0}), dir: scsi.DirNone, layout: layout16, lock: lockNone, resv: resvWrite, alua: onlyActive, kind: stmf.KindFlush, fn: (*Device).syncCache},
	{op: scsi.OpServiceActionIn, sa: scsi.SAReadCapacity16, cdbLen: 16, timeout: 10, usage: cat([]byte{0x9e, 0x1f}, make([]byte, 8), ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvAlways, alua: inStandby, fn: (*Device).readCapacity16},
	{op: scsi.OpReportLUNs, sa: -1, cdbLen: 12, timeout: 10, usage: cat([]byte{0xa0, 0, 0xff, 0, 0, 0}, ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvAlways, alua: inAnyState, fn: (*Device).reportLUNs},
	{op: scsi.OpMaintenanceIn, sa: scsi.SAReportSupportedOps, cdbLen: 12, timeout: 10, usage: cat([]byte{0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff}, ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: inAnyState, fn: (*Device).reportSupportedOpcodes},
	{op: scsi.OpRead12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xa8, 0x18}, ff4, ff4, []byte{0, 0}), dir: scsi.DirRead, layout: layout12, lock: lockRead, resv: resvRead, alua: onlyActive, inline: true, kind: stmf.KindRead, fn: (*Device).read},
	{op: scsi.OpWrite12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xaa, 0x18}, ff4, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layout12, lock: lockWrite, resv: resvWrite, alua: onlyActive, inline: true, kind: stmf.KindWrite, fn: (*Device).write},
	{op: scsi.OpWriteVerify12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xae, 0x12}, ff4, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layout12, lock: lockWrite, resv: resvWrite, alua: onlyActive, kind: stmf.KindWrite, fn: (*Device).writeVerify},
	{op: scsi.OpVerify12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xaf, 0x16}, ff4, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layout12, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).verify},
	// Thin provisioning and small SPC/SBC commands (thin.go, writesame.go,
	// misc.go); thin LUs have the WRITE SAME UNMAP bit and UNMAP.
	{op: scsi.OpWriteSame10, sa: -1, cdbLen: 10, timeout: 120, usage: cat([]byte{scsi.OpWriteSame10, 0x00}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirWrite, layout: layoutWriteSame10, lock: lockWrite, resv: resvWrite, alua: onlyActive, only: isThick, kind: stmf.KindWrite, fn: (*Device).writeSame},
	{op: scsi.OpWriteSame10, sa: -1, cdbLen: 10, timeout: 120, usage: cat([]byte{scsi.OpWriteSame10, 0x08}, ff4, []byte{0, 0xff, 0xff, 0}), dir: scsi.DirWrite, layout: layoutWriteSame10, lock: lockWrite, resv: resvWrite, alua: onlyActive, only: isThin, kind: stmf.KindWrite, fn: (*Device).writeSame},
	{op: scsi.OpWriteSame16, sa: -1, cdbLen: 16, timeout: 120, usage: cat([]byte{scsi.OpWriteSame16, 0x01}, ff8, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layoutWriteSame16, lock: lockWrite, resv: resvWrite, alua: onlyActive, only: isThick, kind: stmf.KindWrite, fn: (*Device).writeSame},
	{op: scsi.OpWriteSame16, sa: -1, cdbLen: 16, timeout: 120, usage: cat([]byte{scsi.OpWriteSame16, 0x09}, ff8, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layoutWriteSame16, lock: lockWrite, resv: resvWrite, alua: onlyActive, only: isThin, kind: stmf.KindWrite, fn: (*Device).writeSame},
	{op: scsi.OpServiceActionIn, sa: scsi.SAGetLBAStatus, cdbLen: 16, timeout: 10, usage: cat([]byte{0x9e, 0x1f}, ff8, ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).getLBAStatus},
	{op: scsi.OpPreventAllow, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{scsi.OpPreventAllow, 0, 0, 0, 0x03, 0}, dir: scsi.DirNone, lock: lockNone, resv: resvUnlessHarmless, harmless: allowsRemoval, alua: onlyActive, fn: (*Device).preventAllow},
	{op: scsi.OpReadDefectData10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{scsi.OpReadDefectData10, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0}, dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).readDefectData},
	{op: scsi.OpReadDefectData12, sa: -1, cdbLen: 12, timeout: 10, usage: cat([]byte{scsi.OpReadDefectData12, 0x1f, 0, 0, 0, 0}, ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).readDefectData},
	// stmf answers REPORT TARGET PORT GROUPS (TPGS=01b) before the LU sees
	// it, as it does REPORT LUNS; the row lists it in RSOC.
	{op: scsi.OpMaintenanceIn, sa: scsi.SAReportTargetPortGroups, cdbLen: 12, timeout: 10, usage: cat([]byte{0xa3, 0xff, 0, 0, 0, 0}, ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvAlways, alua: inAnyState, fn: (*Device).reportTargetPortGroups},
	{op: scsi.OpMaintenanceIn, sa: scsi.SAReportSupportedTMFs, cdbLen: 12, timeout: 10, usage: cat([]byte{0xa3, 0x1f, 0x80, 0, 0, 0}, ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: inAnyState, fn: (*Device).reportSupportedTMFs},
	// Reservations (reserve.go, pr.go).
	{op: scsi.OpReserve6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}, dir: scsi.DirNone, lock: lockNone, resv: resvPROnly, alua: onlyActive, fn: (*Device).reserve},
	{op: scsi.OpRelease6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{scsi.OpRelease6, 0, 0, 0, 0, 0}, dir: scsi.DirNone, lock: lockNone, resv: resvAlways, alua: onlyActive, fn: (*Device).release},
	{op: scsi.OpReserve10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{scsi.OpReserve10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, dir: scsi.DirNone, lock: lockNone, resv: resvPROnly, alua: onlyActive, fn: (*Device).reserve},
	{op: scsi.OpRelease10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{scsi.OpRelease10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, dir: scsi.DirNone, lock: lockNone, resv: resvAlways, alua: onlyActive, fn: (*Device).release},
	{op: scsi.OpPRIn, sa: scsi.PRInReadKeys, cdbLen: 10, timeout: 10, usage: prinUsage, dir: scsi.DirRead, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prIn},
	{op: scsi.OpPRIn, sa: scsi.PRInReadReservation, cdbLen: 10, timeout: 10, usage: prinUsage, dir: scsi.DirRead, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prIn},
	{op: scsi.OpPRIn, sa: scsi.PRInReportCaps, cdbLen: 10, timeout: 10, usage: prinUsage, dir: scsi.DirRead, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prIn},
	{op: scsi.OpPRIn, sa: scsi.PRInReadFullStatus, cdbLen: 10, timeout: 10, usage: prinUsage, dir: scsi.DirRead, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prIn},
	{op: scsi.OpPROut, sa: scsi.PROutRegister, cdbLen: 10, timeout: 30, usage: proutUsageNoType, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutReserve, cdbLen: 10, timeout: 30, usage: proutUsage, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutRelease, cdbLen: 10, timeout: 30, usage: proutUsage, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutClear, cdbLen: 10, timeout: 30, usage: proutUsageNoType, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutPreempt, cdbLen: 10, timeout: 30, usage: proutUsage, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutPreemptAbort, cdbLen: 10, timeout: 30, usage: proutUsage, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutRegisterIgnore, cdbLen: 10, timeout: 30, usage: proutUsageNoType, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutRegisterMove, cdbLen: 10, timeout: 30, usage: proutUsage, dir: scsi.DirWrite, lock: lockNone, resv: resvPRCommand, alua: inStandby, fn: (*Device).prOut},
	// VAAI and atomic writes (ats.go, xcopy.go, orwrite.go, atomic.go).
	{op: scsi.OpCompareAndWrite, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{scsi.OpCompareAndWrite, 0x18}, ff8, []byte{0, 0, 0, 0xff, 0, 0}), dir: scsi.DirWrite, layout: layoutCAW, lock: lockAtomic, resv: resvWrite, alua: onlyActive, kind: stmf.KindATS, fn: (*Device).compareAndWrite},
	{op: scsi.OpOrWrite16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{scsi.OpOrWrite16, 0x18}, ff8, ff4, []byte{0, 0}), dir: scsi.DirWrite, layout: layout16, lock: lockAtomic, resv: resvWrite, alua: onlyActive, kind: stmf.KindWrite, fn: (*Device).orWrite},
	{op: scsi.OpWriteAtomic16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{scsi.OpWriteAtomic16, 0x18}, ff8, []byte{0, 0, 0xff, 0xff, 0, 0}), dir: scsi.DirWrite, layout: layoutAtomic16, lock: lockAtomic, resv: resvWrite, alua: onlyActive, only: atomicStore, kind: stmf.KindWrite, fn: (*Device).writeAtomic16},
	{op: scsi.OpExtendedCopy, sa: scsi.SAExtendedCopyLID1, cdbLen: 16, timeout: 120, usage: cat([]byte{scsi.OpExtendedCopy, 0x1f}, make([]byte, 8), ff4, []byte{0, 0}), dir: scsi.DirWrite, lock: lockNone, resv: resvWrite, alua: onlyActive, kind: stmf.KindXCopy, fn: (*Device).extendedCopy},
	{op: scsi.OpReceiveCopyRes, sa: scsi.SACopyStatus, cdbLen: 16, timeout: 10, usage: cat([]byte{scsi.OpReceiveCopyRes, 0x1f, 0xff}, make([]byte, 7), ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).receiveCopyResults},
	{op: scsi.OpReceiveCopyRes, sa: scsi.SAOperatingParams, cdbLen: 16, timeout: 10, usage: cat([]byte{scsi.OpReceiveCopyRes, 0x1f}, make([]byte, 8), ff4, []byte{0, 0}), dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: onlyActive, fn: (*Device).receiveCopyResults},
	{op: scsi.OpUnmap, sa: -1, cdbLen: 10, timeout: 60, usage: []byte{scsi.OpUnmap, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0}, dir: scsi.DirWrite, lock: lockWholeLU, resv: resvWrite, alua: onlyActive, only: isThin, kind: stmf.KindUnmap, fn: (*Device).unmap},
	// Not implemented, but SPC-4 5.15.2.4 lets a standby port receive
	// them: they get INVALID COMMAND OPERATION CODE there too, not NOT READY.
	{op: scsi.OpLogSelect, sa: -1, cdbLen: 10, dir: scsi.DirWrite, lock: lockNone, resv: resvWrite, alua: inStandby},
	{op: scsi.OpLogSense, sa: -1, cdbLen: 10, dir: scsi.DirRead, lock: lockNone, resv: resvAlways, alua: inStandby},
	{op: scsi.OpReceiveDiagnostic, sa: -1, cdbLen: 6, dir: scsi.DirRead, lock: lockNone, resv: resvRead, alua: inStandby},
	{op: scsi.OpSendDiagnostic, sa: -1, cdbLen: 6, dir: scsi.DirWrite, lock: lockNone, resv: resvWrite, alua: inStandby},
	{op: scsi.OpMaintenanceOut, sa: scsi.SASetTargetPortGroups, cdbLen: 12, dir: scsi.DirWrite, lock: lockNone, resv: resvWrite, alua: inAnyState},
}

// Row predicates (command.only).
func isThin(d *Device) bool      { return d.thin.enabled }
func isThick(d *Device) bool     { return !d.thin.enabled }
func atomicStore(d *Device) bool { return d.atomicWrites }

// startsUnit: START STOP UNIT with START=1 and POWER CONDITION 0 is harmless.
func startsUnit(cdb []byte) bool { return cdb[4]&0x01 != 0 && cdb[4]&0xf0 == 0 }

// allowsRemoval: PREVENT ALLOW MEDIUM REMOVAL with PREVENT 0 is harmless.
func allowsRemoval(cdb []byte) bool { return cdb[4]&0x03 == 0 }
