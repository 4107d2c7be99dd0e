package lu

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// TestLockRange: what Admit registers, from the decoded CDB and its row
// (a thin LU, so that UNMAP is in its table).
func TestLockRange(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true})
	lockRange := func(cdb []byte) (lockKind, uint64, uint64) {
		dec := d.cmds.decode(cdb)
		return d.cmds.row(dec).span(dec)
	}
	ws10 := cdb10(scsi.OpWriteSame10, 0, 7, 0)
	tests := []struct {
		name   string
		cdb    []byte
		kind   lockKind
		lo, hi uint64
	}{
		{"empty", nil, lockNone, 0, 0},
		{"TEST UNIT READY", []byte{0, 0, 0, 0, 0, 0}, lockNone, 0, 0},
		{"UNMAP (ranges in its parameter list): whole LU", []byte{scsi.OpUnmap, 0, 0, 0, 0, 0, 0, 0, 24, 0}, lockWrite, 0, math.MaxUint64},
		{"WRITE 6", cdb6(scsi.OpWrite6, 0x12345, 4), lockWrite, 0x12345, 0x12349},
		{"WRITE 6 zero = 256", cdb6(scsi.OpWrite6, 10, 0), lockWrite, 10, 266},
		{"short WRITE 6", []byte{scsi.OpWrite6, 0, 0}, lockNone, 0, 0},
		{"READ 6", cdb6(scsi.OpRead6, 1, 1), lockRead, 1, 2},
		{"WRITE 10", cdb10(scsi.OpWrite10, 0, 100, 8), lockWrite, 100, 108},
		{"WRITE 10 zero blocks", cdb10(scsi.OpWrite10, 0, 100, 0), lockNone, 0, 0},
		{"short WRITE 10", cdb10(scsi.OpWrite10, 0, 100, 8)[:9], lockNone, 0, 0},
		{"WRITE AND VERIFY 10", cdb10(scsi.OpWriteVerify10, 0, 5, 1), lockWrite, 5, 6},
		{"READ 10", cdb10(scsi.OpRead10, 0, 5, 1), lockRead, 5, 6},
		{"WRITE SAME 10 to the end", ws10, lockWrite, 7, math.MaxUint64},
		{"WRITE 12", cdb12(scsi.OpWrite12, 0, 9, 3), lockWrite, 9, 12},
		{"WRITE AND VERIFY 12", cdb12(scsi.OpWriteVerify12, 0, 9, 3), lockWrite, 9, 12},
		{"READ 12", cdb12(scsi.OpRead12, 0, 9, 3), lockRead, 9, 12},
		{"WRITE 16", cdb16(scsi.OpWrite16, 0, 1<<40, 2), lockWrite, 1 << 40, 1<<40 + 2},
		{"WRITE 16 wrapping", cdb16(scsi.OpWrite16, 0, math.MaxUint64-1, 8), lockWrite, math.MaxUint64 - 1, math.MaxUint64},
		{"short WRITE 16", cdb16(scsi.OpWrite16, 0, 0, 1)[:15], lockNone, 0, 0},
		{"WRITE AND VERIFY 16", cdb16(scsi.OpWriteVerify16, 0, 3, 3), lockWrite, 3, 6},
		{"WRITE SAME 16", cdb16(scsi.OpWriteSame16, 0, 3, 3), lockWrite, 3, 6},
		{"WRITE SAME 16 to the end", cdb16(scsi.OpWriteSame16, 0, 3, 0), lockWrite, 3, math.MaxUint64},
		{"READ 16", cdb16(scsi.OpRead16, 0, 3, 3), lockRead, 3, 6},
		{"COMPARE AND WRITE", cawCDB(0, 77, 1), lockAtomic, 77, 78},
		{"COMPARE AND WRITE 0 blocks", cawCDB(0, 77, 0), lockNone, 0, 0},
		{"ORWRITE", cdb16(scsi.OpOrWrite16, 0, 4, 4), lockAtomic, 4, 8},
		{"WRITE ATOMIC 16", writeAtomicCDB(0, 8, 2), lockAtomic, 8, 10},
		{"EXTENDED COPY (locks during execution)", xcopyCDB(100), lockNone, 0, 0},
	}
	for _, tc := range tests {
		kind, lo, hi := lockRange(tc.cdb)
		if kind != tc.kind || (kind != lockNone && (lo != tc.lo || hi != tc.hi)) {
			t.Errorf("%s: kind %d [%d, %d), want %d [%d, %d)", tc.name, kind, lo, hi, tc.kind, tc.lo, tc.hi)
		}
	}
}

