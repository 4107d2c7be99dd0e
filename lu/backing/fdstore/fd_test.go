package fdstore

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/costar-project/costar/lu/backing"
)

func TestDirectBounce(t *testing.T) {
	buf := alignedBuf(8192)
	if uintptr(unsafe.Pointer(&buf[0]))%bounceAlign != 0 || len(buf) != 8192 || cap(buf) != 8192 {
		t.Fatal("alignedBuf not aligned")
	}
	if !directOK(buf[:512], 0) || directOK(buf[1:513], 0) || directOK(buf[:100], 0) || directOK(buf[:512], 100) || directOK(nil, 0) {
		t.Fatal("directOK wrong")
	}
	// The bounce paths, on a regular file flagged direct.
	path := t.TempDir() + "/f"
	b, err := Create(path, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.direct = true
	src := alignedBuf(4096 + 1)[1:] // misaligned in memory
	for i := range src {
		src[i] = byte(i)
	}
	if err := b.WriteAt(src, 4096, false); err != nil {
		t.Fatal(err)
	}
	dst := alignedBuf(4096 + 1)[1:]
	if err := b.ReadAt(dst, 4096); err != nil || !bytes.Equal(dst, src) {
		t.Fatalf("bounce round trip: %v", err)
	}
	if err := b.WriteAt(src[:100], 4096, false); err == nil {
		t.Fatal("a direct write of 100 bytes succeeded")
	}
}

func TestUnsupported(t *testing.T) {
	for _, err := range []error{unix.EOPNOTSUPP, unix.ENOSYS, unix.ENODEV, unix.ENOTTY} {
		if !unsupported(err) {
			t.Errorf("%v not treated as unsupported", err)
		}
	}
	if unsupported(unix.ENOSPC) || unsupported(nil) || unsupported(errors.New("x")) {
		t.Error("ENOSPC/nil treated as unsupported")
	}
}

// Errnos that mean "full" or "read-only" become the backing sentinels the
// device server maps to sense data; others pass through.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{unix.ENOSPC, backing.ErrNoSpace},
		{unix.EDQUOT, backing.ErrNoSpace},
		{unix.EROFS, backing.ErrReadOnly},
	} {
		if got := Classify(tc.err); !errors.Is(got, tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("Classify(%v) = %v, want %v wrapped", tc.err, got, tc.want)
		}
	}
	if got := Classify(unix.EIO); got != unix.EIO {
		t.Errorf("Classify(EIO) = %v", got)
	}
}

// A write to a full device (/dev/full answers ENOSPC) is ErrNoSpace.
func TestWriteFull(t *testing.T) {
	fd, err := unix.Open("/dev/full", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("/dev/full: %v", err)
	}
	b := &FD{fd: fd, path: "/dev/full"}
	defer b.Close()
	for _, durable := range []bool{false, true} {
		if err := b.WriteAt(make([]byte, 512), 0, durable); !errors.Is(err, backing.ErrNoSpace) {
			t.Errorf("durable %v: %v, want ErrNoSpace", durable, err)
		}
	}
}

// Durable writes use RWF_DSYNC, or write + fdatasync once the kernel or
// file system refused it.
func TestDurableWriteFallback(t *testing.T) {
	b, err := Create(t.TempDir()+"/f", 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var kinds []string
	b.SyncHook = func(k string) { kinds = append(kinds, k) }
	p := make([]byte, 512)
	if err := b.WriteAt(p, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAt(p, 0, false); err != nil {
		t.Fatal(err)
	}
	b.DisableRWFDsync()
	if err := b.WriteAt(p, 0, true); err != nil {
		t.Fatal(err)
	}
	want := []string{SyncDsyncWrite, SyncFdatasync}
	if len(kinds) != 2 || kinds[1] != want[1] || (kinds[0] != SyncDsyncWrite && kinds[0] != SyncFdatasync) {
		t.Fatalf("syncs %v, want %v", kinds, want)
	}
}

// DropCache leaves no clean page of the range in this host's page cache
// (mincore over a mapping of the file), so a cluster takeover reads what
// another host wrote to a shared device.
func TestDropCache(t *testing.T) {
	const size = 64 << 10
	path := t.TempDir() + "/f"
	var fs unix.Statfs_t
	if err := unix.Statfs(t.TempDir(), &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		t.Skip("tmpfs: its pages are the file, fadvise cannot drop them")
	}
	b, err := Create(path, size)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAt(bytes.Repeat([]byte{7}, size), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Datasync(); err != nil { // dirty pages are not dropped
		t.Fatal(err)
	}
	if err := b.ReadAt(make([]byte, size), 0); err != nil {
		t.Fatal(err)
	}
	resident := func() int {
		m, err := unix.Mmap(b.fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(m)
		vec := make([]byte, (size+unix.Getpagesize()-1)/unix.Getpagesize())
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n
	}
	if resident() == 0 {
		t.Skip("the file system keeps no pages cached (nothing to drop)")
	}
	if err := b.DropCache(0, 0); err != nil {
		t.Fatal(err)
	}
	if n := resident(); n != 0 {
		t.Fatalf("%d pages still cached after DropCache", n)
	}
}
