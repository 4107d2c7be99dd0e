package lu

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func xcopyCDB(plen uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = scsi.OpExtendedCopy, scsi.SAExtendedCopyLID1
	binary.BigEndian.PutUint32(c[10:14], plen)
	return c
}

func rcrCDB(sa, listID byte, alloc uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1], c[2] = scsi.OpReceiveCopyRes, sa, listID
	binary.BigEndian.PutUint32(c[10:14], alloc)
	return c
}

// identDesc is an E4h CSCD descriptor naming guid by its NAA designator,
// as libiscsi, qemu and ESXi build it.
func identDesc(g stmf.GUID, bs uint32) []byte {
	d := make([]byte, cscdDescLen)
	d[0] = descIdentCSCD
	d[4] = codeSetBinary
	d[5] = assocLU | desigNAA
	d[7] = 16
	copy(d[8:24], g[:])
	d[29], d[30], d[31] = byte(bs>>16), byte(bs>>8), byte(bs)
	return d
}

// b2bSeg is a block to block segment descriptor.
func b2bSeg(src, dst uint16, n uint16, srcLBA, dstLBA uint64) []byte {
	s := make([]byte, b2bSegDescLen)
	s[0] = segBlockToBlock
	binary.BigEndian.PutUint16(s[2:4], b2bSegDescLen-4)
	binary.BigEndian.PutUint16(s[4:6], src)
	binary.BigEndian.PutUint16(s[6:8], dst)
	binary.BigEndian.PutUint16(s[10:12], n)
	binary.BigEndian.PutUint64(s[12:20], srcLBA)
	binary.BigEndian.PutUint64(s[20:28], dstLBA)
	return s
}

// xcopyParams builds an EXTENDED COPY (LID1) parameter list.
func xcopyParams(listID, usage byte, cscds, segs [][]byte) []byte {
	var tl, sl []byte
	for _, c := range cscds {
		tl = append(tl, c...)
	}
	for _, s := range segs {
		sl = append(sl, s...)
	}
	h := make([]byte, xcopyHdrLen)
	h[0], h[1] = listID, usage<<3
	binary.BigEndian.PutUint16(h[2:4], uint16(len(tl)))
	binary.BigEndian.PutUint32(h[8:12], uint32(len(sl)))
	return append(append(h, tl...), sl...)
}

