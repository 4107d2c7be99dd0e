// Package stmf is the SCSI target mode framework: the router between port
// providers (iSCSI, FC), which own the wire, and LU providers, which own the
// disks. It keeps logical units, local target ports, I_T nexuses (sessions)
// with their LUN maps, views, task sets and unit attentions. It knows
// neither TCP nor files.
package stmf

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/costar-project/costar/scsi"
)

// LogicalUnit is implemented by LU providers (COMSTAR's stmf_lu_t).
type LogicalUnit interface {
	// GUID is the LU's name in the framework and its NAA designator.
	GUID() GUID
	// Execute runs one task and eventually calls exactly one of the task's
	// Complete methods. It may return before the task is complete.
	Execute(t *Task)
}

// Errors returned by the framework. Callers match them with errors.Is.
var (
	ErrLUExists      = errors.New("stmf: logical unit already registered")
	ErrLUNotFound    = errors.New("stmf: logical unit not found")
	ErrPortExists    = errors.New("stmf: local port already registered")
	ErrViewConflict  = errors.New("stmf: view entry conflicts with an existing view")
	ErrLUNInUse      = errors.New("stmf: LUN already in use")
	ErrInvalidLUN    = errors.New("stmf: LUN out of range")
	ErrPortOffline   = errors.New("stmf: local port is offline")
	ErrSessionClosed = errors.New("stmf: session closed")
	ErrViewNotFound  = errors.New("stmf: view entry not found")
)

// ViewEntry makes an LU visible as LUN to the host group on the target
// group. An empty group name means "All".
type ViewEntry struct {
	HostGroup   string
	TargetGroup string
	LUN         scsi.LUN
}

// Framework is one stmf instance. The zero value is not usable; use New.
type Framework struct {
	log *slog.Logger

	mu       sync.Mutex
	lus      map[GUID]*luReg
	views    map[GUID][]ViewEntry
	hgs      map[string]map[string]bool // host group -> members
	tgs      map[string]map[string]bool // target group -> target names
	ports    map[string]*LocalPort      // by port name
	relIDs   map[string]uint16          // stable relative port ids by port name
	nextRel  uint16
	sessions map[*Session]struct{}
	// alua maps target port group -> state (absent = active/optimized).
	// Copy-on-write so the command path reads it without a lock.
	alua atomic.Pointer[map[uint16]ALUAState]
	// luAccess is the per-LU access state a cluster sets (lu_access.go).
	luAccess        map[GUID]*LUAccess
	luAccessDefault *LUAccess // for LUs without an entry (nil: active/optimized)

	workers *workers
	qos     map[GUID]QoSLimits // per-LU limits, kept while an LU is offline (qos.go)
	clock   qosClock

	portStats     map[string]*portStats // task counters by target port name
	nextSessionID uint64
}

// New returns an empty framework.
func New(log *slog.Logger) *Framework {
	if log == nil {
		log = slog.Default()
	}
	return &Framework{
		log:      log,
		lus:      map[GUID]*luReg{},
		views:    map[GUID][]ViewEntry{},
		hgs:      map[string]map[string]bool{},
		tgs:      map[string]map[string]bool{},
		ports:    map[string]*LocalPort{},
		relIDs:   map[string]uint16{},
		nextRel:  1,
		sessions: map[*Session]struct{}{},
		workers:  newWorkers(),
		qos:      map[GUID]QoSLimits{},
		luAccess: map[GUID]*LUAccess{},
		clock:    realClock{},

		portStats: map[string]*portStats{},
	}
}

// RegisterLU makes lu known to the framework. It is reachable through views.
func (fw *Framework) RegisterLU(lu LogicalUnit) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	g := lu.GUID()
	if _, ok := fw.lus[g]; ok {
		return fmt.Errorf("%w: %s", ErrLUExists, g)
	}
	fw.attach(lu)
	reg := &luReg{lu: lu}
	if a, ok := fw.luAccess[g]; ok {
		reg.access.Store(a)
	} else {
		reg.access.Store(fw.luAccessDefault)
	}
	if l, ok := fw.qos[g]; ok {
		fw.applyQoSLocked(reg, l)
	}
	fw.lus[g] = reg
	fw.remapLocked()
	return nil
}

