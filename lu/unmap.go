package lu

import (
	"encoding/binary"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// unmapDescriptor is one UNMAP block descriptor.
type unmapDescriptor struct {
	lba uint64
	n   uint32
}

// unmap: UNMAP (thin LUs only; a thick LU does not list the command).
//
// The parameter list is validated as a whole before any block is
// deallocated: a list shorter than its 8-byte header is a PARAMETER LIST
// LENGTH ERROR; descriptors are taken from the UNMAP BLOCK DESCRIPTOR
// DATA LENGTH as far as the list holds them (an incomplete last one is
// ignored); more than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT descriptors or
// more than MAXIMUM UNMAP LBA COUNT blocks in total is INVALID FIELD IN
// PARAMETER LIST; a descriptor reaching past the last block is LOGICAL
// BLOCK ADDRESS OUT OF RANGE. Descriptors of 0 blocks (even at the
// capacity) and a list without descriptors are accepted.
func (d *Device) unmap(t *stmf.Task, cdb []byte) *stmf.Result {
	if cdb[1]&0x01 != 0 { // ANCHOR: ANC_SUP is 0
		return fail(invalidField(1, 0))
	}
	if d.writeProtected() {
		return writeProtected()
	}
	plen := int(binary.BigEndian.Uint16(cdb[7:9]))
	if plen == 0 {
		return good()
	}
	data, err := dataOut(t)
	if err != nil {
		return dataOutFailed()
	}
	if len(data) < plen && unmapTruncated(data, plen) {
		return iuLengthMismatch(uint64(plen))
	}
	descs, r := d.parseUnmapList(data[:min(len(data), plen)])
	if r != nil {
		return r
	}
	// Ordering against overlapping writes: rangelock.go registers UNMAP
	// for the whole LU at Admit. Do not lock again here: an entry taken
	// during Execute would wait for the task's own Admit entry.
	for _, u := range descs {
		if u.n == 0 {
			continue
		}
		if err := d.deallocate(u.lba, uint64(u.n)); err != nil {
			if t.Context().Err() != nil {
				return dataOutFailed()
			}
			return d.ioError(err, true, u.lba)
		}
		if t.Context().Err() != nil {
			return dataOutFailed() // aborted between descriptors: the result is dropped
		}
	}
	if err := d.syncIfWCD(); err != nil {
		return d.ioError(err, true, 0)
	}
	d.thinAfterUnmap()
	return &stmf.Result{Status: scsi.StatusGood, TransferLen: uint32(plen)}
}

// unmapTruncated reports whether a parameter list the expected data
// transfer length cut short (got < plen bytes) lost part of its header or
// a descriptor the header and the parameter list length name: ignoring
// those would be GOOD for blocks never unmapped. An incomplete last
// descriptor the initiator itself sent is SBC's to ignore, not ours.
func unmapTruncated(got []byte, plen int) bool {
	if len(got) < 8 {
		return false // no header: PARAMETER LIST LENGTH ERROR (parseUnmapList)
	}
	bddl := int(binary.BigEndian.Uint16(got[2:4]))
	return min(bddl, plen-8)/16 > min(bddl, len(got)-8)/16
}

// parseUnmapList validates an UNMAP parameter list (as received, at most
// the parameter list length) and returns its descriptors.
func (d *Device) parseUnmapList(p []byte) ([]unmapDescriptor, *stmf.Result) {
	if len(p) < 8 {
		return nil, paramListLengthError()
	}
	bddl := int(binary.BigEndian.Uint16(p[2:4]))
	avail := min(bddl, len(p)-8)
	count := avail / 16
	if count > maxUnmapDescriptors {
		return nil, fail(invalidParam(2, -1))
	}
	descs := make([]unmapDescriptor, 0, count)
	var total uint64
	limit := uint64(d.maxUnmapBlocks())
	for i := 0; i < count; i++ {
		off := 8 + 16*i
		u := unmapDescriptor{lba: binary.BigEndian.Uint64(p[off : off+8]), n: binary.BigEndian.Uint32(p[off+8 : off+12])}
		if !d.inRange(u.lba, uint64(u.n)) {
			return nil, lbaOutOfRange()
		}
		total += uint64(u.n)
		if total > limit {
			return nil, fail(invalidParam(off+8, -1))
		}
		descs = append(descs, u)
	}
	return descs, nil
}

// thinAfterUnmap re-arms the soft threshold once space was freed (the next
// allocating write checks it again).
func (d *Device) thinAfterUnmap() {
	if d.thin.raised.Load() {
		d.thin.lastCheck.Store(0)
	}
}
