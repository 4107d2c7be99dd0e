package lu

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
)

// groupRig holds the first store sync (a SYNCHRONIZE CACHE's) so that
// FUA writes issued meanwhile overlap it and must share later rounds.
type groupRig struct {
	st     *memstore.Store
	d      *Device
	gate   chan struct{}
	open   sync.Once
	calls  atomic.Int32
	sc     sync.WaitGroup
	scResp resp
}

// newGroupRig starts the held SYNCHRONIZE CACHE; onSync (may be nil)
// runs at the start of store sync number n (1-based), before the hold.
func newGroupRig(t *testing.T, onSync func(n int32)) *groupRig {
	g := &groupRig{st: memstore.New(1<<20, 512, backing.Caps{}), gate: make(chan struct{})}
	g.d = newMemDisk(t, g.st, Config{})
	t.Cleanup(g.release) // before Close (cleanups run last first), which waits for the held command
	g.st.SetSyncHook(func() {
		n := g.calls.Add(1)
		if onSync != nil {
			onSync(n)
		}
		if n == 1 {
			<-g.gate
		}
	})
	g.sc.Add(1)
	go func() {
		defer g.sc.Done()
		g.scResp = exec(t, g.d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)})
	}()
	waitFor(t, "the SYNCHRONIZE CACHE's sync to start", func() bool { return g.calls.Load() == 1 })
	return g
}

// release lets the held sync go.
func (g *groupRig) release() { g.open.Do(func() { close(g.gate) }) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i == 5000 {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func fuaWrite(lba uint32, b byte) req {
	return req{cdb: cdb10(scsi.OpWrite10, 0x08, lba, 1), dir: scsi.DirWrite, expLen: 512, data: bytes.Repeat([]byte{b}, 512)}
}

// landed reports whether block lba of st holds b (the write reached the store).
func landed(st *memstore.Store, lba uint32, b byte) bool {
	p := make([]byte, 512)
	return st.ReadAt(p, int64(lba)*512) == nil && bytes.Equal(p, bytes.Repeat([]byte{b}, 512))
}

// fuaBurst issues n FUA writes (LBA i, byte i+1) while the first sync is
// held, waits until each has reached the store, lets the first sync go
// and returns every answer.
func (g *groupRig) fuaBurst(t *testing.T, n int) []resp {
	out := make([]resp, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = exec(t, g.d, fuaWrite(uint32(i), byte(i+1)))
		}()
	}
	waitFor(t, "every write to reach the store", func() bool {
		for i := 0; i < n; i++ {
			if !landed(g.st, uint32(i), byte(i+1)) {
				return false
			}
		}
		return true
	})
	time.Sleep(20 * time.Millisecond) // let them queue for the next round
	g.release()
	wg.Wait()
	g.sc.Wait()
	return out
}

// Concurrent FUA writes share flushes: 16 writes issued while a flush runs
// cost one more sync (two if one was late), not 16.
func TestDurableWritesShareFlushes(t *testing.T) {
	g := newGroupRig(t, nil)
	const n = 16
	for i, r := range g.fuaBurst(t, n) {
		expectGood(t, "FUA write", r)
		if !landed(g.st, uint32(i), byte(i+1)) {
			t.Errorf("LBA %d does not hold its write", i)
		}
	}
	expectGood(t, "SYNCHRONIZE CACHE", g.scResp)
	if s := g.st.Syncs(); s < 2 || s > 3 {
		t.Fatalf("%d syncs for a SYNCHRONIZE CACHE and %d FUA writes, want 2 (3 if one was late)", s, n)
	}
}

// A failing shared flush fails every write that waited for it with MEDIUM
// ERROR, WRITE ERROR and latches; later durable writes fail without
// reaching the store, write-back writes still work.
func TestSharedFlushFailureFailsEveryWaiter(t *testing.T) {
	var st *memstore.Store
	g := newGroupRig(t, func(n int32) {
		if n == 2 { // the round the FUA writes share
			st.Inject(memstore.OpSync, &memstore.Fault{Err: memstore.ErrIO})
		}
	})
	st = g.st
	for _, r := range g.fuaBurst(t, 16) {
		expectSense(t, "FUA write of a failed round", r, scsi.KeyMediumError, scsi.ASCWriteError) // 03/0C/00
	}
	expectGood(t, "SYNCHRONIZE CACHE of the round before", g.scResp)
	if f := g.d.WriteFailure(); f == nil || f.Op != "sync" {
		t.Fatalf("latched %v, want a failed sync", f)
	}
	calls := g.calls.Load()
	expectSense(t, "later FUA write", exec(t, g.d, fuaWrite(100, 9)), scsi.KeyMediumError, scsi.ASCWriteError)
	if landed(g.st, 100, 9) {
		t.Error("a FUA write reached the store while a failure was latched")
	}
	if g.calls.Load() != calls {
		t.Error("a sync reached the store while a failure was latched")
	}
	expectGood(t, "write-back WRITE", exec(t, g.d, req{cdb: cdb10(scsi.OpWrite10, 0, 101, 1), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}))
}

// A write that completes after a round started is not covered by it: it
// is acknowledged only after a round that started with its data written.
func TestDurableWriteWaitsForALaterRound(t *testing.T) {
	var sawWrite [4]atomic.Bool // per sync: the write had landed when it started
	var st atomic.Pointer[memstore.Store]
	g := newGroupRig(t, func(n int32) {
		if s := st.Load(); s != nil && int(n) < len(sawWrite) {
			sawWrite[n].Store(landed(s, 7, 0xa7))
		}
	})
	st.Store(g.st)
	done := make(chan resp, 1)
	go func() { done <- exec(t, g.d, fuaWrite(7, 0xa7)) }()
	waitFor(t, "the write to reach the store", func() bool { return landed(g.st, 7, 0xa7) })
	select {
	case r := <-done:
		t.Fatalf("FUA write answered %v while the only sync running started before it", r.status)
	case <-time.After(20 * time.Millisecond):
	}
	g.release()
	expectGood(t, "FUA write", <-done)
	g.sc.Wait()
	if n := g.calls.Load(); n != 2 || sawWrite[1].Load() || !sawWrite[2].Load() {
		t.Fatalf("%d syncs (write landed at the start of the first: %v, second: %v), want 2 with only the second after it",
			n, sawWrite[1].Load(), sawWrite[2].Load())
	}
}

// A durable write alone does one RWF_DSYNC write and no fdatasync.
func TestLoneDurableWriteUsesDsync(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	var c syncCounter
	c.install(d)
	for i := 0; i < 3; i++ {
		expectGood(t, "FUA write", exec(t, d, fuaWrite(uint32(i), 1)))
	}
	if c.dsyncWrites.Load() != 3 || c.fdatasync.Load() != 0 {
		t.Fatalf("%d RWF_DSYNC writes and %d fdatasync for 3 lone FUA writes, want 3 and 0", c.dsyncWrites.Load(), c.fdatasync.Load())
	}
}
