package lu

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// cawCDB builds COMPARE AND WRITE for n blocks at lba.
func cawCDB(b1 byte, lba uint64, n byte) []byte {
	c := make([]byte, 16)
	c[0], c[1] = scsi.OpCompareAndWrite, b1
	binary.BigEndian.PutUint64(c[2:10], lba)
	c[13] = n
	return c
}

// cawData is compare data followed by write data.
func cawData(cmp, wr []byte) []byte { return append(append([]byte{}, cmp...), wr...) }

func TestCompareAndWrite(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 1 << 20}) // 2048 blocks
	const nb = 2048
	a := bytes.Repeat([]byte{'A'}, 512)
	b := bytes.Repeat([]byte{'B'}, 512)
	wr := scsi.DirWrite
	put := func(lba uint32, data []byte) {
		t.Helper()
		expectGood(t, "setup write", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, lba, uint16(len(data)/512)), dir: wr, expLen: uint32(len(data)), data: data}))
	}
	get := func(lba uint32, n uint16) []byte {
		t.Helper()
		return exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, lba, n), dir: scsi.DirRead, expLen: uint32(n) * 512}).data
	}

	// Good compare: the write data lands.
	put(5, a)
	r := exec(t, d, req{cdb: cawCDB(0, 5, 1), dir: wr, expLen: 1024, data: cawData(a, b)})
	expectGood(t, "CAW match", r)
	if r.transferLen != 1024 {
		t.Errorf("CAW TransferLen %d, want 1024", r.transferLen)
	}
	if !bytes.Equal(get(5, 1), b) {
		t.Fatal("CAW match: block not written")
	}

	// Miscompare: offset of the first differing byte, nothing written.
	for _, off := range []int{0, 485, 511} {
		put(6, a)
		cmp := append([]byte{}, a...)
		cmp[off] = 'C'
		r = exec(t, d, req{cdb: cawCDB(0, 6, 1), dir: wr, expLen: 1024, data: cawData(cmp, b)})
		expectSense(t, "CAW miscompare", r, scsi.KeyMiscompare, scsi.ASCMiscompareDuringVerify)
		if r.sense.Info == nil || *r.sense.Info != uint32(off) || r.rawSense[0]&0x80 == 0 {
			t.Errorf("miscompare at %d: VALID/INFORMATION % x", off, r.rawSense[:7])
		}
		if !bytes.Equal(get(6, 1), a) {
			t.Fatalf("miscompare at %d: block was written", off)
		}
	}

	// Several blocks, miscompare in the last one (libiscsi Miscompare).
	three := bytes.Repeat(a, 3)
	put(10, three)
	cmp := append([]byte{}, three...)
	cmp[len(cmp)-27] = 'C'
	r = exec(t, d, req{cdb: cawCDB(0, 10, 3), dir: wr, expLen: 6 * 512, data: cawData(cmp, bytes.Repeat(b, 3))})
	expectSense(t, "3-block miscompare", r, scsi.KeyMiscompare, scsi.ASCMiscompareDuringVerify)
	if *r.sense.Info != uint32(3*512-27) {
		t.Errorf("3-block miscompare offset %d", *r.sense.Info)
	}
	expectGood(t, "3-block CAW", exec(t, d, req{cdb: cawCDB(0, 10, 3), dir: wr, expLen: 6 * 512, data: cawData(three, bytes.Repeat(b, 3))}))
	if !bytes.Equal(get(10, 3), bytes.Repeat(b, 3)) {
		t.Fatal("3-block CAW not written")
	}
	// The last blocks of the LU.
	put(nb-2, bytes.Repeat(a, 2))
	expectGood(t, "CAW at the end", exec(t, d, req{cdb: cawCDB(0, nb-2, 2), dir: wr, expLen: 4 * 512, data: cawData(bytes.Repeat(a, 2), bytes.Repeat(b, 2))}))

	invField := func(name string, r resp) {
		t.Helper()
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
	// Zero blocks: nothing happens, unless the Data-Out holds whole
	// compare/write pairs (a count of 256 that wrapped).
	expectGood(t, "0 blocks", exec(t, d, req{cdb: cawCDB(0, 5, 0)}))
	expectGood(t, "0 blocks, 1 block of Data-Out (libiscsi DpoFua)", exec(t, d, req{cdb: cawCDB(0x18, 0, 0), dir: wr, expLen: 512, data: a}))
	invField("0 blocks, 512 blocks of Data-Out", exec(t, d, req{cdb: cawCDB(0, 0, 0), dir: wr, expLen: 512 * 512, data: make([]byte, 512*512)}))
	// Data-Out not exactly compare + write data: the Data-Out length
	// disagrees with the CDB (the residual is reported).
	iuLen := func(name string, r resp) {
		t.Helper()
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit)
	}
	iuLen("1 block, 4 blocks of Data-Out", exec(t, d, req{cdb: cawCDB(0, 5, 1), dir: wr, expLen: 2048, data: make([]byte, 2048)}))
	iuLen("3 blocks, 4 blocks of Data-Out", exec(t, d, req{cdb: cawCDB(0, 5, 3), dir: wr, expLen: 2048, data: make([]byte, 2048)}))
	iuLen("1 block, no Data-Out", exec(t, d, req{cdb: cawCDB(0, 5, 1)}))
	invField("WRPROTECT", exec(t, d, req{cdb: cawCDB(0x20, 5, 1), dir: wr, expLen: 1024, data: cawData(b, a)}))
	expectSense(t, "beyond the end", exec(t, d, req{cdb: cawCDB(0, nb-1, 2), dir: wr, expLen: 2048, data: make([]byte, 2048)}),
		scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange)
	expectSense(t, "LBA 2^63", exec(t, d, req{cdb: cawCDB(0, 1<<63, 1), dir: wr, expLen: 1024, data: make([]byte, 1024)}),
		scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange)
	if r := exec(t, d, req{cdb: cawCDB(0, 5, 1), dir: wr, expLen: 1024, data: cawData(b, a)}); r.received != 1 {
		t.Errorf("good CAW pulled Data-Out %d times", r.received)
	}

	// Maximum length: 255 blocks at 512 bytes; fewer when a transfer
	// cannot hold both halves.
	if m := d.maxCompareAndWrite(); m != maxCAWBlocks {
		t.Errorf("max CAW %d", m)
	}
	big := newTestDisk(t, diskOpts{size: 16 << 20, blockSize: 65536})
	if m := big.maxCompareAndWrite(); m != 64 {
		t.Errorf("max CAW at 64 KiB blocks %d, want 64", m)
	}
	invField("more than the maximum", exec(t, big, req{cdb: cawCDB(0, 0, 65), dir: wr, expLen: 130 * 65536, data: make([]byte, 130*65536)}))

	// FUA and write cache disabled make the write durable before GOOD.
	var sc syncCounter
	sc.install(d)
	expectGood(t, "CAW FUA", exec(t, d, req{cdb: cawCDB(0x08, 5, 1), dir: wr, expLen: 1024, data: cawData(a, b)}))
	if sc.dsyncWrites.Load()+sc.fdatasync.Load() == 0 {
		t.Error("CAW with FUA was not made durable")
	}
	wp := newTestDisk(t, diskOpts{wp: true})
	expectSense(t, "write protected", exec(t, wp, req{cdb: cawCDB(0, 0, 1), dir: wr, expLen: 1024, data: make([]byte, 1024)}),
		scsi.KeyDataProtect, scsi.ASCWriteProtected)
	if d.panics.Load() != 0 {
		t.Fatal("handler panicked")
	}
	lockIdle(t, d)
}

