package lu

// LUs on ZFS volumes (package lu/zvol). A zvol LU is the whole zvol: its
// data starts at byte 0 and its size is the volsize; its metadata (GUID,
// vid/pid/serial, alias, block size, wcd/wp, and the zvol's own name and
// dataset guid) lives in the zvol's user property org.costar:lu, and
// persistent reservation state kept under APTPL in org.costar:pr, so the
// LU comes back after a reboot, a zpool export/import or a `zfs send -p |
// zfs recv`, and a clone or a copy received under another name is
// recognised (zvol.Classify) and gets a new GUID.
//
// The device is opened with O_DIRECT: a write reaches the zvol (the DMU)
// before GOOD, so a full pool answers ENOSPC for that write (SPACE
// ALLOCATION FAILED WRITE PROTECT) instead of failing later in page cache
// write-back, and a snapshot holds every write acknowledged before it.
// FUA, SYNCHRONIZE CACHE and wcd=true use RWF_DSYNC / fdatasync on the
// device, which the zvol turns into a ZIL commit. UNMAP and WRITE SAME
// with UNMAP discard (BLKDISCARD) whole volblocksize units, which ZFS
// frees; zvol LUs are always thin provisioned (LBPME, LBPRZ).
//
// volblocksize is reported as the OPTIMAL TRANSFER LENGTH GRANULARITY
// (VPD B0) and, capped at 4 KiB, as the physical block size of READ
// CAPACITY (16): ESXi accepts only 512n, 512e (4 KiB physical) and 4Kn.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/stmf"
)

// Time limits of the ZFS work done on behalf of SCSI commands and
// management calls that carry no deadline of their own.
const (
	zvolCmdTimeout    = 2 * time.Minute  // one zfs set (a transaction group sync)
	zvolDeviceTimeout = 30 * time.Second // udev creating /dev/zvol/<name>
	zvolResizeSettle  = 5 * time.Second  // the block device taking its new size
)

// zvolState is the ZFS side of a zvol LU.
type zvolState struct {
	z        zvol.ZFS
	name     string
	volBlock uint64
}

// ZvolImport tunes ImportZvol.
type ZvolImport struct {
	// Expect, when not zero, is the GUID the zvol must hold as its own
	// LU (same name, or renamed): anything else fails and nothing is
	// written. Used when the daemon reopens a configured LU.
	Expect stmf.GUID
	// GUID, when not zero, names the LU whatever the metadata says.
	// Otherwise the LU's own zvol keeps its GUID and a copy gets a new one.
	GUID stmf.GUID
	// Overrides of the stored properties (nil: as stored).
	Alias, MgmtURL, VendorID, ProductID, Serial *string
	WriteCacheDisabled, WriteProtect            *bool
}

