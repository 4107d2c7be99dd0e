package lu

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// thinOpts tweak newThinDisk.
type thinOpts struct {
	size      uint64
	thin      bool
	soft      uint8
	wp, wcd   bool
	metaFile  bool
	blockSize uint32
}

// newThinDisk creates a (thin or thick) LU in a temporary directory.
func newThinDisk(t testing.TB, o thinOpts) *Device {
	t.Helper()
	if o.size == 0 {
		o.size = 1 << 20
	}
	dir := t.TempDir()
	cfg := fileConfig{
		DataFile: filepath.Join(dir, "lu.img"), Size: o.size, BlockSize: o.blockSize,
		Thin: o.thin, SoftThreshold: o.soft, WriteProtect: o.wp, WriteCacheDisabled: o.wcd,
	}
	if o.metaFile {
		cfg.MetaFile = filepath.Join(dir, "lu.meta")
	}
	d, err := createFile(context.Background(), cfg, &GUIDGenerator{HostID: HostIDFrom32(0x0badcafe)}, quietLog())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func tpGetLBAStatusCDB(lba uint64, alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = scsi.OpServiceActionIn, scsi.SAGetLBAStatus
	binary.BigEndian.PutUint64(c[2:10], lba)
	binary.BigEndian.PutUint32(c[10:14], alloc)
	return c
}

// lbaStatus runs GET LBA STATUS and decodes the descriptors.
func tpLBAStatus(t *testing.T, d *Device, lba uint64) []lbaExtent {
	t.Helper()
	r := exec(t, d, req{cdb: tpGetLBAStatusCDB(lba, 1<<16), dir: scsi.DirRead, expLen: 1 << 16})
	expectGood(t, "GET LBA STATUS", r)
	if len(r.data) < 8 {
		t.Fatalf("GET LBA STATUS: %d bytes", len(r.data))
	}
	n := binary.BigEndian.Uint32(r.data[0:4])
	if (n-4)%16 != 0 || int(n)+4 != len(r.data) || n < 20 {
		t.Fatalf("GET LBA STATUS: parameter data length %d for %d bytes", n, len(r.data))
	}
	var out []lbaExtent
	for p := r.data[8:]; len(p) >= 16; p = p[16:] {
		out = append(out, lbaExtent{lba: binary.BigEndian.Uint64(p[0:8]), n: binary.BigEndian.Uint32(p[8:12]), status: p[12] & 0x0f})
	}
	if out[0].lba != lba {
		t.Fatalf("GET LBA STATUS at %d: first descriptor starts at %d", lba, out[0].lba)
	}
	for i := 1; i < len(out); i++ {
		if out[i].lba != out[i-1].lba+uint64(out[i-1].n) {
			t.Fatalf("GET LBA STATUS: descriptors not contiguous: %+v", out)
		}
	}
	return out
}

func tpWrite(t *testing.T, d *Device, lba uint64, n uint32, fill byte) {
	t.Helper()
	data := bytes.Repeat([]byte{fill}, int(n)*int(d.bs))
	r := exec(t, d, req{cdb: cdb16(scsi.OpWrite16, 0, lba, n), dir: scsi.DirWrite, expLen: uint32(len(data)), data: data})
	expectGood(t, "WRITE (16)", r)
}

func tpRead(t *testing.T, d *Device, lba uint64, n uint32) []byte {
	t.Helper()
	r := exec(t, d, req{cdb: cdb16(scsi.OpRead16, 0, lba, n), dir: scsi.DirRead, expLen: n * d.bs})
	expectGood(t, "READ (16)", r)
	return r.data
}

func TestThinMetadataAndProps(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true, soft: 80, metaFile: true})
	if i := d.Info(); !i.Thin || i.SoftThreshold != 80 {
		t.Fatalf("Info: thin %v soft %d", i.Thin, i.SoftThreshold)
	}
	off := uint8(0)
	if err := d.SetProps(Props{SoftThreshold: &off}); err != nil {
		t.Fatal(err)
	}
	bad := uint8(101)
	if err := d.SetProps(Props{SoftThreshold: &bad}); err == nil {
		t.Error("soft threshold 101% accepted")
	}
	ninety := uint8(90)
	if err := d.SetProps(Props{SoftThreshold: &ninety}); err != nil {
		t.Fatal(err)
	}
	data, meta := d.loc.DataFile, d.loc.MetaFile
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := importFile(context.Background(), data, meta, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if i := d2.Info(); !i.Thin || i.SoftThreshold != 90 {
		t.Fatalf("imported: thin %v soft %d", i.Thin, i.SoftThreshold)
	}
	if r := exec(t, d2, req{cdb: make10(scsi.OpUnmap), dir: scsi.DirWrite}); r.status != scsi.StatusGood {
		t.Fatalf("imported thin LU does not know UNMAP: %+v", r.sense)
	}

	// A thick LU has no soft threshold; thick is not written to the metadata.
	thick := newThinDisk(t, thinOpts{})
	if err := thick.SetProps(Props{SoftThreshold: &ninety}); err == nil {
		t.Error("soft threshold on a thick LU accepted")
	}
	if _, err := createFile(context.Background(), fileConfig{DataFile: filepath.Join(t.TempDir(), "x"), Size: 1 << 20, SoftThreshold: 50}, nil, quietLog()); err == nil {
		t.Error("Create: soft threshold without thin accepted")
	}
}

