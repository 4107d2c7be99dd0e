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

// TestAbortTasksWhere: only the matching tasks are aborted (their results
// dropped); the others complete normally.
func TestAbortTasksWhere(t *testing.T) {
	fw, s, l := newGateSession(t, 1, 2, 3)
	keep := send(s, 1, scsi.TaskSimple)
	expectStart(t, l, 1)
	victim := send(s, 2, scsi.TaskSimple)
	expectStart(t, l, 2)
	victim2 := send(s, 3, scsi.TaskSimple)
	expectStart(t, l, 3)
	if n := fw.AbortTasksWhere(l.guid, func(x *Task) bool { return x.Tag != 1 }); n != 2 {
		t.Fatalf("aborted %d tasks, want 2", n)
	}
	if n := fw.AbortTasksWhere(guidN(99), func(*Task) bool { return true }); n != 0 {
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
	port, _ := fw.RegisterPort("iqn.t", "iqn.t,t,0x0001")
	s, _ := port.OpenSession("iqn.a", "iqn.a,i,0x1")
	other, _ := port.OpenSession("iqn.b", "iqn.b,i,0x2")
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
