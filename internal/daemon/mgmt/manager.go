// Package mgmt is stmfd's management plane: every administrative change
// (LUs, views, host and target groups, targets, portal groups, initiators,
// defaults) goes through a Manager, which validates it, applies it to the
// live stmf framework and providers, and makes it durable before answering.
//
// The transaction rule: a change is built on a copy of the persisted state,
// applied live, then saved; when the save fails the live change is undone
// and the old state stays. A failed request leaves stored state untouched.
//
// The package knows the LU and port providers only through the small
// interfaces below, so it is tested with fakes and the providers plug in
// from package daemon.
package mgmt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// Store persists the configuration (*store.Store satisfies it).
type Store interface {
	Save(st *store.State) error
}

// LUSpec is a validated create-lu request handed to the LU provider.
type LUSpec struct {
	DataFile  string
	MetaFile  string // "" = metadata inside the data file (or the zvol)
	Size      uint64 // 0 = the backing store's current size
	BlockSize uint32 // 0 = provider default (512)
	// GUID, when not zero, is used verbatim. Otherwise the provider
	// generates one from OUI (nil: 0x00144F) and HostID (nil: this host).
	GUID    stmf.GUID
	OUI     *uint32
	HostID  *[4]byte
	Alias   string
	MgmtURL string
	VID     string // "" = provider default
	PID     string
	Serial  string
	WCD     bool // write cache disabled
	WP      bool // write protected
	Thin    bool // thin provisioned: UNMAP, WRITE SAME (UNMAP), GET LBA STATUS
	// SoftThreshold, for thin LUs: percent of the backing file system in
	// use that raises THIN PROVISIONING SOFT THRESHOLD REACHED (0 = off).
	SoftThreshold uint8
}

// LUInfo is what the LU provider reports about an open LU.
type LUInfo struct {
	GUID      stmf.GUID
	DataFile  string
	MetaFile  string
	Size      uint64
	BlockSize uint32
	Alias     string
	MgmtURL   string
	VID       string
	PID       string
	Serial    string
	WCD       bool
	WP        bool
	Thin      bool
	// SoftThreshold is the thin LU's soft threshold in percent (0 = off).
	SoftThreshold uint8
}

// Disk is an open LU.
type Disk interface {
	stmf.LogicalUnit
	Info() LUInfo
	Close() error
}

// Resizer is implemented by disks that can change size online (modify-lu -s).
// The manager raises CAPACITY DATA HAS CHANGED after a successful resize.
type Resizer interface {
	Resize(ctx context.Context, size uint64) error
}

// LUChange is a modify-lu property change; nil fields stay.
type LUChange struct {
	Alias   *string
	MgmtURL *string
	WCD     *bool
	WP      *bool
	// SoftThreshold changes a thin LU's soft threshold (0 = off).
	SoftThreshold *uint8
}

// PropSetter is implemented by disks whose modifiable properties (alias,
// mgmt-url, wcd, wp) can change online; the provider persists them with
// the LU's metadata before returning.
type PropSetter interface {
	SetProps(ctx context.Context, c LUChange) error
}

// LUProvider creates and opens LUs. Errors should wrap one of the Err*
// sentinels below so the CLI can print COMSTAR's message.
type LUProvider interface {
	Create(ctx context.Context, spec LUSpec) (Disk, error)
	// Import opens an LU from the metadata stored with its data. file is
	// the data file or, for separate metadata, the meta file; metaFile is
	// the meta file when known.
	Import(ctx context.Context, file, metaFile string) (Disk, error)
}

// Errors an LU provider (or its adapter) wraps so the manager can classify
// failures.
var (
	ErrDataFile      = errors.New("data file error")
	ErrMetaFile      = errors.New("meta file error")
	ErrFileSize      = errors.New("file size invalid")
	ErrSizeRange     = errors.New("invalid size")
	ErrBlockSize     = errors.New("invalid block size")
	ErrNotAnLU       = errors.New("no LU metadata found") // import of a file that holds no LU
	ErrProviderLimit = errors.New("not supported by the LU provider")
)

// PortalGroup is a target's binding to a target portal group.
type PortalGroup struct {
	Name    string
	Tag     uint16
	Portals []string // "ip:port"
}

// TargetSpec is the configuration a port provider serves for one target.
type TargetSpec struct {
	Name  string
	Alias string
	// PortalGroups empty: the default portal group (tag 1, the daemon's portals).
	PortalGroups []PortalGroup
	// Auth is the effective authentication method: none, chap or radius.
	Auth string
	// ChapUser and ChapSecret are the target's own credentials, used for
	// mutual (bidirectional) CHAP. ChapUser "" means the target name.
	ChapUser   string
	ChapSecret string
}

// PortProvider serves targets (the iSCSI port provider).
type PortProvider interface {
	AddTarget(ctx context.Context, spec TargetSpec) error
	// RemoveTarget stops serving the target and ends its sessions.
	RemoveTarget(ctx context.Context, name string) error
}

// TargetUpdater is implemented by port providers that can change a served
// target's alias, portal groups or authentication without dropping it.
// Without it such changes take effect when the target next comes online.
type TargetUpdater interface {
	UpdateTarget(ctx context.Context, spec TargetSpec) error
}

// SessionInfo is what a port provider knows about a session beyond stmf.
type SessionInfo struct {
	Target, Initiator, Alias string
}

// SessionReporter is implemented by port providers that report sessions
// (list-target -v shows the initiator's alias from it).
type SessionReporter interface {
	Sessions() []SessionInfo
}

// Config wires a Manager.
type Config struct {
	Log       *slog.Logger
	Framework *stmf.Framework
	Store     Store
	LUs       LUProvider
}