func TestParseXCopy(t *testing.T) {
	g := stmf.GUID{0x60, 1, 2, 3}
	tgt := identDesc(g, 512)
	seg := b2bSeg(0, 0, 8, 0, 100)
	good := xcopyParams(1, 0, [][]byte{tgt}, [][]byte{seg})
	many := func(n int, b []byte) [][]byte {
		var out [][]byte
		for i := 0; i < n; i++ {
			out = append(out, b)
		}
		return out
	}
	mod := func(p []byte, off int, v byte) []byte {
		q := append([]byte{}, p...)
		q[off] = v
		return q
	}
	plErr := scsi.ASCParameterListLengthError
	tests := []struct {
		name string
		p    []byte
		asc  scsi.ASC // 0: parses
	}{
		{"good", good, 0},
		{"short header", good[:15], plErr},
		{"truncated target descriptor", good[:16+31], plErr},
		{"truncated segment descriptor", good[:len(good)-1], plErr},
		{"LIST ID USAGE 01b", mod(good, 1, 1<<3), scsi.ASCInvalidFieldInParameterList},
		{"LIST ID USAGE 11b with a list identifier", mod(good, 1, 3<<3), scsi.ASCInvalidFieldInParameterList},
		{"LIST ID USAGE 11b", mod(mod(good, 1, 3<<3), 0, 0), 0},
		{"inline data", mod(good, 15, 1), scsi.ASCInvalidFieldInParameterList},
		{"descriptor lists too long", xcopyParams(1, 0, many(xcopyMaxCSCDs+1, tgt), many(xcopyMaxSegments+1, seg)), plErr},
		{"too many targets", xcopyParams(1, 0, many(xcopyMaxCSCDs+1, tgt), [][]byte{seg}), ascTooManyTargetDescriptors},
		{"too many segments", xcopyParams(1, 0, [][]byte{tgt}, many(xcopyMaxSegments+1, seg)), ascTooManySegmentDescriptors},
		{"maximum counts", xcopyParams(1, 0, many(xcopyMaxCSCDs, tgt), many((xcopyMaxDescListLen-xcopyMaxCSCDs*cscdDescLen)/b2bSegDescLen, seg)), 0},
		{"FC N_Port_Name target (E0h)", xcopyParams(1, 0, [][]byte{mod(tgt, 0, 0xe0)}, [][]byte{seg}), ascUnsupportedTargetDescType},
		{"LU ID TYPE is ignored (SPC-4)", xcopyParams(1, 0, [][]byte{mod(tgt, 1, 0x80)}, [][]byte{seg}), 0},
		{"stream device target", xcopyParams(1, 0, [][]byte{mod(tgt, 1, 0x01)}, [][]byte{seg}), ascUnsupportedTargetDescType},
		{"designator too long", xcopyParams(1, 0, [][]byte{mod(tgt, 7, 17)}, [][]byte{seg}), scsi.ASCInvalidFieldInParameterList},
		{"NUL is obsolete (SPC-4)", xcopyParams(1, 0, [][]byte{mod(tgt, 1, 0x20)}, [][]byte{seg}), 0},
		{"stream to stream segment", xcopyParams(1, 0, [][]byte{tgt}, [][]byte{mod(seg, 0, 0x03)}), ascUnsupportedSegmentDescType},
		{"segment descriptor length", xcopyParams(1, 0, [][]byte{tgt}, [][]byte{mod(seg, 3, 0x14)}), scsi.ASCInvalidFieldInParameterList},
		{"segment descriptor length beyond the list", xcopyParams(1, 0, [][]byte{tgt}, [][]byte{mod(seg, 3, 0x20)}), plErr},
		{"no descriptors", xcopyParams(1, 0, nil, nil), 0},
	}
	for _, tc := range tests {
		pl, sense := parseXCopy(tc.p)
		switch {
		case tc.asc == 0 && sense != nil:
			t.Errorf("%s: %v", tc.name, sense)
		case tc.asc != 0 && (sense == nil || sense.Key != scsi.KeyIllegalRequest || sense.ASC != tc.asc):
			t.Errorf("%s: sense %v, want ILLEGAL REQUEST %04x", tc.name, sense, tc.asc)
		case tc.asc == 0 && tc.name == "good":
			if len(pl.cscds) != 1 || !pl.cscds[0].named || pl.cscds[0].guid != g || pl.cscds[0].blockLen != 512 ||
				len(pl.segs) != 1 || pl.segs[0].blocks != 8 || pl.segs[0].dstLBA != 100 || pl.listID != 1 {
				t.Errorf("good list parsed as %+v", pl)
			}
		}
	}
}

// xcopyEnv is two LUs seen through one session, plus one LU the session
// cannot see.
type xcopyEnv struct {
	r         *vrig
	s         *stmf.Session
	a, b, far *Device
}

func newXCopyEnv(t *testing.T) *xcopyEnv {
	a := newVDisk(t, 1, 4<<20, 512)
	b := newVDisk(t, 2, 4<<20, 512)
	far := newVDisk(t, 3, 4<<20, 512)
	r := newVRig(t, a, b)
	if err := r.fw.CreateHostGroup("elsewhere"); err != nil {
		t.Fatalf("CreateHostGroup: %v", err)
	}
	r.addLU(far, stmf.ViewEntry{HostGroup: "elsewhere"})
	return &xcopyEnv{r: r, s: r.session(1), a: a, b: b, far: far}
}

func (e *xcopyEnv) xcopy(via *Device, p []byte) resp {
	return e.r.do(e.s, via, xcopyCDB(uint32(len(p))), scsi.DirWrite, uint32(len(p)), p)
}

// vpattern is n bytes that differ from block to block.
func vpattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i/512) + byte(i%7)
	}
	return b
}

