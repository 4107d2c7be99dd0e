package stmf

import (
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// rtpgStates decodes REPORT TARGET PORT GROUPS (extended format) into
// group -> state and group -> ports.
func rtpgStates(t *testing.T, d []byte) (map[uint16]ALUAState, map[uint16][]uint16) {
	t.Helper()
	states, ports := map[uint16]ALUAState{}, map[uint16][]uint16{}
	for off := 8; off+8 <= len(d); {
		id := binary.BigEndian.Uint16(d[off+2 : off+4])
		n := int(d[off+7])
		states[id] = ALUAState(d[off] & 0x0f)
		for i := 0; i < n; i++ {
			p := off + 8 + 4*i
			ports[id] = append(ports[id], binary.BigEndian.Uint16(d[p+2:p+4]))
		}
		off += 8 + 4*n
	}
	return states, ports
}

func TestLUAccess(t *testing.T) {
	fw := New(nil)
	fw.SetRelativePortIDBase(257)
	// Set before the LU registers: its first command already sees standby.
	if err := fw.SetLUAccess(guidN(1), &LUAccess{Local: ALUAStandby, Remote: []RemoteGroup{{ID: 7, State: ALUAActiveOptimized, Ports: []uint16{513}}}}); err != nil {
		t.Fatal(err)
	}
	lu1, lu2 := &fakeLU{guid: guidN(1)}, &fakeLU{guid: guidN(2)}
	_ = fw.RegisterLU(lu1)
	_ = fw.RegisterLU(lu2)
	_, _ = fw.AddView(guidN(1), ViewEntry{LUN: 0}, false)
	_, _ = fw.AddView(guidN(2), ViewEntry{LUN: 1}, false)
	p, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0003", Group: 3})
	if p.RelativeID != 257 {
		t.Errorf("relative port id %d, want the base 257", p.RelativeID)
	}
	s, _ := p.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	defer s.Close()
	clearUA(t, s, 0)
	clearUA(t, s, 1)

	submit(t, s, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0)
	if st := ALUAState(lu1.access.Load()); st != ALUAStandby {
		t.Errorf("LU 1 saw %v, want standby", st)
	}
	submit(t, s, 1, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0)
	if st := ALUAState(lu2.access.Load()); st != ALUAActiveOptimized {
		t.Errorf("LU 2 (no per-LU state) saw %v", st)
	}
	rtpg := func(lun scsi.LUN) []byte {
		r := submit(t, s, lun, 0xa3, 0x0a|0x20, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0).results[0]
		if r.Status != scsi.StatusGood {
			t.Fatalf("RTPG LUN %d: %v", lun, r.Status)
		}
		return r.Data
	}
	st, ports := rtpgStates(t, rtpg(0))
	if st[3] != ALUAStandby || st[7] != ALUAActiveOptimized || len(ports[7]) != 1 || ports[7][0] != 513 || ports[3][0] != 257 {
		t.Errorf("LU 1 RTPG: states %v ports %v", st, ports)
	}
	if st, _ := rtpgStates(t, rtpg(1)); len(st) != 1 || st[3] != ALUAActiveOptimized {
		t.Errorf("LU 2 RTPG: %v", st)
	}

	// The flip (takeover): a UA on the LU that changed, none on the other.
	if err := fw.SetLUAccess(guidN(1), &LUAccess{Local: ALUAActiveOptimized, Remote: []RemoteGroup{{ID: 7, State: ALUAStandby, Ports: []uint16{513}}}}); err != nil {
		t.Fatal(err)
	}
	if sn := senseOf(t, submit(t, s, 0, 0x00, 0, 0, 0, 0, 0).results[0]); sn.Key != scsi.KeyUnitAttention || sn.ASC != scsi.ASCAsymmetricAccessChanged {
		t.Errorf("flip UA: %+v", sn)
	}
	if r := submit(t, s, 1, 0x00, 0, 0, 0, 0, 0).results[0]; r.Status != scsi.StatusGood {
		t.Errorf("LU 2 got %v after LU 1's flip", r.Status)
	}
	// Setting the same state again raises nothing.
	_ = fw.SetLUAccess(guidN(1), &LUAccess{Local: ALUAActiveOptimized, Remote: []RemoteGroup{{ID: 7, State: ALUAStandby, Ports: []uint16{513}}}})
	if r := submit(t, s, 0, 0x00, 0, 0, 0, 0, 0).results[0]; r.Status != scsi.StatusGood {
		t.Errorf("repeat set raised %v", r.Status)
	}
	// A group state set by the administrator wins over the LU's.
	_ = fw.SetALUAState(3, ALUAUnavailable)
	clearUA(t, s, 0)
	submit(t, s, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0)
	if st := ALUAState(lu1.access.Load()); st != ALUAUnavailable {
		t.Errorf("group unavailable, LU saw %v", st)
	}
	// A cluster node's default: an LU registered later starts standby.
	_ = fw.SetALUAState(3, ALUAActiveOptimized)
	fw.SetLUAccessDefault(&LUAccess{Local: ALUAStandby})
	lu3 := &fakeLU{guid: guidN(3)}
	_ = fw.RegisterLU(lu3)
	_, _ = fw.AddView(guidN(3), ViewEntry{LUN: 2}, false)
	clearUA(t, s, 2)
	submit(t, s, 2, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0)
	if st := ALUAState(lu3.access.Load()); st != ALUAStandby {
		t.Errorf("LU registered under a standby default saw %v", st)
	}
	if err := fw.SetLUAccess(guidN(1), &LUAccess{Local: 9}); err == nil {
		t.Error("invalid state accepted")
	}
}
