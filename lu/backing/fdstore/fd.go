// Package fdstore is positional I/O on one file descriptor, shared by the
// stores on regular files, block devices and zvols: pread/pwrite,
// RWF_DSYNC with an fdatasync fallback, O_DIRECT bounce buffers, hole
// punching and discard, SEEK_DATA/SEEK_HOLE. Offsets are those of the
// file or device; errors of writes wrap backing.ErrNoSpace and
// backing.ErrReadOnly where they mean that.
package fdstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/costar-project/costar/lu/backing"
)

// Sync kinds reported to a FD's sync hook (tests count them).
const (
	SyncFdatasync  = "fdatasync"   // fdatasync(2) of the whole file
	SyncDsyncWrite = "dsync-write" // pwritev2(RWF_DSYNC)
)

// FD is a backing store opened for positional I/O: a regular file or
// a block device. Reads and writes use pread/pwrite on one descriptor from
// any number of goroutines; nothing on the I/O path takes a lock.
type FD struct {
	fd       int
	path     string
	isBlock  bool
	readOnly bool
	direct   bool // O_DIRECT (zvols, direct.go): transfers must be aligned

	noRWFDsync atomic.Bool       // kernel/filesystem rejected RWF_DSYNC
	noNoWait   atomic.Bool       // kernel/filesystem rejected RWF_NOWAIT reads
	SyncHook   func(kind string) // test hook, set before use; nil in production
}

// Open opens an existing file or block device for read/write. With
// allowRO, a store that cannot be opened for writing (read-only media or
// permissions) is opened read-only instead.
func Open(path string, allowRO bool) (*FD, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("lu: %s: %w", path, err)
	}
	b := &FD{path: path}
	flags := unix.O_RDWR | unix.O_CLOEXEC
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFBLK:
		b.isBlock = true
		flags |= unix.O_EXCL // refuse a device that is mounted or otherwise held
	default:
		return nil, fmt.Errorf("lu: %s is neither a regular file nor a block device", path)
	}
	fd, err := openRetry(path, flags, 0)
	if err != nil && allowRO && (errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES)) {
		fd, err = openRetry(path, flags&^unix.O_RDWR|unix.O_RDONLY, 0)
		b.readOnly = err == nil
	}
	if err != nil {
		if b.isBlock && errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("lu: block device %s is in use (mounted or held by another driver): %w", path, err)
		}
		return nil, fmt.Errorf("lu: opening %s: %w", path, err)
	}
	b.fd = fd
	return b, nil
}

// Create creates a new sparse regular file of the given size. It
// fails if path exists.
func Create(path string, size int64) (*FD, error) {
	fd, err := openRetry(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lu: creating %s: %w", path, err)
	}
	b := &FD{fd: fd, path: path}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		os.Remove(path)
		return nil, fmt.Errorf("lu: sizing %s to %d bytes: %w", path, size, err)
	}
	return b, nil
}