// DeregisterLU removes the LU; with keepViews its views stay and come back
// when an LU with the same GUID is registered again (delete-lu -k).
func (fw *Framework) DeregisterLU(g GUID, keepViews bool) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if _, ok := fw.lus[g]; !ok {
		return fmt.Errorf("%w: %s", ErrLUNotFound, g)
	}
	delete(fw.lus, g)
	if !keepViews {
		delete(fw.views, g)
	}
	fw.remapLocked()
	return nil
}

// LU returns a registered LU.
func (fw *Framework) LU(g GUID) (LogicalUnit, bool) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	reg, ok := fw.lus[g]
	if !ok {
		return nil, false
	}
	return reg.lu, true
}

// LUUnwrapper is implemented by an adapter that wraps an LU provider's
// logical unit before registering it (stmfd wraps *lu.Device for its
// management plane). Session.LU hands out the wrapped LU, so a provider
// can recognise its own LUs, as EXTENDED COPY must when it resolves a
// copy target that is another LU.
type LUUnwrapper interface {
	UnwrapLU() LogicalUnit
}

// unwrapLU returns the LU an adapter wraps, or lu itself.
func unwrapLU(lu LogicalUnit) LogicalUnit {
	for range 8 { // adapters do not nest deeper; bound it anyway
		u, ok := lu.(LUUnwrapper)
		if !ok {
			return lu
		}
		inner := u.UnwrapLU()
		if inner == nil {
			return lu
		}
		lu = inner
	}
	return lu
}

// AddView adds a view entry for an LU (the LU need not be registered yet).
// It returns the LUN used. With auto set, the LUN in v is ignored and the
// lowest LUN free in every map the view overlaps is chosen.
func (fw *Framework) AddView(g GUID, v ViewEntry, auto bool) (scsi.LUN, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if _, ok := fw.hgs[v.HostGroup]; v.HostGroup != "" && !ok {
		return 0, fmt.Errorf("%w: host group %s", ErrGroupNotFound, v.HostGroup)
	}
	if _, ok := fw.tgs[v.TargetGroup]; v.TargetGroup != "" && !ok {
		return 0, fmt.Errorf("%w: target group %s", ErrGroupNotFound, v.TargetGroup)
	}
	for _, e := range fw.views[g] {
		if groupsOverlap(e.HostGroup, v.HostGroup) && groupsOverlap(e.TargetGroup, v.TargetGroup) {
			return 0, ErrViewConflict
		}
	}
	used := map[scsi.LUN]bool{}
	for og, entries := range fw.views {
		for _, e := range entries {
			if og != g && fw.hgOverlapLocked(e.HostGroup, v.HostGroup) && fw.tgOverlapLocked(e.TargetGroup, v.TargetGroup) {
				used[e.LUN] = true
			}
		}
	}
	if auto {
		n := scsi.LUN(0)
		for used[n] {
			n++
		}
		v.LUN = n
	}
	if v.LUN >= scsi.MaxLUN {
		return 0, ErrInvalidLUN
	}
	if used[v.LUN] {
		return 0, ErrLUNInUse
	}
	fw.views[g] = append(fw.views[g], v)
	fw.remapLocked()
	return v.LUN, nil
}

// Views returns a copy of an LU's view entries.
func (fw *Framework) Views(g GUID) []ViewEntry {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return append([]ViewEntry(nil), fw.views[g]...)
}

