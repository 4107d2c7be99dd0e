package lu

import (
	"encoding/hex"
	"runtime/debug"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Execute runs one task and completes it exactly once.
func (d *Device) Execute(t *stmf.Task) {
	c := d.decoded(t)
	// What the port's access state refuses is refused before anything
	// else, as stmf did (Admit registered no range for it).
	if sense := aluaRefusal(t.Access, c); sense != nil {
		t.CompleteSense(sense)
		return
	}
	// Wait for earlier overlapping writes (rangelock.go); the range is
	// released on every path, before the status goes out.
	lk, ok := d.vaai.locks.acquire(t, c)
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
	r := d.run(t, c)
	d.vaai.locks.release(lk)
	if r == nil && t.InlineNoWait {
		// A read the page cache could not answer: nothing was done, so it
		// runs again from the start where it may wait for the device.
		t.InlineNoWait = false
		go d.Execute(t)
		return
	}
	t.Complete(r)
}

func (d *Device) run(t *stmf.Task, c *command) (r *stmf.Result) {
	defer func() {
		if p := recover(); p != nil {
			d.panics.Add(1)
			d.log.Error("lu: command handler panicked", "guid", d.guid, "cdb", hex.EncodeToString(t.CDB),
				"panic", p, "stack", string(debug.Stack()))
			r = fail(scsi.NewSense(scsi.KeyHardwareError, scsi.ASCInternalTargetFailure))
		}
	}()
	cdb := t.CDB
	if c == nil || c.fn == nil {
		return d.unsupported(cdb)
	}
	if len(cdb) < c.cdbLen {
		return fail(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, -1))
	}
	cdb = cdb[:c.cdbLen]
	if cdb[c.cdbLen-1]&0x04 != 0 { // NACA: we do not support ACA
		return fail(invalidField(c.cdbLen-1, 2))
	}
	if r := d.reservationCheck(t, c, cdb); r != nil {
		return r
	}
	return c.fn(d, t, cdb)
}

// unsupported answers a command the LU does not implement: an unknown
// service action of an opcode it implements points at the field.
func (d *Device) unsupported(cdb []byte) *stmf.Result {
	if len(cdb) == 0 || !d.cmds.hasServiceActions(cdb[0]) {
		return fail(scsi.IllegalRequest(scsi.ASCInvalidCommandOpcode, 0))
	}
	if len(cdb) < 2 {
		return fail(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, -1))
	}
	return fail(invalidField(1, 4))
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
