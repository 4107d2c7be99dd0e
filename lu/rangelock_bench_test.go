package lu

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// benchWrite4K drives 4 KiB WRITE(10)s at random aligned LBAs from 32
// concurrent goroutines (queue depth 32), each task going through Admit
// (when the Device implements stmf.Admitter) and Execute as stmf would run
// it. It measures the whole LU write path, page-cache pwrite included.
func benchWrite4K(b *testing.B, d *Device) {
	const blocks = 8 // 4 KiB at 512-byte blocks
	data := make([]byte, blocks*512)
	slots := d.nblocks.Load() / blocks
	var seq atomic.Uint64
	b.SetBytes(int64(len(data)))
	b.SetParallelism(16) // 2 cores x 16 = 32 in flight on the test machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seq.Add(1), 7))
		for pb.Next() {
			lba := rng.Uint64N(slots) * blocks
			tr := &fakeTransport{data: data}
			task := stmf.NewTask(tr)
			task.CDB = cdb10(scsi.OpWrite10, 0, uint32(lba), blocks)
			task.Dir = scsi.DirWrite
			task.ExpectedLen = uint32(len(data))
			task.Seq = seq.Add(1)
			if a, ok := any(d).(stmf.Admitter); ok {
				a.Admit(task)
			}
			d.Execute(task)
			if len(tr.results) != 1 || tr.results[0].Status != scsi.StatusGood {
				b.Fatalf("write failed: %+v", tr.results)
			}
		}
	})
}

// BenchmarkWrite4KQD32 is the hot write path (compare runs with and
// without the range lock: go test -bench Write4KQD32 -count 5 ./lu/).
func BenchmarkWrite4KQD32(b *testing.B) {
	d := newTestDisk(b, diskOpts{size: 256 << 20})
	benchWrite4K(b, d)
}

// BenchmarkRangeLockOnly is the range lock's own cost per write: Admit,
// acquire and release of 4 KiB random writes from 32 goroutines, no I/O.
func BenchmarkRangeLockOnly(b *testing.B) {
	d := newTestDisk(b, diskOpts{size: 256 << 20})
	slots := d.nblocks.Load() / 8
	var seq atomic.Uint64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seq.Add(1), 9))
		task := stmf.NewTask(&fakeTransport{})
		task.Dir = scsi.DirWrite
		for pb.Next() {
			task.CDB = cdb10(scsi.OpWrite10, 0, uint32(rng.Uint64N(slots)*8), 8)
			d.Admit(task)
			e, ok := d.vaai.locks.acquire(task, d.cmds.row(task.LUDecoded))
			if !ok {
				b.Fatal("acquire failed")
			}
			d.vaai.locks.release(e)
		}
	})
}

// BenchmarkCompareAndWrite is one-block ATS at queue depth 1 on the LU
// path (Admit, range lock, read, compare, write), flipping the block
// between two patterns like a VMFS heartbeat.
func BenchmarkCompareAndWrite(b *testing.B) {
	d := newTestDisk(b, diskOpts{size: 16 << 20})
	x, y := make([]byte, 512), make([]byte, 512)
	for i := range y {
		y[i] = 0x5a
	}
	bufs := [2][]byte{cawData(x, y), cawData(y, x)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr := &fakeTransport{data: bufs[i&1]}
		task := stmf.NewTask(tr)
		task.CDB = cawCDB(0, 100, 1)
		task.Dir, task.ExpectedLen = scsi.DirWrite, 1024
		d.Admit(task)
		d.Execute(task)
		if tr.results[0].Status != scsi.StatusGood {
			b.Fatalf("CAW %d: status %v", i, tr.results[0].Status)
		}
	}
}
