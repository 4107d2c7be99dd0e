package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/internal/progress"
	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/lu/backing/zvolstore"
	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/stmf"
)

// ZFS volumes in the LU provider (mgmt.ZvolProvider).

const (
	// zfsCommandTimeout bounds one zfs command (a suspended pool must not
	// hang management calls forever).
	zfsCommandTimeout = 2 * time.Minute
	// zvolPollInterval is how often LUs whose zvol is missing are retried.
	zvolPollInterval = 5 * time.Second
	// zvolBusyWait is how long a destroy waits out "dataset is busy".
	zvolBusyWait = 15 * time.Second
)

// zfsErr marks failures of the zfs command for the management plane.
func zfsErr(err error) error {
	var ce *zvol.CmdError
	if err == nil || errors.Is(err, mgmt.ErrZFS) {
		return err
	}
	if errors.Is(err, zvol.ErrNoZFS) || (errors.As(err, &ce) && !errors.Is(err, zvol.ErrNotFound)) {
		return fmt.Errorf("%w: %w", mgmt.ErrZFS, err)
	}
	return err
}

// zerr classifies a failure: the zfs command's own (mgmt.ErrZFS), else as
// classify does.
func (p *luProvider) zerr(err error, metaFile string) error {
	if z := zfsErr(err); errors.Is(z, mgmt.ErrZFS) {
		return z
	}
	return classify(err, metaFile)
}

// ZvolName implements mgmt.ZvolProvider.
func (p *luProvider) ZvolName(path string) (string, bool) {
	zp, err := zvol.ParsePathIn(p.zfs.DevDir(), path)
	if err != nil {
		return "", false
	}
	return zp.Name, true
}

// isZvolPath reports whether path is spelled as a zvol device path.
func (p *luProvider) isZvolPath(path string) bool {
	_, ok := p.ZvolName(path)
	return ok
}

// ZvolPath implements mgmt.ZvolProvider.
func (p *luProvider) ZvolPath(name string) (string, error) {
	if err := zvol.ValidVolumeName(name); err != nil {
		return "", err
	}
	return p.zfs.Device(name), nil
}

// CreateZvolLU implements mgmt.ZvolProvider.
func (p *luProvider) CreateZvolLU(ctx context.Context, name string, size uint64, volBlock uint32, s mgmt.LUSpec) (mgmt.LU, error) {
	if err := zvol.ValidVolumeName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", mgmt.ErrDataFile, err)
	}
	progress.Phase(ctx, fmt.Sprintf("zfs create -s -V %d %s", size, name))
	if err := p.zfs.CreateVolume(ctx, name, size, uint64(volBlock), nil); err != nil {
		return nil, p.zerr(err, "")
	}
	progress.Phase(ctx, "writing the LU's metadata to zvol "+name)
	d, err := createZvolLU(ctx, p.zfs, name, p.config(s), p.generator(s.OUI, s.HostID), p.log)
	if err != nil {
		p.destroy(ctx, name, "a failed create-lu")
		return nil, p.zerr(err, "")
	}
	u, err := p.disk(ctx, d, nil)
	if err != nil {
		p.destroy(ctx, name, "a failed create-lu")
	}
	return u, err
}

// destroy destroys a volume made for a request that failed.
func (p *luProvider) destroy(ctx context.Context, name, why string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), zfsCommandTimeout)
	defer cancel()
	if err := zvol.DestroyRetry(dctx, p.zfs, name, zvolBusyWait); err != nil {
		p.log.Error("cannot destroy the zvol made for "+why+"; destroy it by hand", "zvol", name, "err", err)
		return
	}
	p.log.Info("destroyed the zvol made for "+why, "zvol", name)
}

// config is the lu.Config of a create request.
func (p *luProvider) config(s mgmt.LUSpec) lu.Config {
	return lu.Config{
		Size:               s.Size,
		BlockSize:          s.BlockSize,
		GUID:               s.GUID,
		VendorID:           s.VID,
		ProductID:          s.PID,
		Serial:             s.Serial,
		Alias:              s.Alias,
		MgmtURL:            s.MgmtURL,
		WriteCacheDisabled: s.WCD,
		WriteProtect:       s.WP,
		Thin:               s.Thin,
		SoftThreshold:      s.SoftThreshold,
	}
}

// createOnZvol is create-lu on an existing zvol's device path.
func (p *luProvider) createOnZvol(ctx context.Context, s mgmt.LUSpec) (mgmt.LU, error) {
	v, err := zvolstore.Resolve(ctx, p.zfs, s.DataFile)
	if err != nil {
		return nil, p.zerr(err, "")
	}
	d, err := createZvolLU(ctx, p.zfs, v.Name, p.config(s), p.generator(s.OUI, s.HostID), p.log)
	if err != nil {
		return nil, p.zerr(err, s.MetaFile)
	}
	return p.disk(ctx, d, nil)
}

// importZvol opens the LU of a zvol device path.
func (p *luProvider) importZvol(ctx context.Context, file string, opts lu.OpenOptions) (mgmt.LU, error) {
	v, err := zvolstore.Resolve(ctx, p.zfs, file)
	if err != nil {
		return nil, p.zerr(err, "")
	}
	progress.Phase(ctx, "opening the LU on zvol "+v.Name)
	d, err := importZvolLU(ctx, p.zfs, v.Name, opts, p.generator(nil, nil), p.log)
	if err != nil {
		return nil, p.zerr(err, "")
	}
	return p.disk(ctx, d, nil)
}

// ImportZvolLU implements mgmt.ZvolProvider.
func (p *luProvider) ImportZvolLU(ctx context.Context, file string, guid stmf.GUID, alias *string) (mgmt.LU, error) {
	return p.importZvol(ctx, file, lu.OpenOptions{GUID: guid, Alias: alias})
}

