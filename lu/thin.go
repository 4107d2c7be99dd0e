package lu

// Thin provisioning (SBC-3 4.7): an LU created with Config.Thin reports
// LBPME=1 and LBPRZ in READ CAPACITY (16), the Logical Block Provisioning
// VPD page (LBPU, LBPWS, LBPWS10, provisioning type thin) and the UNMAP
// limits of the Block Limits VPD page, and accepts UNMAP and WRITE SAME
// with the UNMAP bit. Deallocation is the store's (backing.Store
// Deallocate: a hole in a file, a discard on a block device or zvol); GET
// LBA STATUS reports what the store's allocation map (Allocated) calls
// unmapped, where it keeps one (Caps.MapKnown). A thick LU keeps
// answering as fully provisioned.
//
// Soft threshold (Config.SoftThreshold / Props.SoftThreshold, percent,
// 0 = off): after allocating writes to a thin LU on a store that reports
// its space (backing.SpaceReporter: regular files), the LU looks (at most
// once per thresholdCheckInterval) at the file system that holds the data. Once that file system is at least
// SoftThreshold percent full (counting the space an unprivileged writer
// can no longer use: 100 - f_bavail*100/f_blocks), THIN PROVISIONING SOFT
// THRESHOLD REACHED (38h/07h) is raised once as a unit attention for every
// nexus that sees the LU. It is armed again once usage is more than one
// percentage point below the threshold (for example after UNMAP), or when
// the threshold is changed. Block devices and zvols have no threshold
// here: the pool's free space belongs to ZFS. Running out of space
// (backing.ErrNoSpace) answers DATA PROTECT / SPACE ALLOCATION FAILED
// WRITE PROTECT (27h/07h), see Device.ioError.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// Limits reported in the Block Limits VPD page.
const (
	// maxWriteSameBytes and maxWriteSameLBAs bound one WRITE SAME
	// (MAXIMUM WRITE SAME LENGTH): a pattern write of this size takes well
	// under a second, far below initiator command timeouts. 0xffff blocks
	// is also LIO's limit, which libiscsi's WriteSame16.Unmap expects
	// (with a larger one it writes 65536 blocks in one WRITE (16), beyond
	// our MAXIMUM TRANSFER LENGTH).
	maxWriteSameBytes = 64 << 20
	maxWriteSameLBAs  = 0xffff
	// maxUnmapBytes and maxUnmapLBAs bound the blocks one UNMAP may name
	// (MAXIMUM UNMAP LBA COUNT); libiscsi considers more than 2^20 insane.
	maxUnmapBytes = 1 << 30
	maxUnmapLBAs  = 1 << 20
	// maxUnmapDescriptors is MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT: every
	// descriptor a 16-bit parameter list length can carry.
	maxUnmapDescriptors = (0xffff - 8) / 16
	// maxLBAStatusDescriptors bounds one GET LBA STATUS answer (and the
	// SEEK_DATA/SEEK_HOLE calls it makes).
	maxLBAStatusDescriptors = 512
	// thresholdCheckInterval spaces the soft threshold checks (an fstatfs
	// costs a microsecond or two; a burst of writes still checks often).
	thresholdCheckInterval = 100 * time.Millisecond
)

// Provisioning status codes of an LBA status descriptor.
const (
	lbaMapped      = 0x0
	lbaDeallocated = 0x1
)

// thinState is the thin provisioning part of a Device.
type thinState struct {
	enabled     bool   // immutable after setup
	lbprz       bool   // deallocated blocks read as zeroes
	discardGran uint64 // the store's discard granularity in bytes

	softPct   atomic.Uint32 // soft threshold, percent; 0 = off
	lastCheck atomic.Int64  // unix nanoseconds of the last threshold check
	raised    atomic.Bool   // the UA was raised and not re-armed yet
	// usage returns how full the backing store's file system is, in
	// percent; nil = no threshold support. Tests replace it.
	usage func() (uint32, error)
}

// setupThin fills the thin provisioning state from metadata and the
// store's capabilities.
func (d *Device) setupThin(md *backing.Meta) {
	d.thin.enabled = md.Thin
	d.thin.softPct.Store(uint32(md.SoftThreshold))
	if !md.Thin {
		return
	}
	d.thin.lbprz = d.caps.DeallocZeroes
	d.thin.discardGran = d.caps.DiscardGranularity
	if sr, ok := d.store.(backing.SpaceReporter); ok {
		d.thin.usage = sr.UsedPercent
	}
}