func TestExtendedCopy(t *testing.T) {
	e := newXCopyEnv(t)
	a, b := e.a, e.b
	src := vpattern(64*512, 3)
	e.r.write(e.s, a, 0, src)

	// Within one LU, to a disjoint range.
	p := xcopyParams(1, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, 64, 0, 1000)})
	expectGood(t, "copy within an LU", e.xcopy(a, p))
	if !bytes.Equal(e.r.read(e.s, a, 1000, 64), src) {
		t.Fatal("copy within an LU: data differs")
	}
	// Between LUs, the command sent to the destination (qemu) or the
	// source (ESXi sends it to either), several segments.
	p = xcopyParams(2, 0, [][]byte{identDesc(a.guid, 512), identDesc(b.guid, 512)},
		[][]byte{b2bSeg(0, 1, 32, 0, 10), b2bSeg(0, 1, 32, 32, 42), b2bSeg(1, 1, 0, 0, 0)})
	for _, via := range []*Device{a, b} {
		e.r.write(e.s, b, 10, make([]byte, 64*512))
		expectGood(t, "copy between LUs", e.xcopy(via, p))
		if !bytes.Equal(e.r.read(e.s, b, 10, 64), src) {
			t.Fatal("copy between LUs: data differs")
		}
	}
	// Overlapping, forward within one LU: must behave like memmove.
	big := vpattern(3*xcopyChunk, 9)
	e.r.write(e.s, a, 2000, big)
	n := uint16(len(big) / 512)
	p = xcopyParams(3, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, n, 2000, 2001)})
	expectGood(t, "overlapping forward copy", e.xcopy(a, p))
	if !bytes.Equal(e.r.read(e.s, a, 2001, uint32(n)), big) {
		t.Fatal("overlapping forward copy: data differs")
	}
	p = xcopyParams(3, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, n, 2001, 2000)})
	expectGood(t, "overlapping backward copy", e.xcopy(a, p))
	if !bytes.Equal(e.r.read(e.s, a, 2000, uint32(n)), big) {
		t.Fatal("overlapping backward copy: data differs")
	}

	nb := a.nblocks.Load()
	aborted := func(name string, r resp, asc scsi.ASC) {
		t.Helper()
		expectSense(t, name, r, scsi.KeyCopyAborted, asc)
	}
	aborted("LU the session cannot see", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(a.guid, 512), identDesc(e.far.guid, 512)},
		[][]byte{b2bSeg(0, 1, 8, 0, 0)})), ascCopyTargetNotReachable)
	unknown := a.guid
	unknown[15] ^= 0xff
	aborted("unknown GUID", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(unknown, 512)}, [][]byte{b2bSeg(0, 0, 8, 0, 8)})), ascCopyTargetNotReachable)
	nul := identDesc(a.guid, 512)
	nul[1] |= 0xa0 // NUL (obsolete) and a reserved LU ID TYPE: both ignored (libiscsi ValidTgtDescr)
	expectGood(t, "NUL and LU ID TYPE ignored", e.xcopy(a, xcopyParams(4, 2, [][]byte{nul}, [][]byte{b2bSeg(0, 0, 8, 0, 8)})))
	t10 := identDesc(a.guid, 512)
	t10[5] = assocLU | 0x1 // a T10 vendor ID designator: not an LU we can name
	aborted("not an NAA designator", e.xcopy(a, xcopyParams(4, 2, [][]byte{t10}, [][]byte{b2bSeg(0, 0, 8, 0, 8)})), ascCopyTargetNotReachable)
	aborted("destination index", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 1, 8, 0, 8)})), ascUnreachableCopyTarget)
	aborted("beyond the end", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, 2048, 0, nb-1)})), scsi.ASCNoAdditionalSense)
	aborted("source beyond the end", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, 2, nb-1, 0)})), scsi.ASCNoAdditionalSense)
	expectSense(t, "wrong block length", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(a.guid, 4096)}, [][]byte{b2bSeg(0, 0, 8, 0, 8)})),
		scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
	expectGood(t, "no block length", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(a.guid, 0)}, [][]byte{b2bSeg(0, 0, 8, 0, 8)})))
	expectGood(t, "parameter list length 0", e.r.do(e.s, a, xcopyCDB(0), scsi.DirNone, 0, nil))
	expectSense(t, "parameter list too long", e.r.do(e.s, a, xcopyCDB(1<<20), scsi.DirWrite, 1<<20, make([]byte, 1<<20)),
		scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError)
	short := xcopyParams(4, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, 8, 0, 8)})
	expectSense(t, "parameter list length cuts a descriptor", e.r.do(e.s, a, xcopyCDB(uint32(len(short)-1)), scsi.DirWrite, uint32(len(short)), short),
		scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError)
	expectSense(t, "LID4 service action", e.r.do(e.s, a, withByte(xcopyCDB(16), 1, 0x01), scsi.DirWrite, 16, make([]byte, 16)),
		scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)

	// Write-protected destination.
	b.wp.Store(true)
	aborted("write-protected destination", e.xcopy(a, xcopyParams(4, 2, [][]byte{identDesc(a.guid, 512), identDesc(b.guid, 512)},
		[][]byte{b2bSeg(0, 1, 8, 0, 0)})), scsi.ASCWriteProtected)
	b.wp.Store(false)

	// Different block sizes: 8 blocks of 512 bytes are one 4 KiB block.
	c4k := newVDisk(t, 4, 1<<20, 4096)
	e.r.addLU(c4k, stmf.ViewEntry{})
	s2 := e.r.session(2)
	p = xcopyParams(5, 2, [][]byte{identDesc(a.guid, 512), identDesc(c4k.guid, 4096)}, [][]byte{b2bSeg(0, 1, 16, 0, 3)})
	expectGood(t, "512 -> 4096", e.r.do(s2, a, xcopyCDB(uint32(len(p))), scsi.DirWrite, uint32(len(p)), p))
	if !bytes.Equal(e.r.read(s2, c4k, 3, 2), e.r.read(s2, a, 0, 16)) {
		t.Fatal("512 -> 4096 copy: data differs")
	}
	p = xcopyParams(5, 2, [][]byte{identDesc(a.guid, 512), identDesc(c4k.guid, 4096)}, [][]byte{b2bSeg(0, 1, 4, 0, 3)})
	expectSense(t, "half a 4 KiB block", e.r.do(s2, a, xcopyCDB(uint32(len(p))), scsi.DirWrite, uint32(len(p)), p),
		scsi.KeyCopyAborted, scsi.ASCNoAdditionalSense)
	for _, d := range []*Device{a, b, c4k} {
		lockIdle(t, d)
		if d.panics.Load() != 0 {
			t.Fatal("handler panicked")
		}
	}
}