func openRetry(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// size returns the current size of the store in bytes.
func (b *FD) Size() (uint64, error) {
	if b.isBlock {
		var n uint64
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(b.fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); errno != 0 {
			return 0, fmt.Errorf("lu: BLKGETSIZE64 on %s: %w", b.path, errno)
		}
		return n, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(b.fd, &st); err != nil {
		return 0, fmt.Errorf("lu: stat %s: %w", b.path, err)
	}
	return uint64(st.Size), nil
}

// grow extends a regular file (sparsely) to at least n bytes.
func (b *FD) Grow(n uint64) error {
	cur, err := b.Size()
	if err != nil {
		return err
	}
	if cur >= n {
		return nil
	}
	if b.isBlock {
		return fmt.Errorf("lu: block device %s holds %d bytes, %d needed", b.path, cur, n)
	}
	if b.readOnly {
		return fmt.Errorf("lu: %s is read-only and holds %d bytes, %d needed", b.path, cur, n)
	}
	if err := unix.Ftruncate(b.fd, int64(n)); err != nil {
		return fmt.Errorf("lu: extending %s to %d bytes: %w", b.path, n, err)
	}
	return nil
}

// readAt fills p from offset off. A read past the end of the store is an
// error (io.ErrUnexpectedEOF): the store is always at least as large as
// the LU.
func (b *FD) ReadAt(p []byte, off int64) error {
	if b.direct && len(p) > 0 && !directOK(p, off) {
		return b.readBounce(p, off)
	}
	for len(p) > 0 {
		n, err := unix.Pread(b.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}

// NoWait implements backing.NoWaitReader.
func (b *FD) NoWait() bool { return !b.direct && !b.noNoWait.Load() }

// ReadAtNoWait reads all of p at off with preadv2(RWF_NOWAIT): false
// (and no error) when some of it is not in the page cache, so the caller
// reads it where waiting is harmless. O_DIRECT descriptors always wait.
func (b *FD) ReadAtNoWait(p []byte, off int64) (bool, error) {
	if b.direct || b.noNoWait.Load() {
		return false, nil
	}
	iov := [][]byte{p}
	for len(p) > 0 {
		iov[0] = p
		n, err := unix.Preadv2(b.fd, iov, off, unix.RWF_NOWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, nil
		case err == unix.EOPNOTSUPP || err == unix.ENOSYS || err == unix.EINVAL:
			b.noNoWait.Store(true) // never again: read the ordinary way
			return false, nil
		case err != nil:
			return false, err
		case n == 0:
			return false, nil // EOF: ReadAt reports it
		}
		p = p[n:]
		off += int64(n)
	}
	return true, nil
}

// writeAt writes all of p at offset off. With dsync the data is durable
// when writeAt returns (RWF_DSYNC, or write + fdatasync where the kernel
// or filesystem lacks it).
func (b *FD) WriteAt(p []byte, off int64, dsync bool) error {
	if err := b.write(p, off, dsync); err != nil {
		return Classify(err)
	}
	return nil
}

func (b *FD) write(p []byte, off int64, dsync bool) error {
	if b.readOnly {
		return unix.EROFS
	}
	if b.direct && len(p) > 0 && !directOK(p, off) {
		return b.writeBounce(p, off, dsync)
	}
	if dsync && !b.noRWFDsync.Load() {
		err := b.pwriteDsync(p, off)
		if err == nil {
			b.hook(SyncDsyncWrite)
			return nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
			return err
		}
		b.noRWFDsync.Store(true)
		// fall through: plain write, then fdatasync
	}
	for len(p) > 0 {
		n, err := unix.Pwrite(b.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
		off += int64(n)
	}
	if dsync {
		return b.datasync()
	}
	return nil
}

func (b *FD) pwriteDsync(p []byte, off int64) error {
	iov := [][]byte{p}
	for len(iov[0]) > 0 {
		n, err := unix.Pwritev2(b.fd, iov, off, unix.RWF_DSYNC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		iov[0] = iov[0][n:]
		off += int64(n)
	}
	return nil
}

// datasync makes all completed writes durable.
func (b *FD) Datasync() error {
	if err := b.datasync(); err != nil {
		return Classify(err)
	}
	return nil
}

func (b *FD) datasync() error {
	for {
		err := unix.Fdatasync(b.fd)
		if err == unix.EINTR {
			continue
		}
		if err == nil {
			b.hook(SyncFdatasync)
		}
		return err
	}
}

// ReadAtFresh is ReadAt from the medium rather than the page cache: the
// cached pages of the range are dropped first (they are clean: what this
// node writes there it syncs), so another host's write to a shared device
// is seen. Used for the few bytes cluster mode re-reads (the fencing
// token), never on the data path.
func (b *FD) ReadAtFresh(p []byte, off int64) error {
	if !b.direct {
		_ = unix.Fadvise(b.fd, off, int64(len(p)), unix.FADV_DONTNEED) // a hint: a failure only means a cached read
	}
	return b.ReadAt(p, off)
}

// DropCache drops the clean cached pages of [off, off+n) (n 0: to the
// end); dirty ones stay (fadvise does not write back). Nothing is cached
// under O_DIRECT.
func (b *FD) DropCache(off, n int64) error {
	if b.direct {
		return nil
	}
	if err := unix.Fadvise(b.fd, off, n, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("lu: %s: dropping cached pages: %w", b.path, err)
	}
	return nil
}

// prefetch hints the kernel to read a range into the page cache.
func (b *FD) Prefetch(off, n int64) {
	_ = unix.Fadvise(b.fd, off, n, unix.FADV_WILLNEED)
}

func (b *FD) hook(kind string) {
	if b.SyncHook != nil {
		b.SyncHook(kind)
	}
}

func (b *FD) Close() error {
	if b.fd < 0 {
		return nil
	}
	err := unix.Close(b.fd)
	b.fd = -1
	if err != nil {
		return fmt.Errorf("lu: closing %s: %w", b.path, err)
	}
	return nil
}

// Path is the file or device path.
func (b *FD) Path() string { return b.path }

// IsBlock reports whether the descriptor is a block device.
func (b *FD) IsBlock() bool { return b.isBlock }

// ReadOnly reports whether the store was opened read-only.
func (b *FD) ReadOnly() bool { return b.readOnly }

// DisableRWFDsync makes durable writes use write + fdatasync (tests).
func (b *FD) DisableRWFDsync() { b.noRWFDsync.Store(true) }

// Classify wraps an errno that means "out of space" or "read-only" into
// the matching backing sentinel.
func Classify(err error) error {
	switch {
	case errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("lu: %w: %w", backing.ErrNoSpace, err)
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("lu: %w: %w", backing.ErrReadOnly, err)
	}
	return err
}