func TestThinInquiryAndCapacity(t *testing.T) {
	for _, thin := range []bool{false, true} {
		d := newThinDisk(t, thinOpts{thin: thin, soft: map[bool]uint8{true: 80}[thin]})
		rc := exec(t, d, req{cdb: rc16CDB(32), dir: scsi.DirRead, expLen: 32})
		expectGood(t, "READ CAPACITY (16)", rc)
		bl := exec(t, d, req{cdb: inquiryCDB(true, vpdBlockLimits, 255), dir: scsi.DirRead, expLen: 255})
		lbp := exec(t, d, req{cdb: inquiryCDB(true, vpdLogicalBlockProv, 255), dir: scsi.DirRead, expLen: 255})
		expectGood(t, "VPD B0", bl)
		expectGood(t, "VPD B2", lbp)
		maxWS := binary.BigEndian.Uint64(bl.data[36:44])
		if maxWS != 0xffff || bl.data[4]&0x01 != 0 { // MAXIMUM WRITE SAME LENGTH, WSNZ=0
			t.Errorf("thin=%v: max write same %d, byte 4 %x", thin, maxWS, bl.data[4])
		}
		if len(lbp.data) != 8 || lbp.data[3] != 4 {
			t.Fatalf("VPD B2 % x", lbp.data)
		}
		if !thin {
			if rc.data[14] != 0 || !bytes.Equal(bl.data[20:36], make([]byte, 16)) || !bytes.Equal(lbp.data[4:], make([]byte, 4)) {
				t.Errorf("thick LU reports provisioning: rc16 % x, B0 % x, B2 % x", rc.data[12:16], bl.data[20:36], lbp.data)
			}
			continue
		}
		if rc.data[14] != 0xc0 {
			t.Errorf("thin READ CAPACITY (16) byte 14 %02x, want LBPME|LBPRZ", rc.data[14])
		}
		if got := binary.BigEndian.Uint32(bl.data[20:24]); got != 1<<20 {
			t.Errorf("MAXIMUM UNMAP LBA COUNT %d", got)
		}
		if got := binary.BigEndian.Uint32(bl.data[24:28]); got < 256 || got > 4095 {
			t.Errorf("MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT %d", got)
		}
		if got := binary.BigEndian.Uint32(bl.data[28:32]); got != 8 {
			t.Errorf("OPTIMAL UNMAP GRANULARITY %d, want 8 (4 KiB)", got)
		}
		if got := binary.BigEndian.Uint32(bl.data[32:36]); got != 0x80000000 {
			t.Errorf("UGAVALID/alignment %08x", got)
		}
		if lbp.data[4] == 0 || lbp.data[5] != 0xe4 || lbp.data[6]&0x07 != 0x02 {
			t.Errorf("thin VPD B2 % x: want threshold exponent, LBPU|LBPWS|LBPWS10|LBPRZ, type thin", lbp.data)
		}
	}
	// 4 KiB blocks: limits are in blocks.
	d := newThinDisk(t, thinOpts{thin: true, blockSize: 4096, size: 4 << 20})
	bl := exec(t, d, req{cdb: inquiryCDB(true, vpdBlockLimits, 64), dir: scsi.DirRead, expLen: 64})
	if got := binary.BigEndian.Uint32(bl.data[20:24]); got != (1<<30)/4096 {
		t.Errorf("4K: MAXIMUM UNMAP LBA COUNT %d", got)
	}
	if got := binary.BigEndian.Uint64(bl.data[36:44]); got != (64<<20)/4096 {
		t.Errorf("4K: MAXIMUM WRITE SAME LENGTH %d", got)
	}
	if got := binary.BigEndian.Uint32(bl.data[28:32]); got != 1 {
		t.Errorf("4K: OPTIMAL UNMAP GRANULARITY %d", got)
	}
}

