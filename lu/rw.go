package lu

import (
	"bytes"
	"errors"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// inRange reports whether blocks [lba, lba+n) lie inside the LU (overflow safe).
func (d *Device) inRange(lba, n uint64) bool {
	nb := d.nblocks.Load()
	return lba <= nb && n <= nb-lba
}

// byteOff is the LU-relative byte offset of a block (stores hide any
// header in front of the data).
func (d *Device) byteOff(lba uint64) int64 { return int64(lba << d.bsShift) }

// roundUp rounds a byte count up to whole blocks.
func (d *Device) roundUp(n uint64) uint64 {
	m := uint64(d.bs) - 1
	return (n + m) &^ m
}

// dataOut fetches the Data-Out buffer of a write-direction task (nil when
// the initiator announced none).
func dataOut(t *stmf.Task) ([]byte, error) {
	if t.ExpectedLen == 0 || t.Dir&scsi.DirWrite == 0 {
		return nil, nil
	}
	return t.Data()
}

// ioError maps a store error to sense data: out of space and read-only
// (the backing sentinels) for writes, else a medium error.
func (d *Device) ioError(err error, write bool, lba uint64) *stmf.Result {
	if errors.As(err, new(errWriteFailed)) {
		return mediumWriteError(lba) // logged once, when it was latched
	}
	if errors.Is(err, backing.ErrFenced) {
		return d.fenced(err) // logged once per token
	}
	switch {
	case write && errors.Is(err, backing.ErrNoSpace):
		d.log.Error("lu: backing store is full", "guid", d.guid, "path", d.where(), "lba", lba, "err", err)
		return fail(scsi.NewSense(scsi.KeyDataProtect, scsi.ASCSpaceAllocationFailedWP))
	case write && errors.Is(err, backing.ErrReadOnly):
		return writeProtected()
	}
	d.log.Error("lu: backing store I/O error", "guid", d.guid, "path", d.where(), "write", write, "lba", lba, "err", err)
	asc := scsi.ASCUnrecoveredReadError
	if write {
		asc = scsi.ASCWriteError
	}
	s := scsi.NewSense(scsi.KeyMediumError, asc)
	if lba <= 0xffffffff {
		s.WithInfo(uint32(lba))
	}
	return fail(s)
}

// read: READ (6), (10), (12), (16).
func (d *Device) read(t *stmf.Task, cdb []byte) *stmf.Result {
	lba, n := blockRange(t)
	if len(cdb) != 6 && cdb[1]&0xe0 != 0 { // RDPROTECT: no protection information
		return fail(invalidField(1, 7))
	}
	if n > d.maxXfer {
		return fail(invalidField(lenField(len(cdb)), -1))
	}
	if !d.inRange(lba, uint64(n)) {
		return lbaOutOfRange()
	}
	total := uint64(n) << d.bsShift
	// Read no more than the initiator will take (whole blocks).
	want := min(total, d.roundUp(uint64(t.ExpectedLen)))
	if t.Dir&scsi.DirRead == 0 {
		want = 0 // no Data-In phase: nothing can be delivered
	}
	if want == 0 {
		return t.Good(nil, uint32(total), nil)
	}
	pb := d.bufs.get(int(want))
	buf := pb.b[:want]
	var err error
	if nw, ok := d.store.(backing.NoWaitReader); ok && t.InlineNoWait {
		var done bool
		if done, err = nw.ReadAtNoWait(buf, d.byteOff(lba)); err == nil && !done {
			pb.release()
			return nil // not cached: Execute finishes it on a goroutine that may wait
		}
	} else {
		err = d.store.ReadAt(buf, d.byteOff(lba))
	}
	if err != nil {
		pb.release()
		return d.ioError(err, false, lba)
	}
	return t.Good(buf, uint32(total), pb.release)
}

// write: WRITE (6), (10), (12), (16). The Data-Out actually received (at
// most the CDB's length, whole blocks only: see writePayload) is written; TransferLen
// is the CDB's length so the transport reports the residual.
func (d *Device) write(t *stmf.Task, cdb []byte) *stmf.Result {
	lba, n := blockRange(t)
	if len(cdb) != 6 && cdb[1]&0xe0 != 0 { // WRPROTECT
		return fail(invalidField(1, 7))
	}
	fua := t.LUDecoded.Flags&decFUA != 0
	if n > d.maxXfer {
		return fail(invalidField(lenField(len(cdb)), -1))
	}
	data, total, done := d.writePayload(t, lba, n)
	if done != nil {
		return done
	}
	if len(data) > 0 {
		if r := d.writeBlocks(data, lba, fua || d.wcd.Load()); r != nil {
			return r
		}
		d.thinAfterWrite(t) // soft threshold check (thin.go)
	}
	return t.Good(nil, uint32(total), nil)
}

// writePayload does what every write-type command does after checking its
// CDB fields, in SBC's order: write protection, the LBA range, nothing to
// do for zero blocks, then the Data-Out. data is the Data-Out cut to whole
// blocks and to the CDB's length (a longer Data-Out is residual, a shorter
// one is written as far as it goes when it ends on a block boundary and
// refused before anything is written when it does not); total is the CDB's byte count, the
// result's TransferLen. done is non-nil when the command is finished.
func (d *Device) writePayload(t *stmf.Task, lba uint64, n uint32) (data []byte, total uint64, done *stmf.Result) {
	if d.writeProtected() {
		return nil, 0, writeProtected()
	}
	if !d.inRange(lba, uint64(n)) {
		return nil, 0, lbaOutOfRange()
	}
	total = uint64(n) << d.bsShift
	if total == 0 {
		return nil, 0, good()
	}
	data, err := dataOut(t)
	if err != nil {
		return nil, 0, dataOutFailed()
	}
	got := min(total, uint64(len(data)))
	if got&uint64(d.bs-1) != 0 {
		return nil, 0, iuLengthMismatch(total)
	}
	return data[:got], total, nil
}

// iuLengthMismatch answers a command whose Data-Out does not fit what the
// CDB asks for: it ends inside a block (the expected data transfer length
// cut it short; a partial block cannot be written as sent, and writing
// the whole blocks before it while dropping the rest would be GOOD for
// lost data), or an all-or-nothing command got less or more than it needs. FCP-4 and iSCSI allow CHECK
// CONDITION, ILLEGAL REQUEST, INVALID FIELD IN COMMAND INFORMATION UNIT
// before anything is written; TransferLen still carries the CDB's length
// so the residual is reported (libiscsi test_write_residuals.c checks it).
func iuLengthMismatch(total uint64) *stmf.Result {
	r := fail(scsi.NewSense(scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit))
	r.TransferLen = uint32(total)
	return r
}

// writeVerify: WRITE AND VERIFY (10), (12), (16). The write is made
// durable (the verification is against the medium); with BYTCHK=1 the
// blocks are read back and compared.
func (d *Device) writeVerify(t *stmf.Task, cdb []byte) *stmf.Result {
	lba, n := blockRange(t)
	lenOff := lenField(len(cdb))
	if cdb[1]&0xe0 != 0 { // WRPROTECT
		return fail(invalidField(1, 7))
	}
	bytchk := cdb[1] >> 1 & 3
	if bytchk > 1 {
		return fail(invalidField(1, 2))
	}
	if n > d.maxXfer {
		return fail(invalidField(lenOff, -1))
	}
	data, total, done := d.writePayload(t, lba, n)
	if done != nil {
		return done
	}
	m := uint64(len(data))
	if m > 0 {
		if r := d.writeBlocks(data[:m], lba, true); r != nil {
			return r
		}
		d.thinAfterWrite(t)
		if bytchk == 1 {
			if r := d.compare(lba, data[:m]); r != nil {
				return r
			}
		}
	}
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(total)}
}

