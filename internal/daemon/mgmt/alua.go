package mgmt

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// ALUA administration: stmfadm set-alua-state -g <tag> <state>.
//
// A target port group is named by a number: for iSCSI it is a portal
// group, named by its portal group tag; a target of another protocol is in
// the group its provider places it in, by default group 1
// (portGroupsLocked, targets.go). The group's
// asymmetric access state applies to every LU reached through a port of
// the group. A change raises ASYMMETRIC ACCESS STATE CHANGED
// (2Ah/06h) on every session, so initiators re-read REPORT TARGET PORT
// GROUPS.
//
// For the secondary side of a pair, active/non-optimized is preferred over
// standby (ESXi interoperability notes, item 2). A TPGS device is claimed by
// ESXi's VMW_SATP_ALUA, whose path policies (MRU, Round Robin) send I/O to
// the active/optimized paths and, when none is left, to active/non-optimized
// ones at once: those serve every command, so the failover needs no state
// change on the target. A standby path serves no media access (NOT READY,
// 04h/0Bh): if the optimized side fails, I/O has nowhere to go until an
// administrator (or a cluster manager) moves the group to an active state,
// and ESXi may declare the paths dead in the meantime. Use standby only for
// a side that really must not receive I/O.
//
// Durability: the new state is saved before it goes live, so a failed
// save changes nothing an initiator can see, and a successful command
// survives a restart (states are restored before any portal opens).

// stmfALUAState maps an API state name to stmf's.
func stmfALUAState(name string) (stmf.ALUAState, bool) {
	switch name {
	case api.ALUAActiveOptimized:
		return stmf.ALUAActiveOptimized, true
	case api.ALUAActiveNonOptimized:
		return stmf.ALUAActiveNonOptimized, true
	case api.ALUAStandby:
		return stmf.ALUAStandby, true
	case api.ALUAUnavailable:
		return stmf.ALUAUnavailable, true
	case api.ALUATransitioning:
		return stmf.ALUATransitioning, true
	}
	return 0, false
}

// apiALUAState maps stmf's state to the API name.
func apiALUAState(s stmf.ALUAState) string {
	switch s {
	case stmf.ALUAActiveOptimized:
		return api.ALUAActiveOptimized
	case stmf.ALUAActiveNonOptimized:
		return api.ALUAActiveNonOptimized
	case stmf.ALUAStandby:
		return api.ALUAStandby
	case stmf.ALUAUnavailable:
		return api.ALUAUnavailable
	case stmf.ALUATransitioning:
		return api.ALUATransitioning
	}
	return s.String()
}

// restoreALUALocked applies the stored states to the framework; Restore
// runs it before the port provider opens any portal.
func (m *Manager) restoreALUALocked(st *store.State) error {
	for _, g := range st.ALUA {
		s, ok := stmfALUAState(g.State)
		if !ok || g.Tag == 0 {
			return fmt.Errorf("stored ALUA state %q of target port group %d is invalid", g.State, g.Tag)
		}
		if err := m.fw.SetALUAState(g.Tag, s); err != nil {
			return fmt.Errorf("restoring ALUA state of target port group %d: %w", g.Tag, err)
		}
	}
	return nil
}

// tagTargetsLocked returns every known portal group tag with the
// configured targets bound to it: the default portal group (tag 1, always
// present), every tag a target is bound to, every target port group the
// framework has ports in, and every group with a stored state.
func (m *Manager) tagTargetsLocked(st *store.State) map[uint16][]string {
	out := map[uint16][]string{stmf.DefaultPortGroup: nil}
	for _, t := range st.Targets {
		for _, g := range m.portGroupsLocked(t) { // targets.go
			out[g] = append(out[g], t.Name)
		}
	}
	for g := range m.fw.ALUAStates() {
		if _, ok := out[g]; !ok {
			out[g] = nil
		}
	}
	for _, g := range st.ALUA {
		if _, ok := out[g.Tag]; !ok {
			out[g.Tag] = nil
		}
	}
	return out
}