func TestReceiveCopyResults(t *testing.T) {
	e := newXCopyEnv(t)
	a := e.a
	rcr := func(sa, id byte, alloc uint32) resp {
		return e.r.do(e.s, a, rcrCDB(sa, id, alloc), scsi.DirRead, alloc, nil)
	}
	// OPERATING PARAMETERS.
	r := rcr(scsi.SAOperatingParams, 0, 1024)
	expectGood(t, "operating parameters", r)
	b := r.data
	if len(b) != 46 || binary.BigEndian.Uint32(b[0:4]) != 42 || b[4]&1 == 0 ||
		binary.BigEndian.Uint16(b[8:10]) != xcopyMaxCSCDs || binary.BigEndian.Uint16(b[10:12]) != xcopyMaxSegments ||
		binary.BigEndian.Uint32(b[12:16]) != xcopyMaxDescListLen || binary.BigEndian.Uint32(b[16:20]) != 0xffff*512 ||
		b[37] != 9 || b[43] != 2 || b[44] != segBlockToBlock || b[45] != descIdentCSCD {
		t.Errorf("operating parameters % x", b)
	}
	if r := rcr(scsi.SAOperatingParams, 0, 8); len(r.data) != 8 {
		t.Errorf("allocation length 8 gave %d bytes", len(r.data))
	}
	// libiscsi DescrLimits needs one more of either descriptor kind to
	// fit the list length, and both together not to.
	if (xcopyMaxCSCDs+1)*cscdDescLen+b2bSegDescLen > xcopyMaxDescListLen ||
		cscdDescLen+(xcopyMaxSegments+1)*b2bSegDescLen > xcopyMaxDescListLen ||
		(xcopyMaxCSCDs+1)*cscdDescLen+(xcopyMaxSegments+1)*b2bSegDescLen <= xcopyMaxDescListLen {
		t.Error("copy manager limits are inconsistent")
	}

	// COPY STATUS.
	expectSense(t, "no such copy", rcr(scsi.SACopyStatus, 1, 1024), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	p := xcopyParams(1, 0, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, 16, 0, 100), b2bSeg(0, 0, 16, 0, 200)})
	expectGood(t, "held copy", e.xcopy(a, p))
	r = rcr(scsi.SACopyStatus, 1, 1024)
	expectGood(t, "copy status", r)
	if want := []byte{0, 0, 0, 8, copyDone, 0, 2, 0, 0, 0, 0x40, 0}; !bytes.Equal(r.data, want) {
		t.Errorf("copy status % x, want % x", r.data, want)
	}
	// Another nexus has its own list identifiers.
	other := e.r.session(7)
	expectSense(t, "other nexus", e.r.do(other, a, rcrCDB(scsi.SACopyStatus, 1, 1024), scsi.DirRead, 1024, nil),
		scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	// LIST ID USAGE 10b: not held.
	expectGood(t, "unheld copy", e.xcopy(a, xcopyParams(9, 2, [][]byte{identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 0, 1, 0, 300)})))
	expectSense(t, "unheld copy status", rcr(scsi.SACopyStatus, 9, 1024), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
}

