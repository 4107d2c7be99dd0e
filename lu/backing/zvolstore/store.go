// Package zvolstore keeps LUs on ZFS volumes (package lu/zvol does the
// ZFS plumbing). A zvol LU is the whole zvol: its data starts at byte 0
// and its size is the volsize; its metadata (GUID, vid/pid/serial, alias,
// block size, wcd/wp, and the zvol's own name and dataset guid) lives in
// the zvol's user property org.costar:lu, and persistent reservation
// state kept under APTPL in org.costar:pr, so the LU comes back after a
// reboot, a zpool export/import or a `zfs send -p | zfs recv`, and a
// clone or a copy received under another name is recognised
// (zvol.Classify, Store.Relation) so that its opener can give it a new
// GUID.
//
// The device is opened with O_DIRECT: a write reaches the zvol (the DMU)
// before GOOD, so a full pool answers ENOSPC for that write (SPACE
// ALLOCATION FAILED WRITE PROTECT) instead of failing later in page cache
// write-back, and a snapshot holds every write acknowledged before it.
// Durable writes and Sync use RWF_DSYNC / fdatasync on the device, which
// the zvol turns into a ZIL commit. Deallocation discards (BLKDISCARD)
// whole volblocksize units, which ZFS frees; zvol LUs are always thin
// provisioned (Caps.AlwaysThin). volblocksize is the store's AllocUnit.
package zvolstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/fdstore"
	"github.com/costar-project/costar/lu/zvol"
)

// Time limits of the ZFS work done on behalf of SCSI commands and
// management calls that carry no deadline of their own.
const (
	cmdTimeout    = 2 * time.Minute  // one zfs set (a transaction group sync)
	deviceTimeout = 30 * time.Second // udev creating /dev/zvol/<name>
	resizeSettle  = 5 * time.Second  // the block device taking its new size
)

// Store is an LU on a zvol. It implements backing.Store,
// backing.Prefetcher and backing.Describer. It deliberately does not
// implement backing.Fencer: a pool is imported by one host at a time
// (exclusive with multihost=on), and that import is a zvol's fence; its
// metadata lives in user properties that another host cannot rewrite
// while the pool is imported here.
type Store struct {
	log  *slog.Logger
	z    zvol.ZFS
	vol  zvol.Volume
	fd   *fdstore.FD
	caps backing.Caps

	found     *zvol.Found // what Open read; nil for a new LU
	grownFrom uint64      // Create grew the volume from this size (Discard undoes it)

	// The stored properties as last read or written.
	base   *zvol.Meta // keeps keys of newer versions
	lastLU string
	lastPR string
	prSet  bool // org.costar:pr exists
}

// Resolve finds the volume a device path names (zvol.ParsePath's Name, or
// its Alt reading when Name does not exist).
func Resolve(ctx context.Context, z zvol.ZFS, path string) (zvol.Volume, error) {
	p, err := zvol.ParsePathIn(z.DevDir(), path)
	if err != nil {
		return zvol.Volume{}, err
	}
	v, err := z.Volume(ctx, p.Name)
	if err != nil && p.Alt != "" && errors.Is(err, zvol.ErrNotFound) {
		if v2, err2 := z.Volume(ctx, p.Alt); err2 == nil {
			return v2, nil
		}
	}
	return v, err
}

// Create prepares volume name for a new LU of size bytes (0: the volsize;
// a larger size grows the volume, a smaller one is refused) with logical
// blocks of blockSize. The first SaveMeta writes the LU's properties and
// clears reservation state an earlier LU left on the volume.
func Create(ctx context.Context, z zvol.ZFS, name string, size uint64, blockSize uint32, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	v, err := z.Volume(ctx, name)
	if err != nil {
		return nil, err
	}
	grownFrom := uint64(0)
	switch {
	case size == 0 || size == v.Size:
	case size < v.Size:
		return nil, fmt.Errorf("lu: size %d is smaller than zvol %s (volsize %d); a zvol LU is the whole zvol", size, name, v.Size)
	default:
		if v.BlockSize != 0 && size%v.BlockSize != 0 {
			return nil, fmt.Errorf("lu: size %d is not a multiple of the volblocksize %d of %s", size, v.BlockSize, name)
		}
		if err := z.SetVolsize(ctx, name, size); err != nil {
			return nil, err
		}
		grownFrom, v.Size = v.Size, size
	}
	s := &Store{log: log, z: z, vol: v, grownFrom: grownFrom, base: &zvol.Meta{}}
	if v.Size%uint64(blockSize) != 0 || v.Size > backing.MaxSize {
		s.undoGrow(ctx)
		return nil, fmt.Errorf("lu: zvol %s: volsize %d is not a multiple of the block size %d", name, v.Size, blockSize)
	}
	if old, err := zvol.Load(ctx, z, v); err == nil && old.Relation != zvol.Copy {
		log.Warn("replacing the metadata of an existing LU", "zvol", name, "old_guid", old.Meta.GUID)
	}
	if err := s.openDevice(ctx, false); err != nil {
		s.undoGrow(ctx)
		return nil, err
	}
	if pv, ok, err := z.UserProp(ctx, v.Name, zvol.PropPR); err != nil {
		s.Discard(ctx)
		return nil, err
	} else if ok {
		s.prSet, s.lastPR = true, pv
	}
	return s, nil
}