func TestThinCommandTable(t *testing.T) {
	thin := newThinDisk(t, thinOpts{thin: true})
	thick := newThinDisk(t, thinOpts{})
	// UNMAP is added for thin LUs; WRITE ATOMIC is in both (file LUs).
	if n, m := len(implemented(thin)), len(implemented(thick)); n != m+1 {
		t.Fatalf("thin %d, thick %d commands", n, m)
	}
	oneCmd := func(d *Device, op byte) resp {
		return exec(t, d, req{cdb: rsocCDB(false, 1, op, 0, 512), dir: scsi.DirRead, expLen: 512})
	}
	for _, c := range []struct {
		d         *Device
		op        byte
		supported bool
		byte1     byte
	}{
		{thin, scsi.OpUnmap, true, 0},
		{thick, scsi.OpUnmap, false, 0},
		{thin, scsi.OpWriteSame10, true, 0x08},
		{thick, scsi.OpWriteSame10, true, 0x00},
		{thin, scsi.OpWriteSame16, true, 0x09},
		{thick, scsi.OpWriteSame16, true, 0x01},
	} {
		r := oneCmd(c.d, c.op)
		expectGood(t, "RSOC", r)
		if got := r.data[1]&7 == supportStandard; got != c.supported {
			t.Errorf("op %02x thin=%v: supported %v", c.op, c.d.thin.enabled, got)
			continue
		}
		if c.supported && r.data[5] != c.byte1 {
			t.Errorf("op %02x thin=%v: usage byte 1 %02x, want %02x", c.op, c.d.thin.enabled, r.data[5], c.byte1)
		}
	}
}

