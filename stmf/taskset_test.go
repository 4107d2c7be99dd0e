package stmf

import (
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
)

// gateLU records the order tasks start in and holds each until released.
type gateLU struct {
	guid    GUID
	started chan uint64 // task tags, in start order
	release map[uint64]chan struct{}
}

func (l *gateLU) GUID() GUID { return l.guid }
func (l *gateLU) Execute(t *Task) {
	l.started <- t.Tag
	<-l.release[t.Tag]
	t.CompleteStatus(scsi.StatusGood)
}

func newGateSession(t *testing.T, tags ...uint64) (*Framework, *Session, *gateLU) {
	t.Helper()
	fw := New(nil)
	l := &gateLU{guid: guidN(1), started: make(chan uint64, 16), release: map[uint64]chan struct{}{}}
	for _, tag := range append(tags, 1000) {
		l.release[tag] = make(chan struct{})
	}
	close(l.release[1000]) // tag 1000 is used by clearUA-style probes
	_ = fw.RegisterLU(l)
	_, _ = fw.AddView(l.guid, ViewEntry{}, true)
	port, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
	s, _ := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
	if s.popUA(0); s.hasUA(0) {
		t.Fatal("more than one UA pending on a new nexus")
	}
	return fw, s, l
}

func send(s *Session, tag uint64, attr scsi.TaskAttr) *fakeTransport {
	tr := newFakeTransport()
	task := NewTask(tr)
	task.Tag = tag
	task.Attr = attr
	task.RawLUN = scsi.EncodeLUN(0)
	task.CDB = []byte{0x00, 0, 0, 0, 0, 0}
	s.Submit(task)
	return tr
}