// TestExtendedCopyAbort: an EXTENDED COPY aborted through stmf stops at
// the next chunk, its response is dropped, its ranges are released and
// its held status says it completed with errors.
func TestExtendedCopyAbort(t *testing.T) {
	e := newXCopyEnv(t)
	a, b := e.a, e.b
	const chunks = 4
	src := vpattern(chunks*xcopyChunk, 1)
	e.r.write(e.s, a, 0, src)
	e.r.write(e.s, b, 0, make([]byte, len(src)))

	started, proceed := make(chan struct{}), make(chan struct{})
	var n atomic.Int32
	a.vaai.copyChunkHook = func() {
		if n.Add(1) == 2 { // park the copy before its second chunk
			close(started)
			<-proceed
		}
	}
	blocks := uint16(len(src) / 512)
	p := xcopyParams(1, 0, [][]byte{identDesc(a.guid, 512), identDesc(b.guid, 512)}, [][]byte{b2bSeg(0, 1, blocks, 0, 0)})
	tr := e.r.start(e.s, e.r.luns[a.guid], xcopyCDB(uint32(len(p))), scsi.DirWrite, uint32(len(p)), p)
	<-started
	e.s.AbortTask(e.r.tag.Load())
	t0 := time.Now()
	close(proceed)
	if res := e.r.wait(tr); res != nil {
		t.Fatalf("aborted EXTENDED COPY delivered %+v", res)
	}
	t.Logf("aborted copy ended %v after the abort", time.Since(t0))
	a.vaai.copyChunkHook = nil
	got := e.r.read(e.s, b, 0, uint32(blocks))
	if !bytes.Equal(got[:xcopyChunk], src[:xcopyChunk]) || !bytes.Equal(got[xcopyChunk:], make([]byte, len(src)-xcopyChunk)) {
		t.Fatal("aborted copy did not stop after its first chunk")
	}
	r := e.r.do(e.s, a, rcrCDB(scsi.SACopyStatus, 1, 64), scsi.DirRead, 64, nil)
	expectGood(t, "status of the aborted copy", r)
	if r.data[4] != copyDoneWithErrs || be16(r.data[5:7]) != 0 || be32(r.data[8:12]) != xcopyChunk {
		t.Errorf("aborted copy status % x", r.data)
	}
	lockIdle(t, a)
	lockIdle(t, b)
	e.r.write(e.s, b, 0, src[:512]) // the destination range is free
}

// FuzzExtendedCopy sends arbitrary EXTENDED COPY parameter lists (seeded
// with well-formed ones naming the LU itself): no panic, exactly one
// completion, GOOD or well-formed sense, and the range lock left empty.
func FuzzExtendedCopy(f *testing.F) {
	d := newVDisk(f, 9, 256<<10, 512)
	self := identDesc(d.guid, 512)
	f.Add(xcopyParams(1, 0, [][]byte{self}, [][]byte{b2bSeg(0, 0, 8, 0, 16)}))
	f.Add(xcopyParams(2, 2, [][]byte{self, self}, [][]byte{b2bSeg(0, 1, 300, 1, 2), b2bSeg(1, 0, 1, 500, 0)}))
	f.Add(xcopyParams(0, 3, [][]byte{self}, [][]byte{b2bSeg(0, 0, 0xffff, 0, 0)}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		r := exec(t, d, req{cdb: xcopyCDB(uint32(len(p))), dir: scsi.DirWrite, expLen: uint32(len(p)), data: p})
		switch r.status {
		case scsi.StatusGood, scsi.StatusCheckCondition, scsi.StatusBusy:
		default:
			t.Fatalf("status %v", r.status)
		}
		if r.status == scsi.StatusCheckCondition && r.sense.Key != scsi.KeyIllegalRequest && r.sense.Key != scsi.KeyCopyAborted {
			t.Fatalf("sense %+v", r.sense)
		}
		if d.panics.Load() != 0 {
			t.Fatal("handler panicked")
		}
		if n := len(lockEntries(&d.vaai.locks)); n != 0 {
			t.Fatalf("%d range lock entries left", n)
		}
		if _, err := d.store.LoadMeta(); err != nil {
			t.Fatalf("metadata damaged: %v", err)
		}
	})
}

