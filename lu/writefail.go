package lu

import (
	"errors"
	"fmt"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// WriteFailure is a write-back or sync failure the LU remembers. A failed
// fdatasync (or durable write) may mean the kernel dropped dirty pages of
// writes already acknowledged to some initiator, and the next fdatasync
// of the same file succeeds ("fsyncgate"): so once one failed, every
// later SYNCHRONIZE CACHE, FUA write and write-through write answers
// MEDIUM ERROR until an administrator clears it (ClearWriteFailure).
type WriteFailure struct {
	At  time.Time
	Op  string // "sync" or "durable write"
	Err string
}

func (f *WriteFailure) String() string {
	return fmt.Sprintf("%s failed at %s: %s", f.Op, f.At.UTC().Format(time.RFC3339), f.Err)
}

// errWriteFailed is what a flush returns while a failure is latched. It
// deliberately wraps nothing: the original cause (ENOSPC, say) must not
// turn the answer into anything but MEDIUM ERROR.
type errWriteFailed struct{ f *WriteFailure }

func (e errWriteFailed) Error() string { return "lu: earlier " + e.f.String() }

// WriteFailure returns the latched failure, nil when there is none.
func (d *Device) WriteFailure() *WriteFailure { return d.writeFail.Load() }

// ClearWriteFailure forgets the latched failure (the administrator has
// accepted that data written before it may be lost) and returns it.
func (d *Device) ClearWriteFailure() *WriteFailure {
	f := d.writeFail.Swap(nil)
	if f != nil {
		d.log.Warn("lu: write failure cleared by the administrator", "guid", d.guid, "path", d.where(), "failure", f.String())
	}
	return f
}

// latchWriteFailure remembers the first failure; later ones add nothing
// an administrator needs (the first is when data may have been lost).
func (d *Device) latchWriteFailure(op string, err error) {
	f := &WriteFailure{At: time.Now(), Op: op, Err: err.Error()}
	if d.writeFail.CompareAndSwap(nil, f) {
		d.log.Error("lu: write-back failure: SYNCHRONIZE CACHE, FUA and write-through writes fail until an administrator clears it (offline-lu, online-lu)",
			"guid", d.guid, "path", d.where(), "op", op, "err", err)
	}
}

// syncStore is the flusher's operation: a store sync that fails at once
// while a failure is latched and latches a new one.
func (d *Device) syncStore() error {
	if f := d.writeFail.Load(); f != nil {
		return errWriteFailed{f}
	}
	if err := d.store.Sync(); err != nil {
		d.latchWriteFailure("sync", err)
		return err
	}
	return nil
}

// writeFailed is MEDIUM ERROR, WRITE ERROR for a command that must make
// data durable while a failure is latched (nil when none is).
func (d *Device) writeFailed(lba uint64) *stmf.Result {
	if d.writeFail.Load() == nil {
		return nil
	}
	return mediumWriteError(lba)
}

func mediumWriteError(lba uint64) *stmf.Result {
	s := scsi.NewSense(scsi.KeyMediumError, scsi.ASCWriteError)
	if lba <= 0xffffffff {
		s.WithInfo(uint32(lba))
	}
	return fail(s)
}

// durableFailure latches err from a durable write unless it was refused
// before anything reached the medium (no space, read-only, fenced).
func (d *Device) durableFailure(err error) {
	if errors.Is(err, backing.ErrNoSpace) || errors.Is(err, backing.ErrReadOnly) || errors.Is(err, backing.ErrFenced) {
		return
	}
	d.latchWriteFailure("durable write", err)
}

// writeBlocks writes data at lba, durable for FUA and write-through
// writes: those fail while a failure is latched, and latch their own
// (durable.go).
func (d *Device) writeBlocks(data []byte, lba uint64, durable bool) *stmf.Result {
	if durable {
		return d.writeDurable(data, lba)
	}
	if err := d.checkFence(); err != nil {
		return d.ioError(err, true, lba)
	}
	if err := d.store.WriteAt(data, d.byteOff(lba), false); err != nil {
		return d.ioError(err, true, lba)
	}
	return nil
}