// Open opens the LU stored on volume name. A volume without LU metadata
// fails with an error wrapping both backing.ErrNoMeta and
// zvol.ErrNoMetadata (it may still hold an in-band header: an LU made
// before zvol metadata, which filestore opens).
func Open(ctx context.Context, z zvol.ZFS, name string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	v, err := z.Volume(ctx, name)
	if err != nil {
		return nil, err
	}
	found, err := zvol.Load(ctx, z, v)
	if errors.Is(err, zvol.ErrNoMetadata) {
		return nil, fmt.Errorf("%w: %w", backing.ErrNoMeta, err)
	}
	if err != nil {
		return nil, err
	}
	m := found.Meta
	if v.Size == 0 || v.Size%uint64(m.BlockSize) != 0 || v.Size > backing.MaxSize {
		return nil, fmt.Errorf("lu: zvol %s: volsize %d is not a multiple of the LU's block size %d", name, v.Size, m.BlockSize)
	}
	s := &Store{log: log, z: z, vol: v, found: found, base: m.Clone()}
	if found.From == v.Name {
		s.lastLU = found.Raw
	}
	// A copy's reservation property came from its source: clear it.
	s.prSet, s.lastPR = found.HasPR, found.PRRaw
	if found.Relation == zvol.Copy {
		s.lastPR = ""
	}
	if err := s.openDevice(ctx, true); err != nil {
		return nil, err
	}
	if s.fd.ReadOnly() {
		log.Warn("zvol is read-only; the LU is write-protected", "zvol", v.Name)
	}
	return s, nil
}

// Found is what Open read: the stored identity, where it came from and
// how the volume relates to it.
func (s *Store) Found() *zvol.Found { return s.found }

// openDevice waits for the volume's device node and opens it for direct
// I/O.
func (s *Store) openDevice(ctx context.Context, allowRO bool) error {
	wctx, cancel := context.WithTimeout(ctx, deviceTimeout)
	err := s.z.WaitDevice(wctx, s.vol.Name)
	cancel()
	if err != nil {
		return fmt.Errorf("lu: zvol %s has no device node: %w", s.vol.Name, err)
	}
	fd, err := fdstore.OpenDirect(s.z.Device(s.vol.Name), allowRO)
	if err != nil {
		return err
	}
	n, err := fd.Size()
	if err == nil && n < s.vol.Size {
		err = fmt.Errorf("lu: %s holds %d bytes, the zvol's volsize is %d", fd.Path(), n, s.vol.Size)
	}
	if err != nil {
		fd.Close()
		return err
	}
	s.fd = fd
	s.caps = backing.Caps{
		ReadOnly:           fd.ReadOnly(),
		AlwaysThin:         true,
		DeallocZeroes:      fd.DiscardZeroes(),
		DiscardGranularity: fd.DiscardGranularity(),
		AllocUnit:          max(s.vol.BlockSize, 512),
	}
	return nil
}

func (s *Store) undoGrow(ctx context.Context) {
	if s.grownFrom == 0 {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmdTimeout)
	defer cancel()
	if err := s.z.SetVolsize(uctx, s.vol.Name, s.grownFrom); err != nil {
		s.log.Error("lu: cannot shrink the zvol back after a failed create", "zvol", s.vol.Name, "err", err)
	}
}

// Discard closes a store whose LU was not made, shrinking a volume Create
// grew back to its size.
func (s *Store) Discard(ctx context.Context) {
	if s.fd != nil {
		s.fd.Close()
	}
	s.undoGrow(ctx)
}

// ReadAt implements backing.Store.
func (s *Store) ReadAt(p []byte, off int64) error { return s.fd.ReadAt(p, off) }

// WriteAt implements backing.Store.
func (s *Store) WriteAt(p []byte, off int64, durable bool) error {
	return s.fd.WriteAt(p, off, durable)
}

// Sync implements backing.Store (a ZIL commit).
func (s *Store) Sync() error { return s.fd.Datasync() }

// Deallocate implements backing.Store: BLKDISCARD of whole volblocksize
// units, the edges zeroed when discards read as zeroes.
func (s *Store) Deallocate(off, n int64) error {
	if n == 0 {
		return nil
	}
	return s.fd.Deallocate(off, n, s.caps.DeallocZeroes, int64(s.caps.DiscardGranularity))
}

