package lu

// Thin provisioning (SBC-3 4.7): an LU created with Config.Thin reports
// LBPME=1 and LBPRZ in READ CAPACITY (16), the Logical Block Provisioning
// VPD page (LBPU, LBPWS, LBPWS10, provisioning type thin) and the UNMAP
// limits of the Block Limits VPD page, and accepts UNMAP and WRITE SAME
// with the UNMAP bit. Deallocation punches holes in a file
// (fallocate PUNCH_HOLE|KEEP_SIZE) or discards a block device range
// (BLKDISCARD; zvols take this path). GET LBA STATUS reports holes as
// deallocated. A thick LU keeps answering as fully provisioned.
//
// Soft threshold (Config.SoftThreshold / Props.SoftThreshold, percent,
// 0 = off): after allocating writes to a thin LU on a regular file, the
// LU looks (at most once per thresholdCheckInterval) at the file system
// that holds the data file. Once that file system is at least
// SoftThreshold percent full (counting the space an unprivileged writer
// can no longer use: 100 - f_bavail*100/f_blocks), THIN PROVISIONING SOFT
// THRESHOLD REACHED (38h/07h) is raised once as a unit attention for every
// nexus that sees the LU. It is armed again once usage is more than one
// percentage point below the threshold (for example after UNMAP), or when
// the threshold is changed. Block device backends (zvols) have no
// threshold here: the pool's free space belongs to ZFS. Running out of
// space (ENOSPC, EDQUOT from pwrite or fallocate) answers DATA PROTECT /
// SPACE ALLOCATION FAILED WRITE PROTECT (27h/07h), see Device.ioError.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// maxSoftThreshold bounds the soft threshold, a percentage.
const (
	maxSoftThreshold = 100
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
	discardGran uint64 // block devices: discard granularity in bytes

	softPct   atomic.Uint32 // soft threshold, percent; 0 = off
	lastCheck atomic.Int64  // unix nanoseconds of the last threshold check
	raised    atomic.Bool   // the UA was raised and not re-armed yet
	// usage returns how full the backing store's file system is, in
	// percent; nil = no threshold support (block devices). Tests replace it.
	usage func() (uint32, error)
}

// setupThin fills the thin provisioning state from metadata.
func (d *Device) setupThin(md *metadata) {
	d.thin.enabled = md.Thin
	d.thin.softPct.Store(uint32(md.SoftThreshold))
	if !md.Thin {
		return
	}
	if d.data.isBlock {
		d.thin.lbprz = d.data.discardZeroes()
		d.thin.discardGran = d.data.discardGranularity()
		return
	}
	d.thin.lbprz = true // a punched hole reads as zeroes
	fd := d.data.fd
	d.thin.usage = func() (uint32, error) {
		var st unix.Statfs_t
		if err := unix.Fstatfs(fd, &st); err != nil {
			return 0, err
		}
		if st.Blocks == 0 {
			return 0, nil
		}
		free := min(st.Bavail, st.Blocks)
		return uint32(100 - free*100/st.Blocks), nil
	}
}