// verify: VERIFY (10), (12), (16). BYTCHK 00b checks the range only (the
// medium is always readable); 01b compares the Data-Out with the blocks;
// 11b compares every block with the single block of Data-Out.
func (d *Device) verify(t *stmf.Task, cdb []byte) *stmf.Result {
	lba, n := blockRange(t)
	lenOff := lenField(len(cdb))
	if cdb[1]&0xe0 != 0 { // VRPROTECT
		return fail(invalidField(1, 7))
	}
	bytchk := cdb[1] >> 1 & 3
	if bytchk == 2 {
		return fail(invalidField(1, 2))
	}
	if bytchk != 0 && n > d.maxXfer {
		return fail(invalidField(lenOff, -1))
	}
	if !d.inRange(lba, uint64(n)) {
		return lbaOutOfRange()
	}
	if n == 0 || bytchk == 0 {
		return good()
	}
	total := uint64(n) << d.bsShift
	tl := total
	if bytchk == 3 {
		tl = uint64(d.bs)
	}
	data, err := dataOut(t)
	if err != nil {
		return dataOutFailed()
	}
	m := min(tl, uint64(len(data)))
	if m&uint64(d.bs-1) != 0 { // a partial block cannot be compared
		return iuLengthMismatch(tl)
	}
	if m == 0 {
		return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(tl)}
	}
	if bytchk == 1 {
		if r := d.compare(lba, data[:m]); r != nil {
			return r
		}
		return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(tl)}
	}
	// BYTCHK 11b: one block of Data-Out against each block of the range.
	pb := d.bufs.get(int(total))
	defer pb.release()
	buf := pb.b[:total]
	if err := d.store.ReadAt(buf, d.byteOff(lba)); err != nil {
		return d.ioError(err, false, lba)
	}
	pattern := data[:d.bs]
	for off := uint64(0); off < total; off += uint64(d.bs) {
		if i := mismatch(buf[off:off+uint64(d.bs)], pattern); i >= 0 {
			return miscompare(off + uint64(i))
		}
	}
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(tl)}
}