// admitted builds a task for d and admits it, as stmf would.
func admitted(d *Device, cdb []byte, data []byte, release chan struct{}) (*stmf.Task, *rigTransport) {
	tr := &rigTransport{data: data, release: release, pulled: make(chan struct{}), done: make(chan *stmf.Result, 1)}
	task := stmf.NewTask(tr)
	task.CDB = cdb
	task.ExpectedLen = uint32(len(data))
	if len(data) > 0 {
		task.Dir = scsi.DirWrite
	}
	d.Admit(task)
	return task, tr
}

func waitResult(t *testing.T, tr *rigTransport) *stmf.Result {
	t.Helper()
	select {
	case r := <-tr.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("task did not finish")
		return nil
	}
}

// TestOverlappingWritesInArrivalOrder: a later overlapping write waits for
// an earlier one even when it starts executing first; a write that
// overlaps nothing does not wait.
func TestOverlappingWritesInArrivalOrder(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	a := bytes.Repeat([]byte{0xaa}, 2*512)
	b := bytes.Repeat([]byte{0xbb}, 2*512)
	hold := make(chan struct{})

	t1, tr1 := admitted(d, cdb10(scsi.OpWrite10, 0, 10, 2), a, hold)      // blocks 10-11, Data-Out held back
	t2, tr2 := admitted(d, cdb10(scsi.OpWrite10, 0, 11, 2), b, nil)       // blocks 11-12: overlaps t1
	t3, tr3 := admitted(d, cdb10(scsi.OpWrite10, 0, 13, 1), b[:512], nil) // block 13: overlaps nothing

	go d.Execute(t2) // the later write starts first
	go d.Execute(t3)
	if r := waitResult(t, tr3); r == nil || r.Status != scsi.StatusGood {
		t.Fatalf("independent write: %+v", r)
	}
	select {
	case <-tr2.pulled:
		t.Fatal("the later overlapping write ran before the earlier one")
	case <-time.After(20 * time.Millisecond):
	}
	go d.Execute(t1)
	<-tr1.pulled
	select {
	case <-tr2.pulled:
		t.Fatal("the later overlapping write ran while the earlier one was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(hold)
	for _, tr := range []*rigTransport{tr1, tr2} {
		if r := waitResult(t, tr); r == nil || r.Status != scsi.StatusGood {
			t.Fatalf("write: %+v", r)
		}
	}
	got := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 10, 3), dir: scsi.DirRead, expLen: 3 * 512})
	want := append(append([]byte{}, a[:512]...), b...)
	if !bytes.Equal(got.data, want) {
		t.Fatal("overlapping writes were not applied in arrival order")
	}
	lockIdle(t, d)
}

