// Package filestore keeps LUs in regular files and on block devices: the
// data after a 64 KiB metadata header (meta.go, region.go), or from byte 0
// with the metadata in a separate meta file; on regular files an atomic
// write journal (journal.go) makes WRITE ATOMIC crash-safe.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/fdstore"
)

// Options describe the files of a new LU.
type Options struct {
	DataFile string // regular file or block device
	MetaFile string // optional separate metadata file; "" = header in DataFile
	// Size is the LU size in bytes; 0 = what the existing file or device
	// holds, rounded down to BlockSize.
	Size      uint64
	BlockSize uint32 // 0 = 512
	// NoAtomicWrites: no journal, so no WRITE ATOMIC (16).
	NoAtomicWrites bool
	// DeferJournalReplay: the atomic write journal is neither opened nor
	// replayed by the first SaveMeta but by ReplayJournal (cluster mode:
	// on takeover, journal.go).
	DeferJournalReplay bool
	// Preallocation (PreallocFalloc, PreallocFull; "" = sparse) applies to
	// the part of the data file Create makes: all of a new file, the grown
	// part of an existing one. Existing content is never touched.
	Preallocation string
	Log           *slog.Logger
	// DirSynced, if set, is told of every directory fsync that makes a
	// newly created file (data, meta, journal) durable (tests).
	DirSynced func(dir, created string)
}

// Store is an LU in a file or on a block device. It implements
// backing.Store, backing.AtomicWriter, backing.SpaceReporter,
// backing.Prefetcher and backing.Describer.
type Store struct {
	log      *slog.Logger
	data     *fdstore.FD
	metaBE   *fdstore.FD // == data when the metadata is a header
	dataFile string
	metaFile string
	dataOff  int64
	capacity uint64 // bytes of LU data the file or device holds

	// mu serialises the metadata region (SaveMeta, Fence, CheckFence: the
	// device's metadata updates and its data path's fence checks).
	mu      sync.Mutex
	region  region
	fence   int64 // token this node fenced the LU with (fence.go); 0 = none
	fresh   bool  // created: the first SaveMeta writes both slots
	atomic  bool  // offer atomic writes once the LU's GUID is known
	journal *atomicJournal
	// deferJournal: ReplayJournal, not open, replays the journal.
	deferJournal bool
	created      bool // Create made the data file (Discard removes it)
	// grown: Create grew an existing data file from grownFrom bytes
	// (Discard cuts it back).
	grown     bool
	grownFrom uint64
	caps      backing.Caps

	dirSynced func(dir, created string) // Options.DirSynced
}

