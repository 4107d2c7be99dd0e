package stmf

import (
	"errors"
	"testing"
)

func TestRemoveView(t *testing.T) {
	fw := New(nil)
	lu := &fakeLU{guid: GUID{0x60, 1}}
	if err := fw.RegisterLU(lu); err != nil {
		t.Fatal(err)
	}
	if err := fw.CreateHostGroup("hg"); err != nil {
		t.Fatal(err)
	}
	if err := fw.AddHostGroupMember("hg", "iqn.2026-11.test:a"); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(lu.guid, ViewEntry{HostGroup: "hg", LUN: 2}, false); err != nil {
		t.Fatal(err)
	}
	p, err := fw.RegisterPort(PortSpec{TargetName: "iqn.2026-11.test:t", Name: "iqn.2026-11.test:t,t,0x0001", Group: DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.OpenSession(Initiator{Name: "iqn.2026-11.test:a", PortName: "iqn.2026-11.test:a,i,0x1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.LUNs(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("LUNs before: %v", got)
	}
	if err := fw.RemoveView(lu.guid, ViewEntry{HostGroup: "hg", LUN: 3}); !errors.Is(err, ErrViewNotFound) {
		t.Fatalf("removing a missing view: %v", err)
	}
	if err := fw.RemoveView(lu.guid, ViewEntry{HostGroup: "hg", LUN: 2}); err != nil {
		t.Fatal(err)
	}
	if got := s.LUNs(); len(got) != 0 {
		t.Fatalf("LUNs after: %v", got)
	}
	if v := fw.Views(lu.guid); len(v) != 0 {
		t.Fatalf("views after: %v", v)
	}
	// The group is no longer in use.
	if err := fw.DeleteHostGroup("hg"); err != nil {
		t.Fatal(err)
	}
}