func TestGetLBAStatus(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true}) // 2048 blocks
	nb := d.nblocks.Load()
	fresh := tpLBAStatus(t, d, 0)
	if fresh[0].status != lbaDeallocated {
		t.Skip("the file system of the test directory reports no holes")
	}
	if len(fresh) != 1 || uint64(fresh[0].n) != nb {
		t.Fatalf("fresh LU: %+v", fresh)
	}
	tpWrite(t, d, 16, 8, 0xaa) // one 4 KiB file system block
	tpWrite(t, d, 1, 1, 0xbb)  // maps the 4 KiB around it: blocks 0..7
	want := []lbaExtent{{0, 8, lbaMapped}, {8, 8, lbaDeallocated}, {16, 8, lbaMapped}, {24, uint32(nb - 24), lbaDeallocated}}
	if got := tpLBAStatus(t, d, 0); !tpEqualExtents(got, want) {
		t.Fatalf("after writes: %+v, want %+v", got, want)
	}
	// The first descriptor starts at the requested LBA, inside an extent.
	if got := tpLBAStatus(t, d, 17); got[0] != (lbaExtent{17, 7, lbaMapped}) {
		t.Errorf("at 17: %+v", got[0])
	}
	if got := tpLBAStatus(t, d, nb-1); len(got) != 1 || got[0] != (lbaExtent{nb - 1, 1, lbaDeallocated}) {
		t.Errorf("last block: %+v", got)
	}
	// Allocation length 24: one descriptor, parameter data length 20.
	r := exec(t, d, req{cdb: tpGetLBAStatusCDB(0, 24), dir: scsi.DirRead, expLen: 24})
	expectGood(t, "alloc 24", r)
	if len(r.data) != 24 || binary.BigEndian.Uint32(r.data[0:4]) != 20 {
		t.Errorf("alloc 24: % x", r.data)
	}
	// Allocation length 10 truncates.
	if r := exec(t, d, req{cdb: tpGetLBAStatusCDB(0, 10), dir: scsi.DirRead, expLen: 10}); r.status != scsi.StatusGood || len(r.data) != 10 {
		t.Errorf("alloc 10: %v, %d bytes", r.status, len(r.data))
	}
	// UNMAP through WRITE SAME makes the blocks deallocated again.
	ws := cdb16(scsi.OpWriteSame16, 0x08, 16, 8)
	expectGood(t, "WRITE SAME UNMAP", exec(t, d, req{cdb: ws, dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}))
	want = []lbaExtent{{0, 8, lbaMapped}, {8, uint32(nb - 8), lbaDeallocated}}
	if got := tpLBAStatus(t, d, 0); !tpEqualExtents(got, want) {
		t.Fatalf("after unmap: %+v, want %+v", got, want)
	}

	for _, c := range []struct {
		name string
		cdb  []byte
		asc  scsi.ASC
	}{
		{"LBA = capacity", tpGetLBAStatusCDB(nb, 24), scsi.ASCLBAOutOfRange},
		{"LBA 2^63", tpGetLBAStatusCDB(1<<63, 24), scsi.ASCLBAOutOfRange},
		{"LBA -1", tpGetLBAStatusCDB(^uint64(0), 24), scsi.ASCLBAOutOfRange},
		{"REPORT TYPE", withByte(tpGetLBAStatusCDB(0, 24), 14, 1), scsi.ASCInvalidFieldInCDB},
	} {
		expectSense(t, c.name, exec(t, d, req{cdb: c.cdb, dir: scsi.DirRead, expLen: 24}), scsi.KeyIllegalRequest, c.asc)
	}

	// Thick: everything mapped, in one descriptor.
	thick := newThinDisk(t, thinOpts{})
	if got := tpLBAStatus(t, thick, 5); len(got) != 1 || got[0] != (lbaExtent{5, uint32(nb - 5), lbaMapped}) {
		t.Errorf("thick: %+v", got)
	}
}

func tpEqualExtents(a, b []lbaExtent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLBAStatusLargeBlocks: blocks larger than the file system block can be
// partly allocated; such a block is reported mapped.
func TestLBAStatusLargeBlocks(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true, blockSize: 65536, size: 4 << 20})
	if tpLBAStatus(t, d, 0)[0].status != lbaDeallocated {
		t.Skip("no holes")
	}
	// 4 KiB of data in the middle of block 3.
	if err := d.store.WriteAt(bytes.Repeat([]byte{1}, 4096), d.byteOff(3)+8192, false); err != nil {
		t.Fatal(err)
	}
	want := []lbaExtent{{0, 3, lbaDeallocated}, {3, 1, lbaMapped}, {4, 60, lbaDeallocated}}
	if got := tpLBAStatus(t, d, 0); !tpEqualExtents(got, want) {
		t.Fatalf("%+v, want %+v", got, want)
	}
}

func TestLBAStatusDescriptorLimit(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true, size: 8 << 20}) // 16384 blocks
	if tpLBAStatus(t, d, 0)[0].status != lbaDeallocated {
		t.Skip("no holes")
	}
	// Map every other 4 KiB: 1024 mapped extents, more than one answer holds.
	for lba := uint64(0); lba < 16384; lba += 16 {
		if err := d.store.WriteAt(make([]byte, 4096), d.byteOff(lba), false); err != nil {
			t.Fatal(err)
		}
	}
	got := tpLBAStatus(t, d, 0)
	if len(got) != maxLBAStatusDescriptors {
		t.Fatalf("%d descriptors, want %d", len(got), maxLBAStatusDescriptors)
	}
	for i, e := range got {
		st := byte(lbaMapped)
		if i%2 == 1 {
			st = lbaDeallocated
		}
		if e.n != 8 || e.status != st {
			t.Fatalf("descriptor %d: %+v", i, e)
		}
	}
}