// ResolveZvol finds the volume a device path names (ParsePath's Name, or
// its Alt reading when Name does not exist).
func ResolveZvol(ctx context.Context, z zvol.ZFS, path string) (zvol.Volume, error) {
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

// CreateZvol makes a new LU on existing volume name. cfg.DataFile and
// cfg.MetaFile must be empty (the device is the zvol's, the metadata goes
// into its properties); cfg.Size 0 takes the volsize, a larger size grows
// the volume, a smaller one is refused. The LU is thin provisioned.
func CreateZvol(ctx context.Context, z zvol.ZFS, name string, cfg Config, gen *GUIDGenerator, log *slog.Logger) (*Device, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.MetaFile != "" {
		return nil, errors.New("lu: a zvol LU keeps its metadata in the zvol; no meta file")
	}
	if cfg.SoftThreshold != 0 {
		return nil, errors.New("lu: a soft threshold applies to LUs on files; a zvol's space belongs to its pool")
	}
	if err := normalizeIdentity(&cfg); err != nil {
		return nil, err
	}
	v, err := z.Volume(ctx, name)
	if err != nil {
		return nil, err
	}
	grownFrom := uint64(0)
	switch {
	case cfg.Size == 0 || cfg.Size == v.Size:
	case cfg.Size < v.Size:
		return nil, fmt.Errorf("lu: size %d is smaller than zvol %s (volsize %d); a zvol LU is the whole zvol", cfg.Size, name, v.Size)
	default:
		if v.BlockSize != 0 && cfg.Size%v.BlockSize != 0 {
			return nil, fmt.Errorf("lu: size %d is not a multiple of the volblocksize %d of %s", cfg.Size, v.BlockSize, name)
		}
		if err := z.SetVolsize(ctx, name, cfg.Size); err != nil {
			return nil, err
		}
		grownFrom, v.Size = v.Size, cfg.Size
	}
	if v.Size%uint64(cfg.BlockSize) != 0 || v.Size > maxLUSize {
		return nil, fmt.Errorf("lu: zvol %s: volsize %d is not a multiple of the block size %d", name, v.Size, cfg.BlockSize)
	}
	undoGrow := func() {
		if grownFrom != 0 {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), zvolCmdTimeout)
			defer cancel()
			if err := z.SetVolsize(uctx, name, grownFrom); err != nil {
				log.Error("lu: cannot shrink the zvol back after a failed create", "zvol", name, "err", err)
			}
		}
	}
	if old, err := zvol.Load(ctx, z, v); err == nil && old.Relation != zvol.Copy {
		log.Warn("replacing the metadata of an existing LU", "zvol", name, "old_guid", old.Meta.GUID)
	}
	be, err := openZvolDevice(ctx, z, name, false)
	if err != nil {
		undoGrow()
		return nil, err
	}
	d := &Device{log: log, data: be, metaBE: be, dataFile: z.Device(name)}
	fail := func(err error) (*Device, error) {
		d.closeBackends()
		undoGrow()
		return nil, err
	}
	if n, err := be.size(); err != nil {
		return fail(err)
	} else if n < v.Size {
		return fail(fmt.Errorf("lu: %s holds %d bytes, the zvol's volsize is %d", be.path, n, v.Size))
	}
	guid := cfg.GUID
	if guid.IsZero() {
		if gen == nil {
			gen = &GUIDGenerator{}
		}
		guid = gen.Next(time.Now())
	}
	md := metadata{GUID: guid, Size: v.Size, BlockSize: cfg.BlockSize, VendorID: cfg.VendorID, ProductID: cfg.ProductID,
		Serial: cfg.Serial, Alias: cfg.Alias, MgmtURL: cfg.MgmtURL, DataFile: d.dataFile, Thin: true}
	if cfg.WriteCacheDisabled {
		md.Flags |= flagWCD
	}
	if cfg.WriteProtect {
		md.Flags |= flagWP
	}
	st := newZvolStore(z, v, nil)
	if err := st.initialize(ctx, &md); err != nil {
		return fail(err)
	}
	d.ms = metaStore{zv: st, slot: -1}
	d.zvol = &zvolState{z: z, name: v.Name, volBlock: v.BlockSize}
	d.setup(&md)
	log.Info("logical unit created on zvol", "guid", guid, "zvol", v.Name, "size", v.Size, "block_size", cfg.BlockSize,
		"volblocksize", v.BlockSize)
	return d, nil
}

// normalizeIdentity applies Create's defaults and checks to cfg.
func normalizeIdentity(cfg *Config) error {
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if !validBlockSize(cfg.BlockSize) {
		return fmt.Errorf("lu: block size %d: must be a power of two from 512 to 65536", cfg.BlockSize)
	}
	if cfg.VendorID == "" {
		cfg.VendorID = DefaultVendorID
	}
	if cfg.ProductID == "" {
		cfg.ProductID = DefaultProductID
	}
	if cfg.Size%uint64(cfg.BlockSize) != 0 {
		return fmt.Errorf("lu: size %d is not a multiple of the block size %d", cfg.Size, cfg.BlockSize)
	}
	return checkIdentity(cfg.VendorID, cfg.ProductID, cfg.Serial, cfg.Alias, cfg.MgmtURL)
}

// openZvolDevice waits for the volume's device node and opens it for
// direct I/O.
func openZvolDevice(ctx context.Context, z zvol.ZFS, name string, allowRO bool) (*backend, error) {
	wctx, cancel := context.WithTimeout(ctx, zvolDeviceTimeout)
	err := z.WaitDevice(wctx, name)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("lu: zvol %s has no device node: %w", name, err)
	}
	return openDirectBackend(z.Device(name), allowRO)
}

