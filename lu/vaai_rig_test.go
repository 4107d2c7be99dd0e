package lu

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// newVDisk creates an LU with a GUID of its own (newTestDisk's GUIDs
// repeat within a second), n in the last byte.
func newVDisk(t testing.TB, n byte, size uint64, bs uint32) *Device {
	t.Helper()
	g := stmf.GUID{0x60, 0x01, 0x44, 0xf0, 0xc0, 0x57, 0xa4}
	g[15] = n
	d, err := createFile(context.Background(), fileConfig{DataFile: filepath.Join(t.TempDir(), "lu.img"), Size: size, BlockSize: bs, GUID: g},
		nil, quietLog())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// vrig runs LUs behind a real stmf framework, so tasks go through Submit:
// arrival order, Admit, task sets and aborts are stmf's own.
type vrig struct {
	t    testing.TB
	fw   *stmf.Framework
	port *stmf.LocalPort
	luns map[stmf.GUID]scsi.LUN
	tag  atomic.Uint64
}

func newVRig(t testing.TB, disks ...*Device) *vrig {
	t.Helper()
	r := &vrig{t: t, fw: stmf.New(quietLog()), luns: map[stmf.GUID]scsi.LUN{}}
	for _, d := range disks {
		r.addLU(d, stmf.ViewEntry{})
	}
	p, err := r.fw.RegisterPort(stmf.PortSpec{TargetName: "iqn.2026-01.test:vaai", Name: "iqn.2026-01.test:vaai,t,0x0001", Group: stmf.DefaultPortGroup})
	if err != nil {
		t.Fatalf("RegisterPort: %v", err)
	}
	r.port = p
	return r
}

func (r *vrig) addLU(d *Device, v stmf.ViewEntry) {
	r.t.Helper()
	if err := r.fw.RegisterLU(d); err != nil {
		r.t.Fatalf("RegisterLU: %v", err)
	}
	lun, err := r.fw.AddView(d.GUID(), v, true)
	if err != nil {
		r.t.Fatalf("AddView: %v", err)
	}
	r.luns[d.GUID()] = lun
}

// session opens an I_T nexus and clears its power-on unit attentions.
func (r *vrig) session(n int) *stmf.Session {
	r.t.Helper()
	s, err := r.port.OpenSession(iscsiInitiator(fmt.Sprintf("iqn.2026-01.test:init%d", n), uint64(n)))
	if err != nil {
		r.t.Fatalf("OpenSession: %v", err)
	}
	r.t.Cleanup(s.Close)
	for _, lun := range s.LUNs() {
		for i := 0; i < 4; i++ {
			if res := r.wait(r.start(s, lun, []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}, scsi.DirNone, 0, nil)); res.Status == scsi.StatusGood {
				break
			}
		}
	}
	return s
}

// rigTransport is a Transport whose outcome can be awaited; ReceiveData
// may be held back until release is closed.
type rigTransport struct {
	data    []byte
	release chan struct{} // nil: Data-Out is there at once
	pulled  chan struct{} // closed when the LU first asks for Data-Out
	once    sync.Once
	done    chan *stmf.Result // nil result: dropped
}

func (c *rigTransport) ReceiveData(ctx context.Context) ([]byte, error) {
	c.once.Do(func() { close(c.pulled) })
	if c.release != nil {
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.data, nil
}

func (c *rigTransport) Deliver(r *stmf.Result) { c.done <- r }
func (c *rigTransport) Drop()                  { c.done <- nil }

// start submits a command and returns at once.
func (r *vrig) start(s *stmf.Session, lun scsi.LUN, cdb []byte, dir scsi.DataDir, expLen uint32, data []byte) *rigTransport {
	return r.startHeld(s, lun, cdb, dir, expLen, data, nil)
}

func (r *vrig) startHeld(s *stmf.Session, lun scsi.LUN, cdb []byte, dir scsi.DataDir, expLen uint32, data []byte, release chan struct{}) *rigTransport {
	tr := &rigTransport{data: data, release: release, pulled: make(chan struct{}), done: make(chan *stmf.Result, 1)}
	task := stmf.NewTask(tr)
	task.RawLUN = scsi.EncodeLUN(lun)
	task.CDB = cdb
	task.Dir = dir
	task.ExpectedLen = expLen
	task.Tag = r.tag.Add(1)
	s.Submit(task)
	return tr
}

// wait returns the task's result (nil when it was dropped).
func (r *vrig) wait(tr *rigTransport) *stmf.Result {
	r.t.Helper()
	select {
	case res := <-tr.done:
		return res
	case <-time.After(10 * time.Second):
		r.t.Fatal("task did not finish")
		return nil
	}
}

// finished reports whether the task has completed (without waiting).
func finished(tr *rigTransport) bool { return len(tr.done) > 0 }

// do runs one command to completion and returns its outcome as a resp.
func (r *vrig) do(s *stmf.Session, d *Device, cdb []byte, dir scsi.DataDir, expLen uint32, data []byte) resp {
	r.t.Helper()
	res := r.wait(r.start(s, r.luns[d.GUID()], cdb, dir, expLen, data))
	if res == nil {
		r.t.Fatalf("cdb % x: dropped", cdb)
	}
	out := resp{status: res.Status, transferLen: res.TransferLen, rawSense: res.Sense}
	if res.Data != nil {
		out.data = append([]byte(nil), res.Data...)
	}
	if res.Release != nil {
		res.Release()
	}
	if res.Status == scsi.StatusCheckCondition {
		sn, err := scsi.ParseSense(res.Sense)
		if err != nil {
			r.t.Fatalf("cdb % x: bad sense: %v", cdb, err)
		}
		out.sense = sn
	}
	return out
}

// read reads n blocks of d through the rig.
func (r *vrig) read(s *stmf.Session, d *Device, lba uint64, n uint32) []byte {
	r.t.Helper()
	res := r.do(s, d, cdb16(scsi.OpRead16, 0, lba, n), scsi.DirRead, n*d.bs, nil)
	expectGood(r.t, "READ 16", res)
	return res.data
}

func (r *vrig) write(s *stmf.Session, d *Device, lba uint64, data []byte) {
	r.t.Helper()
	n := uint32(len(data)) / d.bs
	expectGood(r.t, "WRITE 16", r.do(s, d, cdb16(scsi.OpWrite16, 0, lba, n), scsi.DirWrite, uint32(len(data)), data))
}

// lockEntries returns the distinct entries of a range lock.
func lockEntries(l *rangeLock) []*lockEntry {
	l.lockMask(allShards)
	defer l.unlockMask(allShards)
	seen := map[*lockEntry]bool{}
	var out []*lockEntry
	for i := range l.shards {
		for _, e := range l.shards[i].active {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// lockIdle asserts that d's range lock holds nothing.
func lockIdle(t testing.TB, d *Device) {
	t.Helper()
	l := &d.vaai.locks
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := len(lockEntries(l))
		if n == 0 && l.atomics.Load() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("range lock not idle: %d entries, atomics %d", n, l.atomics.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
