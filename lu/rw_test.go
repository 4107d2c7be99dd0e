package lu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestReadWriteRoundTrip(t *testing.T) {
	for _, bs := range []uint32{512, 4096} {
		for _, separate := range []bool{false, true} {
			t.Run(fmt.Sprintf("bs%d/meta=%v", bs, separate), func(t *testing.T) {
				d := newTestDisk(t, diskOpts{size: 2 << 20, blockSize: bs, metaFile: separate})
				nb := uint32((2 << 20) / bs)
				writes := []struct {
					name string
					cdb  []byte
					lba  uint32
					n    int
				}{
					{"WRITE6", cdb6(scsi.OpWrite6, 1, 2), 1, 2},
					{"WRITE10", cdb10(scsi.OpWrite10, 0, 10, 3), 10, 3},
					{"WRITE12", cdb12(scsi.OpWrite12, 0, 20, 1), 20, 1},
					{"WRITE16", cdb16(scsi.OpWrite16, 0x08, uint64(nb-4), 4), nb - 4, 4},
					{"WRITE AND VERIFY10 BYTCHK", cdb10(scsi.OpWriteVerify10, 0x02, 30, 2), 30, 2},
				}
				for i, w := range writes {
					data := pattern(w.n*int(bs), byte(i+1))
					r := exec(t, d, req{cdb: w.cdb, dir: scsi.DirWrite, expLen: uint32(len(data)), data: data})
					expectGood(t, w.name, r)
					if r.transferLen != uint32(len(data)) {
						t.Fatalf("%s: TransferLen %d, want %d", w.name, r.transferLen, len(data))
					}
					for _, rc := range [][]byte{
						cdb10(scsi.OpRead10, 0, w.lba, uint16(w.n)),
						cdb12(scsi.OpRead12, 0, w.lba, uint32(w.n)),
						cdb16(scsi.OpRead16, 0, uint64(w.lba), uint32(w.n)),
					} {
						got := exec(t, d, req{cdb: rc, dir: scsi.DirRead, expLen: uint32(len(data))})
						expectGood(t, "read back", got)
						if !bytes.Equal(got.data, data) {
							t.Fatalf("%s: read back with opcode %#x differs", w.name, rc[0])
						}
					}
					// VERIFY with BYTCHK=1 agrees.
					v := exec(t, d, req{cdb: cdb10(scsi.OpVerify10, 0x02, w.lba, uint16(w.n)), dir: scsi.DirWrite, expLen: uint32(len(data)), data: data})
					expectGood(t, "verify", v)
				}
				// Data lands after the 64 KiB header (or at 0 with a meta file).
				buf := make([]byte, bs)
				wantOff := int64(headerSize)
				if separate {
					wantOff = 0
				}
				f, err := os.Open(d.Info().DataFile)
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.ReadAt(buf, wantOff+int64(10*bs))
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf, pattern(3*int(bs), 2)[:bs]) {
					t.Fatal("WRITE10 data not at the expected file offset")
				}
				if _, err := d.store.LoadMeta(); err != nil {
					t.Fatalf("metadata damaged by data writes: %v", err)
				}
			})
		}
	}
}

