package lu

import (
	"encoding/hex"
	"runtime/debug"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// command describes one supported command (opcode, and service action
// where the opcode has them) for dispatch and for REPORT SUPPORTED
// OPERATION CODES.
type command struct {
	op     byte
	sa     int // service action, or -1 when the opcode has none
	cdbLen int
	// usage is the CDB USAGE DATA bitmap: a bit is set when the device
	// server honours the corresponding CDB bit. usage[0] is the opcode.
	usage   []byte
	timeout uint32 // recommended command timeout, seconds
	fn      func(d *Device, t *stmf.Task, cdb []byte) *stmf.Result
}

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

// commandTable lists every command the LU supports. It is read-only;
// each Device refers to it through d.cmds.
var commandTable = []command{
	{op: scsi.OpTestUnitReady, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x00, 0, 0, 0, 0, 0}, fn: (*Device).testUnitReady},
	{op: scsi.OpRequestSense, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x03, 0x01, 0, 0, 0xff, 0}, fn: (*Device).requestSense},
	{op: scsi.OpRead6, sa: -1, cdbLen: 6, timeout: 60, usage: []byte{0x08, 0x1f, 0xff, 0xff, 0xff, 0}, fn: (*Device).read},
	{op: scsi.OpWrite6, sa: -1, cdbLen: 6, timeout: 60, usage: []byte{0x0a, 0x1f, 0xff, 0xff, 0xff, 0}, fn: (*Device).write},
	{op: scsi.OpInquiry, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x12, 0x01, 0xff, 0xff, 0xff, 0}, fn: (*Device).inquiry},
	{op: scsi.OpModeSelect6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x15, 0x10, 0, 0, 0xff, 0}, fn: (*Device).modeSelect},
	{op: scsi.OpModeSense6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{0x1a, 0x08, 0xff, 0xff, 0xff, 0}, fn: (*Device).modeSense},
	{op: scsi.OpStartStopUnit, sa: -1, cdbLen: 6, timeout: 60, usage: []byte{0x1b, 0x01, 0, 0x0f, 0xf7, 0}, fn: (*Device).startStopUnit},
	{op: scsi.OpReadCapacity10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0}, fn: (*Device).readCapacity10},
	{op: scsi.OpRead10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x28, 0x18}, ff4, []byte{0, 0xff, 0xff, 0}), fn: (*Device).read},
	{op: scsi.OpWrite10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x2a, 0x18}, ff4, []byte{0, 0xff, 0xff, 0}), fn: (*Device).write},
	{op: scsi.OpWriteVerify10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x2e, 0x12}, ff4, []byte{0, 0xff, 0xff, 0}), fn: (*Device).writeVerify},
	{op: scsi.OpVerify10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x2f, 0x16}, ff4, []byte{0, 0xff, 0xff, 0}), fn: (*Device).verify},
	{op: scsi.OpPrefetch10, sa: -1, cdbLen: 10, timeout: 60, usage: cat([]byte{0x34, 0x02}, ff4, []byte{0, 0xff, 0xff, 0}), fn: (*Device).prefetch},
	{op: scsi.OpSyncCache10, sa: -1, cdbLen: 10, timeout: 120, usage: cat([]byte{0x35, 0x02}, ff4, []byte{0, 0xff, 0xff, 0}), fn: (*Device).syncCache},
	{op: scsi.OpModeSelect10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{0x55, 0x10, 0, 0, 0, 0, 0, 0xff, 0xff, 0}, fn: (*Device).modeSelect},
	{op: scsi.OpModeSense10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0}, fn: (*Device).modeSense},
	{op: scsi.OpRead16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x88, 0x18}, ff8, ff4, []byte{0, 0}), fn: (*Device).read},
	{op: scsi.OpWrite16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x8a, 0x18}, ff8, ff4, []byte{0, 0}), fn: (*Device).write},
	{op: scsi.OpWriteVerify16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x8e, 0x12}, ff8, ff4, []byte{0, 0}), fn: (*Device).writeVerify},
	{op: scsi.OpVerify16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x8f, 0x16}, ff8, ff4, []byte{0, 0}), fn: (*Device).verify},
	{op: scsi.OpPrefetch16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{0x90, 0x02}, ff8, ff4, []byte{0, 0}), fn: (*Device).prefetch},
	{op: scsi.OpSyncCache16, sa: -1, cdbLen: 16, timeout: 120, usage: cat([]byte{0x91, 0x02}, ff8, ff4, []byte{0, 0}), fn: (*Device).syncCache},
	{op: scsi.OpServiceActionIn, sa: scsi.SAReadCapacity16, cdbLen: 16, timeout: 10, usage: cat([]byte{0x9e, 0x1f}, make([]byte, 8), ff4, []byte{0, 0}), fn: (*Device).readCapacity16},
	{op: scsi.OpReportLUNs, sa: -1, cdbLen: 12, timeout: 10, usage: cat([]byte{0xa0, 0, 0xff, 0, 0, 0}, ff4, []byte{0, 0}), fn: (*Device).reportLUNs},
	{op: scsi.OpMaintenanceIn, sa: scsi.SAReportSupportedOps, cdbLen: 12, timeout: 10, usage: cat([]byte{0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff}, ff4, []byte{0, 0}), fn: (*Device).reportSupportedOpcodes},
	{op: scsi.OpRead12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xa8, 0x18}, ff4, ff4, []byte{0, 0}), fn: (*Device).read},
	{op: scsi.OpWrite12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xaa, 0x18}, ff4, ff4, []byte{0, 0}), fn: (*Device).write},
	{op: scsi.OpWriteVerify12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xae, 0x12}, ff4, ff4, []byte{0, 0}), fn: (*Device).writeVerify},
	{op: scsi.OpVerify12, sa: -1, cdbLen: 12, timeout: 60, usage: cat([]byte{0xaf, 0x16}, ff4, ff4, []byte{0, 0}), fn: (*Device).verify},
	// Thin provisioning and small SPC/SBC commands (thin.go, writesame.go, misc.go).
	// thinCommandTable adds UNMAP and the WRITE SAME UNMAP bit for thin LUs.
	{op: scsi.OpWriteSame10, sa: -1, cdbLen: 10, timeout: 120, usage: cat([]byte{scsi.OpWriteSame10, 0x00}, ff4, []byte{0, 0xff, 0xff, 0}), fn: (*Device).writeSame},
	{op: scsi.OpWriteSame16, sa: -1, cdbLen: 16, timeout: 120, usage: cat([]byte{scsi.OpWriteSame16, 0x01}, ff8, ff4, []byte{0, 0}), fn: (*Device).writeSame},
	{op: scsi.OpServiceActionIn, sa: scsi.SAGetLBAStatus, cdbLen: 16, timeout: 10, usage: cat([]byte{0x9e, 0x1f}, ff8, ff4, []byte{0, 0}), fn: (*Device).getLBAStatus},
	{op: scsi.OpPreventAllow, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{scsi.OpPreventAllow, 0, 0, 0, 0x03, 0}, fn: (*Device).preventAllow},
	{op: scsi.OpReadDefectData10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{scsi.OpReadDefectData10, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0}, fn: (*Device).readDefectData},
	{op: scsi.OpReadDefectData12, sa: -1, cdbLen: 12, timeout: 10, usage: cat([]byte{scsi.OpReadDefectData12, 0x1f, 0, 0, 0, 0}, ff4, []byte{0, 0}), fn: (*Device).readDefectData},
	{op: scsi.OpMaintenanceIn, sa: scsi.SAReportSupportedTMFs, cdbLen: 12, timeout: 10, usage: cat([]byte{0xa3, 0x1f, 0x80, 0, 0, 0}, ff4, []byte{0, 0}), fn: (*Device).reportSupportedTMFs},
	// Reservations (reserve.go, pr.go).
	{op: scsi.OpReserve6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}, fn: (*Device).reserve},
	{op: scsi.OpRelease6, sa: -1, cdbLen: 6, timeout: 10, usage: []byte{scsi.OpRelease6, 0, 0, 0, 0, 0}, fn: (*Device).release},
	{op: scsi.OpReserve10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{scsi.OpReserve10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, fn: (*Device).reserve},
	{op: scsi.OpRelease10, sa: -1, cdbLen: 10, timeout: 10, usage: []byte{scsi.OpRelease10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, fn: (*Device).release},
	{op: scsi.OpPRIn, sa: scsi.PRInReadKeys, cdbLen: 10, timeout: 10, usage: prinUsage, fn: (*Device).prIn},
	{op: scsi.OpPRIn, sa: scsi.PRInReadReservation, cdbLen: 10, timeout: 10, usage: prinUsage, fn: (*Device).prIn},
	{op: scsi.OpPRIn, sa: scsi.PRInReportCaps, cdbLen: 10, timeout: 10, usage: prinUsage, fn: (*Device).prIn},
	{op: scsi.OpPRIn, sa: scsi.PRInReadFullStatus, cdbLen: 10, timeout: 10, usage: prinUsage, fn: (*Device).prIn},
	{op: scsi.OpPROut, sa: scsi.PROutRegister, cdbLen: 10, timeout: 30, usage: proutUsageNoType, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutReserve, cdbLen: 10, timeout: 30, usage: proutUsage, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutRelease, cdbLen: 10, timeout: 30, usage: proutUsage, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutClear, cdbLen: 10, timeout: 30, usage: proutUsageNoType, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutPreempt, cdbLen: 10, timeout: 30, usage: proutUsage, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutPreemptAbort, cdbLen: 10, timeout: 30, usage: proutUsage, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutRegisterIgnore, cdbLen: 10, timeout: 30, usage: proutUsageNoType, fn: (*Device).prOut},
	{op: scsi.OpPROut, sa: scsi.PROutRegisterMove, cdbLen: 10, timeout: 30, usage: proutUsage, fn: (*Device).prOut},
	// VAAI and atomic writes (ats.go, xcopy.go, orwrite.go, atomic.go).
	{op: scsi.OpCompareAndWrite, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{scsi.OpCompareAndWrite, 0x18}, ff8, []byte{0, 0, 0, 0xff, 0, 0}), fn: (*Device).compareAndWrite},
	{op: scsi.OpOrWrite16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{scsi.OpOrWrite16, 0x18}, ff8, ff4, []byte{0, 0}), fn: (*Device).orWrite},
	{op: scsi.OpWriteAtomic16, sa: -1, cdbLen: 16, timeout: 60, usage: cat([]byte{scsi.OpWriteAtomic16, 0x18}, ff8, []byte{0, 0, 0xff, 0xff, 0, 0}), fn: (*Device).writeAtomic16},
	{op: scsi.OpExtendedCopy, sa: scsi.SAExtendedCopyLID1, cdbLen: 16, timeout: 120, usage: cat([]byte{scsi.OpExtendedCopy, 0x1f}, make([]byte, 8), ff4, []byte{0, 0}), fn: (*Device).extendedCopy},
	{op: scsi.OpReceiveCopyRes, sa: scsi.SACopyStatus, cdbLen: 16, timeout: 10, usage: cat([]byte{scsi.OpReceiveCopyRes, 0x1f, 0xff}, make([]byte, 7), ff4, []byte{0, 0}), fn: (*Device).receiveCopyResults},
	{op: scsi.OpReceiveCopyRes, sa: scsi.SAOperatingParams, cdbLen: 16, timeout: 10, usage: cat([]byte{scsi.OpReceiveCopyRes, 0x1f}, make([]byte, 8), ff4, []byte{0, 0}), fn: (*Device).receiveCopyResults},
}