// tpTransport delivers results on a channel (tasks submitted through a
// stmf session run in their own goroutine).
type tpTransport struct {
	data []byte
	out  chan *stmf.Result
}

func (c *tpTransport) ReceiveData(context.Context) ([]byte, error) { return c.data, nil }
func (c *tpTransport) Deliver(r *stmf.Result)                      { c.out <- r }
func (c *tpTransport) Drop()                                       { c.out <- nil }

// tpHarness is a framework with one LU as LUN 0 and two sessions.
type tpHarness struct {
	fw     *stmf.Framework
	d      *Device
	s1, s2 *stmf.Session
	tag    atomic.Uint64
}

func newTPHarness(t *testing.T, d *Device) *tpHarness {
	t.Helper()
	h := &tpHarness{fw: stmf.New(quietLog()), d: d}
	if err := h.fw.RegisterLU(d); err != nil {
		t.Fatal(err)
	}
	if _, err := h.fw.AddView(d.GUID(), stmf.ViewEntry{}, false); err != nil {
		t.Fatal(err)
	}
	p, err := h.fw.RegisterPort(stmf.PortSpec{TargetName: "iqn.2026-11.org.costar:t", Name: "iqn.2026-11.org.costar:t,t,0x0001", Group: stmf.DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []**stmf.Session{&h.s1, &h.s2} {
		name := []string{"iqn.2026-11.org.costar:a", "iqn.2026-11.org.costar:b"}[i]
		if *s, err = p.OpenSession(iscsiInitiator(name, 1)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup((*s).Close)
		h.clearUAs(t, *s)
	}
	return h
}

// submit sends a command through s and waits for its result.
func (h *tpHarness) submit(t *testing.T, s *stmf.Session, cdb []byte, dir scsi.DataDir, data []byte) *stmf.Result {
	t.Helper()
	tr := &tpTransport{data: data, out: make(chan *stmf.Result, 1)}
	task := stmf.NewTask(tr)
	task.RawLUN = scsi.EncodeLUN(0)
	task.CDB = cdb
	task.Dir = dir
	task.ExpectedLen = uint32(len(data))
	task.Tag = h.tag.Add(1)
	s.Submit(task)
	select {
	case r := <-tr.out:
		if r == nil {
			t.Fatalf("cdb % x dropped", cdb)
		}
		if r.Release != nil {
			r.Release()
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("cdb % x: no result", cdb)
	}
	return nil
}

// pendingUA returns the unit attention TEST UNIT READY reports on s, or 0.
func (h *tpHarness) pendingUA(t *testing.T, s *stmf.Session) scsi.ASC {
	t.Helper()
	r := h.submit(t, s, []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}, scsi.DirNone, nil)
	if r.Status == scsi.StatusGood {
		return 0
	}
	sn, err := scsi.ParseSense(r.Sense)
	if err != nil || sn.Key != scsi.KeyUnitAttention {
		t.Fatalf("TEST UNIT READY: status %v sense % x", r.Status, r.Sense)
	}
	return sn.ASC
}

func (h *tpHarness) clearUAs(t *testing.T, s *stmf.Session) {
	t.Helper()
	for i := 0; i < 10; i++ {
		if h.pendingUA(t, s) == 0 {
			return
		}
	}
	t.Fatal("unit attentions do not clear")
}

func TestSoftThreshold(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true, soft: 80})
	var used atomic.Uint32
	d.thin.usage = func() (uint32, error) { return used.Load(), nil }
	h := newTPHarness(t, d)
	write := func(s *stmf.Session) {
		t.Helper()
		d.thin.lastCheck.Store(0) // skip the spacing between checks
		r := h.submit(t, s, cdb10(scsi.OpWrite10, 0, 0, 1), scsi.DirWrite, make([]byte, 512))
		if r.Status != scsi.StatusGood {
			t.Fatalf("WRITE: %v % x", r.Status, r.Sense)
		}
	}
	expectUA := func(step string, want scsi.ASC) {
		t.Helper()
		for i, s := range []*stmf.Session{h.s1, h.s2} {
			if got := h.pendingUA(t, s); got != want {
				t.Errorf("%s: session %d UA %04x, want %04x", step, i+1, got, want)
			}
			h.clearUAs(t, s)
		}
	}
	used.Store(79)
	write(h.s1)
	expectUA("below", 0)
	used.Store(80)
	write(h.s1)
	expectUA("reached", scsi.ASCThinProvisioningSoftThreshold)
	used.Store(95)
	write(h.s2)
	expectUA("still above: once", 0)
	used.Store(79) // within one point: not re-armed
	write(h.s1)
	used.Store(85)
	write(h.s1)
	expectUA("hysteresis", 0)
	used.Store(50)
	write(h.s1)
	used.Store(81)
	write(h.s2)
	expectUA("crossed again", scsi.ASCThinProvisioningSoftThreshold)

	// The check is spaced: a second write within the interval does not look.
	used.Store(10)
	write(h.s1)
	used.Store(99)
	calls := atomic.Int32{}
	d.thin.usage = func() (uint32, error) { calls.Add(1); return used.Load(), nil }
	d.thin.lastCheck.Store(time.Now().UnixNano())
	if r := h.submit(t, h.s1, cdb10(scsi.OpWrite10, 0, 0, 1), scsi.DirWrite, make([]byte, 512)); r.Status != scsi.StatusGood || calls.Load() != 0 {
		t.Errorf("spacing: status %v, %d checks", r.Status, calls.Load())
	}

	// Threshold 0 turns it off; a thick LU never checks.
	off := uint8(0)
	if err := d.SetProps(Props{SoftThreshold: &off}); err != nil {
		t.Fatal(err)
	}
	write(h.s1)
	if calls.Load() != 0 {
		t.Error("threshold 0 still checks")
	}
}

// TestSoftThresholdRealStatfs runs the production usage function once.
func TestSoftThresholdRealStatfs(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true, soft: 1})
	used, err := d.thin.usage()
	if err != nil || used > 100 {
		t.Fatalf("usage %d, %v", used, err)
	}
	thick := newThinDisk(t, thinOpts{})
	if thick.thin.usage != nil {
		t.Error("thick LU has a usage function")
	}
}

