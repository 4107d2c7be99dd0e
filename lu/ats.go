package lu

import (
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// maxCAWBlocks is MAXIMUM COMPARE AND WRITE LENGTH (Block Limits VPD):
// ESXi sends single-block ATS; more is allowed by SBC and costs nothing
// here. It is further limited so compare + write data fit one transfer.
const maxCAWBlocks = 255

// maxCompareAndWrite returns the largest NUMBER OF LOGICAL BLOCKS a
// COMPARE AND WRITE may name on this LU (at least 1).
func (d *Device) maxCompareAndWrite() uint32 {
	return max(1, min(maxCAWBlocks, d.maxXfer/2))
}

// compareAndWrite: COMPARE AND WRITE (SBC-3 5.2), VMware's ATS. The
// Data-Out holds the verify data then the write data, NUMBER OF LOGICAL
// BLOCKS each. Execute holds the range lock (registered at Admit, in
// arrival order), so the read, compare and write are one atomic operation
// against every other write, ATS and atomic command to these blocks, from
// every I_T nexus. A miscompare is CHECK CONDITION, MISCOMPARE, MISCOMPARE
// DURING VERIFY OPERATION, with the offset of the first differing byte in
// INFORMATION, and nothing is written.
func (d *Device) compareAndWrite(t *stmf.Task, cdb []byte) *stmf.Result {
	if cdb[1]&0xe0 != 0 { // WRPROTECT: no protection information
		return fail(invalidField(1, 7))
	}
	fua := t.LUDecoded.Flags&decFUA != 0
	lba, n := blockRange(t)
	if n > d.maxCompareAndWrite() {
		return fail(invalidField(13, -1))
	}
	half := uint64(n) << d.bsShift
	if n == 0 {
		// SBC: no compare and no write, not an error. Data-Out holding a
		// whole compare+write pair means the count was truncated (256
		// blocks wrap to 0): refuse rather than report a compare that
		// never happened.
		if uint64(t.ExpectedLen) >= 2*uint64(d.bs) {
			return fail(invalidField(13, -1))
		}
		if !d.inRange(lba, 0) {
			return lbaOutOfRange()
		}
		return good()
	}
	// The Data-Out must be exactly compare + write data: a partial compare
	// or write is meaningless (libiscsi CompareAndWrite.InvalidDataOutSize).
	if uint64(t.ExpectedLen) != 2*half || t.Dir&scsi.DirWrite == 0 {
		return iuLengthMismatch(2 * half)
	}
	if d.writeProtected() {
		return writeProtected()
	}
	if !d.inRange(lba, uint64(n)) {
		return lbaOutOfRange()
	}
	data, err := t.Data()
	if err != nil {
		return dataOutFailed()
	}
	if uint64(len(data)) < 2*half {
		return iuLengthMismatch(2 * half)
	}
	if r := d.compare(lba, data[:half]); r != nil {
		return r
	}
	if r := d.writeBlocks(data[half:2*half], lba, fua || d.wcd.Load()); r != nil {
		return r
	}
	d.thinAfterWrite(t)
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(2 * half)}
}