func checkSoftThreshold(pct uint8) error {
	if pct > backing.MaxSoftThreshold {
		return fmt.Errorf("lu: soft threshold %d%%: must be 0 (off) to %d", pct, backing.MaxSoftThreshold)
	}
	return nil
}

// setSoftThreshold changes the soft threshold at run time (re-arming the UA).
func (d *Device) setSoftThreshold(pct uint8) {
	d.thin.softPct.Store(uint32(pct))
	d.thin.raised.Store(false)
	d.thin.lastCheck.Store(0)
}

// thinAfterWrite runs after blocks of a thin LU were allocated: it checks
// the soft threshold now and then and raises the unit attention once.
func (d *Device) thinAfterWrite(t *stmf.Task) {
	if !d.thin.enabled || d.thin.usage == nil {
		return
	}
	pct := d.thin.softPct.Load()
	if pct == 0 {
		return
	}
	now := time.Now().UnixNano()
	last := d.thin.lastCheck.Load()
	if last != 0 && now-last < int64(thresholdCheckInterval) {
		return
	}
	if !d.thin.lastCheck.CompareAndSwap(last, now) {
		return // another command is checking
	}
	used, err := d.thin.usage()
	if errors.Is(err, backing.ErrNotSupported) {
		return // a block device: its space is not ours to watch
	}
	if err != nil {
		d.log.Warn("lu: cannot check the thin provisioning soft threshold", "guid", d.guid, "err", err)
		return
	}
	switch {
	case used >= pct:
		if d.thin.raised.CompareAndSwap(false, true) {
			d.log.Warn("lu: thin provisioning soft threshold reached", "guid", d.guid, "path", d.where(),
				"used_percent", used, "threshold_percent", pct)
			d.raiseUA(scsi.ASCThinProvisioningSoftThreshold)
		}
	case used+1 < pct || used == 0: // clearly below again: arm
		d.thin.raised.Store(false)
	}
}

// lbpBits is byte 14 of READ CAPACITY (16) data: LBPME and LBPRZ.
func (d *Device) lbpBits() byte {
	if !d.thin.enabled {
		return 0
	}
	if d.thin.lbprz {
		return 0xc0
	}
	return 0x80
}

// unmapGranularity is the OPTIMAL UNMAP GRANULARITY in blocks.
func (d *Device) unmapGranularity() uint32 {
	g := max(uint64(physBlockSize), d.thin.discardGran)
	return uint32(max(1, g>>d.bsShift))
}

// maxUnmapBlocks is MAXIMUM UNMAP LBA COUNT.
func (d *Device) maxUnmapBlocks() uint32 {
	return uint32(max(1, min(uint64(maxUnmapLBAs), uint64(maxUnmapBytes)>>d.bsShift)))
}

// maxWriteSameBlocks is MAXIMUM WRITE SAME LENGTH.
func (d *Device) maxWriteSameBlocks() uint64 {
	return max(1, min(maxWriteSameLBAs, uint64(maxWriteSameBytes)>>d.bsShift))
}

// provisioningLimits fills the UNMAP and WRITE SAME fields of a Block
// Limits VPD page (SBC-3 length, 64 bytes).
func (d *Device) provisioningLimits(b []byte) {
	if len(b) < 44 {
		return
	}
	if d.thin.enabled {
		binary.BigEndian.PutUint32(b[20:24], d.maxUnmapBlocks())   // MAXIMUM UNMAP LBA COUNT
		binary.BigEndian.PutUint32(b[24:28], maxUnmapDescriptors)  // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
		binary.BigEndian.PutUint32(b[28:32], d.unmapGranularity()) // OPTIMAL UNMAP GRANULARITY
		binary.BigEndian.PutUint32(b[32:36], 0x80000000)           // UGAVALID, alignment 0
	}
	binary.BigEndian.PutUint64(b[36:44], d.maxWriteSameBlocks()) // MAXIMUM WRITE SAME LENGTH
}

// logicalBlockProvisioning is VPD page 0xB2.
func (d *Device) logicalBlockProvisioning() []byte {
	b := make([]byte, 8)
	b[1] = vpdLogicalBlockProv
	b[3] = 0x04
	if !d.thin.enabled {
		return b // fully provisioned: every field 0
	}
	b[4] = d.thresholdExponent()
	b[5] = 0x80 | 0x40 | 0x20 // LBPU, LBPWS, LBPWS10
	if d.thin.lbprz {
		b[5] |= 0x04 // LBPRZ: deallocated blocks read as zeroes
	}
	b[6] = 0x02 // PROVISIONING TYPE: thin
	return b
}