// ImportZvol opens the LU stored on volume name (see ZvolImport for the
// GUID rules). A zvol without the property but with an in-band header
// (an LU made before zvol metadata existed) is opened from the header.
func ImportZvol(ctx context.Context, z zvol.ZFS, name string, opts ZvolImport, gen *GUIDGenerator, log *slog.Logger) (*Device, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, err := z.Volume(ctx, name)
	if err != nil {
		return nil, err
	}
	found, err := zvol.Load(ctx, z, v)
	if errors.Is(err, zvol.ErrNoMetadata) {
		d, herr := Import(ctx, z.Device(v.Name), "", log)
		if herr == nil {
			if !opts.Expect.IsZero() && d.GUID() != opts.Expect {
				d.Close()
				return nil, fmt.Errorf("lu: zvol %s holds LU %s, not %s", name, d.GUID(), opts.Expect)
			}
			log.Warn("zvol LU with an in-band metadata header (made before zvol metadata); its data starts at 64 KiB",
				"zvol", name, "guid", d.GUID())
			return d, nil
		}
		if !errors.Is(herr, ErrNoMetadata) {
			return nil, herr
		}
		return nil, fmt.Errorf("%w: %w", ErrNoMetadata, err)
	}
	if err != nil {
		return nil, err
	}
	m := found.Meta
	if !opts.Expect.IsZero() && (found.Relation == zvol.Copy || m.GUID != opts.Expect) {
		return nil, fmt.Errorf("lu: zvol %s holds LU %s (%s, metadata written for %s), not %s",
			name, m.GUID, found.Relation, m.Zvol, opts.Expect)
	}
	guid := m.GUID
	md := metadata{GUID: guid, Size: v.Size, BlockSize: m.BlockSize, VendorID: m.VendorID, ProductID: m.ProductID,
		Serial: m.Serial, Alias: m.Alias, MgmtURL: m.MgmtURL, Thin: true, PR: found.PR}
	if found.Relation == zvol.Copy {
		// Another LU with the same data: new name, no serial or
		// reservations of its source.
		if gen == nil {
			gen = &GUIDGenerator{}
		}
		md.GUID = gen.Next(time.Now())
		md.Serial, md.PR = "", nil
	}
	if !opts.GUID.IsZero() {
		md.GUID = opts.GUID
	}
	if m.WCD {
		md.Flags |= flagWCD
	}
	if m.WP {
		md.Flags |= flagWP
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&md.Alias, opts.Alias)
	set(&md.MgmtURL, opts.MgmtURL)
	set(&md.VendorID, opts.VendorID)
	set(&md.ProductID, opts.ProductID)
	set(&md.Serial, opts.Serial)
	for _, f := range []struct {
		v    *bool
		flag uint32
	}{{opts.WriteCacheDisabled, flagWCD}, {opts.WriteProtect, flagWP}} {
		if f.v != nil {
			md.Flags &^= f.flag
			if *f.v {
				md.Flags |= f.flag
			}
		}
	}
	if err := checkIdentity(md.VendorID, md.ProductID, md.Serial, md.Alias, md.MgmtURL); err != nil {
		return nil, err
	}
	if v.Size == 0 || v.Size%uint64(md.BlockSize) != 0 || v.Size > maxLUSize {
		return nil, fmt.Errorf("lu: zvol %s: volsize %d is not a multiple of the LU's block size %d", name, v.Size, md.BlockSize)
	}
	be, err := openZvolDevice(ctx, z, v.Name, true)
	if err != nil {
		return nil, err
	}
	d := &Device{log: log, data: be, metaBE: be, dataFile: z.Device(v.Name)}
	md.DataFile = d.dataFile
	if n, err := be.size(); err != nil || n < v.Size {
		d.closeBackends()
		if err == nil {
			err = fmt.Errorf("lu: %s holds %d bytes, the zvol's volsize is %d", be.path, n, v.Size)
		}
		return nil, err
	}
	st := newZvolStore(z, v, m)
	if found.From == v.Name {
		st.lastLU = found.Raw
	}
	// A copy's reservation property came from its source: clear it.
	st.prSet, st.lastPR = found.HasPR, found.PRRaw
	if found.Relation == zvol.Copy {
		st.lastPR = ""
	}
	// Record what changed (a new GUID, the new name after a rename or a
	// copy, the dataset guid of a received copy, overrides).
	if err := st.storeCtx(ctx, &md); err != nil {
		d.closeBackends()
		return nil, err
	}
	d.ms = metaStore{zv: st, slot: -1}
	d.zvol = &zvolState{z: z, name: v.Name, volBlock: v.BlockSize}
	d.setup(&md)
	if be.readOnly {
		log.Warn("zvol is read-only; the LU is write-protected", "zvol", v.Name)
	}
	log.Info("logical unit imported from zvol", "guid", md.GUID, "zvol", v.Name, "relation", found.Relation,
		"stored_guid", m.GUID, "stored_zvol", m.Zvol, "from", found.From, "size", v.Size)
	return d, nil
}

// Zvol returns the LU's volume name, "" for an LU that is not on a zvol
// (or one with an in-band header).
func (d *Device) Zvol() string {
	if d.zvol == nil {
		return ""
	}
	return d.zvol.name
}

// Flush makes every write completed so far durable (SYNCHRONIZE CACHE).
func (d *Device) Flush() error { return d.flush.flush() }

