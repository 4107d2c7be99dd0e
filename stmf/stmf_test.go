package stmf

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
)

// fakeTransport records what the framework delivers.
type fakeTransport struct {
	mu      sync.Mutex
	results []*Result
	drops   int
	done    chan struct{}
}

func newFakeTransport() *fakeTransport { return &fakeTransport{done: make(chan struct{}, 1)} }

func (f *fakeTransport) ReceiveData(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeTransport) Deliver(r *Result) {
	f.mu.Lock()
	f.results = append(f.results, r)
	f.mu.Unlock()
	f.done <- struct{}{}
}

func (f *fakeTransport) Drop() {
	f.mu.Lock()
	f.drops++
	f.mu.Unlock()
	f.done <- struct{}{}
}

func (f *fakeTransport) wait(t *testing.T) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		t.Fatal("task did not finish")
	}
}

// fakeLU answers GOOD to everything, or blocks until released when hold is set.
type fakeLU struct {
	guid   GUID
	hold   chan struct{}
	access atomic.Uint32 // Task.Access of the last task
}

func (l *fakeLU) GUID() GUID { return l.guid }
func (l *fakeLU) Execute(t *Task) {
	l.access.Store(uint32(t.Access))
	if l.hold != nil {
		<-l.hold
	}
	t.CompleteData([]byte{byte(l.guid[15])}, nil)
}

func guidN(n byte) GUID {
	var g GUID
	g[0] = 0x60
	g[15] = n
	return g
}

func submit(t *testing.T, s *Session, lun scsi.LUN, cdb ...byte) *fakeTransport {
	t.Helper()
	tr := newFakeTransport()
	task := NewTask(tr)
	task.RawLUN = scsi.EncodeLUN(lun)
	task.CDB = cdb
	s.Submit(task)
	tr.wait(t)
	return tr
}

// clearUA consumes pending unit attentions with TEST UNIT READY, as
// initiators do after login.
func clearUA(t *testing.T, s *Session, lun scsi.LUN) {
	t.Helper()
	for i := 0; i < 8; i++ {
		if submit(t, s, lun, 0x00, 0, 0, 0, 0, 0).results[0].Status == scsi.StatusGood {
			return
		}
	}
	t.Fatal("unit attentions never cleared")
}

func reportLUNs(t *testing.T, s *Session) []scsi.LUN {
	t.Helper()
	tr := submit(t, s, 0, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0)
	r := tr.results[0]
	if r.Status != scsi.StatusGood {
		t.Fatalf("REPORT LUNS status %v", r.Status)
	}
	n := binary.BigEndian.Uint32(r.Data[0:4]) / 8
	var out []scsi.LUN
	for i := uint32(0); i < n; i++ {
		var b [8]byte
		copy(b[:], r.Data[8+8*i:])
		l, ok := scsi.DecodeLUN(b)
		if !ok {
			t.Fatalf("bad LUN encoding % x", b)
		}
		out = append(out, l)
	}
	return out
}

