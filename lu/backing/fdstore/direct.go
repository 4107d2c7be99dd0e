package fdstore

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Direct I/O on block devices (zvols). With O_DIRECT a write is handed to
// the device before pwrite returns, so its errors (ENOSPC from a full
// pool) belong to that write, not to a later page cache write-back.
// O_DIRECT needs buffers, offsets and lengths aligned to the device's
// logical block size; LU I/O is whole blocks, and buffers that are not
// aligned in memory go through an aligned bounce buffer.

// directAlign is the alignment checked for O_DIRECT transfers (the
// logical block size of zvols and of almost every block device);
// bounceAlign is that of bounce buffers.
const (
	directAlign = 512
	bounceAlign = 4096
)

// OpenDirect opens path like Open; a block device is
// switched to O_DIRECT. A regular file (tests) stays buffered.
func OpenDirect(path string, allowRO bool) (*FD, error) {
	b, err := Open(path, allowRO)
	if err != nil || !b.isBlock {
		return b, err
	}
	fl, err := unix.FcntlInt(uintptr(b.fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(b.fd), unix.F_SETFL, fl|unix.O_DIRECT)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("lu: %s: switching to direct I/O: %w", path, err)
	}
	b.direct = true
	return b, nil
}

// directOK reports whether p at off can be transferred with O_DIRECT as is.
func directOK(p []byte, off int64) bool {
	return len(p) > 0 && off%directAlign == 0 && len(p)%directAlign == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// alignedBuf returns an n-byte slice starting on a bounceAlign boundary.
func alignedBuf(n int) []byte {
	b := make([]byte, n+bounceAlign)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & (bounceAlign - 1))
	return b[skip : skip+n : skip+n]
}

// unalignedRange is the error for a transfer O_DIRECT cannot do at all.
func unalignedRange(path string, off int64, n int) error {
	return fmt.Errorf("lu: %s: %d bytes at %d are not aligned to %d bytes for direct I/O: %w", path, n, off, directAlign, unix.EINVAL)
}

// readBounce reads through an aligned buffer.
func (b *FD) readBounce(p []byte, off int64) error {
	if off%directAlign != 0 || len(p)%directAlign != 0 {
		return unalignedRange(b.path, off, len(p))
	}
	buf := alignedBuf(len(p))
	if err := b.ReadAt(buf, off); err != nil {
		return err
	}
	copy(p, buf)
	return nil
}

// writeBounce writes through an aligned buffer.
func (b *FD) writeBounce(p []byte, off int64, dsync bool) error {
	if off%directAlign != 0 || len(p)%directAlign != 0 {
		return unalignedRange(b.path, off, len(p))
	}
	buf := alignedBuf(len(p))
	copy(buf, p)
	return b.write(buf, off, dsync)
}