// thresholdExponent is THRESHOLD EXPONENT: 0 (no thresholds) without a
// soft threshold, else the smallest exponent that lets a 32-bit threshold
// count span the LU.
func (d *Device) thresholdExponent() byte {
	if d.thin.softPct.Load() == 0 {
		return 0
	}
	e := byte(1)
	for d.nblocks.Load()>>e > 0xffffffff {
		e++
	}
	return e
}

// deallocate deallocates blocks [lba, lba+n) of a thin LU. Afterwards they
// read as zeroes when LBPRZ is reported. The caller makes it durable
// (syncIfWCD).
func (d *Device) deallocate(lba, n uint64) error {
	if n == 0 {
		return nil
	}
	if err := d.checkFence(); err != nil {
		return err
	}
	return d.store.Deallocate(d.byteOff(lba), int64(n<<d.bsShift))
}

// syncIfWCD makes completed changes durable when the write cache is
// disabled (WRITE SAME and UNMAP have no FUA bit).
func (d *Device) syncIfWCD() error {
	if d.wcd.Load() {
		return d.flush.flush()
	}
	return nil
}

// getLBAStatus: SERVICE ACTION IN (16) / GET LBA STATUS.
func (d *Device) getLBAStatus(_ *stmf.Task, cdb []byte) *stmf.Result {
	lba := binary.BigEndian.Uint64(cdb[2:10])
	alloc := binary.BigEndian.Uint32(cdb[10:14])
	if cdb[14] != 0 { // REPORT TYPE (SBC-4): only "all LBAs"
		return fail(invalidField(14, -1))
	}
	nb := d.nblocks.Load()
	if lba >= nb {
		return lbaOutOfRange()
	}
	maxDesc := 1
	if alloc > 8 {
		maxDesc = int(min(uint32(maxLBAStatusDescriptors), max(1, (alloc-8)/16)))
	}
	descs, err := d.lbaStatus(lba, nb, maxDesc)
	if err != nil {
		return d.ioError(err, false, lba)
	}
	b := make([]byte, 8, 8+16*len(descs))
	binary.BigEndian.PutUint32(b[0:4], uint32(4+16*len(descs)))
	for _, e := range descs {
		var desc [16]byte
		binary.BigEndian.PutUint64(desc[0:8], e.lba)
		binary.BigEndian.PutUint32(desc[8:12], e.n)
		desc[12] = e.status
		b = append(b, desc[:]...)
	}
	return dataIn(truncate(b, alloc))
}

type lbaExtent struct {
	lba    uint64
	n      uint32
	status byte
}

// lbaStatus returns at most maxDesc extents from lba on (lba < nb), each
// holding blocks of one provisioning status.
func (d *Device) lbaStatus(lba, nb uint64, maxDesc int) ([]lbaExtent, error) {
	var out []lbaExtent
	add := func(start, end uint64, st byte) bool {
		for start < end {
			if k := len(out) - 1; k >= 0 && out[k].status == st && out[k].lba+uint64(out[k].n) == start && out[k].n < 0xffffffff {
				grow := min(end-start, 0xffffffff-uint64(out[k].n))
				out[k].n += uint32(grow)
				start += grow
				continue
			}
			if len(out) == maxDesc {
				return false
			}
			c := min(end-start, 0xffffffff)
			out = append(out, lbaExtent{lba: start, n: uint32(c), status: st})
			start += c
		}
		return true
	}
	if !d.thin.enabled || !d.caps.MapKnown {
		// Fully provisioned, or a store that does not tell: mapped.
		add(lba, nb, lbaMapped)
		return out, nil
	}
	bs := int64(d.bs)
	limit := d.byteOff(nb)
	for lba < nb {
		off := d.byteOff(lba)
		mapped, end, err := d.store.Allocated(off, limit)
		if err != nil {
			return nil, err
		}
		var next uint64
		st := byte(lbaMapped)
		if mapped {
			next = lba + uint64((end-off+bs-1)/bs)
		} else {
			next = lba + uint64((end-off)/bs)
			st = lbaDeallocated
			if next == lba { // the block is partly allocated: mapped
				next, st = lba+1, lbaMapped
			}
		}
		next = min(next, nb)
		if !add(lba, next, st) {
			break
		}
		lba = next
	}
	return out, nil
}