// hasServiceActions reports whether op is dispatched by service action.
func hasServiceActions(op byte) bool {
	return op == scsi.OpServiceActionIn || op == scsi.OpMaintenanceIn || op == scsi.OpPRIn || op == scsi.OpPROut ||
		op == scsi.OpExtendedCopy || op == scsi.OpReceiveCopyRes
}

// findCommand returns the table entry for op (and sa when the opcode has
// service actions), or nil.
func (d *Device) findCommand(op byte, sa int) *command {
	for i := range d.cmds {
		c := &d.cmds[i]
		if c.op == op && (c.sa < 0 || c.sa == sa) {
			return c
		}
	}
	return nil
}

// Execute runs one task and completes it exactly once.
func (d *Device) Execute(t *stmf.Task) {
	// Wait for earlier overlapping writes (rangelock.go); the range is
	// released on every path, before the status goes out.
	lk, ok := d.vaai.locks.acquire(t)
	defer d.vaai.locks.release(lk)
	if !ok {
		t.Complete(&stmf.Result{Status: scsi.StatusTaskAborted}) // aborted: dropped
		return
	}
	if !d.enter() {
		d.vaai.locks.release(lk)
		t.CompleteSense(scsi.NewSense(scsi.KeyNotReady, scsi.ASCLUNotReadyManualIntervention))
		return
	}
	defer d.leave()
	r := d.run(t)
	d.vaai.locks.release(lk)
	t.Complete(r)
}

