package lu

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// writeSameChunk is how much of the repeated pattern one pwrite carries.
const writeSameChunk = 1 << 20

// writeSame: WRITE SAME (10) and (16).
//
// One block of Data-Out (none with NDOB, which means a block of zeroes)
// is written to every block of the range. NUMBER OF LOGICAL BLOCKS 0
// means "to the last block" (WSNZ=0); either way the range may not exceed
// MAXIMUM WRITE SAME LENGTH. The Data-Out length must be exactly one block
// (zero with NDOB): WRITE SAME has no partial transfer.
//
// With the UNMAP bit (thin LUs only, LBPWS/LBPWS10) the range is
// deallocated and reads as zeroes afterwards (LBPRZ); as in SBC-3, LIO and
// libiscsi's tests, the Data-Out block is not written then. Without it,
// a zero pattern is written with fallocate ZERO_RANGE (or BLKZEROOUT),
// which keeps the blocks allocated, and any other pattern with pwrite.
// ANCHOR is not supported (ANC_SUP=0), nor protection information or the
// obsolete PBDATA/LBDATA bits.
func (d *Device) writeSame(t *stmf.Task, cdb []byte) *stmf.Result {
	lba, n32 := blockRange(t)
	n, lenOff := uint64(n32), lenField(len(cdb))
	ndob := false
	if cdb[0] == scsi.OpWriteSame10 {
		if cdb[1]&0x01 != 0 { // reserved
			return fail(invalidField(1, 0))
		}
	} else {
		ndob = cdb[1]&0x01 != 0
	}
	unmap := cdb[1]&0x08 != 0
	switch {
	case cdb[1]&0xe0 != 0: // WRPROTECT: no protection information
		return fail(invalidField(1, 7))
	case cdb[1]&0x10 != 0: // ANCHOR: ANC_SUP is 0
		return fail(invalidField(1, 4))
	case cdb[1]&0x06 != 0: // PBDATA, LBDATA (obsolete)
		return fail(invalidField(1, 2))
	case d.writeProtected(): // before UNMAP: libiscsi's ReadOnly wants WRITE PROTECTED
		return writeProtected()
	case unmap && !d.thin.enabled: // LBPWS/LBPWS10 are 0 on a thick LU
		return fail(invalidField(1, 3))
	}
	nb := d.nblocks.Load()
	if lba > nb {
		return lbaOutOfRange()
	}
	if n == 0 {
		n = nb - lba
	}
	if !d.inRange(lba, n) {
		return lbaOutOfRange()
	}
	if n > d.maxWriteSameBlocks() {
		return fail(invalidField(lenOff, -1))
	}
	want := uint32(d.bs)
	if ndob {
		want = 0
	}
	if t.ExpectedLen != want {
		// Too little Data-Out leaves no pattern, too much is not ours to ignore.
		return iuLengthMismatch(uint64(want))
	}
	var pattern []byte
	if !ndob {
		data, err := dataOut(t)
		if err != nil {
			return dataOutFailed()
		}
		if len(data) < int(d.bs) {
			return iuLengthMismatch(uint64(want))
		}
		pattern = data[:d.bs]
	}
	if n == 0 {
		return &stmf.Result{Status: scsi.StatusGood, TransferLen: want}
	}
	// Ordering against overlapping writes: rangelock.go registers WRITE
	// SAME (10)/(16) at Admit like any write (NUMBER 0: to the end).
	var err error
	switch {
	case unmap:
		err = d.deallocate(lba, n)
	case pattern == nil || allZero(pattern):
		err = d.zeroBlocks(lba, n)
	default:
		err = d.fillBlocks(t, lba, n, pattern)
	}
	if err == nil {
		err = d.syncIfWCD()
	}
	if err != nil {
		if t.Context().Err() != nil {
			return dataOutFailed() // aborted: the result is dropped
		}
		return d.ioError(err, true, lba)
	}
	if !unmap {
		d.thinAfterWrite(t)
	}
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: want}
}

// zeroBlocks makes blocks [lba, lba+n) read as zeroes, keeping them
// allocated (mapped).
func (d *Device) zeroBlocks(lba, n uint64) error {
	if err := d.checkFence(); err != nil {
		return err
	}
	return d.store.WriteZeroes(d.byteOff(lba), int64(n<<d.bsShift))
}

// fillBlocks writes pattern (one block) to blocks [lba, lba+n), stopping
// early when the task is aborted.
func (d *Device) fillBlocks(t *stmf.Task, lba, n uint64, pattern []byte) error {
	total := n << d.bsShift
	chunk := min(total, uint64(max(writeSameChunk, int(d.bs))))
	pb := d.bufs.get(int(chunk))
	defer pb.release()
	buf := pb.b[:chunk]
	for off := 0; off < len(buf); off += len(pattern) {
		copy(buf[off:], pattern)
	}
	pos := d.byteOff(lba)
	for total > 0 {
		if err := t.Context().Err(); err != nil {
			return err
		}
		c := min(total, chunk)
		if err := d.checkFence(); err != nil {
			return err
		}
		if err := d.store.WriteAt(buf[:c], pos, false); err != nil {
			return err
		}
		pos += int64(c)
		total -= c
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.NativeEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
