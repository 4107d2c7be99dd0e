package stmf

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"github.com/costar-project/costar/scsi"
)

// ALUAState is an asymmetric access state (SPC-4 5.15.2.2).
type ALUAState uint8

const (
	ALUAActiveOptimized    ALUAState = 0x0
	ALUAActiveNonOptimized ALUAState = 0x1
	ALUAStandby            ALUAState = 0x2
	ALUAUnavailable        ALUAState = 0x3
	ALUATransitioning      ALUAState = 0xf
)

var aluaNames = map[ALUAState]string{
	ALUAActiveOptimized:    "active/optimized",
	ALUAActiveNonOptimized: "active/non-optimized",
	ALUAStandby:            "standby",
	ALUAUnavailable:        "unavailable",
	ALUATransitioning:      "transitioning",
}

func (s ALUAState) String() string {
	if n, ok := aluaNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state 0x%x", uint8(s))
}

// ParseALUAState accepts the names String returns (and "ao", "an", "s", "u", "t").
func ParseALUAState(name string) (ALUAState, error) {
	short := map[string]ALUAState{"ao": ALUAActiveOptimized, "an": ALUAActiveNonOptimized, "s": ALUAStandby, "u": ALUAUnavailable, "t": ALUATransitioning}
	if s, ok := short[name]; ok {
		return s, nil
	}
	for s, n := range aluaNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown ALUA state %q (want active/optimized, active/non-optimized, standby, unavailable or transitioning)", name)
}

// DefaultPortGroup is the target port group a port joins unless told
// otherwise.
const DefaultPortGroup = 1

// SetALUAState changes a target port group's access state for every LU and
// raises ASYMMETRIC ACCESS STATE CHANGED on every session.
func (fw *Framework) SetALUAState(group uint16, st ALUAState) error {
	if _, ok := aluaNames[st]; !ok {
		return fmt.Errorf("stmf: invalid ALUA state %d", st)
	}
	fw.mu.Lock()
	next := map[uint16]ALUAState{}
	var old ALUAState
	known := false
	if cur := fw.alua.Load(); cur != nil {
		for g, v := range *cur {
			next[g] = v
		}
		old, known = (*cur)[group]
	}
	next[group] = st
	fw.alua.Store(&next)
	sessions := make([]*Session, 0, len(fw.sessions))
	for s := range fw.sessions {
		sessions = append(sessions, s)
	}
	fw.mu.Unlock()
	if known && old == st {
		return nil
	}
	for _, s := range sessions {
		s.raiseForLUNs(s.LUNs(), scsi.ASCAsymmetricAccessChanged)
	}
	return nil
}

// ALUAStates returns every known target port group and its state.
func (fw *Framework) ALUAStates() map[uint16]ALUAState {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := map[uint16]ALUAState{}
	for _, p := range fw.ports {
		out[p.Group] = ALUAActiveOptimized
	}
	if cur := fw.alua.Load(); cur != nil {
		for g, st := range *cur {
			out[g] = st
		}
	}
	return out
}

// aluaState is lock-free: it runs for every command.
func (fw *Framework) aluaState(group uint16) ALUAState {
	if cur := fw.alua.Load(); cur != nil {
		return (*cur)[group] // zero value is active/optimized
	}
	return ALUAActiveOptimized
}

// reportTargetPortGroups answers REPORT TARGET PORT GROUPS for a session.
func (s *Session) reportTargetPortGroups(t *Task) { t.Complete(ReportTargetPortGroups(t)) }

// ReportTargetPortGroups is the one REPORT TARGET PORT GROUPS (MAINTENANCE
// IN 0Ah): every group that has ports, in length-only or extended format.
// The framework answers it itself (it owns ports and ALUA states) before
// any LU sees it; an LU provider that lists the command in REPORT
// SUPPORTED OPERATION CODES delegates to it. A task without a session
// (an LU run alone) sees no groups.
func ReportTargetPortGroups(t *Task) *Result {
	cdb := t.CDB
	if len(cdb) < 12 {
		return checkCondition(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, 0))
	}
	format := cdb[1] >> 5
	if format > 1 {
		return checkCondition(scsi.IllegalRequest(scsi.ASCInvalidFieldInCDB, 1))
	}
	alloc := binary.BigEndian.Uint32(cdb[6:10])
	groups := map[uint16][]uint16{}
	if t.Session == nil {
		return rtpgResult(format, groups, nil, alloc)
	}
	fw := t.Session.fw
	fw.mu.Lock()
	for _, p := range fw.ports {
		groups[p.Group] = append(groups[p.Group], p.RelativeID)
	}
	fw.mu.Unlock()
	states := map[uint16]ALUAState{}
	for g := range groups {
		states[g] = fw.accessFor(t.reg, g)
	}
	// A cluster's other nodes: their groups, as this node last heard.
	if t.reg != nil {
		if a := t.reg.access.Load(); a != nil {
			for _, r := range a.Remote {
				if _, local := groups[r.ID]; local {
					continue
				}
				groups[r.ID] = slices.Clone(r.Ports)
				states[r.ID] = r.State
			}
		}
	}
	return rtpgResult(format, groups, states, alloc)
}

// rtpgResult encodes the REPORT TARGET PORT GROUPS parameter data.
func rtpgResult(format byte, groups map[uint16][]uint16, states map[uint16]ALUAState, alloc uint32) *Result {
	ids := make([]uint16, 0, len(groups))
	for g := range groups {
		ids = append(ids, g)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })

	buf := make([]byte, 4, 64)
	if format == 1 {
		buf = append(buf, 0x10, 0, 0, 0) // extended header, implicit transition time 0
	}
	for _, g := range ids {
		ports := groups[g]
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
		d := make([]byte, 8, 8+4*len(ports))
		d[0] = byte(states[g]) & 0x0f
		d[1] = 0x80 | 0x08 | 0x04 | 0x02 | 0x01 // T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP
		binary.BigEndian.PutUint16(d[2:4], g)
		d[7] = byte(len(ports))
		for _, rel := range ports {
			d = append(d, 0, 0, byte(rel>>8), byte(rel))
		}
		buf = append(buf, d...)
	}
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(buf)-4))
	if uint32(len(buf)) > alloc {
		buf = buf[:alloc]
	}
	return &Result{Status: scsi.StatusGood, Data: buf, TransferLen: uint32(len(buf))}
}
