package stmf

import (
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/scsi"
)

func TestALUA(t *testing.T) {
	fw := New(nil)
	lu := &fakeLU{guid: guidN(1)}
	_ = fw.RegisterLU(lu)
	_, _ = fw.AddView(guidN(1), ViewEntry{}, true)
	p1, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	p2, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0002", Group: 2})
	s1, _ := p1.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	s2, _ := p2.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	defer s1.Close()
	defer s2.Close()
	clearUA(t, s1, 0)
	clearUA(t, s2, 0)
	if err := fw.SetALUAState(2, ALUAStandby); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Session{s1, s2} {
		if sn := senseOf(t, submit(t, s, 0, 0x00, 0, 0, 0, 0, 0).results[0]); sn.Key != scsi.KeyUnitAttention || sn.ASC != scsi.ASCAsymmetricAccessChanged {
			t.Errorf("state change UA: %+v", sn)
		}
	}
	// The LU learns each task's access state (it refuses what the state
	// does not allow: lu/alua_test.go); stmf answers RTPG itself.
	submit(t, s2, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0)
	if st := ALUAState(lu.access.Load()); st != ALUAStandby {
		t.Errorf("READ on standby port reached the LU as %v", st)
	}
	if r := submit(t, s1, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0).results[0]; r.Status != scsi.StatusGood || ALUAState(lu.access.Load()) != ALUAActiveOptimized {
		t.Errorf("READ on optimized port: %v, %v", r.Status, ALUAState(lu.access.Load()))
	}
	r := submit(t, s2, 0, 0xa3, 0x0a|0x20, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0).results[0]
	if r.Status != scsi.StatusGood {
		t.Fatalf("RTPG: %v", r.Status)
	}
	d := r.Data
	if binary.BigEndian.Uint32(d[0:4]) != uint32(len(d)-4) || d[4] != 0x10 {
		t.Fatalf("RTPG header % x", d[:8])
	}
	// Two descriptors: group 1 active/optimized with port 1, group 2 standby with port 2.
	g1, g2 := d[8:20], d[20:32]
	if g1[0]&0x0f != 0 || binary.BigEndian.Uint16(g1[2:4]) != 1 || g1[7] != 1 || binary.BigEndian.Uint16(g1[10:12]) != p1.RelativeID {
		t.Errorf("group 1 descriptor % x", g1)
	}
	if g2[0]&0x0f != byte(ALUAStandby) || binary.BigEndian.Uint16(g2[2:4]) != 2 || binary.BigEndian.Uint16(g2[10:12]) != p2.RelativeID {
		t.Errorf("group 2 descriptor % x", g2)
	}
	if st := fw.ALUAStates(); st[1] != ALUAActiveOptimized || st[2] != ALUAStandby {
		t.Errorf("ALUAStates = %v", st)
	}
	if _, err := ParseALUAState("bogus"); err == nil {
		t.Error("ParseALUAState accepted bogus")
	}
}