func TestThinOutOfSpace(t *testing.T) {
	// A thin LU whose store is full: every write fails with ENOSPC.
	st := memstore.New(1<<20, 512, backing.Caps{DeallocZeroes: true})
	d := newMemDisk(t, st, Config{Thin: true})
	full := memstore.NoSpace()
	full.Sticky = true
	st.Inject(memstore.OpWrite, &full)
	pattern := bytes.Repeat([]byte{0x5a}, 512)
	for _, c := range []struct {
		name string
		r    req
	}{
		{"WRITE (10)", req{cdb: cdb10(scsi.OpWrite10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: pattern}},
		{"WRITE AND VERIFY (10)", req{cdb: cdb10(scsi.OpWriteVerify10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: pattern}},
		{"WRITE SAME pattern", req{cdb: cdb10(scsi.OpWriteSame10, 0, 0, 16), dir: scsi.DirWrite, expLen: 512, data: pattern}},
		{"WRITE SAME zeroes", req{cdb: cdb16(scsi.OpWriteSame16, 0, 0, 16), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}},
		{"WRITE SAME NDOB", req{cdb: cdb16(scsi.OpWriteSame16, 0x01, 0, 16), dir: scsi.DirNone}},
	} {
		expectSense(t, c.name, exec(t, d, c.r), scsi.KeyDataProtect, scsi.ASCSpaceAllocationFailedWP)
	}
	// Other errors stay medium errors.
	if s, _ := scsi.ParseSense(d.ioError(memstore.ErrIO, true, 3).Sense); s.Key != scsi.KeyMediumError {
		t.Errorf("EIO: %+v", s)
	}
}