// TestResiduals covers the Result contract of the transport seam:
// TransferLen is what the CDB asked for, the LU reads at most what the
// initiator will take, and writes only whole blocks it received.
func TestResiduals(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	as := bytes.Repeat([]byte{'a'}, 1024)
	bs := bytes.Repeat([]byte{'b'}, 10000)
	reset := func() {
		expectGood(t, "reset", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 2), dir: scsi.DirWrite, expLen: 1024, data: as}))
	}
	readBack := func() []byte {
		return exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 0, 2), dir: scsi.DirRead, expLen: 1024}).data
	}

	t.Run("read EDTL 0", func(t *testing.T) {
		r := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 0, 1), dir: scsi.DirRead, expLen: 0})
		expectGood(t, "read", r)
		if r.transferLen != 512 || len(r.data) != 0 {
			t.Fatalf("TransferLen %d data %d, want 512 and none read", r.transferLen, len(r.data))
		}
	})
	t.Run("read EDTL 10000", func(t *testing.T) {
		r := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 0, 1), dir: scsi.DirRead, expLen: 10000})
		if r.transferLen != 512 || len(r.data) != 512 {
			t.Fatalf("TransferLen %d data %d, want 512/512", r.transferLen, len(r.data))
		}
	})
	t.Run("read EDTL 200", func(t *testing.T) {
		r := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 0, 1), dir: scsi.DirRead, expLen: 200})
		if r.transferLen != 512 || len(r.data) < 200 || len(r.data) > 512 {
			t.Fatalf("TransferLen %d data %d, want 512 and 200..512 bytes", r.transferLen, len(r.data))
		}
	})
	t.Run("read 2 blocks EDTL 1 block", func(t *testing.T) {
		r := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 0, 2), dir: scsi.DirRead, expLen: 512})
		if r.transferLen != 1024 || len(r.data) != 512 {
			t.Fatalf("TransferLen %d data %d, want 1024/512", r.transferLen, len(r.data))
		}
	})
	t.Run("READ10 flagged as a write", func(t *testing.T) {
		r := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)})
		expectGood(t, "read as write", r)
		if len(r.data) != 0 || r.received != 0 {
			t.Fatalf("data %d bytes, Data-Out pulled %d times; want neither", len(r.data), r.received)
		}
	})
	for _, op := range []byte{scsi.OpWrite10, scsi.OpWriteVerify10} {
		b1 := byte(0)
		if op == scsi.OpWriteVerify10 {
			b1 = 0x02 // BYTCHK
		}
		name := fmt.Sprintf("op %#x", op)
		t.Run(name+" EDTL 0", func(t *testing.T) {
			reset()
			r := exec(t, d, req{cdb: cdb10(op, b1, 0, 1), dir: scsi.DirWrite, expLen: 0})
			expectGood(t, "write", r)
			if r.transferLen != 512 || r.received != 0 {
				t.Fatalf("TransferLen %d received %d", r.transferLen, r.received)
			}
			if !bytes.Equal(readBack(), as) {
				t.Fatal("data changed although nothing was sent")
			}
		})
		t.Run(name+" EDTL 200", func(t *testing.T) {
			reset()
			// GOOD here would acknowledge 200 bytes that were never
			// written: refuse before writing, with the residual.
			r := exec(t, d, req{cdb: cdb10(op, b1, 0, 1), dir: scsi.DirWrite, expLen: 200, data: bs[:200]})
			expectSense(t, "write", r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit)
			if r.transferLen != 512 {
				t.Fatalf("TransferLen %d", r.transferLen)
			}
			if !bytes.Equal(readBack(), as) {
				t.Fatal("a partial block was written")
			}
		})
		t.Run(name+" EDTL 2 blocks, TL 1", func(t *testing.T) {
			reset()
			r := exec(t, d, req{cdb: cdb10(op, b1, 0, 1), dir: scsi.DirWrite, expLen: 1024, data: bs[:1024]})
			expectGood(t, "write", r)
			if r.transferLen != 512 {
				t.Fatalf("TransferLen %d", r.transferLen)
			}
			got := readBack()
			if !bytes.Equal(got[:512], bs[:512]) || !bytes.Equal(got[512:], as[512:]) {
				t.Fatal("want block 0 = b, block 1 = a")
			}
		})
		t.Run(name+" EDTL 1 block, TL 2", func(t *testing.T) {
			reset()
			r := exec(t, d, req{cdb: cdb10(op, b1, 0, 2), dir: scsi.DirWrite, expLen: 512, data: bs[:512]})
			expectGood(t, "write", r)
			if r.transferLen != 1024 {
				t.Fatalf("TransferLen %d", r.transferLen)
			}
			got := readBack()
			if !bytes.Equal(got[:512], bs[:512]) || !bytes.Equal(got[512:], as[512:]) {
				t.Fatal("want block 0 = b, block 1 = a")
			}
		})
	}
	t.Run("allocation-length command", func(t *testing.T) {
		r := exec(t, d, req{cdb: modeSense6CDB(false, pcCurrent, pageAll, 0, 255), dir: scsi.DirRead, expLen: 255})
		if r.transferLen != uint32(len(r.data)) || r.transferLen >= 255 {
			t.Fatalf("TransferLen %d data %d: want the bytes produced", r.transferLen, len(r.data))
		}
	})
}