// ReopenLU implements mgmt.ZvolProvider.
func (p *luProvider) ReopenLU(ctx context.Context, file, metaFile string, guid stmf.GUID) (mgmt.LU, error) {
	if metaFile == "" && p.isZvolPath(file) {
		return p.importZvol(ctx, file, lu.OpenOptions{Expect: guid})
	}
	return p.Import(ctx, file, metaFile)
}

// SnapshotLU implements mgmt.ZvolProvider.
func (p *luProvider) SnapshotLU(ctx context.Context, d mgmt.LU, snap string) (string, error) {
	ld, ok := d.(*luDisk)
	if !ok || ld.Device.Info().Zvol == "" {
		return "", fmt.Errorf("%w: LU %s is not on a zvol", mgmt.ErrProviderLimit, d.GUID())
	}
	if err := zvol.ValidSnapshotName(snap); err != nil {
		return "", fmt.Errorf("%w: %w", mgmt.ErrDataFile, err)
	}
	name := ld.Device.Info().Zvol
	progress.Phase(ctx, "flushing LU "+d.GUID().String())
	if err := ld.Flush(); err != nil {
		return "", fmt.Errorf("%w: flushing %s before the snapshot: %w", mgmt.ErrDataFile, name, err)
	}
	props := map[string]string{}
	if v, ok, err := p.zfs.UserProp(ctx, name, zvol.PropLU); err != nil {
		return "", zfsErr(err)
	} else if ok {
		props[zvol.PropLU] = v // the snapshot keeps the LU's identity as it was
	}
	progress.Phase(ctx, "zfs snapshot "+name+"@"+snap)
	if err := p.zfs.Snapshot(ctx, name, snap, props); err != nil {
		return "", zfsErr(err)
	}
	return name + "@" + snap, nil
}

// CloneLU implements mgmt.ZvolProvider.
func (p *luProvider) CloneLU(ctx context.Context, snapshot, dest string, s mgmt.LUSpec) (mgmt.LU, error) {
	vol, snap, err := zvol.SplitSnapshot(snapshot)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", mgmt.ErrDataFile, err)
	}
	if _, _, err := p.zfs.UserProp(ctx, snapshot, zvol.PropLU); err != nil {
		if errors.Is(err, zvol.ErrNotFound) {
			return nil, fmt.Errorf("%w: snapshot %s does not exist", mgmt.ErrDataFile, snapshot)
		}
		return nil, zfsErr(err)
	}
	if dest == "" {
		if dest, err = p.freeName(ctx, vol+"-"+snap); err != nil {
			return nil, err
		}
	} else if err := zvol.ValidVolumeName(dest); err != nil {
		return nil, fmt.Errorf("%w: %w", mgmt.ErrDataFile, err)
	}
	progress.Phase(ctx, "zfs clone "+snapshot+" "+dest)
	if err := p.zfs.Clone(ctx, snapshot, dest, nil); err != nil {
		return nil, zfsErr(err)
	}
	opts := lu.OpenOptions{GUID: s.GUID}
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		return &v
	}
	opts.Alias, opts.MgmtURL, opts.VendorID, opts.ProductID, opts.Serial = str(s.Alias), str(s.MgmtURL), str(s.VID), str(s.PID), str(s.Serial)
	if s.WCD {
		opts.WriteCacheDisabled = &s.WCD
	}
	if s.WP {
		opts.WriteProtect = &s.WP
	}
	progress.Phase(ctx, "opening the LU on zvol "+dest)
	d, err := importZvolLU(ctx, p.zfs, dest, opts, p.generator(s.OUI, s.HostID), p.log)
	if errors.Is(err, lu.ErrNoMetadata) || errors.Is(err, zvol.ErrNoMetadata) {
		// A snapshot of a zvol that was no LU: a new LU on the clone.
		d, err = createZvolLU(ctx, p.zfs, dest, p.config(s), p.generator(s.OUI, s.HostID), p.log)
	}
	if err != nil {
		p.destroy(ctx, dest, "a failed clone-lu")
		return nil, p.zerr(err, "")
	}
	u, err := p.disk(ctx, d, nil)
	if err != nil {
		p.destroy(ctx, dest, "a failed clone-lu")
	}
	return u, err
}

// freeName returns base, or base-2, base-3, ... : the first name no
// dataset has.
func (p *luProvider) freeName(ctx context.Context, base string) (string, error) {
	for i := 1; i <= 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if err := zvol.ValidVolumeName(name); err != nil {
			return "", fmt.Errorf("%w: %w (give the clone a name with -p zvol=)", mgmt.ErrDataFile, err)
		}
		_, err := p.zfs.Volume(ctx, name)
		if errors.Is(err, zvol.ErrNotFound) {
			return name, nil
		}
		if err != nil && !errors.Is(err, zvol.ErrNotFound) {
			var ce *zvol.CmdError
			if errors.As(err, &ce) || errors.Is(err, zvol.ErrNoZFS) {
				return "", zfsErr(err)
			}
		}
	}
	return "", fmt.Errorf("%w: no free name like %s; give one with -p zvol=", mgmt.ErrDataFile, base)
}

// DestroyZvol implements mgmt.ZvolProvider. A volume whose LU was just
// closed may be busy for a moment (udev probing it): that is waited out.
func (p *luProvider) DestroyZvol(ctx context.Context, name string) error {
	progress.Phase(ctx, "zfs destroy "+name)
	return zfsErr(zvol.DestroyRetry(ctx, p.zfs, name, zvolBusyWait))
}