// RemoveView removes the view entry of g equal to v (host group, target
// group and LUN). Sessions that lose the LUN get REPORTED LUNS DATA HAS
// CHANGED at once. It works whether or not the LU is registered.
func (fw *Framework) RemoveView(g GUID, v ViewEntry) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	entries := fw.views[g]
	for i, e := range entries {
		if e == v {
			rest := append(append([]ViewEntry(nil), entries[:i]...), entries[i+1:]...)
			if len(rest) == 0 {
				delete(fw.views, g)
			} else {
				fw.views[g] = rest
			}
			fw.remapLocked()
			return nil
		}
	}
	return fmt.Errorf("%w: %s LUN %d", ErrViewNotFound, g, v.LUN)
}

// groupsOverlap is COMSTAR's view-conflict rule for one dimension: equal
// names, or either side is "All".
func groupsOverlap(a, b string) bool { return a == "" || b == "" || a == b }

// hgOverlapLocked reports whether two host-group selectors can match a
// common initiator (so their LUNs share a map).
func (fw *Framework) hgOverlapLocked(a, b string) bool {
	return groupsOverlap(a, b) || sharesMember(fw.hgs[a], fw.hgs[b])
}

func (fw *Framework) tgOverlapLocked(a, b string) bool {
	return groupsOverlap(a, b) || sharesMember(fw.tgs[a], fw.tgs[b])
}

func sharesMember(a, b map[string]bool) bool {
	for m := range a {
		if b[m] {
			return true
		}
	}
	return false
}

// lunMap is an immutable LUN -> LU table; sessions swap it atomically.
type lunMap map[scsi.LUN]*luReg

func (m lunMap) sortedLUNs() []scsi.LUN {
	out := make([]scsi.LUN, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (fw *Framework) mapForLocked(initiator, target string) lunMap {
	m := lunMap{}
	for g, entries := range fw.views {
		reg, ok := fw.lus[g]
		if !ok {
			continue
		}
		for _, e := range entries {
			if e.HostGroup != "" && !fw.hgs[e.HostGroup][initiator] {
				continue
			}
			if e.TargetGroup != "" && !fw.tgs[e.TargetGroup][target] {
				continue
			}
			m[e.LUN] = reg
		}
	}
	return m
}

// remapLocked recomputes every session's LUN map and raises REPORTED LUNS
// DATA HAS CHANGED on exactly the sessions whose map changed.
func (fw *Framework) remapLocked() {
	for s := range fw.sessions {
		nm := fw.mapForLocked(s.Nexus.InitiatorName, s.Nexus.TargetName)
		old := *s.lunMap.Load()
		if sameMap(old, nm) {
			continue
		}
		s.lunMap.Store(&nm)
		s.raiseForLUNs(nm.sortedLUNs(), scsi.ASCReportedLUNsDataChanged)
	}
}

func sameMap(a, b lunMap) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// RaiseUA queues a unit attention for every session that sees the LU (for
// example CAPACITY DATA HAS CHANGED after a resize).
func (fw *Framework) RaiseUA(g GUID, asc scsi.ASC) {
	fw.raiseUAWhere(g, asc, nil)
}

// raiseUAWhere queues a unit attention on the LU for the sessions whose
// nexus matches (all when match is nil).
func (fw *Framework) raiseUAWhere(g GUID, asc scsi.ASC, match func(n *Nexus) bool) {
	for _, s := range fw.Sessions() {
		if match != nil && !match(&s.Nexus) {
			continue
		}
		var luns []scsi.LUN
		for n, reg := range *s.lunMap.Load() {
			if reg.lu.GUID() == g {
				luns = append(luns, n)
			}
		}
		s.raiseForLUNs(luns, asc)
	}
}

// Sessions returns the live sessions (for list-target -v).
func (fw *Framework) Sessions() []*Session {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := make([]*Session, 0, len(fw.sessions))
	for s := range fw.sessions {
		out = append(out, s)
	}
	return out
}

// CanAccess reports whether an initiator has at least one LUN through the
// named target (used to filter discovery and refuse logins).
func (fw *Framework) CanAccess(initiator, target string) bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return len(fw.mapForLocked(initiator, target)) > 0
}
