package lu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
)

// fakeClock replaces the device's monotonic clock for the fence window.
type fakeClock struct{ now time.Duration }

func (c *fakeClock) install(d *Device) { d.fence.now = func() time.Duration { return c.now } }

// twoNodes is one LU in memory opened by two devices, as two cluster
// nodes sharing a store see it: a owns it first, then b takes it over.
func twoNodes(t *testing.T) (a, b *Device, st *memstore.Store, ca, cb *fakeClock) {
	t.Helper()
	st = memstore.New(1<<20, 512, backing.Caps{})
	a = newMemDisk(t, st, Config{Thin: true})
	b, err := Open(context.Background(), st.Peer(), OpenOptions{Log: quietLog()})
	if err != nil {
		t.Fatalf("Open on the peer: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	ca, cb = &fakeClock{}, &fakeClock{}
	ca.install(a)
	cb.install(b)
	return a, b, st, ca, cb
}

func blockWrite(op byte, b1 byte, lba uint32, fill byte) req {
	c := cdb10(op, b1, lba, 1)
	if op == scsi.OpWrite16 || op == scsi.OpOrWrite16 || op == scsi.OpWriteSame16 {
		c = cdb16(op, b1, uint64(lba), 1)
	}
	return req{cdb: c, dir: scsi.DirWrite, expLen: 512, data: bytes.Repeat([]byte{fill}, 512)}
}

// TestFenceDeposedOwner: node A fences token 5 and writes; node B takes
// the LU over with token 9. Within the window A trusts its last check
// (no store read); once it has run out on A's monotonic clock, as after a
// freeze, every media-modifying command from A answers 02/04/0B and
// leaves the store untouched, while B's writes land.
func TestFenceDeposedOwner(t *testing.T) {
	a, b, st, ca, _ := twoNodes(t)
	if err := a.SetFence(5); err != nil {
		t.Fatalf("A SetFence(5): %v", err)
	}
	expectGood(t, "A WRITE as owner", exec(t, a, blockWrite(scsi.OpWrite10, 0, 1, 0xaa)))
	if err := b.SetFence(9); err != nil {
		t.Fatalf("B SetFence(9): %v", err)
	}
	expectGood(t, "B WRITE", exec(t, b, blockWrite(scsi.OpWrite10, 0, 2, 0xbb)))

	reads := st.FenceReads()
	ca.now += FenceWindow - time.Millisecond
	expectGood(t, "A WRITE inside its window", exec(t, a, blockWrite(scsi.OpWrite10, 0, 3, 0xaa)))
	if n := st.FenceReads() - reads; n != 0 {
		t.Fatalf("%d store reads inside the window, want 0 (the cached check)", n)
	}
	ca.now += time.Millisecond // the window ran out (a freeze moves the clock much further)

	before := make([]byte, 1<<20)
	if err := st.ReadAt(before, 0); err != nil {
		t.Fatal(err)
	}
	unmap := tpUnmapList(unmapDescriptor{lba: 2, n: 1})
	cmds := []struct {
		name string
		r    req
	}{
		{"WRITE (10)", blockWrite(scsi.OpWrite10, 0, 2, 0xaa)},
		{"WRITE (10) FUA", blockWrite(scsi.OpWrite10, 0x08, 2, 0xaa)},
		{"WRITE (16)", blockWrite(scsi.OpWrite16, 0, 2, 0xaa)},
		{"WRITE AND VERIFY (10)", blockWrite(scsi.OpWriteVerify10, 0, 2, 0xaa)},
		{"ORWRITE (16)", blockWrite(scsi.OpOrWrite16, 0, 2, 0xaa)},
		{"WRITE SAME (16)", blockWrite(scsi.OpWriteSame16, 0, 2, 0xaa)},
		{"WRITE SAME (16) UNMAP", blockWrite(scsi.OpWriteSame16, 0x08, 2, 0)},
		{"UNMAP", tpUnmapReq(unmap)},
		{"COMPARE AND WRITE", req{cdb: cawCDB(0, 2, 1), dir: scsi.DirWrite, expLen: 1024,
			data: cawData(bytes.Repeat([]byte{0xbb}, 512), bytes.Repeat([]byte{0xaa}, 512))}},
	}
	for _, tc := range cmds {
		t.Run(tc.name, func(t *testing.T) {
			expectSense(t, tc.name, exec(t, a, tc.r), scsi.KeyNotReady, scsi.ASCLUNotAccessibleStandby)
		})
	}
	after := make([]byte, 1<<20)
	if err := st.ReadAt(after, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a refused command changed the store")
	}
	if a.WriteFailure() != nil {
		t.Errorf("a fence refusal latched a write failure: %v", a.WriteFailure())
	}
	if err := a.SetProps(Props{Alias: new(string)}); !errors.Is(err, backing.ErrFenced) {
		t.Errorf("A SetProps: %v, want ErrFenced", err)
	}
	if err := a.storePR(nil); !errors.Is(err, backing.ErrFenced) {
		t.Errorf("A storePR: %v, want ErrFenced", err)
	}
	if err := a.Resize(2 << 20); !errors.Is(err, backing.ErrFenced) {
		t.Errorf("A Resize: %v, want ErrFenced", err)
	}
	expectGood(t, "B WRITE after A was refused", exec(t, b, blockWrite(scsi.OpWrite10, 0, 2, 0xcc)))
	if got := readBlocksMem(t, b, 2); !bytes.Equal(got, bytes.Repeat([]byte{0xcc}, 512)) {
		t.Fatal("B's write did not land")
	}
	if err := b.SetProps(Props{Alias: new(string)}); err != nil {
		t.Errorf("B SetProps: %v", err)
	}
	// A cannot come back with an older token, only with a newer one;
	// then B is the deposed one.
	if err := a.SetFence(7); !errors.Is(err, backing.ErrFenced) {
		t.Fatalf("A SetFence(7) after 9: %v, want ErrFenced", err)
	}
	if err := a.SetFence(10); err != nil {
		t.Fatalf("A SetFence(10): %v", err)
	}
	expectGood(t, "A WRITE with token 10", exec(t, a, blockWrite(scsi.OpWrite10, 0, 4, 0xaa)))
	b.fence.now = func() time.Duration { return time.Hour }
	expectSense(t, "B WRITE after A's token 10", exec(t, b, blockWrite(scsi.OpWrite10, 0, 4, 0xbb)), scsi.KeyNotReady, scsi.ASCLUNotAccessibleStandby)
	if m, _ := st.LoadMeta(); m.FenceToken != 10 {
		t.Errorf("stored token %d, want 10", m.FenceToken)
	}
}

// TestFenceCacheWindow: the store is read at most once per window while
// the token is current, and again as soon as the window has run out.
func TestFenceCacheWindow(t *testing.T) {
	a, _, st, ca, _ := twoNodes(t)
	if err := a.SetFence(3); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance   time.Duration
		wantReads int
	}{
		{0, 0},
		{50 * time.Millisecond, 0},
		{49 * time.Millisecond, 0},
		{time.Millisecond, 1}, // 100 ms after SetFence's read
		{time.Millisecond, 0},
		{10 * time.Second, 1}, // a freeze: stale at once
	}
	for i, s := range steps {
		ca.now += s.advance
		n := st.FenceReads()
		expectGood(t, "WRITE", exec(t, a, blockWrite(scsi.OpWrite10, 0, 1, byte(i))))
		if got := st.FenceReads() - n; got != s.wantReads {
			t.Errorf("step %d (+%v): %d store reads, want %d", i, s.advance, got, s.wantReads)
		}
	}
}

// plainStore hides the memstore's Fencer: a store that cannot fence.
type plainStore struct{ backing.Store }

// TestFenceWithoutFencer: a store without backing.Fencer (zvols) works
// unchanged: SetFence records nothing and writes are not checked. A
// read-only store is not fenced either (its writes are refused anyway).
func TestFenceWithoutFencer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		readOnly  bool
		wantSense bool
	}{
		{"no Fencer", false, false},
		{"read-only", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := memstore.New(1<<20, 512, backing.Caps{ReadOnly: tc.readOnly})
			var st backing.Store = plainStore{ms}
			if tc.readOnly {
				st = ms
			}
			d, err := New(context.Background(), st, Config{}, &GUIDGenerator{HostID: HostIDFrom32(1)}, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if err := d.SetFence(5); err != nil {
				t.Fatalf("SetFence: %v", err)
			}
			if d.FenceToken() != 0 {
				t.Errorf("token %d", d.FenceToken())
			}
			r := exec(t, d, blockWrite(scsi.OpWrite10, 0, 1, 0x11))
			if tc.wantSense {
				expectSense(t, "WRITE", r, scsi.KeyDataProtect, scsi.ASCWriteProtected)
			} else {
				expectGood(t, "WRITE", r)
			}
			if n := ms.FenceReads(); n != 0 {
				t.Errorf("%d fence reads", n)
			}
			if m, _ := ms.LoadMeta(); m.FenceToken != 0 {
				t.Errorf("token %d recorded", m.FenceToken)
			}
		})
	}
}