// WriteZeroes implements backing.Store.
func (s *Store) WriteZeroes(off, n int64) error { return s.fd.ZeroRange(off, n) }

// Allocated implements backing.Store: a zvol does not tell (MapKnown is
// false), so everything is mapped.
func (s *Store) Allocated(_, limit int64) (bool, int64, error) { return true, limit, nil }

// Prefetch implements backing.Prefetcher.
func (s *Store) Prefetch(off, n int64) { s.fd.Prefetch(off, n) }

// Size implements backing.Store: the volsize.
func (s *Store) Size() uint64 { return s.vol.Size }

// Caps implements backing.Store.
func (s *Store) Caps() backing.Caps { return s.caps }

// Describe implements backing.Describer.
func (s *Store) Describe() backing.Location {
	return backing.Location{DataFile: s.z.Device(s.vol.Name), Zvol: s.vol.Name}
}

// Resize implements backing.Store: the volume grows (volsize) online;
// shrinking would destroy data and is refused.
func (s *Store) Resize(ctx context.Context, n uint64) error {
	cur := s.vol.Size
	switch {
	case n == cur:
		return nil
	case n < cur:
		return fmt.Errorf("lu: zvol %s: shrinking a zvol LU (%d to %d bytes) would destroy data; refused", s.vol.Name, cur, n)
	case s.vol.BlockSize != 0 && n%s.vol.BlockSize != 0:
		return fmt.Errorf("lu: zvol %s: size %d is not a multiple of the volblocksize %d", s.vol.Name, n, s.vol.BlockSize)
	}
	if err := s.z.SetVolsize(ctx, s.vol.Name, n); err != nil {
		return err
	}
	deadline := time.Now().Add(resizeSettle)
	for {
		got, err := s.fd.Size()
		if err != nil {
			return err
		}
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lu: zvol %s: volsize is %d but %s still holds %d bytes", s.vol.Name, n, s.fd.Path(), got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.vol.Size = n
	s.log.Info("zvol LU resized", "zvol", s.vol.Name, "size", n)
	return nil
}

// LoadMeta implements backing.Store: the identity Open read, sized by the
// volsize; a new LU has none yet.
func (s *Store) LoadMeta() (*backing.Meta, error) {
	if s.found == nil {
		return nil, fmt.Errorf("%w: zvol %s holds no LU yet", backing.ErrNoMeta, s.vol.Name)
	}
	m := s.found.Meta
	md := &backing.Meta{GUID: m.GUID, Size: s.vol.Size, BlockSize: m.BlockSize, VendorID: m.VendorID, ProductID: m.ProductID,
		Serial: m.Serial, Alias: m.Alias, MgmtURL: m.MgmtURL, Thin: true, PR: s.found.PR, DataFile: s.z.Device(s.vol.Name)}
	if m.WCD {
		md.Flags |= backing.FlagWCD
	}
	if m.WP {
		md.Flags |= backing.FlagWP
	}
	return md, nil
}

// SaveMeta implements backing.Store: zfs set returns once the change is
// on stable storage. Unchanged properties are not written again.
func (s *Store) SaveMeta(m *backing.Meta) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	zm := s.base.Clone()
	zm.GUID, zm.Zvol, zm.ZvolGUID, zm.BlockSize = m.GUID, s.vol.Name, s.vol.GUID, m.BlockSize
	zm.VendorID, zm.ProductID, zm.Serial, zm.Alias, zm.MgmtURL = m.VendorID, m.ProductID, m.Serial, m.Alias, m.MgmtURL
	zm.WCD, zm.WP = m.Flags&backing.FlagWCD != 0, m.Flags&backing.FlagWP != 0
	v, err := zm.Encode()
	if err != nil {
		return err
	}
	if v != s.lastLU {
		if err := s.z.SetUserProp(ctx, s.vol.Name, zvol.PropLU, v); err != nil {
			return fmt.Errorf("lu: storing metadata in zvol %s: %w", s.vol.Name, err)
		}
		s.lastLU, s.base = v, zm
	}
	if len(m.PR) > 0 || s.prSet {
		pv, err := zvol.EncodePR(m.PR)
		if err != nil {
			if errors.Is(err, zvol.ErrPRTooLarge) {
				return fmt.Errorf("%w: %w", backing.ErrMetaTooLarge, err)
			}
			return err
		}
		if pv != s.lastPR || !s.prSet {
			if err := s.z.SetUserProp(ctx, s.vol.Name, zvol.PropPR, pv); err != nil {
				return fmt.Errorf("lu: storing persistent reservations in zvol %s: %w", s.vol.Name, err)
			}
			s.lastPR, s.prSet = pv, true
		}
	}
	return nil
}

// Close implements backing.Store.
func (s *Store) Close() error { return s.fd.Close() }