// Manager owns the configuration. All methods are safe for concurrent use;
// changes are serialised.
type Manager struct {
	log   *slog.Logger
	fw    *stmf.Framework
	store Store
	lus   LUProvider

	mu      sync.Mutex
	state   *store.State // adopted states are never modified, only replaced
	disks   map[stmf.GUID]Disk
	waiting map[stmf.GUID]*waitState // configured LUs not open, and why (zfs.go)
	ports   PortProvider
	portals func() []string

	// published is state for readers on the login path, which must not
	// wait behind a configuration change holding mu.
	published atomic.Pointer[store.State]
}

// New returns a manager with an empty configuration; Restore loads one.
func New(c Config) *Manager {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{
		log:   log,
		fw:    c.Framework,
		store: c.Store,
		lus:   c.LUs,
		disks: map[stmf.GUID]Disk{},
	}
	m.adopt(&store.State{Version: store.Version})
	return m
}

// adopt makes st the current state.
func (m *Manager) adopt(st *store.State) {
	m.state = st
	m.published.Store(st)
}

// Restore rebuilds the live configuration from st: groups first (views
// refer to them), then LUs, then views. Targets are served once the port
// provider is attached (TargetSpecs, AttachPorts). An LU whose backing
// store cannot be opened stays configured but unavailable.
func (m *Manager) Restore(ctx context.Context, st *store.State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.adopt(st)
	for _, k := range []api.GroupKind{api.HostGroup, api.TargetGroup} {
		for _, g := range *groupsOf(m.state, k) {
			if err := groupOps(m.fw, k).create(g.Name); err != nil {
				return fmt.Errorf("restoring %s group %q: %w", k, g.Name, err)
			}
			for _, mem := range g.Members {
				if err := groupOps(m.fw, k).add(g.Name, mem); err != nil {
					return fmt.Errorf("restoring member %s of %s group %q: %w", mem, k, g.Name, err)
				}
			}
		}
	}
	m.fw.SetRelativePortIDs(st.RelPortIDs)
	if err := m.restoreALUALocked(st); err != nil { // alua.go
		return err
	}
	for _, rec := range st.LUs {
		g, err := stmf.ParseGUID(rec.GUID)
		if err != nil {
			return fmt.Errorf("stored LU: %w", err)
		}
		disk, err := m.reopen(ctx, rec, g)
		if err != nil {
			// One missing backing store must not take the other LUs down;
			// an LU on a zvol is opened once its pool is imported (WatchZvols).
			m.log.Error("cannot open LU; it stays configured but unavailable", "guid", rec.GUID, "data_file", rec.DataFile, "err", err)
			m.setWaitingLocked(g, err)
			continue
		}
		if disk.GUID() != g {
			m.log.Error("backing store holds a different LU; not registering it", "want", rec.GUID, "found", disk.GUID(), "data_file", rec.DataFile)
			m.closeDisk(disk)
			continue
		}
		m.disks[g] = disk
		if !rec.Offline {
			if err := m.fw.RegisterLU(disk); err != nil {
				return fmt.Errorf("registering LU %s: %w", rec.GUID, err)
			}
		}
	}
	for _, v := range st.Views {
		g, err := stmf.ParseGUID(v.GUID)
		if err != nil {
			return fmt.Errorf("stored view: %w", err)
		}
		if _, err := m.fw.AddView(g, viewEntry(v), false); err != nil {
			return fmt.Errorf("restoring view entry %d of %s: %w", v.Entry, v.GUID, err)
		}
	}
	return nil
}

// TargetSpecs returns the targets to serve (the online ones), for starting
// the port provider with them before its portals open.
func (m *Manager) TargetSpecs() []TargetSpec {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TargetSpec
	for _, t := range m.state.Targets {
		if !t.Offline {
			out = append(out, m.specLocked(m.state, t))
		}
	}
	return out
}

// AttachPorts hands the manager the running port provider (already serving
// TargetSpecs) and a function returning the portals' listen addresses. It
// persists the relative port identifiers the registrations assigned.
func (m *Manager) AttachPorts(p PortProvider, portals func() []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ports = p
	m.portals = portals
	if ids := m.fw.RelativePortIDs(); !equalIDs(ids, m.state.RelPortIDs) {
		return m.commitLocked(m.state.Clone(), nil)
	}
	return nil
}

// Close closes every open LU (after the port provider has stopped).
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for g, d := range m.disks {
		if err := d.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing LU %s: %w", g, err))
		}
		delete(m.disks, g)
	}
	return errors.Join(errs...)
}

// commitLocked saves next (with the current relative port ids) and adopts
// it. When the save fails it runs undo to revert the live change, keeps the
// old state and reports CodeInternal.
func (m *Manager) commitLocked(next *store.State, undo func()) error {
	next.RelPortIDs = m.fw.RelativePortIDs()
	if err := m.store.Save(next); err != nil {
		if undo != nil {
			undo()
		}
		m.log.Error("configuration change not saved; reverted", "err", err)
		return api.Errorf(api.CodeInternal, "", "saving the configuration: %v", err)
	}
	m.adopt(next)
	return nil
}

// GetState is stmfadm list-state.
func (m *Manager) GetState(context.Context, api.Empty) (api.State, error) {
	m.mu.Lock()
	portals := m.portals
	m.mu.Unlock()
	s := api.State{Operational: "online", Config: "initialized", ALUA: "disabled", Portals: []string{}}
	if portals != nil {
		s.Portals = append(s.Portals, portals()...)
	}
	s.TargetPortGroups = m.aluaGroups() // alua.go
	return s, nil
}

func (m *Manager) closeDisk(d Disk) {
	if err := d.Close(); err != nil {
		m.log.Error("closing LU", "guid", d.GUID(), "err", err)
	}
}

func equalIDs(a, b map[string]uint16) bool {
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