// TestFenceFileStore is the device-level test on one file opened by two
// file stores (two nodes): the deposed node's WRITE and WRITE ATOMIC get
// 02/04/0B and do not reach the file; the new owner's do. Both layouts.
func TestFenceFileStore(t *testing.T) {
	for _, meta := range []bool{false, true} {
		name := "header"
		if meta {
			name = "meta file"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fc := fileConfig{DataFile: filepath.Join(dir, "lu.img"), Size: 1 << 20}
			if meta {
				fc.MetaFile = filepath.Join(dir, "lu.meta")
			}
			a, err := createFile(context.Background(), fc, &GUIDGenerator{HostID: HostIDFrom32(1)}, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := importFile(context.Background(), fc.DataFile, fc.MetaFile, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ca := &fakeClock{}
			ca.install(a)
			if err := a.SetFence(5); err != nil {
				t.Fatal(err)
			}
			expectGood(t, "A WRITE", exec(t, a, blockWrite(scsi.OpWrite10, 0, 6, 0xaa)))
			if err := b.SetFence(9); err != nil {
				t.Fatal(err)
			}
			bdata := bytes.Repeat([]byte{0xbb}, 512)
			expectGood(t, "B WRITE", exec(t, b, blockWrite(scsi.OpWrite10, 0, 6, 0xbb)))
			ca.now += FenceWindow
			expectSense(t, "A WRITE", exec(t, a, blockWrite(scsi.OpWrite10, 0, 6, 0xaa)), scsi.KeyNotReady, scsi.ASCLUNotAccessibleStandby)
			expectSense(t, "A WRITE ATOMIC", atomicWrite(t, a, 6, bytes.Repeat([]byte{0xaa}, 512)), scsi.KeyNotReady, scsi.ASCLUNotAccessibleStandby)
			raw, err := os.ReadFile(fc.DataFile)
			if err != nil {
				t.Fatal(err)
			}
			off := 6 * 512
			if !meta {
				off += 64 << 10
			}
			if !bytes.Equal(raw[off:off+512], bdata) {
				t.Fatalf("the file holds % x..., want B's data", raw[off:off+4])
			}
			expectGood(t, "B WRITE ATOMIC", atomicWrite(t, b, 7, bdata))
		})
	}
}

// BenchmarkCheckFence is the data path's cost of fencing: the cached
// check (one monotonic clock read and three atomic loads) with the store
// read at most every FenceWindow.
func BenchmarkCheckFence(b *testing.B) {
	for _, token := range []int64{0, 5} {
		b.Run(map[bool]string{false: "off", true: "on"}[token != 0], func(b *testing.B) {
			st := memstore.New(1<<20, 512, backing.Caps{})
			d := newMemDisk(b, st, Config{})
			if err := d.SetFence(token); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := d.checkFence(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// dropCounter is a memstore that counts DropCache calls (a store whose
// data this host may cache: backing.CacheDropper).
type dropCounter struct {
	*memstore.Store
	drops int
}

func (d *dropCounter) DropCache() error { d.drops++; return nil }

// A takeover (SetFence with a token) drops the data this host cached in
// an earlier tenure before the LU serves: another host may have written
// the shared device since. Giving up (token 0) drops nothing.
func TestSetFenceDropsCache(t *testing.T) {
	st := &dropCounter{Store: memstore.New(1<<20, 512, backing.Caps{})}
	d, err := New(context.Background(), st, Config{}, &GUIDGenerator{HostID: HostIDFrom32(0x12345678)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.SetFence(3); err != nil {
		t.Fatal(err)
	}
	if st.drops != 1 {
		t.Fatalf("DropCache calls after the takeover: %d, want 1", st.drops)
	}
	if err := d.SetFence(0); err != nil {
		t.Fatal(err)
	}
	if st.drops != 1 {
		t.Fatalf("DropCache calls after giving up: %d, want 1", st.drops)
	}
}
