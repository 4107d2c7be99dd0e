package stmf

import (
	"context"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// nopTransport delivers nowhere and signals each completion, without
// allocating, so a benchmark measures only the framework.
type nopTransport struct {
	data []byte
	done chan struct{}
}

func (n *nopTransport) ReceiveData(context.Context) ([]byte, error) { return n.data, nil }
func (n *nopTransport) Deliver(*Result)                             { n.done <- struct{}{} }
func (n *nopTransport) Drop()                                       { n.done <- struct{}{} }

// instantLU completes every command at once with a shared 4 KiB read
// result; every command is quick, so inline tasks never leave the caller.
type instantLU struct {
	guid GUID
	read Result
}

func (l *instantLU) GUID() GUID       { return l.guid }
func (l *instantLU) Quick(*Task) bool { return true }
func (l *instantLU) Admit(t *Task)    { t.SetKind(KindRead) }
func (l *instantLU) Execute(t *Task)  { t.Complete(&l.read) }

// BenchmarkSubmitComplete measures one READ(10) from Submit to Complete
// through a session, inline (the framework's own cost) and through a
// worker goroutine (the hand-off included).
func BenchmarkSubmitComplete(b *testing.B) {
	for _, inline := range []bool{true, false} {
		name := "worker"
		if inline {
			name = "inline"
		}
		b.Run(name, func(b *testing.B) {
			fw := New(nil)
			l := &instantLU{guid: guidN(1)}
			l.read = Result{Status: scsi.StatusGood, Data: make([]byte, 4096), TransferLen: 4096}
			if err := fw.RegisterLU(l); err != nil {
				b.Fatal(err)
			}
			if _, err := fw.AddView(l.guid, ViewEntry{}, true); err != nil {
				b.Fatal(err)
			}
			port, err := fw.RegisterPort(PortSpec{TargetName: "iqn.t", Name: "iqn.t,t,0x0001", Group: DefaultPortGroup})
			if err != nil {
				b.Fatal(err)
			}
			s, err := port.OpenSession(Initiator{Name: "iqn.a", PortName: "iqn.a,i,0x1"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			tr := &nopTransport{done: make(chan struct{}, 1)}
			cdb := []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}
			raw := scsi.EncodeLUN(0)
			submit := func(tag uint64) {
				task := NewTask(tr)
				task.Tag = tag
				task.RawLUN = raw
				task.CDB = cdb
				task.Dir = scsi.DirRead
				task.ExpectedLen = 4096
				task.Inline = inline
				s.Submit(task)
				<-tr.done
			}
			submit(0) // consumes the power-on unit attention
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				submit(uint64(i))
			}
		})
	}
}

// BenchmarkTaskCount is the counting alone that Submit and Complete add
// to every task (clock, classification, adds on session and LU), which
// the end-to-end figures above are too noisy to show.
func BenchmarkTaskCount(b *testing.B) {
	var sess, lu luReg
	r := &Result{Status: scsi.StatusGood, Data: make([]byte, 4096)}
	t := NewTask(&nopTransport{})
	t.CDB = []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0}
	t.ExpectedLen = 4096
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t.begin(&sess.stats)
		t.routed(&lu)
		t.count(r, false)
	}
	if got := lu.stats.snapshot().Commands[KindRead]; got != uint64(b.N) {
		b.Fatalf("counted %d reads, want %d", got, b.N)
	}
}
