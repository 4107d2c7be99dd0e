package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/stmf"
)

// luProvider adapts package lu to mgmt.LUProvider.
type luProvider struct {
	log    *slog.Logger
	hostID [6]byte

	mu   sync.Mutex
	gens map[genKey]*lu.GUIDGenerator // one per (oui, host id), so GUIDs never repeat

	zfs zvol.ZFS // zvol LUs (zvol_provider.go)

	journal lu.ReservationJournal // nil: reservations stay on this node (reservations.go)

	// deferJournal (cluster mode): file LUs replay their WRITE ATOMIC
	// journal on takeover, not when opened (stores.go).
	deferJournal bool
}

type genKey struct {
	oui  uint32
	host [6]byte
}

func newLUProvider(hostID [6]byte, log *slog.Logger) *luProvider {
	return &luProvider{log: log, hostID: hostID, gens: map[genKey]*lu.GUIDGenerator{}, zfs: zvol.NewGoZFS(zfsCommandTimeout)}
}

func (p *luProvider) generator(oui *uint32, hostID *[4]byte) *lu.GUIDGenerator {
	k := genKey{oui: lu.DefaultOUI, host: p.hostID}
	if oui != nil {
		k.oui = *oui
	}
	if hostID != nil {
		k.host = [6]byte{hostID[0], hostID[1], hostID[2], hostID[3]}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.gens[k]
	if g == nil {
		g = &lu.GUIDGenerator{OUI: k.oui, HostID: k.host}
		p.gens[k] = g
	}
	return g
}

func (p *luProvider) Create(ctx context.Context, s mgmt.LUSpec) (mgmt.LU, error) {
	if s.MetaFile == "" && p.isZvolPath(s.DataFile) {
		if s.Preallocation != "" {
			return nil, fmt.Errorf("%w: preallocation applies to files; a zvol's space belongs to its pool (zfs set refreservation)", mgmt.ErrProviderLimit)
		}
		return p.createOnZvol(ctx, s) // zvol_provider.go
	}
	f := fileLU{cfg: p.config(s), dataFile: s.DataFile, metaFile: s.MetaFile, prealloc: s.Preallocation, deferJournal: p.deferJournal}
	d, discard, err := createFileLU(ctx, f, p.generator(s.OUI, s.HostID), p.log)
	if err != nil {
		return nil, classify(err, s.MetaFile)
	}
	return p.disk(ctx, d, discard)
}

// Import opens an LU from its data file, or from its meta file when file
// is one (import-lu names either).
func (p *luProvider) Import(ctx context.Context, file, metaFile string) (mgmt.LU, error) {
	if metaFile == "" && p.isZvolPath(file) {
		return p.importZvol(ctx, file, lu.OpenOptions{}) // zvol_provider.go
	}
	d, err := importFileLU(ctx, file, metaFile, stmf.GUID{}, p.deferJournal, p.log)
	if err != nil && metaFile == "" && errors.Is(err, lu.ErrNoMetadata) {
		if d2, err2 := importFileLU(ctx, "", file, stmf.GUID{}, p.deferJournal, p.log); err2 == nil {
			d, err = d2, nil
		}
	}
	if err != nil {
		return nil, classify(err, metaFile)
	}
	return p.disk(ctx, d, nil)
}

// classify maps package lu's errors onto mgmt's categories.
func classify(err error, metaFile string) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, lu.ErrNoMetadata):
		return fmt.Errorf("%w: %w", mgmt.ErrNotAnLU, err)
	case metaFile != "" && errors.As(err, &pe) && pe.Path == metaFile:
		return fmt.Errorf("%w: %w", mgmt.ErrMetaFile, err)
	}
	return fmt.Errorf("%w: %w", mgmt.ErrDataFile, err)
}

// luDisk adapts *lu.Device to mgmt.LU, mgmt.Resizer, mgmt.PropSetter and
// mgmt.Discarder.
type luDisk struct {
	*lu.Device
	discard func() // undoes the create; nil: only close
}

// Discard implements mgmt.Discarder.
func (d *luDisk) Discard() {
	if d.discard == nil {
		d.Close()
		return
	}
	d.discard()
}

func (d *luDisk) Info() mgmt.LUInfo {
	i := d.Device.Info()
	return mgmt.LUInfo{
		GUID: i.GUID, DataFile: i.DataFile, MetaFile: i.MetaFile, Size: i.Size, BlockSize: i.BlockSize,
		Alias: i.Alias, MgmtURL: i.MgmtURL, VID: i.VendorID, PID: i.ProductID, Serial: i.Serial,
		WCD: i.WriteCacheDisabled, WP: i.WriteProtect, Thin: i.Thin, SoftThreshold: i.SoftThreshold,
		ErrorState: errorState(i.WriteFailure),
	}
}

func errorState(f *lu.WriteFailure) string {
	if f == nil {
		return ""
	}
	return f.String()
}

// ClearError implements mgmt.ErrorClearer.
func (d *luDisk) ClearError() bool { return d.Device.ClearWriteFailure() != nil }

func (d *luDisk) Resize(ctx context.Context, size uint64) error {
	if err := d.Device.ResizeContext(ctx, size); err != nil {
		if errors.Is(err, zvol.ErrNoZFS) || errors.As(err, new(*zvol.CmdError)) {
			return zfsErr(err)
		}
		return fmt.Errorf("%w: %w", mgmt.ErrSizeRange, err)
	}
	return nil
}

func (d *luDisk) SetProps(_ context.Context, c mgmt.LUChange) error {
	return d.Device.SetProps(lu.Props{Alias: c.Alias, MgmtURL: c.MgmtURL, WriteCacheDisabled: c.WCD, WriteProtect: c.WP, SoftThreshold: c.SoftThreshold})
}

// UnwrapLU lets the LU provider recognise its own LU behind the adapter
// (EXTENDED COPY between two LUs resolves the other LU as *lu.Device).
func (d *luDisk) UnwrapLU() stmf.LogicalUnit { return d.Device }

var _ stmf.LUUnwrapper = (*luDisk)(nil)
