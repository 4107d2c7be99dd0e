// Package backing is the seam between the SCSI device server (package lu)
// and the stores that hold an LU's blocks and metadata: regular files and
// block devices (filestore), ZFS volumes (zvolstore), memory (memstore).
// It holds only the interfaces, their plain data types and the sentinel
// errors the device server turns into sense data; no SCSI and no fd code.
package backing

import "context"

// Store is an LU's backing store. Offsets are LU-relative bytes (a store
// hides any header in front of the data); every transfer is whole logical
// blocks. Reads and writes may run concurrently from many goroutines.
// NoWaitReader is a Store that can read without waiting for a device:
// ReadAtNoWait fills p from off only when that needs no device I/O (the
// page cache holds it) and otherwise returns false with a nil error; p may
// then hold part of the data. The device server uses it to finish a read
// on the goroutine that received it without ever holding that goroutine
// for a disk.
type NoWaitReader interface {
	ReadAtNoWait(p []byte, off int64) (bool, error)
	// NoWait is false when ReadAtNoWait cannot succeed at all (O_DIRECT,
	// or the kernel or file system refused RWF_NOWAIT).
	NoWait() bool
}

type Store interface {
	// ReadAt fills p from offset off.
	ReadAt(p []byte, off int64) error
	// WriteAt writes all of p at off; with durable set the data is on
	// stable storage when it returns (RWF_DSYNC / FUA).
	WriteAt(p []byte, off int64, durable bool) error
	// Sync makes every completed write stable; a failure is returned.
	Sync() error
	// Deallocate frees [off, off+n); afterwards the range reads as zeroes
	// when Caps().DeallocZeroes.
	Deallocate(off, n int64) error
	// WriteZeroes makes [off, off+n) read as zeroes, keeping it allocated.
	WriteZeroes(off, n int64) error
	// Allocated reports whether byte off holds allocated data and where
	// that state ends (at most limit). Meaningful when Caps().MapKnown.
	Allocated(off, limit int64) (mapped bool, end int64, err error)
	// Size is the LU's size in bytes as the store holds it.
	Size() uint64
	// Resize makes the store hold n bytes (never shrinking data).
	Resize(ctx context.Context, n uint64) error
	// Caps reports what the store can do; fixed once the LU's metadata
	// was loaded or first saved.
	Caps() Caps
	// LoadMeta returns the stored metadata (ErrNoMeta wrapped when none).
	LoadMeta() (*Meta, error)
	// SaveMeta stores m durably before it returns.
	SaveMeta(m *Meta) error
	Close() error
}

// Caps are the store's capabilities the device server reports to
// initiators.
type Caps struct {
	ReadOnly bool // opened read-only: the LU is write-protected
	// AlwaysThin: the store is thin whatever the metadata says (zvols).
	AlwaysThin bool
	// DeallocZeroes: deallocated ranges read as zeroes (LBPRZ).
	DeallocZeroes bool
	// MapKnown: Allocated reports real holes (files); otherwise every
	// block counts as mapped.
	MapKnown bool
	// DiscardGranularity in bytes (0: no constraint).
	DiscardGranularity uint64
	// AllocUnit is the store's allocation unit in bytes (a zvol's
	// volblocksize), reported as the optimal transfer granularity and,
	// capped at 4 KiB, as the physical block size; 0 = not known.
	AllocUnit uint64
	// AtomicMax is the largest crash-atomic write in bytes (AtomicWriter);
	// 0 = none.
	AtomicMax int
}

// AtomicWriter is a store that can write a range all or nothing across a
// crash (WRITE ATOMIC), durably.
type AtomicWriter interface {
	WriteAtomic(p []byte, off int64) error
}

// SpaceReporter is a store that can tell how full the space it allocates
// from is (the thin provisioning soft threshold).
type SpaceReporter interface {
	// UsedPercent is 100 - available*100/total of the file system.
	UsedPercent() (uint32, error)
}

// Prefetcher is a store that takes read-ahead hints (PRE-FETCH).
type Prefetcher interface {
	Prefetch(off, n int64)
}

// Describer is a store that names where it lives (list-lu).
type Describer interface {
	// Describe returns the data path, the separate metadata path ("" when
	// the metadata is in the data path) and the ZFS volume ("" if none).
	Describe() Location
}

// Fencer is a store shared between nodes (cluster mode) that records the
// fencing token of the LU's newest owner with the LU, so a deposed owner's
// late write is refused (ErrFenced). Both methods read the token from the
// store itself, not from a cache: the other node may have rewritten it.
// A store without it (zvols: the pool import, exclusive with
// multihost=on, is their fence) is used unchanged.
type Fencer interface {
	// Fence records token as the LU's newest durably before it returns;
	// ErrFenced (wrapped) when the store already holds a bigger one. From
	// then on SaveMeta is refused once a bigger token was recorded.
	Fence(token int64) error
	// CheckFence returns ErrFenced (wrapped) when the store holds a token
	// bigger than token.
	CheckFence(token int64) error
}

// JournalReplayer is a store with a crash-recovery journal (the file
// store's WRITE ATOMIC redo journal) that can be replayed after open. In
// cluster mode every node opens a shared LU, so a store opened there
// leaves the journal alone and the device server replays it on every
// takeover, right after Fencer.Fence recorded the new owner's token
// (lu.Device.SetFence): only the owner applies a record, and the previous
// owner is fenced by then. An error fails the takeover.
type JournalReplayer interface {
	ReplayJournal() error
}

// CacheDropper is a store whose data may be cached in this host's memory:
// DropCache forgets the clean cached data, so an owner taking over an LU
// on shared storage reads what another host wrote since this node last
// had it. A hint: it fails only where a cached read would follow.
type CacheDropper interface {
	DropCache() error
}

// Location is where a store keeps an LU.
type Location struct {
	DataFile string
	MetaFile string
	Zvol     string
}