// counterBlock is a block whose first 8 bytes hold a big-endian counter.
func counterBlock(v uint64, bs uint32) []byte {
	b := make([]byte, bs)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// TestATSCounterHammer: many goroutines on several I_T nexuses increment
// one counter with read + COMPARE AND WRITE, retrying on miscompare. No
// update may be lost and every miscompare must point into the counter.
func TestATSCounterHammer(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	const sessions, perSession, incs, lba = 4, 4, 25, 7
	var ss []*stmf.Session
	for i := 0; i < sessions; i++ {
		ss = append(ss, r.session(i))
	}
	r.write(ss[0], d, lba, counterBlock(0, 512))

	var wg sync.WaitGroup
	var miscompares atomic.Int64
	for g := 0; g < sessions*perSession; g++ {
		s := ss[g%sessions]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done, tries := 0, 0; done < incs; tries++ {
				if tries > incs*400 {
					t.Errorf("goroutine gave up after %d attempts", tries)
					return
				}
				cur := r.read(s, d, lba, 1)
				v := binary.BigEndian.Uint64(cur)
				res := r.do(s, d, cawCDB(0, lba, 1), scsi.DirWrite, 1024, cawData(cur, counterBlock(v+1, 512)))
				switch {
				case res.status == scsi.StatusGood:
					done++
				case res.sense != nil && res.sense.Key == scsi.KeyMiscompare:
					miscompares.Add(1)
					if res.sense.Info == nil || *res.sense.Info >= 8 {
						t.Errorf("miscompare outside the counter: %+v", res.sense)
						return
					}
				default:
					t.Errorf("CAW: status %v sense %+v", res.status, res.sense)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := binary.BigEndian.Uint64(r.read(ss[0], d, lba, 1))
	if want := uint64(sessions * perSession * incs); got != want {
		t.Fatalf("counter %d after %d increments: updates lost", got, want)
	}
	t.Logf("%d increments, %d miscompares (legitimate: another nexus got there first)", got, miscompares.Load())
	lockIdle(t, d)
}

// TestATSNoFalseMiscompare: each owner increments its own block with
// COMPARE AND WRITE and must never see a miscompare, while other nexuses
// run ORWRITE of zeros (a read-modify-write that changes nothing) and
// COMPARE AND WRITE of what they read over all the owners' blocks. A
// non-atomic read-modify-write would write a stale counter back.
func TestATSNoFalseMiscompare(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	const owners, incs, disturbOps = 8, 150, 5000 // disturbers stop when the owners are done
	admin := r.session(100)
	for i := 0; i < owners; i++ {
		r.write(admin, d, uint64(i), counterBlock(0, 512))
	}
	stop := make(chan struct{})
	var wg, dwg sync.WaitGroup
	for k := 0; k < 2; k++ {
		s := r.session(50 + k)
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			zeros := make([]byte, owners*512)
			for i := 0; i < disturbOps; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if res := r.do(s, d, cdb16(scsi.OpOrWrite16, 0, 0, owners), scsi.DirWrite, owners*512, zeros); res.status != scsi.StatusGood {
					t.Errorf("ORWRITE: %v %+v", res.status, res.sense)
					return
				}
				// A whole-range CAW that rewrites what it read (may miscompare).
				cur := r.read(s, d, 0, owners)
				res := r.do(s, d, cawCDB(0, 0, owners), scsi.DirWrite, 2*owners*512, cawData(cur, cur))
				if res.status != scsi.StatusGood && (res.sense == nil || res.sense.Key != scsi.KeyMiscompare) {
					t.Errorf("disturbing CAW: %v %+v", res.status, res.sense)
					return
				}
			}
		}()
	}
	for i := 0; i < owners; i++ {
		s := r.session(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := uint64(0); v < incs; v++ {
				res := r.do(s, d, cawCDB(0, uint64(i), 1), scsi.DirWrite, 1024, cawData(counterBlock(v, 512), counterBlock(v+1, 512)))
				if res.status != scsi.StatusGood {
					t.Errorf("owner %d: CAW %d -> %d: %v %+v (false miscompare)", i, v, v+1, res.status, res.sense)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	dwg.Wait()
	for i := 0; i < owners; i++ {
		if got := binary.BigEndian.Uint64(r.read(admin, d, uint64(i), 1)); got != incs {
			t.Errorf("owner %d: counter %d, want %d", i, got, incs)
		}
	}
	lockIdle(t, d)
}

// TestATSVersusPlainWriter: a plain writer keeps rewriting the second
// block of a two-block COMPARE AND WRITE range with increasing sequence
// numbers. A CAW that compared old data must never write it back over a
// newer WRITE: the block ends with the writer's last value.
func TestATSVersusPlainWriter(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := newVRig(t, d)
	const cawers, incs, lba = 4, 15, 20
	admin := r.session(0)
	r.write(admin, d, lba, make([]byte, 1024))

	var last atomic.Uint64
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	ws := r.session(1)
	go func() {
		defer close(writerDone)
		for seq := uint64(1); seq <= 20000; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			r.write(ws, d, lba+1, counterBlock(seq, 512))
			last.Store(seq)
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < cawers; g++ {
		s := r.session(10 + g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done, tries := 0, 0; done < incs; tries++ {
				if tries > 20000 {
					t.Errorf("gave up after %d attempts", tries)
					return
				}
				cur := r.read(s, d, lba, 2)
				v := binary.BigEndian.Uint64(cur)
				next := append(counterBlock(v+1, 512), cur[512:]...)
				res := r.do(s, d, cawCDB(0, lba, 2), scsi.DirWrite, 2048, cawData(cur, next))
				switch {
				case res.status == scsi.StatusGood:
					done++
				case res.sense != nil && res.sense.Key == scsi.KeyMiscompare:
				default:
					t.Errorf("CAW: %v %+v", res.status, res.sense)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-writerDone
	b := r.read(admin, d, lba, 2)
	if got := binary.BigEndian.Uint64(b); got != cawers*incs {
		t.Errorf("counter %d, want %d", got, cawers*incs)
	}
	if got, want := binary.BigEndian.Uint64(b[512:]), last.Load(); got != want {
		t.Fatalf("second block holds %d, the writer's last write was %d: a CAW wrote stale data back", got, want)
	}
	lockIdle(t, d)
}
