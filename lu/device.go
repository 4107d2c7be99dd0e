// Package lu is costar's LU provider (COMSTAR's sbd): SCSI block devices
// (SBC-3/SPC-4) on a backing store (package lu/backing: files, block
// devices, zvols), named by COMSTAR-style GUIDs, with their identity and
// properties stored with the data so that an LU can be imported again
// after a move or restart.
//
// A Device implements stmf.LogicalUnit. Execute decodes the CDB, runs the
// command in the calling goroutine (stmf already gives each task its own)
// and completes the task exactly once.
package lu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/stmf"
)

// Defaults and limits.
const (
	DefaultVendorID  = "COSTAR"
	DefaultProductID = "COMSTAR"
	DefaultBlockSize = 512

	MaxVendorIDLen  = 8
	MaxProductIDLen = 16
	MaxSerialLen    = 252
	MaxAliasLen     = 1024
	MaxMgmtURLLen   = 1024

	// maxTransferBytes bounds one READ/WRITE/VERIFY (reported in the
	// Block Limits VPD page as MAXIMUM TRANSFER LENGTH).
	maxTransferBytes = 8 << 20
	// maxLUSize keeps byte offsets well inside int64.
	maxLUSize = backing.MaxSize
	// physBlockSize is the physical block size reported to initiators
	// (LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT) for smaller logical
	// blocks: file systems and page caches work in 4 KiB.
	physBlockSize = 4096
)

// Config describes a new LU (the store is made by the caller).
type Config struct {
	Size      uint64 // LU size in bytes; 0 = what the store holds
	BlockSize uint32 // 0 = 512; power of two 512..65536
	GUID      stmf.GUID
	VendorID  string // default "COSTAR", at most 8 characters
	ProductID string // default "COMSTAR", at most 16 characters
	Serial    string // at most 252 characters; "" = derived from the GUID
	Alias     string
	MgmtURL   string

	WriteCacheDisabled bool
	WriteProtect       bool

	// Thin makes a thin provisioned LU (see thin.go): UNMAP, WRITE SAME
	// with UNMAP, LBPME/LBPRZ. Fixed at creation; stored with the LU. A
	// store whose Caps say AlwaysThin (zvols) makes every LU thin.
	Thin bool
	// SoftThreshold, for a thin LU on a store that reports its space
	// (backing.SpaceReporter): raise THIN PROVISIONING SOFT THRESHOLD
	// REACHED once the backing file system is this percent full (0 = off,
	// at most 100).
	SoftThreshold uint8
}

// Info is what list-lu shows about an LU.
type Info struct {
	GUID               stmf.GUID
	DataFile           string
	MetaFile           string // "" when the metadata is a header in DataFile
	Size               uint64 // bytes
	BlockSize          uint32
	VendorID           string
	ProductID          string
	Serial             string // "" = not set (the unit serial number is then derived from the GUID)
	Alias              string
	MgmtURL            string
	WriteCacheDisabled bool // current setting (MODE SELECT may change it)
	WriteProtect       bool
	Thin               bool
	SoftThreshold      uint8  // percent; 0 = off
	Zvol               string // the ZFS volume (pool/name) of an LU on a zvol, else ""
	// WriteFailure is the latched write-back failure (writefail.go), nil if none.
	WriteFailure *WriteFailure
}

// Props are the properties modify-lu may change; nil fields stay as they are.
type Props struct {
	Alias              *string
	MgmtURL            *string
	WriteCacheDisabled *bool
	WriteProtect       *bool
	SoftThreshold      *uint8 // thin LUs: percent, 0 = off
}

// identity is the immutable-per-version part of an LU's SCSI identity,
// swapped atomically when properties change.
type identity struct {
	vid, pid, serial string
	alias, mgmtURL   string
	stdInquiry       []byte // standard INQUIRY data, full length
	unitSerial       []byte // VPD page 0x80, full length
}

