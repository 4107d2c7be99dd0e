package stmf

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/costar-project/costar/scsi"
)

// Per-LU access states for a cluster of targets that share LUs (each LU is
// owned by one node at a time): the local ports' state for this LU alone,
// and the target port groups of the other nodes, which REPORT TARGET PORT
// GROUPS lists so that an initiator sees every path's state from any path.

// RemoteGroup is a target port group on another node of the cluster.
type RemoteGroup struct {
	ID    uint16
	State ALUAState
	Ports []uint16 // relative target port identifiers, unique across the cluster
}

// LUAccess is an LU's access state on this node.
type LUAccess struct {
	Local  ALUAState // state of every local port group for this LU
	Remote []RemoteGroup
}

// SetLUAccess sets (nil clears) the LU's per-LU access state. It is kept
// while the LU is not registered, so a state set before RegisterLU holds
// from the LU's first command. A change of the local state or of a remote
// group's state raises ASYMMETRIC ACCESS STATE CHANGED on the sessions
// that see the LU.
func (fw *Framework) SetLUAccess(g GUID, a *LUAccess) error {
	if a != nil {
		if _, ok := aluaNames[a.Local]; !ok {
			return fmt.Errorf("stmf: invalid ALUA state %d", a.Local)
		}
		c := &LUAccess{Local: a.Local}
		for _, r := range a.Remote {
			if _, ok := aluaNames[r.State]; !ok {
				return fmt.Errorf("stmf: invalid ALUA state %d of group %d", r.State, r.ID)
			}
			c.Remote = append(c.Remote, RemoteGroup{ID: r.ID, State: r.State, Ports: slices.Clone(r.Ports)})
		}
		a = c
	}
	fw.mu.Lock()
	old := fw.luAccess[g]
	if a == nil {
		delete(fw.luAccess, g)
	} else {
		fw.luAccess[g] = a
	}
	if reg, ok := fw.lus[g]; ok {
		reg.access.Store(a)
	}
	fw.mu.Unlock()
	if accessChanged(old, a) {
		fw.RaiseUA(g, scsi.ASCAsymmetricAccessChanged)
	}
	return nil
}

// SetLUAccessDefault sets the access state an LU registered without a
// per-LU state starts in (a cluster node: standby until it owns the LU).
func (fw *Framework) SetLUAccessDefault(a *LUAccess) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.luAccessDefault = a
}

// LUAccessOf returns the LU's per-LU access state (nil: none set).
func (fw *Framework) LUAccessOf(g GUID) *LUAccess {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.luAccess[g]
}

// accessChanged tells whether an initiator would see a different state.
func accessChanged(a, b *LUAccess) bool {
	st := func(x *LUAccess) (ALUAState, map[uint16]ALUAState) {
		m := map[uint16]ALUAState{}
		if x == nil {
			return ALUAActiveOptimized, m
		}
		for _, r := range x.Remote {
			m[r.ID] = r.State
		}
		return x.Local, m
	}
	la, ra := st(a)
	lb, rb := st(b)
	if la != lb || len(ra) != len(rb) {
		return true
	}
	for id, s := range ra {
		if t, ok := rb[id]; !ok || t != s {
			return true
		}
	}
	return false
}

// accessFor is the state a command through a port of group sees on the
// LU: a group set to anything but active/optimized (set-alua-state) wins
// over the LU's own state.
func (fw *Framework) accessFor(reg *luReg, group uint16) ALUAState {
	if st := fw.aluaState(group); st != ALUAActiveOptimized || reg == nil {
		return st
	}
	if a := reg.access.Load(); a != nil {
		return a.Local
	}
	return ALUAActiveOptimized
}

// SetRelativePortIDBase makes relative port identifiers assigned from now
// on start at base (cluster nodes use disjoint ranges: the identifiers
// must be unique within the SCSI target device the nodes form together).
func (fw *Framework) SetRelativePortIDBase(base uint16) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if base > fw.nextRel {
		fw.nextRel = base
	}
}

// DrainLU waits until the LU has no task in its task set (a cluster node
// giving the LU up has set it standby first, so no new media command
// starts), polling, until ctx ends. It reports the tasks still active.
func (fw *Framework) DrainLU(ctx context.Context, g GUID) int {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		fw.mu.Lock()
		reg := fw.lus[g]
		fw.mu.Unlock()
		if reg == nil {
			return 0
		}
		n := len(reg.ts.tasks(func(*Task) bool { return true }))
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
	}
}

// PortGroups returns the local target port groups and their ports'
// relative identifiers (what a cluster node advertises to the others).
func (fw *Framework) PortGroups() map[uint16][]uint16 {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := map[uint16][]uint16{}
	for _, p := range fw.ports {
		out[p.Group] = append(out[p.Group], p.RelativeID)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}