// resizeZvol grows the volume (volsize) online; the LU follows.
func (d *Device) resizeZvol(ctx context.Context, newSize uint64) error {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if d.state.Load()&closingBit != 0 {
		return errClosed
	}
	cur := d.nblocks.Load() << d.bsShift
	switch {
	case newSize == cur:
		return nil
	case newSize < cur:
		return fmt.Errorf("lu: zvol %s: shrinking a zvol LU (%d to %d bytes) would destroy data; refused", d.zvol.name, cur, newSize)
	case d.zvol.volBlock != 0 && newSize%d.zvol.volBlock != 0:
		return fmt.Errorf("lu: zvol %s: size %d is not a multiple of the volblocksize %d", d.zvol.name, newSize, d.zvol.volBlock)
	}
	if err := d.zvol.z.SetVolsize(ctx, d.zvol.name, newSize); err != nil {
		return err
	}
	deadline := time.Now().Add(zvolResizeSettle)
	for {
		n, err := d.data.size()
		if err != nil {
			return err
		}
		if n >= newSize {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lu: zvol %s: volsize is %d but %s still holds %d bytes", d.zvol.name, newSize, d.data.path, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.md.Size = newSize
	d.nblocks.Store(newSize >> d.bsShift)
	d.log.Info("zvol LU resized", "guid", d.guid, "zvol", d.zvol.name, "size", newSize)
	return nil
}

// zvolPhysExponent is the LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT of a
// zvol LU: the volblocksize, at most 4 KiB (ESXi knows 512e, not 16 KiB
// physical blocks).
func (d *Device) zvolPhysExponent() byte {
	p := min(max(d.zvol.volBlock, uint64(d.bs)), physBlockSize)
	var e byte
	for bs := uint64(d.bs); bs < p; bs <<= 1 {
		e++
	}
	return e
}

// zvolGranularity is the OPTIMAL TRANSFER LENGTH GRANULARITY of a zvol LU:
// one volblocksize, in logical blocks.
func (d *Device) zvolGranularity() uint16 {
	g := max(d.zvol.volBlock, uint64(d.bs)) >> d.bsShift
	return uint16(min(g, 0xffff))
}

// zvolStore keeps the metadata of a zvol LU in the zvol's user
// properties: org.costar:lu (identity, rewritten when it changes) and
// org.costar:pr (reservations, written while APTPL is or was in force).
// zfs set returns once the change is on stable storage.
type zvolStore struct {
	z      zvol.ZFS
	vol    zvol.Volume
	base   *zvol.Meta // as last read or written (keeps keys of newer versions)
	lastLU string     // org.costar:lu as last read or written
	lastPR string
	prSet  bool // org.costar:pr exists
}

func newZvolStore(z zvol.ZFS, v zvol.Volume, base *zvol.Meta) *zvolStore {
	if base == nil {
		base = &zvol.Meta{}
	} else {
		base = base.Clone()
	}
	return &zvolStore{z: z, vol: v, base: base}
}

func (s *zvolStore) encode(m *metadata) (*zvol.Meta, string, error) {
	zm := s.base.Clone()
	zm.GUID, zm.Zvol, zm.ZvolGUID, zm.BlockSize = m.GUID, s.vol.Name, s.vol.GUID, m.BlockSize
	zm.VendorID, zm.ProductID, zm.Serial, zm.Alias, zm.MgmtURL = m.VendorID, m.ProductID, m.Serial, m.Alias, m.MgmtURL
	zm.WCD, zm.WP = m.Flags&flagWCD != 0, m.Flags&flagWP != 0
	v, err := zm.Encode()
	return zm, v, err
}

// store makes m the stored metadata (metaStore.store delegates here).
func (s *zvolStore) store(m *metadata) error {
	ctx, cancel := context.WithTimeout(context.Background(), zvolCmdTimeout)
	defer cancel()
	return s.storeCtx(ctx, m)
}

func (s *zvolStore) storeCtx(ctx context.Context, m *metadata) error {
	zm, v, err := s.encode(m)
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
				return fmt.Errorf("%w: %w", errPRTooLarge, err)
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

// initialize stores a new LU's metadata, clearing
// reservation state an earlier LU may have left on the zvol.
func (s *zvolStore) initialize(ctx context.Context, m *metadata) error {
	if pv, ok, err := s.z.UserProp(ctx, s.vol.Name, zvol.PropPR); err != nil {
		return err
	} else if ok {
		s.prSet, s.lastPR = true, pv
	}
	s.lastLU = ""
	return s.storeCtx(ctx, m)
}

// ResizeContext is Resize bounded by ctx (the zfs command of a zvol LU).
func (d *Device) ResizeContext(ctx context.Context, newSize uint64) error {
	if d.zvol == nil {
		return d.Resize(newSize)
	}
	if newSize == 0 || newSize%uint64(d.bs) != 0 || newSize > maxLUSize {
		return fmt.Errorf("lu: size %d: must be a positive multiple of the block size %d", newSize, d.bs)
	}
	return d.resizeZvol(ctx, newSize)
}
