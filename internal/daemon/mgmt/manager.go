// Package mgmt is stmfd's management plane: every administrative change
// (LUs, views, host and target groups, targets, ALUA states, and the iSCSI
// port provider's portal groups, initiators and defaults) goes through a
// Manager, which validates it, applies it to the live stmf framework and
// providers, and makes it durable before answering.
//
// The transaction rule: a change is built on a copy of the persisted state,
// applied live, then saved; when the save fails the live change is undone
// and the old state stays. A failed request leaves stored state untouched.
//
// The package knows the LU provider (luprovider.go) and the port providers
// (ports.go) only through small interfaces, so it is tested with fakes and
// the providers plug in from package daemon. Port providers are a registry
// keyed by protocol; a target is served by its protocol's provider. What
// only iSCSI has (portal groups, CHAP, RADIUS, iSNS: itadm) lives in the
// iscsi_*.go files.
package mgmt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"runtime/metrics"
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

// Config wires a Manager.
type Config struct {
	Log       *slog.Logger
	Framework *stmf.Framework
	Store     Store
	LUs       LUProvider
	// Ports is the registry of port providers by protocol
	// (store.ProtocolISCSI, "fc"); daemon registers them.
	Ports map[string]Ports
	// ISCSIPortals returns the iSCSI default portal group's listen
	// addresses (list-state); nil before the portals are open.
	ISCSIPortals func() []string
	// OnChange is called, with the manager's lock held, after every
	// configuration change is adopted; it must not block (the iSNS
	// client's Notify).
	OnChange func()
	// FCPorts reports the FC HBA ports (fcinfo); nil without FC.
	FCPorts func() []api.FCPort
}

// Manager owns the configuration. All methods are safe for concurrent use;
// changes are serialised.
type Manager struct {
	log   *slog.Logger
	fw    *stmf.Framework
	store Store
	lus   LUProvider

	cluster Cluster // nil: single node (cluster.go)

	mu      changeLock               // lock.go: changes exclusive, reads shared
	state   *store.State             // adopted states are never modified, only replaced
	open    map[stmf.GUID]LU         // LUs whose backing store is open
	waiting map[stmf.GUID]*waitState // configured LUs not open, and why (zvol_lus.go)
	parked  map[stmf.GUID]bool       // zvol LUs closed for a release hook, not reopened (zvol_handover.go)
	ports   map[string]Ports         // fixed at New: read without mu
	portals func() []string
	changed func() // Config.OnChange
	fcPorts func() []api.FCPort

	// published is state for readers on the login path, which must not
	// wait behind a configuration change holding mu.
	published atomic.Pointer[store.State]

	// api keeps other management API calls out while an apply runs, so
	// its steps are one transaction (apply_tx.go); tx is that transaction.
	api sync.RWMutex
	tx  *applyTx
}

// New returns a manager with an empty configuration; Restore loads one.
func New(c Config) *Manager {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{
		log:     log,
		fw:      c.Framework,
		store:   c.Store,
		lus:     c.LUs,
		open:    map[stmf.GUID]LU{},
		ports:   maps.Clone(c.Ports),
		portals: c.ISCSIPortals,
		changed: c.OnChange,
		fcPorts: c.FCPorts,
	}
	m.adopt(&store.State{Version: store.Version})
	return m
}

// adopt makes st the current state.
func (m *Manager) adopt(st *store.State) {
	m.state = st
	m.published.Store(st)
	if m.changed != nil {
		m.changed()
	}
}

// Restore rebuilds the live configuration from st: groups first (views
// refer to them), then LUs, then views, then the online targets, each
// handed to its protocol's port provider before any portal opens. An LU
// whose backing store cannot be opened, or a target whose protocol has no
// provider, stays configured but unavailable. The relative port
// identifiers the targets' ports got are saved.
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
		if err := m.fw.SetQoS(g, qosLimits(rec)); err != nil {
			m.log.Error("stored QoS limits refused; the LU runs unlimited", "guid", rec.GUID, "err", err)
		}
		unit, err := m.reopen(ctx, rec, g)
		if err != nil {
			// One missing backing store must not take the other LUs down;
			// an LU on a zvol is opened once its pool is imported (WatchZvols).
			m.log.Error("cannot open LU; it stays configured but unavailable", "guid", rec.GUID, "data_file", rec.DataFile, "err", err)
			m.setWaitingLocked(g, err)
			continue
		}
		if unit.GUID() != g {
			m.log.Error("backing store holds a different LU; not registering it", "want", rec.GUID, "found", unit.GUID(), "data_file", rec.DataFile)
			m.closeLU(unit)
			continue
		}
		m.open[g] = unit
		if !rec.Offline {
			if err := m.fw.RegisterLU(unit); err != nil {
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
	if err := m.serveTargetsLocked(ctx, st); err != nil { // targets.go
		return err
	}
	if ids := m.fw.RelativePortIDs(); !equalIDs(ids, st.RelPortIDs) {
		return m.commitLocked(st.Clone(), nil)
	}
	return nil
}

// Close closes every open LU (after the port providers have stopped).
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for g, d := range m.open {
		if err := d.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing LU %s: %w", g, err))
		}
		delete(m.open, g)
	}
	return errors.Join(errs...)
}

// commitLocked saves next (with the current relative port ids) and adopts
// it. When the save fails it runs undo to revert the live change, keeps the
// old state and reports CodeInternal.
func (m *Manager) commitLocked(next *store.State, undo func()) error {
	next.RelPortIDs = m.fw.RelativePortIDs()
	if m.tx != nil {
		m.tx.record(m.state, undo) // saved once, at the end of the transaction
		m.adopt(next)
		return nil
	}
	var err error
	m.mu.shareWhile(func() { err = m.store.Save(next) }) // reads need not wait for etcd
	if err != nil {
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
	portals := m.portals
	s := api.State{Operational: "online", Config: "initialized", ALUA: "disabled", Portals: []string{}}
	if portals != nil {
		s.Portals = append(s.Portals, portals()...)
	}
	s.TargetPortGroups = m.aluaGroups() // alua.go
	s.Goroutines = runtime.NumGoroutine()
	s.HeapLiveBytes = heapLive()
	return s, nil
}

// heapLive is the live heap after the last GC (runtime/metrics; no
// stop-the-world).
func heapLive() uint64 {
	smp := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(smp)
	if smp[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return smp[0].Value.Uint64()
}

func (m *Manager) closeLU(d LU) {
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