func TestVerify(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	data := pattern(4*512, 9)
	expectGood(t, "write", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 100, 4), dir: scsi.DirWrite, expLen: 2048, data: data}))

	for _, op := range []struct {
		name string
		cdb  func(b1 byte, lba uint32, n uint32) []byte
	}{
		{"VERIFY10", func(b1 byte, lba, n uint32) []byte { return cdb10(scsi.OpVerify10, b1, lba, uint16(n)) }},
		{"VERIFY12", func(b1 byte, lba, n uint32) []byte { return cdb12(scsi.OpVerify12, b1, lba, n) }},
		{"VERIFY16", func(b1 byte, lba, n uint32) []byte { return cdb16(scsi.OpVerify16, b1, uint64(lba), n) }},
	} {
		t.Run(op.name, func(t *testing.T) {
			r := exec(t, d, req{cdb: op.cdb(0x02, 100, 4), dir: scsi.DirWrite, expLen: 2048, data: data})
			expectGood(t, "match", r)
			if r.transferLen != 2048 {
				t.Fatalf("TransferLen %d", r.transferLen)
			}
			for _, off := range []int{0, 1, 511, 512, 1500, 2047} {
				bad := append([]byte{}, data...)
				bad[off] ^= 'X'
				r := exec(t, d, req{cdb: op.cdb(0x12, 100, 4), dir: scsi.DirWrite, expLen: 2048, data: bad})
				expectSense(t, "miscompare", r, scsi.KeyMiscompare, scsi.ASCMiscompareDuringVerify)
				if r.sense.Info == nil || *r.sense.Info != uint32(off) {
					t.Fatalf("INFORMATION %v, want offset %d", r.sense.Info, off)
				}
			}
			// BYTCHK 0: no comparison, no Data-Out.
			r = exec(t, d, req{cdb: op.cdb(0x00, 100, 4), dir: scsi.DirNone})
			expectGood(t, "no bytchk", r)
			if r.received != 0 {
				t.Fatal("BYTCHK 0 pulled Data-Out")
			}
		})
	}
	t.Run("BYTCHK 11b", func(t *testing.T) {
		same := bytes.Repeat([]byte{0x5a}, 512)
		expectGood(t, "fill", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 200, 3), dir: scsi.DirWrite, expLen: 1536,
			data: bytes.Repeat(same, 3)}))
		r := exec(t, d, req{cdb: cdb10(scsi.OpVerify10, 0x06, 200, 3), dir: scsi.DirWrite, expLen: 512, data: same})
		expectGood(t, "single block pattern", r)
		if r.transferLen != 512 {
			t.Fatalf("TransferLen %d, want one block", r.transferLen)
		}
		r = exec(t, d, req{cdb: cdb10(scsi.OpVerify10, 0x06, 199, 3), dir: scsi.DirWrite, expLen: 512, data: same})
		expectSense(t, "pattern mismatch", r, scsi.KeyMiscompare, scsi.ASCMiscompareDuringVerify)
	})
	t.Run("short Data-Out compares what arrived", func(t *testing.T) {
		r := exec(t, d, req{cdb: cdb10(scsi.OpVerify10, 0x02, 100, 4), dir: scsi.DirWrite, expLen: 512, data: data[:512]})
		expectGood(t, "partial", r)
		if r.transferLen != 2048 {
			t.Fatalf("TransferLen %d", r.transferLen)
		}
	})
}