func (d *Device) run(t *stmf.Task) (r *stmf.Result) {
	defer func() {
		if p := recover(); p != nil {
			d.panics.Add(1)
			d.log.Error("lu: command handler panicked", "guid", d.guid, "cdb", hex.EncodeToString(t.CDB),
				"panic", p, "stack", string(debug.Stack()))
			r = fail(scsi.NewSense(scsi.KeyHardwareError, scsi.ASCInternalTargetFailure))
		}
	}()
	cdb := t.CDB
	if len(cdb) == 0 {
		return fail(scsi.IllegalRequest(scsi.ASCInvalidCommandOpcode, 0))
	}
	op := cdb[0]
	sa := -1
	if hasServiceActions(op) {
		if len(cdb) < 2 {
			return fail(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, -1))
		}
		sa = int(cdb[1] & 0x1f)
	}
	c := d.findCommand(op, sa)
	if c == nil {
		if sa >= 0 {
			return fail(invalidField(1, 4))
		}
		return fail(scsi.IllegalRequest(scsi.ASCInvalidCommandOpcode, 0))
	}
	if len(cdb) < c.cdbLen {
		return fail(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, -1))
	}
	cdb = cdb[:c.cdbLen]
	if cdb[c.cdbLen-1]&0x04 != 0 { // NACA: we do not support ACA
		return fail(invalidField(c.cdbLen-1, 2))
	}
	if r := d.reservationCheck(t, cdb); r != nil {
		return r
	}
	return c.fn(d, t, cdb)
}

