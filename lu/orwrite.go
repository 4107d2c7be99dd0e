package lu

import (
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// orWrite: ORWRITE (16) (SBC-3 5.8). Each block becomes the bitwise OR of
// its current contents and the Data-Out. The read-modify-write runs under
// the range lock (rangelock.go: ORWRITE is registered as an atomic
// command), so no other write to the range can slip in between. As for
// WRITE, only whole blocks of the Data-Out actually received are used.
func (d *Device) orWrite(t *stmf.Task, cdb []byte) *stmf.Result {
	if cdb[1]&0xe0 != 0 { // ORPROTECT: no protection information
		return fail(invalidField(1, 7))
	}
	fua := t.LUDecoded.Flags&decFUA != 0
	lba, n := blockRange(t)
	if n > d.maxXfer {
		return fail(invalidField(10, -1))
	}
	data, total, done := d.writePayload(t, lba, n)
	if done != nil {
		return done
	}
	m := uint64(len(data))
	if m > 0 {
		pb := d.bufs.get(int(m))
		defer pb.release()
		cur := pb.b[:m]
		if err := d.store.ReadAt(cur, d.byteOff(lba)); err != nil {
			return d.ioError(err, false, lba)
		}
		for i := range cur {
			cur[i] |= data[i]
		}
		if r := d.writeBlocks(cur, lba, fua || d.wcd.Load()); r != nil {
			return r
		}
		d.thinAfterWrite(t)
	}
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(total)}
}