func TestDurability(t *testing.T) {
	blk := make([]byte, 512)
	t.Run("write-back cache", func(t *testing.T) {
		d := newTestDisk(t, diskOpts{})
		var c syncCounter
		c.install(d)
		expectGood(t, "plain write", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: blk}))
		if c.dsyncWrites.Load() != 0 || c.fdatasync.Load() != 0 {
			t.Fatalf("plain write synced (%d dsync writes, %d fdatasync)", c.dsyncWrites.Load(), c.fdatasync.Load())
		}
		for _, cdb := range [][]byte{cdb10(scsi.OpWrite10, 0x08, 0, 1), cdb12(scsi.OpWrite12, 0x08, 0, 1), cdb16(scsi.OpWrite16, 0x08, 0, 1)} {
			expectGood(t, "FUA write", exec(t, d, req{cdb: cdb, dir: scsi.DirWrite, expLen: 512, data: blk}))
		}
		expectGood(t, "WRITE AND VERIFY", exec(t, d, req{cdb: cdb10(scsi.OpWriteVerify10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: blk}))
		if n := c.dsyncWrites.Load() + c.fdatasync.Load(); n != 4 {
			t.Fatalf("%d synced writes, want 4 (3 FUA + WRITE AND VERIFY)", n)
		}
		before := c.fdatasync.Load()
		expectGood(t, "SYNCHRONIZE CACHE10", exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}))
		expectGood(t, "SYNCHRONIZE CACHE16", exec(t, d, req{cdb: cdb16(scsi.OpSyncCache16, 0, 0, 0)}))
		expectGood(t, "STOP", exec(t, d, req{cdb: []byte{scsi.OpStartStopUnit, 0, 0, 0, 0, 0}}))
		if got := c.fdatasync.Load() - before; got != 3 {
			t.Fatalf("%d fdatasync calls for 2 SYNCHRONIZE CACHE + STOP, want 3", got)
		}
	})
	t.Run("write cache disabled", func(t *testing.T) {
		d := newTestDisk(t, diskOpts{wcd: true})
		var c syncCounter
		c.install(d)
		for i := 0; i < 5; i++ {
			expectGood(t, "write", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, uint32(i), 1), dir: scsi.DirWrite, expLen: 512, data: blk}))
		}
		if n := c.dsyncWrites.Load() + c.fdatasync.Load(); n != 5 {
			t.Fatalf("%d synced writes of 5 with the write cache disabled", n)
		}
		// WCE in the caching page reflects it.
		ms := exec(t, d, req{cdb: modeSense6CDB(true, pcCurrent, pageCaching, 0, 255), dir: scsi.DirRead, expLen: 255})
		if ms.data[4+2]&0x04 != 0 {
			t.Fatal("WCE set with the write cache disabled")
		}
	})
	t.Run("RWF_DSYNC unsupported falls back to fdatasync", func(t *testing.T) {
		d := newTestDisk(t, diskOpts{})
		var c syncCounter
		c.install(d)
		fileStore(d).DisableRWFDsync()
		expectGood(t, "FUA write", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0x08, 0, 1), dir: scsi.DirWrite, expLen: 512, data: blk}))
		if c.fdatasync.Load() != 1 || c.dsyncWrites.Load() != 0 {
			t.Fatalf("fallback: %d fdatasync, %d dsync writes", c.fdatasync.Load(), c.dsyncWrites.Load())
		}
	})
}

func TestFlusherCoalesces(t *testing.T) {
	var calls atomic.Int64
	gate := make(chan struct{})
	f := &flusher{do: func() error {
		if calls.Add(1) == 1 {
			<-gate // hold the first flush until everyone has queued
		}
		return nil
	}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.flush() }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const waiters = 20
	var started sync.WaitGroup
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			if err := f.flush(); err != nil {
				t.Error(err)
			}
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let them reach the wait
	close(gate)
	wg.Wait()
	if n := calls.Load(); n < 2 || n > 3 {
		t.Fatalf("%d flushes for 1+%d callers, want 2 (3 if one was late)", n, waiters)
	}
}

func TestFlusherError(t *testing.T) {
	boom := errors.New("boom")
	f := &flusher{do: func() error { return boom }}
	if err := f.flush(); !errors.Is(err, boom) {
		t.Fatalf("flush error %v", err)
	}
	d := newTestDisk(t, diskOpts{})
	d.flush.do = func() error { return boom }
	expectSense(t, "failed sync", exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}), scsi.KeyMediumError, scsi.ASCWriteError)
}

