// Package daemon wires stmfd together: it restores the persisted
// configuration into the stmf framework, opens the LUs, and serves the
// iSCSI port provider. The management API drives it through its methods.
package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/portprovider/iscsi"
	"github.com/costar-project/costar/stmf"
)

// DemoTarget is the target --demo creates.
const DemoTarget = config.DefaultTargetIQN

// Daemon is a running stmfd.
type Daemon struct {
	cfg   *config.Config
	log   *slog.Logger
	store *store.Store
	fw    *stmf.Framework
	gen   *lu.GUIDGenerator

	mu    sync.Mutex
	state *store.State
	lus   map[stmf.GUID]*lu.Disk
	iscsi *iscsi.Server
}

// New prepares a daemon; Start brings it up.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	st, err := store.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Daemon{
		cfg:   cfg,
		log:   log,
		store: st,
		fw:    stmf.New(log.With("component", "stmf")),
		gen:   &lu.GUIDGenerator{OUI: 0x00144f, HostID: hostID()},
		lus:   map[stmf.GUID]*lu.Disk{},
	}, nil
}

// hostID derives COMSTAR's 6-byte host part: a 4-byte host id followed by
// two zero bytes. Linux has no hostid(1) by default, so hash the machine id.
func hostID() [6]byte {
	var id [6]byte
	src, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(src) == 0 {
		h, _ := os.Hostname()
		src = []byte(h)
	}
	sum := sha256.Sum256(src)
	copy(id[:4], sum[:4])
	return id
}

// Framework exposes the stmf instance (for the management API).
func (d *Daemon) Framework() *stmf.Framework { return d.fw }

// Start restores state (creating the demo configuration if asked) and
// opens the portals. Everything persisted is in place before the first
// initiator can connect.
func (d *Daemon) Start(ctx context.Context) error {
	st, err := d.store.Load()
	if err != nil {
		return err
	}
	d.state = st
	if d.cfg.Demo && len(st.LUs) == 0 && len(st.Targets) == 0 {
		if err := d.createDemo(ctx); err != nil {
			return fmt.Errorf("creating demo configuration: %w", err)
		}
	}
	d.fw.SetRelativePortIDs(st.RelPortIDs)
	for _, rec := range st.LUs {
		disk, err := lu.Import(ctx, rec.DataFile, rec.MetaFile, d.log.With("lu", rec.GUID))
		if err != nil {
			// Keep going: one missing backing store must not take the
			// other LUs down. The LU stays in the config.
			d.log.Error("cannot open LU; it stays configured but offline", "guid", rec.GUID, "data_file", rec.DataFile, "err", err)
			continue
		}
		if disk.GUID().String() != rec.GUID {
			d.log.Error("backing store holds a different LU; not registering it", "want", rec.GUID, "found", disk.GUID(), "data_file", rec.DataFile)
			disk.Close()
			continue
		}
		d.lus[disk.GUID()] = disk
		if !rec.Offline {
			if err := d.fw.RegisterLU(disk); err != nil {
				return err
			}
		}
	}
	for _, v := range st.Views {
		g, err := stmf.ParseGUID(v.GUID)
		if err != nil {
			return fmt.Errorf("stored view: %w", err)
		}
		if _, err := d.fw.AddView(g, stmf.ViewEntry{HostGroup: v.HostGroup, TargetGroup: v.TargetGroup, LUN: scsiLUN(v.LUN)}, false); err != nil {
			return fmt.Errorf("restoring view %d of %s: %w", v.Entry, v.GUID, err)
		}
	}

	var targets []iscsi.TargetConfig
	for _, t := range st.Targets {
		if !t.Offline {
			targets = append(targets, iscsi.TargetConfig{Name: t.Name, Alias: t.Alias, TPGT: 1})
		}
	}
	srv, err := iscsi.NewServer(d.fw, iscsi.Config{
		Portals: d.cfg.Portals,
		Targets: targets,
		Logger:  d.log.With("component", "iscsi"),
	})
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	d.iscsi = srv
	// Relative port ids are assigned as ports register; keep them stable.
	return d.persistRelIDs()
}

func (d *Daemon) persistRelIDs() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := d.fw.RelativePortIDs()
	if mapsEqual(ids, d.state.RelPortIDs) {
		return nil
	}
	d.state.RelPortIDs = ids
	return d.store.Save(d.state)
}

func mapsEqual(a, b map[string]uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (d *Daemon) createDemo(ctx context.Context) error {
	dir := filepath.Join(d.cfg.StateDir, "lu")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "demo.img")
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s already exists but is not in the configuration; import it or remove it", path)
	}
	disk, err := lu.Create(ctx, lu.Config{DataFile: path, Size: d.cfg.DemoSize, Alias: "demo"}, d.gen, d.log)
	if err != nil {
		return err
	}
	if err := disk.Close(); err != nil {
		return err
	}
	g := disk.GUID().String()
	d.state.LUs = append(d.state.LUs, store.LU{GUID: g, DataFile: path})
	d.state.Views = append(d.state.Views, store.View{GUID: g, Entry: 0, LUN: 0})
	d.state.Targets = append(d.state.Targets, store.Target{Name: DemoTarget, Alias: "costar demo"})
	if err := d.store.Save(d.state); err != nil {
		return err
	}
	d.log.Info("created demo configuration", "lu", g, "data_file", path, "size", d.cfg.DemoSize, "target", DemoTarget)
	return nil
}

// Addrs returns the portals' actual listen addresses.
func (d *Daemon) Addrs() []string {
	var out []string
	if d.iscsi != nil {
		for _, a := range d.iscsi.Addrs() {
			out = append(out, a.String())
		}
	}
	return out
}

// Shutdown stops accepting connections, lets in-flight I/O finish (bounded
// by ctx), closes sessions and LUs.
func (d *Daemon) Shutdown(ctx context.Context) error {
	var errs []error
	if d.iscsi != nil {
		if err := d.iscsi.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("iscsi shutdown: %w", err))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for g, disk := range d.lus {
		if err := disk.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing LU %s: %w", g, err))
		}
	}
	return errors.Join(errs...)
}

// ShutdownTimeout is the configured bound for a clean shutdown.
func (d *Daemon) ShutdownTimeout() time.Duration {
	return time.Duration(d.cfg.ShutdownSeconds) * time.Second
}