func expectStart(t *testing.T, l *gateLU, want uint64) {
	t.Helper()
	select {
	case got := <-l.started:
		if got != want {
			t.Fatalf("task %d started, want %d", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("task %d never started", want)
	}
}

func expectNoStart(t *testing.T, l *gateLU) {
	t.Helper()
	select {
	case got := <-l.started:
		t.Fatalf("task %d started too early", got)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestOrderedTaskAttribute(t *testing.T) {
	_, s, l := newGateSession(t, 1, 2, 3, 4)
	defer s.Close()
	send(s, 1, scsi.TaskSimple)
	expectStart(t, l, 1)
	tr2 := send(s, 2, scsi.TaskOrdered) // waits for 1
	send(s, 3, scsi.TaskSimple)         // waits for 2
	expectNoStart(t, l)
	send(s, 4, scsi.TaskHeadOfQueue) // jumps the queue
	expectStart(t, l, 4)
	close(l.release[4])
	close(l.release[1])
	expectStart(t, l, 2)
	expectNoStart(t, l)
	close(l.release[2])
	tr2.wait(t)
	expectStart(t, l, 3)
	close(l.release[3])
}

func TestLUNResetAbortsAllNexuses(t *testing.T) {
	fw, s, l := newGateSession(t, 1, 2)
	port := fw.ports["iqn.t,t,0x0001"]
	other, _ := port.OpenSession(Initiator{Name: "iqn.b", PortName: "iqn.b,i,0x1"})
	other.popUA(0)
	tr1 := send(s, 1, scsi.TaskSimple)
	tr2 := send(other, 2, scsi.TaskSimple)
	for i := 0; i < 2; i++ { // both run concurrently, in either order
		select {
		case <-l.started:
		case <-time.After(5 * time.Second):
			t.Fatal("tasks did not start")
		}
	}
	if r := s.QueryTask(1); r != TMFSucceeded {
		t.Errorf("QueryTask(running) = %v", r)
	}
	if r := s.LUNReset(scsi.EncodeLUN(0)); r != TMFComplete {
		t.Fatalf("LUNReset = %v", r)
	}
	if r := s.LUNReset(scsi.EncodeLUN(9)); r != TMFIncorrectLUN {
		t.Errorf("LUNReset of unmapped LUN = %v", r)
	}
	close(l.release[1])
	close(l.release[2])
	tr1.wait(t)
	tr2.wait(t)
	if tr1.drops != 1 || tr2.drops != 1 {
		t.Errorf("reset tasks not dropped: %d %d", tr1.drops, tr2.drops)
	}
	for _, sess := range []*Session{s, other} {
		if asc, ok := sess.popUA(0); !ok || asc != scsi.ASCBusDeviceResetOccurred {
			t.Errorf("UA after LUN reset = %v %v", asc, ok)
		}
	}
	if r := s.QueryTask(1); r != TMFComplete {
		t.Errorf("QueryTask(done) = %v", r)
	}
	s.Close()
	other.Close()
}

func TestClearTaskSetAndNexusReset(t *testing.T) {
	fw, s, l := newGateSession(t, 1, 2)
	other, _ := fw.ports["iqn.t,t,0x0001"].OpenSession(Initiator{Name: "iqn.b", PortName: "iqn.b,i,0x1"})
	other.popUA(0)
	send(other, 2, scsi.TaskSimple)
	expectStart(t, l, 2)
	if r := s.ClearTaskSet(scsi.EncodeLUN(0)); r != TMFComplete {
		t.Fatal(r)
	}
	close(l.release[2])
	if asc, ok := other.popUA(0); !ok || asc != scsi.ASCCommandsClearedByAnother {
		t.Errorf("other nexus UA = %v %v", asc, ok)
	}
	if s.hasUA(0) {
		t.Error("clearing nexus got a UA")
	}
	send(s, 1, scsi.TaskSimple)
	expectStart(t, l, 1)
	if r := s.QueryTaskSet(scsi.EncodeLUN(0)); r != TMFSucceeded {
		t.Errorf("QueryTaskSet = %v", r)
	}
	s.ITNexusReset()
	close(l.release[1])
	if asc, ok := s.popUA(0); !ok || asc != scsi.ASCITNexusLoss {
		t.Errorf("nexus reset UA = %v %v", asc, ok)
	}
	if other.hasUA(0) {
		t.Error("nexus reset leaked a UA to another nexus")
	}
	s.Close()
	other.Close()
}

func TestUAPrecedence(t *testing.T) {
	s := &Session{ua: map[scsi.LUN][]scsi.ASC{}}
	s.raiseForLUNs([]scsi.LUN{0}, scsi.ASCReportedLUNsDataChanged)
	s.raiseForLUNs([]scsi.LUN{0}, scsi.ASCCapacityDataChanged)
	s.raiseForLUNs([]scsi.LUN{0}, scsi.ASCBusDeviceResetOccurred)
	s.raiseForLUNs([]scsi.LUN{0}, scsi.ASCCapacityDataChanged) // duplicate ignored
	want := []scsi.ASC{scsi.ASCBusDeviceResetOccurred, scsi.ASCReportedLUNsDataChanged, scsi.ASCCapacityDataChanged}
	for _, w := range want {
		if got, ok := s.popUA(0); !ok || got != w {
			t.Fatalf("popUA = %v %v, want %v", got, ok, w)
		}
	}
	if _, ok := s.popUA(0); ok {
		t.Error("extra UA")
	}
}

// quickLU answers Quick as told; Execute waits for gate, so a test can
// tell whether Submit ran it inline (Submit blocks) or on a worker.
type quickLU struct {
	fakeLU
	quick bool
	gate  chan struct{}
}

func (l *quickLU) Quick(*Task) bool { return l.quick }
func (l *quickLU) Execute(t *Task) {
	<-l.gate
	t.CompleteStatus(scsi.StatusGood)
}

func TestInlineOnlyWhenTransportAndLUAgree(t *testing.T) {
	for _, c := range []struct {
		inline, quick, wantInline bool
	}{{true, true, true}, {true, false, false}, {false, true, false}} {
		fw := New(nil)
		l := &quickLU{fakeLU: fakeLU{guid: guidN(1)}, quick: c.quick, gate: make(chan struct{})}
		_ = fw.RegisterLU(l)
		_, _ = fw.AddView(l.guid, ViewEntry{}, true)
		port, _ := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
		s, _ := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
		s.popUA(0)
		tr := newFakeTransport()
		task := NewTask(tr)
		task.RawLUN = scsi.EncodeLUN(0)
		task.CDB = []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}
		task.Inline = c.inline
		returned := make(chan struct{})
		go func() { s.Submit(task); close(returned) }()
		select {
		case <-returned:
			if c.wantInline {
				t.Errorf("inline=%v quick=%v: Submit returned before the task ran", c.inline, c.quick)
			}
		case <-time.After(200 * time.Millisecond):
			if !c.wantInline {
				t.Errorf("inline=%v quick=%v: Submit blocked: the task ran inline", c.inline, c.quick)
			}
		}
		close(l.gate)
		<-returned
		tr.wait(t)
		s.Close()
	}
}