// Create opens or creates the files of a new LU. A DataFile that does not
// exist is created as a sparse file (Size is then required); an existing
// file is grown to hold Size if needed; a block device must be large
// enough. Nothing is written until the first SaveMeta, which writes the
// metadata (and opens the atomic write journal, replaying a record of the
// same LU). On error nothing is left behind.
func Create(ctx context.Context, o Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.DataFile == "" {
		return nil, errors.New("lu: no data file given")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	bs := uint64(o.BlockSize)
	if bs == 0 {
		bs = 512
	}
	var dataOff uint64 = headerDataOffset
	if o.MetaFile != "" {
		dataOff = 0
	}
	s := &Store{log: o.Log, dataFile: o.DataFile, metaFile: o.MetaFile, dataOff: int64(dataOff), fresh: true,
		atomic: !o.NoAtomicWrites, deferJournal: o.DeferJournalReplay, dirSynced: o.DirSynced}
	var err error
	if _, serr := os.Stat(o.DataFile); errors.Is(serr, os.ErrNotExist) {
		if o.Size == 0 {
			return nil, fmt.Errorf("lu: %s does not exist and no size was given", o.DataFile)
		}
		s.data, err = fdstore.Create(o.DataFile, int64(dataOff+o.Size))
		s.created = err == nil
	} else {
		s.data, err = fdstore.Open(o.DataFile, false)
	}
	if err != nil {
		return nil, err
	}
	s.metaBE = s.data
	fail := func(err error) (*Store, error) {
		s.Discard()
		return nil, err
	}
	devSize, err := s.data.Size()
	if err != nil {
		return fail(err)
	}
	if o.Size == 0 {
		if devSize <= dataOff {
			return fail(fmt.Errorf("lu: %s is too small (%d bytes) to hold an LU", o.DataFile, devSize))
		}
		if (devSize-dataOff)&^(bs-1) == 0 {
			return fail(fmt.Errorf("lu: %s is too small (%d bytes) to hold one %d-byte block", o.DataFile, devSize, bs))
		}
	} else if devSize < dataOff+o.Size {
		if err := s.data.Grow(dataOff + o.Size); err != nil {
			return fail(err)
		}
		if !s.created {
			s.grown, s.grownFrom = true, devSize
		}
		devSize = dataOff + o.Size
	}
	if o.Preallocation != "" {
		from := devSize // an existing file that was not grown: nothing of it is ours
		switch {
		case s.created:
			from = 0
		case s.grown:
			from = s.grownFrom
		}
		if err := s.preallocate(ctx, o.Preallocation, from, devSize); err != nil {
			return fail(err)
		}
	}
	s.capacity = devSize - dataOff
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if s.created {
		if err := s.syncParentDir(o.DataFile); err != nil {
			return fail(err)
		}
	}
	if o.MetaFile != "" {
		var metaCreated bool
		if s.metaBE, metaCreated, err = openOrCreateMeta(o.MetaFile); err != nil {
			return fail(err)
		}
		if metaCreated {
			if err := s.syncParentDir(o.MetaFile); err != nil {
				return fail(err)
			}
		}
	}
	s.region = region{be: s.metaBE, slot: -1}
	probe := region{be: s.metaBE, slot: -1}
	if old, err := probe.load(); err == nil {
		o.Log.Warn("replacing the metadata of an existing LU", "path", s.metaBE.Path(), "old_guid", fmt.Sprintf("%X", old.GUID))
	}
	s.setCaps()
	return s, nil
}

func openOrCreateMeta(path string) (*fdstore.FD, bool, error) {
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		mb, err := fdstore.Create(path, metaRegionSize)
		return mb, err == nil, err
	}
	mb, err := fdstore.Open(path, false)
	if err == nil {
		if err = mb.Grow(metaRegionSize); err != nil {
			mb.Close()
		}
	}
	return mb, false, err
}

// Open opens an existing LU from the metadata stored with it: in a header
// at the start of dataFile, or in metaFile when given. With metaFile set
// and dataFile empty, the data file recorded in the metadata is used; a
// moved data file is recorded. An unapplied atomic write is replayed
// before Open returns.
func Open(ctx context.Context, dataFile, metaFile string, log *slog.Logger) (*Store, error) {
	return open(ctx, dataFile, metaFile, log, false)
}

// OpenDeferred is Open without touching the atomic write journal: it is
// replayed by ReplayJournal, and WRITE ATOMIC is refused until then
// (cluster mode: every node opens the LU, only a new owner replays).
func OpenDeferred(ctx context.Context, dataFile, metaFile string, log *slog.Logger) (*Store, error) {
	return open(ctx, dataFile, metaFile, log, true)
}