// Device is a SCSI block device LU on a backing store. It works only
// through the backing.Store interface and never asks which store it has.
type Device struct {
	log     *slog.Logger
	guid    stmf.GUID
	store   backing.Store
	caps    backing.Caps         // the store's, fixed at setup
	atomicW backing.AtomicWriter // nil: no WRITE ATOMIC
	hinter  backing.Prefetcher   // nil: PRE-FETCH is a no-op
	loc     backing.Location     // where the store keeps the LU (Info)
	bs      uint32
	bsShift uint
	maxXfer uint32 // blocks

	nblocks  atomic.Uint64
	wcd      atomic.Bool // write cache disabled (current mode page value)
	savedWCD atomic.Bool // write cache disabled as stored (default mode page value)
	wp       atomic.Bool // configured write protect
	swp      atomic.Bool // software write protect (control mode page)
	ident    atomic.Pointer[identity]

	metaMu sync.Mutex // serialises metadata updates (not on the I/O path)
	md     backing.Meta

	flush flusher
	// durableWrites counts durable writes in flight: one alone uses
	// RWF_DSYNC, more share flushes (durable.go).
	durableWrites atomic.Int32
	writeFail     atomic.Pointer[WriteFailure] // latched write-back failure (writefail.go)
	bufs          bufPool
	cmds          *commandSet // the command table
	atomicWrites  bool        // WRITE ATOMIC (16) offered: the store has crash-atomic writes
	thin          thinState   // thin provisioning (thin.go)

	resv reservations // SCSI-2 and persistent reservations (reserve.go, pr*.go)

	host atomic.Pointer[stmf.LUHost] // unit attentions and task aborts (host.go)

	// in-flight accounting for Close: the low bits count commands in
	// Execute, closingBit is set by Close.
	state     atomic.Int64
	drained   chan struct{}
	drainOnce sync.Once
	closeOnce sync.Once
	closeErr  error

	panics atomic.Uint64 // handler panics recovered (a bug; tests assert zero)

	vaai vaaiState // write ordering, COMPARE AND WRITE, EXTENDED COPY (rangelock.go, xcopy.go)

	fence fenceState // cluster mode's fencing token on the data path (fence.go)
}

const closingBit = int64(1) << 62

var errClosed = errors.New("lu: logical unit is closed")

// ErrNoMetadata is returned (wrapped) when a store holds no valid costar
// LU metadata.
var ErrNoMetadata = backing.ErrNoMeta

func validBlockSize(bs uint32) bool { return backing.ValidBlockSize(bs) }

func validASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func checkIdentity(vid, pid, serial, alias, url string) error {
	switch {
	case len(vid) > MaxVendorIDLen || !validASCII(vid):
		return fmt.Errorf("lu: vendor id %q: at most %d printable ASCII characters", vid, MaxVendorIDLen)
	case len(pid) > MaxProductIDLen || !validASCII(pid):
		return fmt.Errorf("lu: product id %q: at most %d printable ASCII characters", pid, MaxProductIDLen)
	case len(serial) > MaxSerialLen || !validASCII(serial):
		return fmt.Errorf("lu: serial number: at most %d printable ASCII characters", MaxSerialLen)
	case len(alias) > MaxAliasLen:
		return fmt.Errorf("lu: alias longer than %d bytes", MaxAliasLen)
	case len(url) > MaxMgmtURLLen:
		return fmt.Errorf("lu: management URL longer than %d bytes", MaxMgmtURLLen)
	}
	return nil
}

// Normalize applies the defaults to c and checks it; New calls it, and a
// caller may call it before making a store so that a bad request leaves
// nothing behind.
func (c *Config) Normalize() error {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if !validBlockSize(c.BlockSize) {
		return fmt.Errorf("lu: block size %d: must be a power of two from 512 to 65536", c.BlockSize)
	}
	if c.VendorID == "" {
		c.VendorID = DefaultVendorID
	}
	if c.ProductID == "" {
		c.ProductID = DefaultProductID
	}
	if err := checkIdentity(c.VendorID, c.ProductID, c.Serial, c.Alias, c.MgmtURL); err != nil {
		return err
	}
	if err := checkSoftThreshold(c.SoftThreshold); err != nil {
		return err
	}
	if c.SoftThreshold != 0 && !c.Thin {
		return errors.New("lu: a soft threshold needs a thin LU")
	}
	if c.Size%uint64(c.BlockSize) != 0 {
		return fmt.Errorf("lu: size %d is not a multiple of the block size %d", c.Size, c.BlockSize)
	}
	if c.Size > maxLUSize {
		return fmt.Errorf("lu: size %d is too large", c.Size)
	}
	return nil
}

