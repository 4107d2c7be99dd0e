package lu

import "github.com/costar-project/costar/stmf"

// Durable writes (FUA, write-through, WRITE AND VERIFY) with group commit.
// A durable write alone does one RWF_DSYNC write: one syscall, one device
// flush. When other durable writes or a flush are in flight (QD > 1) it
// writes to the cache instead and joins the flusher: the round it waits
// for starts after its write completed, so that fdatasync covers it, and
// one fdatasync acknowledges every write that completed before it
// started, not one flush per command. The same holds on O_DIRECT stores:
// a direct write reaches the device but not past its volatile cache (nor
// a zvol's ZIL), so it is not durable without the flush either.
//
// Durability is that of RWF_DSYNC: GOOD only after the data is stable. A
// failed round fails every write that waited for it (MEDIUM ERROR) and
// latches (syncStore), so later durable writes fail too; a failed write
// latches as a failed RWF_DSYNC write does.

// writeDurable writes data at lba and returns once it is stable.
func (d *Device) writeDurable(data []byte, lba uint64) *stmf.Result {
	if r := d.writeFailed(lba); r != nil {
		return r
	}
	if err := d.checkFence(); err != nil { // fence.go: refused before anything is written
		return d.ioError(err, true, lba)
	}
	alone := d.durableWrites.Add(1) == 1 && !d.flush.busy()
	defer d.durableWrites.Add(-1)
	if err := d.store.WriteAt(data, d.byteOff(lba), alone); err != nil {
		d.durableFailure(err)
		return d.ioError(err, true, lba)
	}
	if alone {
		return nil
	}
	if err := d.flush.flush(); err != nil { // syncStore latched it
		return d.ioError(err, true, lba)
	}
	return nil
}
