package stmf

import (
	"sync"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// resetLU is a gateLU that records Reset calls.
type resetLU struct {
	*gateLU
	mu     sync.Mutex
	resets []*Nexus
}

func (l *resetLU) Reset(n *Nexus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resets = append(l.resets, n)
}

// TestLUHostAbortTasks: only the matching tasks are aborted (their results
// dropped); the others complete normally.
func TestLUHostAbortTasks(t *testing.T) {
	fw, s, l := newGateSession(t, 1, 2, 3)
	keep := send(s, 1, scsi.TaskSimple)
	expectStart(t, l, 1)
	victim := send(s, 2, scsi.TaskSimple)
	expectStart(t, l, 2)
	victim2 := send(s, 3, scsi.TaskSimple)
	expectStart(t, l, 3)
	if n := (luHost{fw, l.guid}).AbortTasks(func(x *Task) bool { return x.Tag != 1 }); n != 2 {
		t.Fatalf("aborted %d tasks, want 2", n)
	}
	if n := (luHost{fw, guidN(99)}).AbortTasks(func(*Task) bool { return true }); n != 0 {
		t.Fatalf("aborted %d tasks of an unknown LU", n)
	}
	for _, tag := range []uint64{1, 2, 3} {
		close(l.release[tag])
	}
	for _, tr := range []*fakeTransport{keep, victim, victim2} {
		tr.wait(t)
	}
	if len(keep.results) != 1 || keep.drops != 0 {
		t.Fatalf("kept task: %d results, %d drops", len(keep.results), keep.drops)
	}
	for _, tr := range []*fakeTransport{victim, victim2} {
		if len(tr.results) != 0 || tr.drops != 1 {
			t.Fatalf("aborted task: %d results, %d drops", len(tr.results), tr.drops)
		}
	}
}

// TestCloseResetsNexus: losing an I_T nexus resets its per-nexus state
// in each LU it sees, after its tasks are gone.
func TestCloseResetsNexus(t *testing.T) {
	fw := New(nil)
	l := &resetLU{gateLU: &gateLU{guid: guidN(1), started: make(chan uint64, 4), release: map[uint64]chan struct{}{}}}
	if err := fw.RegisterLU(l); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(l.guid, ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	port, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	s, _ := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	other, _ := port.OpenSession(Initiator{Name: "iqn.b", PortName: "iqn.b,i,0x2"})
	s.Close()
	s.Close() // idempotent: one reset
	l.mu.Lock()
	got := append([]*Nexus(nil), l.resets...)
	l.mu.Unlock()
	if len(got) != 1 || got[0] == nil || got[0].InitiatorPort != "iqn.a,i,0x1" || got[0].TargetPort != "iqn.t,t,0x0001" {
		t.Fatalf("resets %+v, want one for iqn.a's nexus", got)
	}
	other.Close()
}

// hostedLU records the host it is attached to.
type hostedLU struct {
	fakeLU
	host LUHost
}

func (l *hostedLU) Attach(h LUHost) { l.host = h }

// TestLUHost: RegisterLU hands the LU (also behind an adapter) a host
// that raises unit attentions on the matching nexuses that see the LU
// and names target ports by relative id, also after they went away.
func TestLUHost(t *testing.T) {
	fw := New(nil)
	l := &hostedLU{fakeLU: fakeLU{guid: guidN(1)}}
	wrapped := &hostedLU{fakeLU: fakeLU{guid: guidN(2)}}
	for _, lu := range []LogicalUnit{l, wrappedLU{wrapped}} {
		if err := fw.RegisterLU(lu); err != nil {
			t.Fatal(err)
		}
	}
	if l.host == nil || wrapped.host == nil {
		t.Fatal("RegisterLU did not attach a host")
	}
	if _, err := fw.AddView(l.guid, ViewEntry{LUN: 3}, false); err != nil {
		t.Fatal(err)
	}
	p1, _ := fw.RegisterPort(PortSpec{TargetName: "t", Name: "t,p1", Group: DefaultPortGroup})
	p2, _ := fw.RegisterPort(PortSpec{TargetName: "t", Name: "t,p2", Group: DefaultPortGroup})
	a, _ := p1.OpenSession(Initiator{Name: "a"})
	b, _ := p2.OpenSession(Initiator{Name: "b"})
	defer a.Close()
	defer b.Close()
	for _, s := range []*Session{a, b} {
		s.popUA(3) // POWER ON
	}
	l.host.RaiseUA(scsi.ASCModeParametersChanged, func(n *Nexus) bool { return n.InitiatorName == "b" })
	if a.hasUA(3) {
		t.Error("unit attention on a nexus that did not match")
	}
	if asc, ok := b.popUA(3); !ok || asc != scsi.ASCModeParametersChanged {
		t.Errorf("matching nexus: %v %v", asc, ok)
	}
	wrapped.host.RaiseUA(scsi.ASCCapacityDataChanged, nil)
	l.host.RaiseUA(scsi.ASCCapacityDataChanged, nil)
	for _, s := range []*Session{a, b} {
		if asc, ok := s.popUA(3); !ok || asc != scsi.ASCCapacityDataChanged || s.hasUA(3) {
			t.Errorf("all nexuses: %v %v", asc, ok)
		}
	}
	p2.Deregister()
	for _, tc := range []struct {
		rel  uint16
		name string
	}{{p1.RelativeID, "t,p1"}, {p2.RelativeID, "t,p2"}, {99, ""}} {
		if name, ok := l.host.TargetPort(tc.rel); name != tc.name || ok != (tc.name != "") {
			t.Errorf("TargetPort(%d) = %q %v", tc.rel, name, ok)
		}
	}
}

// TestLUHostTargetPortCount counts the ports an LU's views reach: all
// targets, or only the members of a view's target group.
func TestLUHostTargetPortCount(t *testing.T) {
	fw := New(nil)
	a, b := guidN(1), guidN(2)
	for _, g := range []GUID{a, b} {
		if err := fw.RegisterLU(&gateLU{guid: g}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(g GUID) int { return luHost{fw, g}.TargetPortCount() }
	if n := count(a); n != 0 {
		t.Fatalf("no view, no port: %d", n)
	}
	for _, p := range []PortSpec{
		{TargetName: "iqn.t1", Name: "iqn.t1,t,0x0001"},
		{TargetName: "iqn.t1", Name: "iqn.t1,t,0x0002"}, // a second portal group of t1
		{TargetName: "iqn.t2", Name: "iqn.t2,t,0x0001"},
	} {
		if _, err := fw.RegisterPort(p); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(a); n != 0 {
		t.Fatalf("ports but no view: %d", n)
	}
	if err := fw.CreateTargetGroup("tg2"); err != nil {
		t.Fatal(err)
	}
	if err := fw.AddTargetGroupMember("tg2", "iqn.t2"); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.AddView(b, ViewEntry{TargetGroup: "tg2"}, true); err != nil {
		t.Fatal(err)
	}
	if n := count(b); n != 1 {
		t.Fatalf("view on a one-port target group: %d ports, want 1", n)
	}
	if _, err := fw.AddView(a, ViewEntry{}, true); err != nil {
		t.Fatal(err)
	}
	if n := count(a); n != 3 {
		t.Fatalf("view on all targets: %d ports, want 3", n)
	}
}