// aluaGroups returns the target port groups with their live states, by tag.
func (m *Manager) aluaGroups() []api.ALUAGroup {
	m.mu.RLock()
	tags := m.tagTargetsLocked(m.state)
	m.mu.RUnlock()
	live := m.fw.ALUAStates()
	out := make([]api.ALUAGroup, 0, len(tags))
	for tag, targets := range tags {
		st, ok := live[tag]
		if !ok {
			st = stmf.ALUAActiveOptimized
		}
		if targets == nil {
			targets = []string{}
		}
		slices.Sort(targets)
		out = append(out, api.ALUAGroup{Tag: tag, State: apiALUAState(st), Targets: slices.Compact(targets)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// SetALUAState is stmfadm set-alua-state: it sets a target port group's
// access state, durably, and raises ASYMMETRIC ACCESS STATE CHANGED on
// every session. Setting the current state again changes nothing.
func (m *Manager) SetALUAState(_ context.Context, req api.SetALUAStateRequest) (api.ALUAGroup, error) {
	if req.Tag < 1 || req.Tag > maxTag {
		return api.ALUAGroup{}, api.Errorf(api.CodeInvalidTPGTag, fmt.Sprint(req.Tag),
			"a target port group is a portal group tag, 1 to %d", maxTag)
	}
	name, ok := api.CanonicalALUAState(req.State)
	if !ok {
		return api.ALUAGroup{}, api.Errorf(api.CodeInvalidALUAState, req.State,
			"unknown ALUA state (valid: active-optimized, active-nonoptimized, standby, unavailable, transitioning)")
	}
	state, _ := stmfALUAState(name)
	tag := uint16(req.Tag)

	m.mu.Lock()
	defer m.mu.Unlock()
	tags := m.tagTargetsLocked(m.state)
	targets, known := tags[tag]
	if !known {
		return api.ALUAGroup{}, api.Errorf(api.CodeTPGTagNotFound, fmt.Sprint(req.Tag),
			"no target is bound to a portal group with this tag (see itadm list-target -v)")
	}
	group := func() api.ALUAGroup {
		ts := slices.Clone(targets)
		if ts == nil {
			ts = []string{}
		}
		slices.Sort(ts)
		return api.ALUAGroup{Tag: tag, State: name, Targets: slices.Compact(ts)}
	}
	old, set := m.fw.ALUAStates()[tag]
	if !set {
		old = stmf.ALUAActiveOptimized
	}
	stored := slices.IndexFunc(m.state.ALUA, func(g store.ALUAGroup) bool { return g.Tag == tag })
	if old == state && (stored >= 0) == (state != stmf.ALUAActiveOptimized) {
		return group(), nil // already so, live and stored
	}

	next := m.state.Clone()
	next.ALUA = slices.DeleteFunc(next.ALUA, func(g store.ALUAGroup) bool { return g.Tag == tag })
	if state != stmf.ALUAActiveOptimized {
		next.ALUA = append(next.ALUA, store.ALUAGroup{Tag: tag, State: name})
		sort.Slice(next.ALUA, func(i, j int) bool { return next.ALUA[i].Tag < next.ALUA[j].Tag })
	}
	// Durable first: a failed save leaves the live state untouched.
	if err := m.commitLocked(next, nil); err != nil {
		return api.ALUAGroup{}, err
	}
	if err := m.fw.SetALUAState(tag, state); err != nil {
		// Not reached for a valid state; keep store and framework agreeing.
		prev := m.state.Clone()
		prev.ALUA = slices.DeleteFunc(prev.ALUA, func(g store.ALUAGroup) bool { return g.Tag == tag })
		if old != stmf.ALUAActiveOptimized {
			prev.ALUA = append(prev.ALUA, store.ALUAGroup{Tag: tag, State: apiALUAState(old)})
		}
		_ = m.commitLocked(prev, nil)
		return api.ALUAGroup{}, api.Errorf(api.CodeInternal, fmt.Sprint(req.Tag), "setting the ALUA state: %v", err)
	}
	m.log.Info("ALUA state changed", "tpg_tag", tag, "from", apiALUAState(old), "to", name)
	return group(), nil
}