func open(ctx context.Context, dataFile, metaFile string, log *slog.Logger, deferJournal bool) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dataFile == "" && metaFile == "" {
		return nil, errors.New("lu: no data file given")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Store{log: log, metaFile: metaFile, atomic: true, deferJournal: deferJournal}
	var err error
	if metaFile != "" {
		if s.metaBE, err = fdstore.Open(metaFile, true); err != nil {
			return nil, err
		}
	} else {
		if s.data, err = fdstore.Open(dataFile, true); err != nil {
			return nil, err
		}
		s.metaBE = s.data
	}
	fail := func(err error) (*Store, error) {
		s.Close()
		return nil, err
	}
	s.region = region{be: s.metaBE, slot: -1}
	md, err := s.region.load()
	if err != nil {
		return fail(err)
	}
	if (metaFile != "" && md.DataOffset != 0) || (metaFile == "" && md.DataOffset != headerDataOffset) {
		return fail(fmt.Errorf("%w: metadata in %s describes an LU whose data starts at byte %d; import it with the matching data/meta file pair",
			backing.ErrNoMeta, s.metaBE.Path(), md.DataOffset))
	}
	s.dataOff = int64(md.DataOffset)
	if dataFile == "" {
		dataFile = md.DataFile
		if dataFile == "" {
			return fail(fmt.Errorf("lu: metadata in %s names no data file", metaFile))
		}
	}
	s.dataFile = dataFile
	if s.data == nil {
		if s.data, err = fdstore.Open(dataFile, true); err != nil {
			return fail(err)
		}
	}
	devSize, err := s.data.Size()
	if err != nil {
		return fail(err)
	}
	if devSize < md.DataOffset+md.Size {
		return fail(fmt.Errorf("lu: %s holds %d bytes but the LU needs %d", dataFile, devSize, md.DataOffset+md.Size))
	}
	s.capacity = devSize - md.DataOffset
	if md.DataFile != dataFile && !s.metaBE.ReadOnly() && !s.deferJournal {
		// Remember where the data lives now (the LU was moved). Not in
		// cluster mode (deferred open): a standby writes no metadata
		// while another node owns the LU; the path is informational.
		md.DataFile = dataFile
		if err := s.region.store(md); err != nil {
			return fail(err)
		}
	}
	if s.data.ReadOnly() {
		log.Warn("backing store is read-only; the LU is write-protected", "path", dataFile)
	}
	// Before the LU serves I/O: replay an unapplied atomic write (deferred:
	// on takeover).
	if s.journal, err = s.openAtomicJournal(md.GUID, md.DataOffset, md.DataOffset+md.Size, s.deferJournal); err != nil {
		return fail(err)
	}
	s.setCaps()
	return s, nil
}

func (s *Store) setCaps() {
	c := backing.Caps{ReadOnly: s.data.ReadOnly()}
	if s.data.IsBlock() {
		c.DeallocZeroes = s.data.DiscardZeroes()
		c.DiscardGranularity = s.data.DiscardGranularity()
	} else {
		c.DeallocZeroes = true // a punched hole reads as zeroes
		c.MapKnown = true
	}
	if s.journal.offered() {
		c.AtomicMax = maxAtomicBytes
	}
	s.caps = c
}

// ReadAt implements backing.Store.
func (s *Store) ReadAt(p []byte, off int64) error { return s.data.ReadAt(p, off+s.dataOff) }

// NoWait implements backing.NoWaitReader.
func (s *Store) NoWait() bool { return s.data.NoWait() }

// ReadAtNoWait implements backing.NoWaitReader.
func (s *Store) ReadAtNoWait(p []byte, off int64) (bool, error) {
	return s.data.ReadAtNoWait(p, off+s.dataOff)
}

// WriteAt implements backing.Store.
func (s *Store) WriteAt(p []byte, off int64, durable bool) error {
	return s.data.WriteAt(p, off+s.dataOff, durable)
}

// Sync implements backing.Store (fdatasync of the data file).
func (s *Store) Sync() error { return s.data.Datasync() }

// Deallocate implements backing.Store: a hole in a file, BLKDISCARD on a
// block device (with zeroed edges when discards read as zeroes).
func (s *Store) Deallocate(off, n int64) error {
	if n == 0 {
		return nil
	}
	return s.data.Deallocate(off+s.dataOff, n, s.caps.DeallocZeroes, int64(s.caps.DiscardGranularity))
}

// WriteZeroes implements backing.Store.
func (s *Store) WriteZeroes(off, n int64) error { return s.data.ZeroRange(off+s.dataOff, n) }

// Allocated implements backing.Store with SEEK_DATA/SEEK_HOLE; offsets are
// LU-relative.
func (s *Store) Allocated(off, limit int64) (bool, int64, error) {
	if s.data.IsBlock() {
		return true, limit, nil
	}
	mapped, end, err := s.data.Allocated(off+s.dataOff, limit+s.dataOff)
	return mapped, end - s.dataOff, err
}

// DropCache implements backing.CacheDropper (a cluster takeover).
func (s *Store) DropCache() error { return s.data.DropCache(s.dataOff, 0) }

// Prefetch implements backing.Prefetcher.
func (s *Store) Prefetch(off, n int64) { s.data.Prefetch(off+s.dataOff, n) }