// TestLockReleasedOnEveryPath: commands that fail before or while running,
// a closed LU and a panicking handler all leave the range lock empty, and
// a later overlapping write is not held up.
func TestLockReleasedOnEveryPath(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 64 << 10}) // 128 blocks
	blk := make([]byte, 512)
	cases := []struct {
		name string
		cdb  []byte
		data []byte
	}{
		{"beyond the end", cdb10(scsi.OpWrite10, 0, 200, 1), blk},
		{"NACA", withByte(cdb10(scsi.OpWrite10, 0, 1, 1), 9, 0x04), blk},
		{"WRPROTECT", cdb10(scsi.OpWrite10, 0xe0, 1, 1), blk},
		{"too long", cdb16(scsi.OpWrite16, 0, 1, 1<<30), blk},
		{"CAW with the wrong Data-Out size", cawCDB(0, 1, 1), blk},
		{"ORWRITE beyond the end", cdb16(scsi.OpOrWrite16, 0, 127, 2), make([]byte, 1024)},
		{"good write", cdb10(scsi.OpWrite10, 0, 1, 1), blk},
	}
	for _, c := range cases {
		task, tr := admitted(d, c.cdb, c.data, nil)
		d.Execute(task)
		if r := waitResult(t, tr); r == nil {
			t.Fatalf("%s: dropped", c.name)
		}
		lockIdle(t, d)
	}

	// A handler that panics (a bug) still releases its range.
	rows := append([]command(nil), d.cmds.rows...)
	for i := range rows {
		if rows[i].op == scsi.OpWrite10 {
			rows[i].fn = func(*Device, *stmf.Task, []byte) *stmf.Result { panic("test panic") }
		}
	}
	saved := d.cmds
	d.cmds = newCommandSet(d, rows)
	task, tr := admitted(d, cdb10(scsi.OpWrite10, 0, 1, 1), blk, nil)
	d.Execute(task)
	if r := waitResult(t, tr); r == nil || r.Status != scsi.StatusCheckCondition {
		t.Fatalf("panicking handler: %+v", r)
	}
	d.panics.Store(0)
	d.cmds = saved
	lockIdle(t, d)

	// A closed LU answers NOT READY and releases the range.
	task, tr = admitted(d, cdb10(scsi.OpWrite10, 0, 1, 1), blk, nil)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d.Execute(task)
	if r := waitResult(t, tr); r == nil || r.Status != scsi.StatusCheckCondition {
		t.Fatalf("closed LU: %+v", r)
	}
	lockIdle(t, d)
}

// TestAbortedWaiterAndQueuedTasks: through stmf, a write waiting for an
// overlapping one can be aborted (it is dropped and releases its range),
// and a write aborted while still queued in the task set, which never
// reaches Execute, does not hold up later writes.
func TestAbortedWaiterAndQueuedTasks(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	s := r.session(1)
	lun := r.luns[d.GUID()]
	blk := bytes.Repeat([]byte{1}, 512)

	hold := make(chan struct{})
	first := r.startHeld(s, lun, cdb10(scsi.OpWrite10, 0, 0, 1), scsi.DirWrite, 512, blk, hold)
	<-first.pulled
	second := r.start(s, lun, cdb10(scsi.OpWrite10, 0, 0, 1), scsi.DirWrite, 512, blk)
	s.AbortTask(r.tag.Load())
	if res := r.wait(second); res != nil {
		t.Fatalf("aborted waiting write completed: %+v", res)
	}
	// An ORDERED task keeps the next ones queued in the task set; abort one.
	ordTr := &rigTransport{pulled: make(chan struct{}), done: make(chan *stmf.Result, 1)}
	ordered := stmf.NewTask(ordTr)
	ordered.RawLUN = scsi.EncodeLUN(lun)
	ordered.CDB = []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}
	ordered.Attr = scsi.TaskOrdered
	ordered.Tag = r.tag.Add(1)
	s.Submit(ordered)
	queued := r.start(s, lun, cdb10(scsi.OpWrite10, 0, 0, 1), scsi.DirWrite, 512, blk)
	queuedTag := r.tag.Load()
	s.AbortTask(queuedTag)
	close(hold)
	if res := r.wait(first); res == nil || res.Status != scsi.StatusGood {
		t.Fatalf("first write: %+v", res)
	}
	r.wait(ordTr)
	if res := r.wait(queued); res != nil {
		t.Fatalf("aborted queued write completed: %+v", res)
	}
	// A later overlapping write must not wait for the aborted ones.
	r.write(s, d, 0, blk)
	lockIdle(t, d)
}

