package lu

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// maxAtomicBlocks returns MAXIMUM ATOMIC TRANSFER LENGTH (Block Limits VPD):
// what the store writes crash-atomically (Caps.AtomicMax), within the maximum transfer
// length and the 16-bit TRANSFER LENGTH of WRITE ATOMIC (16); 0 when the
// LU has no journal. No alignment or granularity is required, and atomic
// boundaries are not supported (their VPD fields are 0).
func (d *Device) maxAtomicBlocks() uint32 {
	if !d.atomicWrites {
		return 0
	}
	return min(d.maxXfer, uint32(d.caps.AtomicMax>>d.bsShift), 0xffff)
}

// writeAtomic16: WRITE ATOMIC (16) (SBC-4 5.48). The range lock (the
// command is registered as atomic at Admit) makes the write indivisible
// with respect to every other command: overlapping writes are ordered
// around it and overlapping reads that arrive while it is queued or
// running wait for it. The store (backing.AtomicWriter: the file store's
// journal) makes it indivisible across a crash or power loss, and durable
// before GOOD whatever FUA and the write cache say.
func (d *Device) writeAtomic16(t *stmf.Task, cdb []byte) *stmf.Result {
	if cdb[1]&0xe0 != 0 { // WRPROTECT
		return fail(invalidField(1, 7))
	}
	fua := t.LUDecoded.Flags&decFUA != 0
	if binary.BigEndian.Uint16(cdb[10:12]) != 0 { // ATOMIC BOUNDARY: not supported
		return fail(invalidField(10, -1))
	}
	lba, n := blockRange(t)
	if n > d.maxAtomicBlocks() {
		return fail(invalidField(12, -1))
	}
	data, total, done := d.writePayload(t, lba, n)
	if done != nil {
		return done
	}
	// All or nothing: a short Data-Out cannot be written atomically.
	if uint64(len(data)) < total {
		return iuLengthMismatch(total)
	}
	if d.atomicW == nil { // not offered (not in the command table); kept safe
		if r := d.writeBlocks(data[:total], lba, fua || d.wcd.Load()); r != nil {
			return r
		}
	} else {
		// Durable whatever FUA says: subject to a latched failure.
		if r := d.writeFailed(lba); r != nil {
			return r
		}
		if err := d.checkFence(); err != nil {
			return d.ioError(err, true, lba)
		}
		if err := d.atomicW.WriteAtomic(data[:total], d.byteOff(lba)); err != nil {
			d.durableFailure(err)
			return d.ioError(err, true, lba)
		}
	}
	d.thinAfterWrite(t)
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(total)}
}