// New makes a new LU on store st and writes its metadata through it. gen
// names the LU when cfg.GUID is zero (nil gen: a generator with default
// settings). The Device owns st once New succeeds; on error the caller
// still owns it.
func New(ctx context.Context, st backing.Store, cfg Config, gen *GUIDGenerator, log *slog.Logger) (*Device, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Normalize(); err != nil {
		return nil, err
	}
	caps := st.Caps()
	size := cfg.Size
	if size == 0 {
		size = st.Size() &^ uint64(cfg.BlockSize-1)
		if size == 0 {
			return nil, fmt.Errorf("lu: the backing store is too small (%d bytes) to hold one %d-byte block", st.Size(), cfg.BlockSize)
		}
	} else if st.Size() < size {
		return nil, fmt.Errorf("lu: the backing store holds %d bytes, the LU needs %d", st.Size(), size)
	}
	if size > maxLUSize {
		return nil, fmt.Errorf("lu: size %d is too large", size)
	}
	guid := cfg.GUID
	if guid.IsZero() {
		if gen == nil {
			gen = &GUIDGenerator{}
		}
		guid = gen.Next(time.Now())
	}
	d := &Device{log: log, store: st}
	d.describe()
	md := backing.Meta{
		GUID:      guid,
		Size:      size,
		BlockSize: cfg.BlockSize,
		VendorID:  cfg.VendorID,
		ProductID: cfg.ProductID,
		Serial:    cfg.Serial,
		Alias:     cfg.Alias,
		MgmtURL:   cfg.MgmtURL,
		DataFile:  d.loc.DataFile,
		Thin:      cfg.Thin || caps.AlwaysThin,
	}
	if cfg.WriteCacheDisabled {
		md.Flags |= backing.FlagWCD
	}
	if cfg.WriteProtect {
		md.Flags |= backing.FlagWP
	}
	md.SoftThreshold = cfg.SoftThreshold
	if err := st.SaveMeta(&md); err != nil {
		return nil, err
	}
	d.setup(&md)
	log.Info("logical unit created", "guid", guid, "data_file", d.loc.DataFile, "meta_file", d.loc.MetaFile,
		"zvol", d.loc.Zvol, "size", size, "block_size", cfg.BlockSize)
	return d, nil
}

// OpenOptions tune Open.
type OpenOptions struct {
	Log *slog.Logger
	Gen *GUIDGenerator // names a copy (nil: a generator with default settings)
	// Expect, when not zero, is the GUID the store must hold.
	Expect stmf.GUID
	// Copy: the store holds a copy of another LU's data and metadata (a
	// zvol clone or received copy): it gets a new GUID and drops the
	// source's serial number and reservations.
	Copy bool
	// GUID, when not zero, names the LU whatever the metadata says.
	GUID stmf.GUID
	// Overrides of the stored properties (nil: as stored).
	Alias, MgmtURL, VendorID, ProductID, Serial *string
	WriteCacheDisabled, WriteProtect            *bool
	// Save writes the metadata back even when Open changed nothing (a
	// store that records where it lives now).
	Save bool
}

// Open opens the existing LU on store st from its stored metadata. The
// Device owns st once Open succeeds; on error the caller still owns it.
func Open(ctx context.Context, st backing.Store, o OpenOptions) (*Device, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stored, err := st.LoadMeta()
	if err != nil {
		return nil, err
	}
	if err := stored.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoMetadata, err)
	}
	d := &Device{log: log, store: st}
	d.describe()
	if !o.Expect.IsZero() && (o.Copy || stmf.GUID(stored.GUID) != o.Expect) {
		what := ""
		if o.Copy {
			what = " (a copy of it)"
		}
		return nil, fmt.Errorf("lu: %s holds LU %s%s, not %s", d.where(), stmf.GUID(stored.GUID), what, o.Expect)
	}
	md := stored.Clone()
	if st.Size() < md.Size {
		return nil, fmt.Errorf("lu: the backing store holds %d bytes but the LU needs %d", st.Size(), md.Size)
	}
	if o.Copy {
		gen := o.Gen
		if gen == nil {
			gen = &GUIDGenerator{}
		}
		md.GUID = gen.Next(time.Now())
		md.Serial, md.PR = "", nil
	}
	if !o.GUID.IsZero() {
		md.GUID = o.GUID
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&md.Alias, o.Alias)
	set(&md.MgmtURL, o.MgmtURL)
	set(&md.VendorID, o.VendorID)
	set(&md.ProductID, o.ProductID)
	set(&md.Serial, o.Serial)
	for _, f := range []struct {
		v    *bool
		flag uint32
	}{{o.WriteCacheDisabled, backing.FlagWCD}, {o.WriteProtect, backing.FlagWP}} {
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
	if o.Save || !sameMeta(md, stored) {
		if err := st.SaveMeta(md); err != nil {
			return nil, err
		}
	}
	d.setup(md)
	log.Info("logical unit imported", "guid", stmf.GUID(md.GUID), "data_file", d.loc.DataFile, "meta_file", d.loc.MetaFile,
		"zvol", d.loc.Zvol, "stored_guid", stmf.GUID(stored.GUID), "size", md.Size, "block_size", md.BlockSize)
	return d, nil
}