func senseOf(t *testing.T, r *Result) *scsi.Sense {
	t.Helper()
	if r.Status != scsi.StatusCheckCondition {
		t.Fatalf("status %v, want CHECK CONDITION", r.Status)
	}
	s, err := scsi.ParseSense(r.Sense)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestViewsAndLUNMaps(t *testing.T) {
	fw := New(nil)
	if err := fw.CreateHostGroup("hg1"); err != nil {
		t.Fatal(err)
	}
	if err := fw.AddHostGroupMember("hg1", "iqn.a"); err != nil {
		t.Fatal(err)
	}
	for i := byte(1); i <= 3; i++ {
		if err := fw.RegisterLU(&fakeLU{guid: guidN(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// First view for everyone gets LUN 0, the next LUN 1.
	if n, err := fw.AddView(guidN(1), ViewEntry{}, true); err != nil || n != 0 {
		t.Fatalf("AddView 1 = %v, %v", n, err)
	}
	if n, err := fw.AddView(guidN(2), ViewEntry{HostGroup: "hg1"}, true); err != nil || n != 1 {
		t.Fatalf("AddView 2 = %v, %v", n, err)
	}
	// Conflicts: same LU, overlapping groups.
	if _, err := fw.AddView(guidN(1), ViewEntry{HostGroup: "hg1"}, true); !errors.Is(err, ErrViewConflict) {
		t.Fatalf("overlapping view: %v", err)
	}
	// Explicit LUN already used in an overlapping map.
	if _, err := fw.AddView(guidN(3), ViewEntry{LUN: 1}, false); !errors.Is(err, ErrLUNInUse) {
		t.Fatalf("LUN in use: %v", err)
	}
	if _, err := fw.AddView(guidN(3), ViewEntry{LUN: scsi.MaxLUN}, false); !errors.Is(err, ErrInvalidLUN) {
		t.Fatalf("LUN range: %v", err)
	}
	port, err := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	sb, _ := port.OpenSession(Initiator{Name: "iqn.b", PortName: "iqn.b,i,0x1"})
	defer sa.Close()
	defer sb.Close()
	// A new nexus reports POWER ON, RESET... once per LUN, INQUIRY excepted.
	if r := submit(t, sa, 0, 0x12, 0, 0, 0, 36, 0).results[0]; r.Status != scsi.StatusGood {
		t.Errorf("INQUIRY reported the UA: %v", r.Status)
	}
	if s := senseOf(t, submit(t, sa, 0, 0x00, 0, 0, 0, 0, 0).results[0]); s.Key != scsi.KeyUnitAttention || s.ASC != scsi.ASCPowerOnReset {
		t.Errorf("first TUR: %+v", s)
	}
	clearUA(t, sa, 1)
	clearUA(t, sb, 0)
	if got := reportLUNs(t, sa); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("iqn.a sees %v, want [0 1]", got)
	}
	if got := reportLUNs(t, sb); len(got) != 1 || got[0] != 0 {
		t.Errorf("iqn.b sees %v, want [0]", got)
	}
	// Unmapped LUN: INQUIRY has PQ 011b, other commands LU NOT SUPPORTED.
	tr := submit(t, sb, 1, 0x12, 0, 0, 0, 36, 0)
	if d := tr.results[0].Data; len(d) != 36 || d[0] != 0x7f {
		t.Errorf("INQUIRY to unmapped LUN: % x", d)
	}
	if s := senseOf(t, submit(t, sb, 1, 0x00, 0, 0, 0, 0, 0).results[0]); s.Key != scsi.KeyIllegalRequest || s.ASC != scsi.ASCLUNotSupported {
		t.Errorf("TUR to unmapped LUN: %+v", s)
	}
	// A view change raises REPORTED LUNS DATA HAS CHANGED only where the map changed.
	if _, err := fw.AddView(guidN(3), ViewEntry{HostGroup: "hg1"}, true); err != nil {
		t.Fatal(err)
	}
	if s := senseOf(t, submit(t, sa, 0, 0x00, 0, 0, 0, 0, 0).results[0]); s.Key != scsi.KeyUnitAttention || s.ASC != scsi.ASCReportedLUNsDataChanged {
		t.Errorf("affected session: %+v", s)
	}
	if r := submit(t, sa, 0, 0x00, 0, 0, 0, 0, 0).results[0]; r.Status != scsi.StatusGood {
		t.Errorf("UA not cleared: %v", r.Status)
	}
	if r := submit(t, sb, 0, 0x00, 0, 0, 0, 0, 0).results[0]; r.Status != scsi.StatusGood {
		t.Errorf("unaffected session got %v", r.Status)
	}
	// Deregistering without keep removes the views.
	if err := fw.DeregisterLU(guidN(3), false); err != nil {
		t.Fatal(err)
	}
	if len(fw.Views(guidN(3))) != 0 {
		t.Error("views survived delete without keep")
	}
}

func TestEncodeDecodeLUN(t *testing.T) {
	for _, n := range []scsi.LUN{0, 1, 255, 256, 1023, 16383} {
		got, ok := scsi.DecodeLUN(scsi.EncodeLUN(n))
		if !ok || got != n {
			t.Errorf("LUN %d round trip = %d %v", n, got, ok)
		}
	}
	// LUN 256 must not alias onto LUN 0 (a one-byte decoder's bug).
	if b := scsi.EncodeLUN(256); b[1] == 0 && b[0] == 0 {
		t.Errorf("LUN 256 encoded as % x", b)
	}
	for _, b := range [][8]byte{
		{0x01, 0, 0, 0, 0, 0, 0, 0},    // peripheral with bus id
		{0x00, 0x01, 0x00, 0x01},       // second level
		{0x80, 0x01, 0, 0, 0, 0, 0, 0}, // logical unit addressing
		{0xc0, 0x01, 0, 0, 0, 0, 0, 0}, // extended
	} {
		if _, ok := scsi.DecodeLUN(b); ok {
			t.Errorf("DecodeLUN(% x) accepted", b)
		}
	}
}

func TestAbortDropsResponse(t *testing.T) {
	fw := New(nil)
	l := &fakeLU{guid: guidN(1), hold: make(chan struct{})}
	_ = fw.RegisterLU(l)
	_, _ = fw.AddView(l.guid, ViewEntry{}, true)
	port, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	s, _ := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	go func() { l.hold <- struct{}{} }()
	clearUA(t, s, 0)
	tr := newFakeTransport()
	task := NewTask(tr)
	task.Tag = 7
	task.RawLUN = scsi.EncodeLUN(0)
	task.CDB = []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	s.Submit(task)
	if resp := s.AbortTask(7); resp != TMFComplete {
		t.Fatalf("AbortTask = %v", resp)
	}
	if resp := s.AbortTask(99); resp != TMFComplete {
		t.Fatalf("AbortTask of unknown tag = %v, want FUNCTION COMPLETE", resp)
	}
	close(l.hold) // the backend finishes; its reply must be dropped
	tr.wait(t)
	if len(tr.results) != 0 || tr.drops != 1 {
		t.Errorf("aborted task: %d results, %d drops", len(tr.results), tr.drops)
	}
	s.Close()
}

func TestReportLUNsInvalid(t *testing.T) {
	fw := New(nil)
	port, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	s, _ := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	defer s.Close()
	for name, cdb := range map[string][]byte{
		"short alloc":   {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0},
		"bad select":    {0xa0, 0, 0x55, 0, 0, 0, 0, 0, 0x10, 0, 0, 0},
		"truncated cdb": {0xa0, 0, 0},
	} {
		if sn := senseOf(t, submit(t, s, 0, cdb...).results[0]); sn.Key != scsi.KeyIllegalRequest {
			t.Errorf("%s: %+v", name, sn)
		}
	}
	// An empty map still answers with an empty list.
	if got := reportLUNs(t, s); len(got) != 0 {
		t.Errorf("empty map reports %v", got)
	}
}

func TestGroupRules(t *testing.T) {
	fw := New(nil)
	for _, name := range []string{"", "*bad"} {
		if err := fw.CreateHostGroup(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateHostGroup(%q) = %v", name, err)
		}
	}
	if err := fw.CreateHostGroup("hg1"); err != nil {
		t.Fatal(err)
	}
	if err := fw.CreateHostGroup("hg1"); !errors.Is(err, ErrGroupExists) {
		t.Errorf("duplicate group: %v", err)
	}
	_ = fw.CreateHostGroup("HG1") // case-sensitive: a different group
	if err := fw.AddHostGroupMember("hg1", "iqn.a"); err != nil {
		t.Fatal(err)
	}
	if err := fw.AddHostGroupMember("HG1", "iqn.a"); !errors.Is(err, ErrMemberExists) {
		t.Errorf("member in two groups: %v", err)
	}
	if err := fw.RemoveHostGroupMember("HG1", "iqn.a"); !errors.Is(err, ErrNotMember) {
		t.Errorf("remove non-member: %v", err)
	}
	if _, err := fw.AddView(guidN(1), ViewEntry{HostGroup: "nosuch"}, true); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("view with unknown group: %v", err)
	}
	if _, err := fw.AddView(guidN(1), ViewEntry{HostGroup: "hg1"}, true); err != nil {
		t.Fatal(err)
	}
	if err := fw.DeleteHostGroup("hg1"); !errors.Is(err, ErrGroupInUse) {
		t.Errorf("delete group in use: %v", err)
	}
	if err := fw.DeleteHostGroup("HG1"); err != nil {
		t.Errorf("delete unused group: %v", err)
	}
	if got := fw.HostGroups(); len(got) != 1 || got["hg1"][0] != "iqn.a" {
		t.Errorf("HostGroups = %v", got)
	}
}

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

// wrappedLU is an adapter around an LU, as stmfd's management plane uses.
type wrappedLU struct{ LogicalUnit }

func (w wrappedLU) UnwrapLU() LogicalUnit { return w.LogicalUnit }

// Session.LU hands out the provider's own LU behind an adapter, so that
// EXTENDED COPY can resolve another LU of the same provider.
func TestSessionLUUnwraps(t *testing.T) {
	fw := New(nil)
	inner := &fakeLU{guid: guidN(1)}
	plain := &fakeLU{guid: guidN(2)}
	for _, lu := range []LogicalUnit{wrappedLU{wrappedLU{inner}}, plain} {
		if err := fw.RegisterLU(lu); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.AddView(lu.GUID(), ViewEntry{}, true); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	s, err := p.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		g    GUID
		want LogicalUnit
	}{{guidN(1), inner}, {guidN(2), plain}, {guidN(3), nil}} {
		got, ok := s.LU(tc.g)
		if ok != (tc.want != nil) || got != tc.want {
			t.Errorf("LU(%v) = %v, %v; want %v", tc.g, got, ok, tc.want)
		}
	}
	if got := unwrapLU(wrappedLU{nil}); got != (wrappedLU{nil}) {
		t.Errorf("an adapter around nothing unwrapped to %v", got)
	}
}