// UsedPercent implements backing.SpaceReporter for regular files; a block
// device's space is not the target's to watch (ErrNotSupported).
func (s *Store) UsedPercent() (uint32, error) {
	if s.data.IsBlock() {
		return 0, backing.ErrNotSupported
	}
	return s.data.UsedPercent()
}

// WriteAtomic implements backing.AtomicWriter through the journal; the
// file space is allocated first so a full file system fails it before
// anything is written. A deferred journal refuses it until ReplayJournal
// ran (errJournalNotReplayed).
func (s *Store) WriteAtomic(p []byte, off int64) error {
	if s.journal == nil {
		return s.WriteAt(p, off, true)
	}
	return s.journal.write(s.data, p, off+s.dataOff)
}

// Size implements backing.Store: the LU data the file or device holds.
func (s *Store) Size() uint64 { return s.capacity }

// Resize implements backing.Store: a regular file is extended as needed
// (never truncated); a block device must be large enough.
func (s *Store) Resize(_ context.Context, n uint64) error {
	if err := s.data.Grow(uint64(s.dataOff) + n); err != nil {
		return err
	}
	s.capacity = max(s.capacity, n)
	return nil
}

// Caps implements backing.Store.
func (s *Store) Caps() backing.Caps { return s.caps }

// Describe implements backing.Describer.
func (s *Store) Describe() backing.Location {
	return backing.Location{DataFile: s.dataFile, MetaFile: s.metaFile}
}

// LoadMeta implements backing.Store: it reads the metadata region.
func (s *Store) LoadMeta() (*backing.Meta, error) {
	r := region{be: s.metaBE, slot: -1}
	md, err := r.load()
	if err != nil {
		return nil, err
	}
	return &md.Meta, nil
}

// SaveMeta implements backing.Store. The first save of a created LU
// writes both slots and opens the atomic write journal. Later saves start
// from the region as it is on the medium (another node sharing the store
// may have written since): they write the slot not holding the newest
// copy, never lower the recorded fencing token, and are refused with
// backing.ErrFenced once a newer owner fenced the LU (fence.go).
func (s *Store) SaveMeta(m *backing.Meta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	md := &metadata{Meta: *m, DataOffset: uint64(s.dataOff)}
	if !s.fresh {
		if err := s.refreshLocked(md); err != nil {
			return err
		}
		return s.region.store(md)
	}
	if err := s.region.initialize(md); err != nil {
		return err
	}
	s.fresh = false
	if s.atomic {
		// An existing journal of this LU (same GUID) is replayed (deferred:
		// on takeover).
		j, err := s.openAtomicJournal(m.GUID, md.DataOffset, md.DataOffset+m.Size, s.deferJournal)
		if err != nil {
			return err
		}
		s.journal = j
		s.setCaps()
	}
	return nil
}

// SetSyncHook installs a hook told of every fdatasync and RWF_DSYNC write
// of the data file (tests count them).
func (s *Store) SetSyncHook(h func(kind string)) { s.data.SyncHook = h }

// DisableRWFDsync makes durable writes use write + fdatasync (tests).
func (s *Store) DisableRWFDsync() { s.data.DisableRWFDsync() }

// Close implements backing.Store. The journal file stays (it belongs with
// the data file).
func (s *Store) Close() error {
	var errs []error
	if s.data != nil {
		errs = append(errs, s.data.Close())
	}
	if s.metaBE != nil && s.metaBE != s.data {
		errs = append(errs, s.metaBE.Close())
	}
	errs = append(errs, s.journal.close())
	return errors.Join(errs...)
}

// Discard closes a store whose LU was not made and removes the data file
// if Create created it, or cuts it back to its size if Create grew it.
func (s *Store) Discard() {
	if s.grown && !s.data.IsBlock() {
		// By name: the LU may have closed the store already.
		if err := os.Truncate(s.dataFile, int64(s.grownFrom)); err != nil {
			s.log.Error("cannot cut the data file back to its size after a failed create", "path", s.dataFile, "err", err)
		}
	}
	journal := s.journal != nil && s.journal.created
	s.Close()
	if journal {
		os.Remove(s.journalPath())
	}
	if s.created {
		os.Remove(s.dataFile)
	}
}