// Result helpers.

func fail(s *scsi.Sense) *stmf.Result {
	return &stmf.Result{Status: scsi.StatusCheckCondition, Sense: s.Bytes()}
}

func good() *stmf.Result { return &stmf.Result{Status: scsi.StatusGood} }

// dataIn returns GOOD with parameter data already cut to the allocation
// length: TransferLen is what was produced.
func dataIn(b []byte) *stmf.Result {
	return &stmf.Result{Status: scsi.StatusGood, Data: b, TransferLen: uint32(len(b))}
}

// truncate cuts parameter data to an allocation length.
func truncate(b []byte, alloc uint32) []byte {
	if uint64(alloc) < uint64(len(b)) {
		return b[:alloc]
	}
	return b
}

// invalidField is ILLEGAL REQUEST / INVALID FIELD IN CDB pointing at a
// byte and bit (bit < 0: no bit pointer).
func invalidField(byteOff, bit int) *scsi.Sense {
	return &scsi.Sense{Key: scsi.KeyIllegalRequest, ASC: scsi.ASCInvalidFieldInCDB,
		FieldPointer: &scsi.FieldPointer{InCDB: true, Byte: uint16(byteOff), Bit: int8(bit)}}
}

// invalidParam is ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST.
func invalidParam(byteOff, bit int) *scsi.Sense {
	return &scsi.Sense{Key: scsi.KeyIllegalRequest, ASC: scsi.ASCInvalidFieldInParameterList,
		FieldPointer: &scsi.FieldPointer{InCDB: false, Byte: uint16(byteOff), Bit: int8(bit)}}
}

func lbaOutOfRange() *stmf.Result {
	return fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange))
}

func writeProtected() *stmf.Result {
	return fail(scsi.NewSense(scsi.KeyDataProtect, scsi.ASCWriteProtected))
}

// dataOutFailed completes a command whose Data-Out could not be received
// (aborted, or the connection failed): the result is normally dropped.
func dataOutFailed() *stmf.Result {
	return fail(scsi.NewSense(scsi.KeyAbortedCommand, scsi.ASCNoAdditionalSense))
}