func TestConcurrentIO(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 4 << 20})
	const workers, ops = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < ops; i++ {
				lba := uint32(w*1000 + rng.Intn(900)) // each worker owns a range
				n := uint16(1 + rng.Intn(8))
				data := pattern(int(n)*512, byte(w*31+i))
				r := exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, lba, n), dir: scsi.DirWrite, expLen: uint32(len(data)), data: data})
				if r.status != scsi.StatusGood {
					t.Errorf("write: %v", r.status)
					return
				}
				got := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, lba, n), dir: scsi.DirRead, expLen: uint32(len(data))})
				if !bytes.Equal(got.data, data) {
					t.Errorf("worker %d: read back differs at LBA %d", w, lba)
					return
				}
				if i%50 == 0 {
					exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)})
				}
			}
		}(w)
	}
	wg.Wait()
	if d.panics.Load() != 0 {
		t.Fatal("handler panicked")
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	tr := &fakeTransport{data: make([]byte, 512), block: make(chan struct{})}
	task := stmf.NewTask(tr)
	task.CDB = cdb10(scsi.OpWrite10, 0, 0, 1)
	task.Dir = scsi.DirWrite
	task.ExpectedLen = 512
	done := make(chan struct{})
	go func() { d.Execute(task); close(done) }()
	for {
		tr.mu.Lock()
		n := tr.received
		tr.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a command was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(tr.block)
	<-done
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(tr.results) != 1 || tr.results[0].Status != scsi.StatusGood {
		t.Fatalf("in-flight write: %+v", tr.results)
	}
	r := exec(t, d, req{cdb: []byte{0, 0, 0, 0, 0, 0}})
	expectSense(t, "after Close", r, scsi.KeyNotReady, scsi.ASCLUNotReadyManualIntervention)
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDataOutCancelled(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	tr := &fakeTransport{dataErr: context.Canceled}
	task := stmf.NewTask(tr)
	task.CDB = cdb10(scsi.OpWrite10, 0, 0, 1)
	task.Dir = scsi.DirWrite
	task.ExpectedLen = 512
	d.Execute(task)
	if tr.completions() != 1 || tr.results[0].Status != scsi.StatusCheckCondition {
		t.Fatalf("write with failed Data-Out: %+v", tr.results)
	}
}

// TestAllocations counts what a 4 KiB READ and WRITE allocate in the LU:
// the task (its GOOD result lives in it: Task.Good), and for a write the
// range-lock entry that keeps overlapping writes in arrival order. The
// data buffers come from pools.
func TestAllocations(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   byte
		dir  scsi.DataDir
		want float64
	}{
		{"read", scsi.OpRead10, scsi.DirRead, 1},
		{"write", scsi.OpWrite10, scsi.DirWrite, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDisk(t, diskOpts{})
			tr := &fakeTransport{data: make([]byte, 4096)}
			cdb := cdb10(tc.op, 0, 8, 8) // 4 KiB
			run := func() {
				tr.results = tr.results[:0]
				task := stmf.NewTask(tr)
				task.CDB = cdb
				task.Dir = tc.dir
				task.ExpectedLen = 4096
				d.Admit(task) // as stmf does
				d.Execute(task)
				if len(tr.results) != 1 || tr.results[0].Status != scsi.StatusGood {
					t.Fatalf("%s: %+v", tc.name, tr.results)
				}
				if r := tr.results[0]; r.Release != nil {
					r.Release()
				}
			}
			run()
			if got := testing.AllocsPerRun(200, run); got > tc.want {
				t.Fatalf("%.1f allocations per 4 KiB %s, want at most %.0f", got, tc.name, tc.want)
			}
		})
	}
}

func TestBufPool(t *testing.T) {
	var p bufPool
	for _, tc := range []struct{ n, class, capacity int }{
		{1, 0, 4096}, {4096, 0, 4096}, {4097, 1, 8192}, {1 << 20, 8, 1 << 20}, {8 << 20, 11, 8 << 20}, {8<<20 + 1, -1, 8<<20 + 1},
	} {
		if c := sizeClass(tc.n); c != tc.class {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, c, tc.class)
		}
		b := p.get(tc.n)
		if len(b.b) != tc.capacity {
			t.Errorf("get(%d) gave %d bytes, want %d", tc.n, len(b.b), tc.capacity)
		}
		b.release()
	}
}

func benchIO(b *testing.B, cdb []byte, dir scsi.DataDir, data []byte) {
	d := newTestDisk(b, diskOpts{size: 16 << 20})
	tr := &fakeTransport{data: data}
	b.SetBytes(4096)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tr.results = tr.results[:0]
		task := stmf.NewTask(tr)
		task.CDB = cdb
		task.Dir = dir
		task.ExpectedLen = 4096
		d.Execute(task)
		if r := tr.results[0]; r.Release != nil {
			r.Release()
		}
	}
}

func BenchmarkRead4K(b *testing.B) {
	benchIO(b, cdb10(scsi.OpRead10, 0, 64, 8), scsi.DirRead, nil)
}

func BenchmarkWrite4K(b *testing.B) {
	benchIO(b, cdb10(scsi.OpWrite10, 0, 64, 8), scsi.DirWrite, make([]byte, 4096))
}