// TestExtendedCopyReservations: the copy targets' reservations apply to
// the nexus that sent EXTENDED COPY, so it cannot write into (or read
// from, under exclusive access) an LU another initiator reserved.
func TestExtendedCopyReservations(t *testing.T) {
	e := newXCopyEnv(t)
	a, b := e.a, e.b
	holder := e.r.session(2)
	expectGood(t, "RESERVE", e.r.do(holder, b, []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}, scsi.DirNone, 0, nil))
	p := xcopyParams(1, 2, [][]byte{identDesc(a.guid, 512), identDesc(b.guid, 512)}, [][]byte{b2bSeg(0, 1, 8, 0, 0)})
	if r := e.xcopy(a, p); r.status != scsi.StatusReservationConflict {
		t.Fatalf("copy into a reserved LU: %v %+v", r.status, r.sense)
	}
	p = xcopyParams(1, 2, [][]byte{identDesc(b.guid, 512), identDesc(a.guid, 512)}, [][]byte{b2bSeg(0, 1, 8, 0, 0)})
	if r := e.xcopy(a, p); r.status != scsi.StatusReservationConflict {
		t.Fatalf("copy from a reserved LU: %v %+v", r.status, r.sense)
	}
	// The holder itself may copy.
	expectGood(t, "holder's copy", e.r.do(holder, a, xcopyCDB(uint32(len(p))), scsi.DirWrite, uint32(len(p)), p))
	expectGood(t, "RELEASE", e.r.do(holder, b, []byte{scsi.OpRelease6, 0, 0, 0, 0, 0}, scsi.DirNone, 0, nil))
	expectGood(t, "copy after RELEASE", e.xcopy(a, p))
}

func TestCopyManagerBookkeeping(t *testing.T) {
	var m copyManager
	plan := func(id, usage byte) *xcopyPlan { return &xcopyPlan{listID: id, usage: usage} }
	other, _ := m.begin("n2", plan(7, 0))
	held, _ := m.begin("n1", plan(7, 0))
	m.finish(held, true)
	running, _ := m.begin("n1", plan(8, 0))
	if _, r := m.begin("n1", plan(8, 2)); r == nil || r.Status != scsi.StatusCheckCondition {
		t.Fatal("a second copy with a running list identifier was accepted")
	}
	if len(m.ops) != 3 || m.ops[0] != other || m.ops[1] != held || m.ops[2] != running {
		t.Fatalf("refused copy disturbed the list: %+v", m.ops)
	}
	again, _ := m.begin("n1", plan(7, 2)) // replaces the held results of list 7, is not held itself
	if _, ok := m.status("n1", 7); !ok {
		t.Fatal("running copy has no status")
	}
	m.finish(again, true)
	if _, ok := m.status("n1", 7); ok {
		t.Fatal("an unheld copy kept its status")
	}
	if o, ok := m.status("n2", 7); !ok || o.status != copyInProgress {
		t.Fatal("another nexus's copy was touched")
	}
	m.finish(running, false)
	m.finish(other, true)
	for i := 0; i < 2*xcopyHeldResults; i++ {
		op, r := m.begin("n3", plan(byte(i), 0))
		if r != nil {
			t.Fatalf("begin: %+v", r)
		}
		m.finish(op, true)
	}
	if len(m.ops) > xcopyHeldResults || m.running != 0 {
		t.Fatalf("%d held results, %d running", len(m.ops), m.running)
	}
	if _, ok := m.status("n3", 2*xcopyHeldResults-1); !ok {
		t.Fatal("newest result dropped")
	}
	var busy []*copyOp
	for i := 0; i < xcopyMaxConcurrent; i++ {
		op, _ := m.begin("n4", plan(0, 3))
		busy = append(busy, op)
	}
	if _, r := m.begin("n4", plan(0, 3)); r == nil || r.Status != scsi.StatusBusy {
		t.Fatal("too many concurrent copies were accepted")
	}
	for _, op := range busy {
		m.finish(op, true)
	}
}