// sameMeta reports whether a and b store the same thing (nil and empty
// slices alike): Open writes only what it changed, so a read-only store
// still opens.
func sameMeta(a, b *backing.Meta) bool {
	x, y := *a, *b
	if !bytes.Equal(x.PR, y.PR) || !slices.EqualFunc(x.Unknown, y.Unknown, func(f, g backing.Field) bool {
		return f.Tag == g.Tag && bytes.Equal(f.Val, g.Val)
	}) {
		return false
	}
	x.PR, y.PR, x.Unknown, y.Unknown = nil, nil, nil, nil
	return reflect.DeepEqual(x, y)
}

// describe records where the store keeps the LU (for Info and logs).
func (d *Device) describe() {
	if ds, ok := d.store.(backing.Describer); ok {
		d.loc = ds.Describe()
	}
}

// setup fills the runtime state from metadata.
func (d *Device) setup(md *backing.Meta) {
	d.md = *md
	d.guid = md.GUID
	d.caps = d.store.Caps()
	d.bs = md.BlockSize
	for 1<<d.bsShift < d.bs {
		d.bsShift++
	}
	d.maxXfer = maxTransferBytes >> d.bsShift
	d.nblocks.Store(md.Size >> d.bsShift)
	d.wcd.Store(md.Flags&backing.FlagWCD != 0)
	d.savedWCD.Store(md.Flags&backing.FlagWCD != 0)
	d.wp.Store(md.Flags&backing.FlagWP != 0)
	d.ident.Store(d.newIdentity(md))
	d.flush.do = d.syncStore // writefail.go: a failed sync is remembered
	d.hinter, _ = d.store.(backing.Prefetcher)
	d.fence.setup(d.store)
	d.setupThin(md)
	if aw, ok := d.store.(backing.AtomicWriter); ok && d.caps.AtomicMax > 0 {
		d.atomicW = aw
	}
	d.atomicWrites = d.atomicW != nil
	d.cmds = newCommandSet(d, commandTable) // after thin and atomic writes are known
	d.setupReservations(md)
	d.drained = make(chan struct{})
}

// GUID is the LU's name.
func (d *Device) GUID() stmf.GUID { return d.guid }

// BlockSize is the logical block size in bytes.
func (d *Device) BlockSize() uint32 { return d.bs }

// Info reports the LU's properties.
func (d *Device) Info() Info {
	id := d.ident.Load()
	return Info{
		GUID:               d.guid,
		DataFile:           d.loc.DataFile,
		MetaFile:           d.loc.MetaFile,
		Size:               d.nblocks.Load() << d.bsShift,
		BlockSize:          d.bs,
		VendorID:           id.vid,
		ProductID:          id.pid,
		Serial:             id.serial,
		Alias:              id.alias,
		MgmtURL:            id.mgmtURL,
		WriteCacheDisabled: d.wcd.Load(),
		WriteProtect:       d.wp.Load() || d.caps.ReadOnly,
		Thin:               d.thin.enabled,
		SoftThreshold:      uint8(d.thin.softPct.Load()),
		Zvol:               d.loc.Zvol,
		WriteFailure:       d.writeFail.Load(),
	}
}

