package lu

import (
	"context"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// collected reports whether every pointer in ps was garbage collected,
// collecting a few times while tasks still wind down (idle workers, a
// completion in flight).
func collected[T any](ps []weak.Pointer[T]) int {
	var live int
	for range 50 {
		runtime.GC()
		live = 0
		for _, p := range ps {
			if p.Value() != nil {
				live++
			}
		}
		if live == 0 {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return live
}

// deafTransport hands its data over only once release is closed, even
// after its task was aborted.
type deafTransport struct{ rigTransport }

func (c *deafTransport) ReceiveData(context.Context) ([]byte, error) {
	c.once.Do(func() { close(c.pulled) })
	<-c.release
	return c.data, nil
}

// TestResetQueuedWritesLetGo: writes a LUN RESET aborts while they wait
// in the task set never reach Execute; their range-lock entries must
// leave the lock when stmf retires them, and nothing may keep their tasks
// (and so the port provider's command, connection and buffers) reachable
// once they are done. Fewer than minSweep of them, on blocks nothing else
// touches: no sweep and no waiter would ever claim them.
func TestResetQueuedWritesLetGo(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	s := r.session(1)
	lun := r.luns[d.GUID()]
	blk := make([]byte, 512)

	// The ORDERED write ignores its abort until hold is closed, so every
	// later write is still queued while the reset marks them.
	hold := make(chan struct{})
	ordTr := &deafTransport{rigTransport{data: blk, release: hold, pulled: make(chan struct{}), done: make(chan *stmf.Result, 1)}}
	ord := stmf.NewTask(ordTr)
	ord.RawLUN = scsi.EncodeLUN(lun)
	ord.CDB = cdb10(scsi.OpWrite10, 0, 1000, 1)
	ord.Dir, ord.ExpectedLen = scsi.DirWrite, 512
	ord.Attr = scsi.TaskOrdered
	ord.Tag = r.tag.Add(1)
	s.Submit(ord) // runs and holds every later task in the task set
	<-ordTr.pulled

	const n = minSweep / 2
	var dones []chan *stmf.Result
	var weaks []weak.Pointer[rigTransport]
	for i := range n {
		tr := r.start(s, lun, cdb10(scsi.OpWrite10, 0, uint32(i*8), 8), scsi.DirWrite, 8*512, make([]byte, 8*512))
		dones = append(dones, tr.done)
		weaks = append(weaks, weak.Make(tr))
	}
	if got := len(lockEntries(&d.vaai.locks)); got != n+1 {
		t.Fatalf("%d entries registered, want %d", got, n+1)
	}
	if resp := s.LUNReset(scsi.EncodeLUN(lun)); resp != stmf.TMFComplete {
		t.Fatalf("LUN RESET: %v", resp)
	}
	close(hold)
	r.wait(&ordTr.rigTransport)
	for i, done := range dones {
		select {
		case res := <-done:
			if res != nil {
				t.Fatalf("write %d aborted by the reset completed: %+v", i, res)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("write %d did not finish", i)
		}
	}
	dones = nil
	if got := len(lockEntries(&d.vaai.locks)); got != 0 {
		t.Errorf("%d range-lock entries left after the reset's writes were retired", got)
	}
	if live := collected(weaks); live != 0 {
		t.Errorf("%d of %d transports of reset writes still reachable", live, n)
	}
}

// TestFinishedWritesNotChained: overlapping writes B and C ran and
// finished while D, which waited for them, still holds its range. D must
// not keep them (their tasks, transports and buffers) reachable through
// the dependencies it no longer needs.
func TestFinishedWritesNotChained(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	s := r.session(1)
	lun := r.luns[d.GUID()]
	blk := make([]byte, 512)

	holdA := make(chan struct{})
	trA := r.startHeld(s, lun, cdb10(scsi.OpWrite10, 0, 7, 1), scsi.DirWrite, 512, blk, holdA)
	<-trA.pulled
	var weaks []weak.Pointer[rigTransport]
	var dones []chan *stmf.Result
	for range 2 { // B, C: each waits for the one before
		tr := r.start(s, lun, cdb10(scsi.OpWrite10, 0, 7, 1), scsi.DirWrite, 512, blk)
		weaks = append(weaks, weak.Make(tr))
		dones = append(dones, tr.done)
	}
	holdD := make(chan struct{})
	trD := r.startHeld(s, lun, cdb10(scsi.OpWrite10, 0, 7, 1), scsi.DirWrite, 512, blk, holdD)
	close(holdA)
	r.wait(trA)
	for _, done := range dones {
		if res := <-done; res == nil || res.Status != scsi.StatusGood {
			t.Fatalf("overlapping write: %+v", res)
		}
	}
	dones = nil
	<-trD.pulled // D holds the range now
	if live := collected(weaks); live != 0 {
		t.Errorf("%d of 2 finished writes still reachable while a later overlapping write runs", live)
	}
	close(holdD)
	if res := r.wait(trD); res == nil || res.Status != scsi.StatusGood {
		t.Fatalf("D: %+v", res)
	}
	lockIdle(t, d)
}