// compare reads len(want) bytes at lba and compares them with want; it
// returns nil when they match.
func (d *Device) compare(lba uint64, want []byte) *stmf.Result {
	pb := d.bufs.get(len(want))
	defer pb.release()
	got := pb.b[:len(want)]
	if err := d.store.ReadAt(got, d.byteOff(lba)); err != nil {
		return d.ioError(err, false, lba)
	}
	if i := mismatch(got, want); i >= 0 {
		return miscompare(uint64(i))
	}
	return nil
}

// mismatch returns the index of the first differing byte, or -1.
func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	const chunk = 64
	for i := 0; i < len(a); i += chunk {
		j := min(i+chunk, len(a))
		if !bytes.Equal(a[i:j], b[i:j]) {
			for k := i; k < j; k++ {
				if a[k] != b[k] {
					return k
				}
			}
		}
	}
	return -1
}

// miscompare is MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION with the
// offset of the first differing byte in INFORMATION.
func miscompare(off uint64) *stmf.Result {
	return fail(scsi.NewSense(scsi.KeyMiscompare, scsi.ASCMiscompareDuringVerify).WithInfo(uint32(off)))
}

// rangeToEnd checks an LBA and a block count where 0 means "to the last
// block" (PRE-FETCH, SYNCHRONIZE CACHE) and returns the count.
func (d *Device) rangeToEnd(lba uint64, n uint32) (uint64, bool) {
	nb := d.nblocks.Load()
	if lba > nb {
		return 0, false
	}
	if n == 0 {
		return nb - lba, true
	}
	return uint64(n), d.inRange(lba, uint64(n))
}

// prefetch: PRE-FETCH (10), (16). The range is handed to the page cache
// as a hint. SBC allows GOOD (the blocks might not all fit in the cache)
// or CONDITION MET; GOOD is what initiators and libiscsi expect.
func (d *Device) prefetch(t *stmf.Task, _ []byte) *stmf.Result {
	lba, n := blockRange(t)
	cnt, ok := d.rangeToEnd(lba, n)
	if !ok {
		return lbaOutOfRange()
	}
	if cnt > 0 {
		if d.hinter != nil {
			d.hinter.Prefetch(d.byteOff(lba), int64(cnt<<d.bsShift))
		}
	}
	return good()
}

// syncCache: SYNCHRONIZE CACHE (10), (16). Concurrent requests share one
// fdatasync; IMMED is honoured by simply completing after the flush.
func (d *Device) syncCache(t *stmf.Task, _ []byte) *stmf.Result {
	lba, n := blockRange(t)
	if _, ok := d.rangeToEnd(lba, n); !ok {
		return lbaOutOfRange()
	}
	// A failure is latched: the flush fails at once (syncStore), so no
	// initiator is told GOOD for writes an earlier sync may have lost.
	if err := d.flush.flush(); err != nil {
		return d.ioError(err, true, lba)
	}
	return good()
}
