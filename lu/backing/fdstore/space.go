package fdstore

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Space management: hole punching, discard, zeroing, allocation maps.

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
func (b *FD) Deallocate(off, n int64, zero bool, gran int64) error {
	if err := b.deallocate(off, n, zero, gran); err != nil {
		return Classify(err)
	}
	return nil
}

func (b *FD) deallocate(off, n int64, zero bool, gran int64) error {
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
func (b *FD) ZeroRange(off, n int64) error {
	if err := b.zeroRange(off, n); err != nil {
		return Classify(err)
	}
	return nil
}

func (b *FD) zeroRange(off, n int64) error {
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
func (b *FD) writeZeroes(off, n int64) error {
	z := make([]byte, min(n, 1<<20))
	for n > 0 {
		c := min(n, int64(len(z)))
		if err := b.write(z[:c], off, false); err != nil {
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
func (b *FD) Allocated(off, limit int64) (bool, int64, error) {
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
func (b *FD) sysfsBlock(name string) string {
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
func (b *FD) DiscardGranularity() uint64 {
	g, err := strconv.ParseUint(b.sysfsBlock("queue/discard_granularity"), 10, 64)
	if err != nil || g < 512 || g&(g-1) != 0 || g > 1<<30 {
		return 512
	}
	return g
}

// discardZeroes reports whether discarded ranges of the block device read
// as zeroes: zvols (zd*) free their blocks and loop devices punch holes.
// Other devices (SSDs, arrays) make no promise, so LBPRZ stays 0.
func (b *FD) DiscardZeroes() bool {
	for _, l := range strings.Split(b.sysfsBlock("uevent"), "\n") {
		if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			return strings.HasPrefix(name, "zd") || strings.HasPrefix(name, "loop")
		}
	}
	return false
}

// Preallocate makes the file at least n bytes long with its space
// allocated, so that later writes cannot fail for lack of space.
func (b *FD) Preallocate(n int64) error {
	err := fallocate(b.fd, 0, 0, n)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("lu: allocating %d bytes for %s: %w", n, b.path, Classify(err))
	}
	return b.Grow(uint64(n))
}

// Reserve allocates the file space of a range, so that a full file system
// fails before anything is written (a no-op on block devices).
func (b *FD) Reserve(off, n int64) error {
	if b.isBlock {
		return nil
	}
	err := fallocate(b.fd, unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	return Classify(err)
}

// UsedPercent is how full the file system holding the file is, counting
// the space an unprivileged writer can no longer use:
// 100 - f_bavail*100/f_blocks.
func (b *FD) UsedPercent() (uint32, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(b.fd, &st); err != nil {
		return 0, err
	}
	if st.Blocks == 0 {
		return 0, nil
	}
	free := min(st.Bavail, st.Blocks)
	return uint32(100 - free*100/st.Blocks), nil
}

// Allocate allocates the file space of a range (fallocate); unlike
// Preallocate and Reserve it fails where the file system cannot, so a
// requested preallocation is never silently skipped.
func (b *FD) Allocate(off, n int64) error {
	if b.isBlock {
		return fmt.Errorf("lu: %s is a block device: its space is not allocated by the target", b.path)
	}
	if err := fallocate(b.fd, 0, off, n); err != nil {
		if unsupported(err) {
			return fmt.Errorf("lu: the file system of %s cannot preallocate (fallocate: %w)", b.path, err)
		}
		return fmt.Errorf("lu: allocating %d bytes at %d in %s: %w", n, off, b.path, Classify(err))
	}
	return nil
}