func checkSoftThreshold(pct uint8) error {
	if pct > maxSoftThreshold {
		return fmt.Errorf("lu: soft threshold %d%%: must be 0 (off) to %d", pct, maxSoftThreshold)
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
	if err != nil {
		d.log.Warn("lu: cannot check the thin provisioning soft threshold", "guid", d.guid, "err", err)
		return
	}
	switch {
	case used >= pct:
		if d.thin.raised.CompareAndSwap(false, true) {
			d.log.Warn("lu: thin provisioning soft threshold reached", "guid", d.guid, "path", d.dataFile,
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
	return d.data.deallocate(d.byteOff(lba), int64(n<<d.bsShift), d.thin.lbprz, int64(d.thin.discardGran))
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
	if !d.thin.enabled || d.data.isBlock {
		// Fully provisioned, or a device that does not tell: mapped.
		add(lba, nb, lbaMapped)
		return out, nil
	}
	bs := int64(d.bs)
	limit := d.byteOff(nb)
	for lba < nb {
		off := d.byteOff(lba)
		mapped, end, err := d.data.allocated(off, limit)
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

// Backend operations for thin provisioning.

var errNotSupported = errors.New("lu: operation not supported by the backing store")

// unsupported reports whether err says the file (system) or device lacks
// an operation, so that a slower equivalent should be used.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.ENOTTY)
}

// fallocate retries on EINTR.
func fallocate(fd int, mode uint32, off, n int64) error {
	for {
		err := unix.Fallocate(fd, mode, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

// blkRange issues a block device range ioctl (BLKDISCARD, BLKZEROOUT).
func blkRange(fd int, req uint, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&r)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// deallocate frees the store's space for [off, off+n). With zero set the
// range must read as zeroes afterwards. A regular file gets a hole (the
// kernel zeroes partial file system blocks). A block device gets
// BLKDISCARD for the part aligned to its discard granularity gran; with
// zero set the unaligned head and tail are written with zeroes (zvols free
// only whole volume blocks).
func (b *backend) deallocate(off, n int64, zero bool, gran int64) error {
	if b.readOnly {
		return unix.EROFS
	}
	if !b.isBlock {
		err := fallocate(b.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		if unsupported(err) {
			return b.zeroRange(off, n) // no holes on this file system: keep reads honest
		}
		return err
	}
	g := max(gran, 512)
	start := (off + g - 1) / g * g
	end := (off + n) / g * g
	if zero {
		if start >= end {
			return b.zeroRange(off, n)
		}
		if err := b.zeroRange(off, start-off); err != nil {
			return err
		}
		if err := b.zeroRange(end, off+n-end); err != nil {
			return err
		}
	}
	if start >= end {
		return nil
	}
	err := blkRange(b.fd, unix.BLKDISCARD, start, end-start)
	if unsupported(err) || errors.Is(err, unix.EINVAL) {
		if zero {
			return b.zeroRange(start, end-start)
		}
		return nil // deallocation is advisory
	}
	return err
}

// zeroRange makes [off, off+n) read as zeroes while keeping it allocated:
// fallocate ZERO_RANGE or BLKZEROOUT where available, else written zeroes.
func (b *backend) zeroRange(off, n int64) error {
	if n <= 0 {
		return nil
	}
	if b.readOnly {
		return unix.EROFS
	}
	var err error
	if b.isBlock {
		err = blkRange(b.fd, unix.BLKZEROOUT, off, n)
	} else {
		err = fallocate(b.fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	if err == nil || !(unsupported(err) || errors.Is(err, unix.EINVAL)) {
		return err
	}
	return b.writeZeroes(off, n)
}

// writeZeroes writes zeroes over [off, off+n) in bounded chunks.
func (b *backend) writeZeroes(off, n int64) error {
	z := make([]byte, min(n, 1<<20))
	for n > 0 {
		c := min(n, int64(len(z)))
		if err := b.writeAt(z[:c], off, false); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// allocated reports whether byte off of a regular file holds allocated
// data, and where that state ends (at most limit), with SEEK_DATA and
// SEEK_HOLE. A file system without them reports everything allocated.
func (b *backend) allocated(off, limit int64) (bool, int64, error) {
	if b.isBlock {
		return true, limit, nil
	}
	data, err := unix.Seek(b.fd, off, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		return false, limit, nil // only a hole up to the end of the file
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP):
		return true, limit, nil
	case err != nil:
		return false, 0, fmt.Errorf("lu: SEEK_DATA in %s: %w", b.path, err)
	}
	if data > off {
		return false, min(data, limit), nil
	}
	hole, err := unix.Seek(b.fd, off, unix.SEEK_HOLE)
	if err != nil {
		return false, 0, fmt.Errorf("lu: SEEK_HOLE in %s: %w", b.path, err)
	}
	return true, min(max(hole, off+1), limit), nil
}

// sysfsBlock reads a value of a block device's sysfs directory (the
// partition's parent queue for a partition), "" when unknown.
func (b *backend) sysfsBlock(name string) string {
	var st unix.Stat_t
	if err := unix.Fstat(b.fd, &st); err != nil {
		return ""
	}
	dir := fmt.Sprintf("/sys/dev/block/%d:%d/", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	for _, p := range []string{dir + name, dir + "../" + name} {
		if v, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

// discardGranularity is the block device's discard granularity in bytes
// (at least 512).
func (b *backend) discardGranularity() uint64 {
	g, err := strconv.ParseUint(b.sysfsBlock("queue/discard_granularity"), 10, 64)
	if err != nil || g < 512 || g&(g-1) != 0 || g > 1<<30 {
		return 512
	}
	return g
}

// discardZeroes reports whether discarded ranges of the block device read
// as zeroes: zvols (zd*) free their blocks and loop devices punch holes.
// Other devices (SSDs, arrays) make no promise, so LBPRZ stays 0.
func (b *backend) discardZeroes() bool {
	for _, l := range strings.Split(b.sysfsBlock("uevent"), "\n") {
		if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			return strings.HasPrefix(name, "zd") || strings.HasPrefix(name, "loop")
		}
	}
	return false
}
