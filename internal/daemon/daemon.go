// Package daemon wires stmfd together: the stmf framework, the LU provider
// (package lu), the port providers (ports.go: iSCSI today) and the
// management plane (package mgmt, served on a unix socket). It restores
// the persisted configuration before any portal opens.
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

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/cluster"
	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/internal/metrics"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/lu"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/iscsi"
	"github.com/costar-project/costar/portprovider/iscsi/isns"
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
	mgr   *mgmt.Manager

	iscsi      *iscsi.Server
	radius     radiusClients     // RADIUS CHAP (iscsi_radius.go)
	isns       *isns.Client      // iSNS registration (iscsi_isns.go)
	fc         *fc.Server        // nil without FC adapters (fc_ports.go)
	fcAdapters []fc.Adapter      // from WithFCAdapters
	fcGroups   map[string]uint16 // from WithFCPortGroup
	servers    []portServer      // every port provider, for Start and Shutdown (ports.go)
	api        *mgmt.Server
	metrics    *metrics.Server // metrics.go

	cluster *clusterNode  // nil: single node (cluster.go)
	cstore  *clusterStore // the shared configuration in etcd (cluster_config.go)

	stopZvolWatch func() // WatchZvols
	stopReclaim   func() // reclaim.go

	reloadMu sync.Mutex // one reload at a time (reload.go)
	cfgMu    sync.Mutex // guards cfg's live settings against Reload

	resvJournal lu.ReservationJournal // from WithReservationJournal (reservations.go)
	lup         *luProvider
	resvClient  *cluster.Client // cluster mode: the journal's etcd connection
	runHook     hookRunner      // tests: instead of executing the cluster hooks (cluster_hooks.go)
}

// New prepares a daemon; Start brings it up.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Daemon, error) {
	if err := mgmt.TightenDir(cfg.StateDir, log); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	st, err := store.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, store: st, fw: stmf.New(log.With("component", "stmf"))}
	var mstore mgmt.Store = st
	if cfg.Cluster.Enabled() {
		d.cstore = &clusterStore{local: st}
		mstore = d.cstore
	}
	d.prepareCluster() // cluster.go
	for _, o := range opts {
		o(d)
	}
	d.radius.log = log.With("component", "radius")
	d.isns = d.newISNSClient()
	ports, err := d.portProviders() // ports.go
	if err != nil {
		return nil, err
	}
	d.mgr = mgmt.New(mgmt.Config{
		Log:          log.With("component", "mgmt"),
		Framework:    d.fw,
		Store:        mstore,
		LUs:          d.luProvider(log), // reservations.go
		Ports:        ports,
		ISCSIPortals: d.Addrs,
		FCPorts:      d.fcPortsInfo, // fc_ports.go
		OnChange:     d.isns.Notify,
	})
	if d.metrics, err = d.newMetrics(); err != nil {
		return nil, err
	}
	return d, nil
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

// Framework exposes the stmf instance.
func (d *Daemon) Framework() *stmf.Framework { return d.fw }

// Manager exposes the management plane.
func (d *Daemon) Manager() *mgmt.Manager { return d.mgr }

// Start restores the configuration (creating the demo one if asked), which
// hands every online target to its port provider, starts the providers
// (opening the portals), then serves the management API. Everything
// persisted is live before the first initiator can connect.
func (d *Daemon) Start(ctx context.Context) error {
	st, err := d.store.Load()
	if err != nil {
		return err
	}
	if err := d.connectReservations(ctx); err != nil { // reservations.go
		return err
	}
	if err := d.mgr.Restore(ctx, st); err != nil {
		return err
	}
	if err := d.ensureFCTargets(ctx); err != nil { // fc_ports.go
		return err
	}
	d.stopZvolWatch = d.mgr.WatchZvols(zvolPollInterval) // LUs whose pool is imported later
	d.stopReclaim = d.startReclaimer()
	if d.cfg.Demo && len(st.LUs) == 0 && len(st.Targets) == 0 {
		if err := d.createDemo(ctx); err != nil {
			return fmt.Errorf("creating demo configuration: %w", err)
		}
	}
	for _, srv := range d.servers {
		if err := srv.Start(ctx); err != nil {
			return err
		}
	}
	d.isns.Start()                              // the portals are open: their addresses can be registered
	if err := d.startCluster(ctx); err != nil { // cluster.go
		return err
	}
	a, err := mgmt.Listen(d.cfg.Socket, d.mgr.Handler(), d.log.With("component", "api"))
	if err != nil {
		return err
	}
	d.api = a
	return d.startMetrics(ctx)
}

// createDemo configures a demo LU visible to everyone as LUN 0 on
// DemoTarget, through the same management calls the CLIs use.
func (d *Daemon) createDemo(ctx context.Context) error {
	dir, err := filepath.Abs(filepath.Join(d.cfg.StateDir, "lu"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "demo.img")
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s already exists but is not in the configuration; import it or remove it", path)
	}
	lu, err := d.mgr.CreateLU(ctx, api.CreateLURequest{DataFile: path, Size: d.cfg.DemoSize, Props: api.LUProps{Alias: ptr("demo")}})
	if err != nil {
		return err
	}
	if _, err := d.mgr.AddView(ctx, api.AddViewRequest{GUID: lu.GUID, LUN: ptr(0)}); err != nil {
		return err
	}
	if _, err := d.mgr.CreateTarget(ctx, api.TargetRequest{Name: DemoTarget, Alias: ptr("costar demo")}); err != nil {
		return err
	}
	d.log.Info("created demo configuration", "lu", lu.GUID, "data_file", path, "size", d.cfg.DemoSize, "target", DemoTarget)
	return nil
}

func ptr[T any](v T) *T { return &v }

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

// SocketPath is where the management API listens.
func (d *Daemon) SocketPath() string { return d.cfg.Socket }

// Shutdown stops the management API (no change starts any more), stops
// accepting connections, lets in-flight I/O finish (bounded by ctx), and
// closes sessions and LUs.
func (d *Daemon) Shutdown(ctx context.Context) error {
	var errs []error
	if d.stopZvolWatch != nil {
		d.stopZvolWatch()
	}
	if d.stopReclaim != nil {
		d.stopReclaim()
	}
	if d.api != nil {
		if err := d.api.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("management API shutdown: %w", err))
		}
	}
	if err := d.metrics.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("metrics shutdown: %w", err))
	}
	if d.cluster != nil {
		d.cluster.stop() // hand every LU over at once
	}
	// Deregister before the portals close: initiators stop finding us first.
	if err := d.isns.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("iSNS deregistration: %w", err))
	}
	for _, srv := range d.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("port provider shutdown: %w", err))
		}
	}
	if err := d.mgr.Close(); err != nil {
		errs = append(errs, err)
	}
	d.closeReservations() // reservations.go
	return errors.Join(errs...)
}

// ShutdownTimeout is the configured bound for a clean shutdown.
func (d *Daemon) ShutdownTimeout() time.Duration {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return time.Duration(d.cfg.ShutdownSeconds) * time.Second
}