// TestSweepDropsAbortedEntries: entries of tasks aborted before Execute
// that nobody waits for are dropped once the list grows.
func TestSweepDropsAbortedEntries(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	s := r.session(1)
	lun := r.luns[d.GUID()]
	blk := make([]byte, 512)

	hold := make(chan struct{})
	ordTr := &rigTransport{data: blk, release: hold, pulled: make(chan struct{}), done: make(chan *stmf.Result, 1)}
	ord := stmf.NewTask(ordTr)
	ord.RawLUN = scsi.EncodeLUN(lun)
	ord.CDB = cdb10(scsi.OpWrite10, 0, 1000, 1)
	ord.Dir, ord.ExpectedLen = scsi.DirWrite, 512
	ord.Attr = scsi.TaskOrdered
	ord.Tag = r.tag.Add(1)
	s.Submit(ord) // runs, holds everything behind it in the task set
	<-ordTr.pulled
	var trs []*rigTransport
	for i := 0; i < 3*minSweep; i++ {
		trs = append(trs, r.start(s, lun, cdb10(scsi.OpWrite10, 0, uint32(i), 1), scsi.DirWrite, 512, blk))
		s.AbortTask(r.tag.Load())
	}
	if n := len(lockEntries(&d.vaai.locks)); n > 2*minSweep+1 {
		t.Errorf("%d entries after %d aborted queued writes", n, 3*minSweep)
	}
	close(hold)
	r.wait(ordTr)
	for _, tr := range trs {
		if res := r.wait(tr); res != nil {
			t.Fatalf("aborted write completed: %+v", res)
		}
	}
}

// TestTransitiveWaitAfterAbort: with A <- B <- C queued on one block (C
// waits only for B, which covers it), aborting B must not let C overtake A.
func TestTransitiveWaitAfterAbort(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	s := r.session(1)
	lun := r.luns[d.GUID()]
	a := bytes.Repeat([]byte{0xa}, 512)
	c := bytes.Repeat([]byte{0xc}, 512)

	hold := make(chan struct{})
	trA := r.startHeld(s, lun, cdb10(scsi.OpWrite10, 0, 5, 1), scsi.DirWrite, 512, a, hold)
	<-trA.pulled
	trB := r.start(s, lun, cdb10(scsi.OpWrite10, 0, 4, 3), scsi.DirWrite, 3*512, make([]byte, 3*512)) // covers block 5
	tagB := r.tag.Load()
	trC := r.start(s, lun, cdb10(scsi.OpWrite10, 0, 5, 1), scsi.DirWrite, 512, c)
	var depsC int
	var newest uint64
	for _, e := range lockEntries(&d.vaai.locks) {
		if e.lo == 5 && e.hi == 6 && e.seq > newest {
			newest, depsC = e.seq, len(e.deps)
		}
	}
	if depsC != 1 {
		t.Fatalf("C has %d dependencies, want 1 (the covering entry B)", depsC)
	}
	s.AbortTask(tagB)
	if res := r.wait(trB); res != nil {
		t.Fatalf("aborted B completed: %+v", res)
	}
	select {
	case <-trC.pulled:
		t.Fatal("C ran before A after B was aborted")
	case <-time.After(20 * time.Millisecond):
	}
	close(hold)
	r.wait(trA)
	if res := r.wait(trC); res == nil || res.Status != scsi.StatusGood {
		t.Fatalf("C: %+v", res)
	}
	if got := r.read(s, d, 5, 1); !bytes.Equal(got, c) {
		t.Fatal("A overwrote C")
	}
	lockIdle(t, d)
}