// SetProps changes properties and stores them with the LU.
func (d *Device) SetProps(p Props) error {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if d.state.Load()&closingBit != 0 {
		return errClosed
	}
	md := *d.md.Clone()
	if p.Alias != nil {
		md.Alias = *p.Alias
	}
	if p.MgmtURL != nil {
		md.MgmtURL = *p.MgmtURL
	}
	if p.WriteCacheDisabled != nil {
		md.Flags &^= backing.FlagWCD
		if *p.WriteCacheDisabled {
			md.Flags |= backing.FlagWCD
		}
	}
	if p.WriteProtect != nil {
		if !*p.WriteProtect && d.caps.ReadOnly {
			return fmt.Errorf("lu: %s is read-only; write protect cannot be cleared", d.where())
		}
		md.Flags &^= backing.FlagWP
		if *p.WriteProtect {
			md.Flags |= backing.FlagWP
		}
	}
	if p.SoftThreshold != nil {
		if err := checkSoftThreshold(*p.SoftThreshold); err != nil {
			return err
		}
		if *p.SoftThreshold != 0 && !md.Thin {
			return errors.New("lu: a soft threshold needs a thin LU")
		}
		md.SoftThreshold = *p.SoftThreshold
	}
	if err := checkIdentity(md.VendorID, md.ProductID, md.Serial, md.Alias, md.MgmtURL); err != nil {
		return err
	}
	if err := d.checkFence(); err != nil {
		return err
	}
	if err := d.store.SaveMeta(&md); err != nil {
		return err
	}
	d.md = md
	d.ident.Store(d.newIdentity(&md))
	if p.SoftThreshold != nil {
		d.setSoftThreshold(*p.SoftThreshold)
	}
	if p.WriteCacheDisabled != nil {
		d.savedWCD.Store(*p.WriteCacheDisabled)
		d.wcd.Store(*p.WriteCacheDisabled)
		if *p.WriteCacheDisabled {
			// Writes acknowledged while the cache was on become durable now.
			if err := d.flush.flush(); err != nil {
				return fmt.Errorf("lu: flushing %s: %w", d.where(), err)
			}
		}
	}
	if p.WriteProtect != nil {
		d.wp.Store(*p.WriteProtect)
	}
	return nil
}

// resizeTimeout bounds a Resize without a deadline of its own (a zvol's
// volsize change is a ZFS transaction group sync).
const resizeTimeout = 2 * time.Minute

// Resize changes the LU size (bytes, a multiple of the block size). The
// store grows as needed (a file is never truncated; a block device must
// be large enough; a zvol grows online and never shrinks). The caller
// raises CAPACITY DATA HAS CHANGED.
func (d *Device) Resize(newSize uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), resizeTimeout)
	defer cancel()
	return d.ResizeContext(ctx, newSize)
}

// ResizeContext is Resize bounded by ctx.
func (d *Device) ResizeContext(ctx context.Context, newSize uint64) error {
	if newSize == 0 || newSize%uint64(d.bs) != 0 || newSize > maxLUSize {
		return fmt.Errorf("lu: size %d: must be a positive multiple of the block size %d", newSize, d.bs)
	}
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if d.state.Load()&closingBit != 0 {
		return errClosed
	}
	if err := d.checkFence(); err != nil {
		return err
	}
	if err := d.store.Resize(ctx, newSize); err != nil {
		return err
	}
	md := *d.md.Clone()
	md.Size = newSize
	if err := d.store.SaveMeta(&md); err != nil {
		return err
	}
	d.md = md
	d.nblocks.Store(newSize >> d.bsShift)
	return nil
}

// Flush makes every write completed so far durable (SYNCHRONIZE CACHE).
func (d *Device) Flush() error { return d.flush.flush() }

// where names the LU's store in messages.
func (d *Device) where() string {
	if d.loc.Zvol != "" {
		return d.loc.Zvol
	}
	if d.loc.DataFile != "" {
		return d.loc.DataFile
	}
	return "the backing store"
}

// Close waits for commands in progress and closes the backing store.
// Commands arriving afterwards fail with NOT READY.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		if d.state.Or(closingBit) == 0 {
			d.drainOnce.Do(func() { close(d.drained) })
		}
		d.StopReplicating() // after closingBit: ReplicateReservations checks it
		<-d.drained
		d.metaMu.Lock()
		defer d.metaMu.Unlock()
		d.closeErr = d.store.Close()
	})
	return d.closeErr
}

// enter registers a command in progress; false once Close has begun.
func (d *Device) enter() bool {
	if d.state.Add(1)&closingBit != 0 {
		d.leave()
		return false
	}
	return true
}

func (d *Device) leave() {
	if d.state.Add(-1) == closingBit {
		d.drainOnce.Do(func() { close(d.drained) })
	}
}

// writeProtected reports whether writes must fail with WRITE PROTECTED.
func (d *Device) writeProtected() bool {
	return d.wp.Load() || d.swp.Load() || d.caps.ReadOnly
}