// TestReadsWaitForAtomicCommands: a read that arrives while an
// overlapping COMPARE AND WRITE is in flight sees it whole; reads of other
// blocks and reads with no atomic command about take no entry.
func TestReadsWaitForAtomicCommands(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	read, _ := admitted(d, cdb10(scsi.OpRead10, 0, 3, 1), nil, nil)
	if len(lockEntries(&d.vaai.locks)) != 0 {
		t.Fatal("a read took a range with no atomic command in flight")
	}
	_ = read

	old := make([]byte, 512)
	neu := bytes.Repeat([]byte{0x5a}, 512)
	hold := make(chan struct{})
	caw, cawTr := admitted(d, cawCDB(0, 3, 1), append(append([]byte{}, old...), neu...), hold)
	rd, rdTr := admitted(d, cdb10(scsi.OpRead10, 0, 3, 1), nil, nil)
	rd.Dir, rd.ExpectedLen = scsi.DirRead, 512
	other, otherTr := admitted(d, cdb10(scsi.OpRead10, 0, 4, 1), nil, nil)
	other.Dir, other.ExpectedLen = scsi.DirRead, 512
	if n := len(lockEntries(&d.vaai.locks)); n != 2 {
		t.Fatalf("%d entries, want 2 (the CAW and the overlapping read)", n)
	}
	go d.Execute(caw)
	go d.Execute(rd)
	go d.Execute(other)
	<-cawTr.pulled
	if r := waitResult(t, otherTr); r == nil || r.Status != scsi.StatusGood {
		t.Fatalf("unrelated read: %+v", r)
	}
	close(hold)
	if r := waitResult(t, cawTr); r == nil || r.Status != scsi.StatusGood {
		t.Fatalf("CAW: %+v", r)
	}
	r := waitResult(t, rdTr)
	if r == nil || r.Status != scsi.StatusGood || !bytes.Equal(r.Data, neu) {
		t.Fatalf("read did not see the CAW whole: %+v", r)
	}
	r.Release()
	lockIdle(t, d)
}

// TestLockChain keeps a queue of writes to one block a chain: each entry
// depends on one other, not on all earlier ones.
func TestLockChain(t *testing.T) {
	var l rangeLock
	var tasks []*stmf.Task
	for i := 0; i < 100; i++ {
		task := stmf.NewTask(&rigTransport{})
		task.CDB = cdb10(scsi.OpWrite10, 0, 7, 1)
		tasks = append(tasks, task)
		task.LUPrivate = l.register(task, lockWrite, 7, 8)
	}
	for _, e := range lockEntries(&l) {
		if len(e.deps) > 1 {
			t.Fatalf("entry %d has %d dependencies", e.seq, len(e.deps))
		}
	}
	for _, task := range tasks {
		e, ok := l.acquire(task, nil) // admitted: its entry is in LUPrivate
		if !ok || e == nil || !e.held {
			t.Fatal("acquire in arrival order failed")
		}
		l.release(e)
	}
	if n := len(lockEntries(&l)); n != 0 {
		t.Fatalf("%d entries left", n)
	}
}

// TestShardMask: regions map to shards; wide ranges take every shard.
func TestShardMask(t *testing.T) {
	const r = 1 << lockRegionShift
	for _, tc := range []struct {
		lo, hi uint64
		want   uint32
	}{
		{0, 1, 1}, {r - 1, r + 1, 3}, {5 * r, 5*r + 8, 1 << 5}, {17 * r, 17*r + 1, 1 << 1},
		{15 * r, 16*r + 1, 1<<15 | 1}, {0, 15 * r, allShards &^ (1 << 15)}, {0, 16 * r, allShards},
		{3, math.MaxUint64, allShards},
	} {
		if got := shardMask(tc.lo, tc.hi); got != tc.want {
			t.Errorf("shardMask(%d, %d) = %#x, want %#x", tc.lo, tc.hi, got, tc.want)
		}
	}
	// Entries in different shards never see each other; one spanning both
	// waits for both.
	var l rangeLock
	a := l.register(nil, lockWrite, 0, 1)
	b := l.register(nil, lockWrite, r, r+1)
	c := l.register(nil, lockWrite, 0, r+1)
	if len(a.deps) != 0 || len(b.deps) != 0 || len(c.deps) != 2 {
		t.Fatalf("deps %d %d %d, want 0 0 2", len(a.deps), len(b.deps), len(c.deps))
	}
	for _, e := range []*lockEntry{a, b, c} {
		l.release(e)
	}
	if len(lockEntries(&l)) != 0 {
		t.Fatal("entries left")
	}
}
