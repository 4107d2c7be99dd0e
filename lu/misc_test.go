package lu

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func TestPreventAllow(t *testing.T) {
	d := newThinDisk(t, thinOpts{})
	for _, c := range []struct {
		prevent byte
		ok      bool
	}{{0, true}, {1, true}, {2, false}, {3, false}} {
		r := exec(t, d, req{cdb: []byte{scsi.OpPreventAllow, 0, 0, 0, c.prevent, 0}, dir: scsi.DirNone})
		if c.ok {
			expectGood(t, "PREVENT ALLOW", r)
		} else {
			expectSense(t, "PREVENT ALLOW", r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
		}
	}
	// The medium stays accessible and cannot be ejected either way.
	expectGood(t, "TUR", exec(t, d, req{cdb: []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}}))
}

func TestReadDefectData(t *testing.T) {
	d := newThinDisk(t, thinOpts{})
	rdd10 := func(b2 byte, alloc uint16) []byte {
		c := make([]byte, 10)
		c[0], c[2] = scsi.OpReadDefectData10, b2
		binary.BigEndian.PutUint16(c[7:9], alloc)
		return c
	}
	rdd12 := func(b1 byte, alloc uint32) []byte {
		c := make([]byte, 12)
		c[0], c[1] = scsi.OpReadDefectData12, b1
		binary.BigEndian.PutUint32(c[6:10], alloc)
		return c
	}
	for _, c := range []struct {
		name string
		cdb  []byte
		want []byte
	}{
		{"10 no lists", rdd10(0, 32), []byte{0, 0, 0, 0}},
		{"10 both lists, format 5", rdd10(0x1d, 32), []byte{0, 0x1d, 0, 0}},
		{"10 truncated", rdd10(0x18, 2), []byte{0, 0x18}},
		{"10 alloc 0", rdd10(0x18, 0), []byte{}},
		{"12 no lists", rdd12(0, 32), []byte{0, 0, 0, 0, 0, 0, 0, 0}},
		{"12 PLIST, format 3", rdd12(0x13, 32), []byte{0, 0x13, 0, 0, 0, 0, 0, 0}},
		{"12 truncated", rdd12(0x08, 5), []byte{0, 0x08, 0, 0, 0}},
	} {
		r := exec(t, d, req{cdb: c.cdb, dir: scsi.DirRead, expLen: 64})
		expectGood(t, c.name, r)
		if !bytes.Equal(r.data, c.want) || r.transferLen != uint32(len(c.want)) {
			t.Errorf("%s: % x (TransferLen %d), want % x", c.name, r.data, r.transferLen, c.want)
		}
	}
}

func TestReportSupportedTMFs(t *testing.T) {
	d := newThinDisk(t, thinOpts{})
	cdb := func(reptd bool, alloc uint32) []byte {
		c := make([]byte, 12)
		c[0], c[1] = scsi.OpMaintenanceIn, scsi.SAReportSupportedTMFs
		if reptd {
			c[2] = 0x80
		}
		binary.BigEndian.PutUint32(c[6:10], alloc)
		return c
	}
	for _, c := range []struct {
		name string
		cdb  []byte
		want []byte
	}{
		{"basic", cdb(false, 255), []byte{0xfe, 0x07, 0, 0}},
		{"extended", cdb(true, 255), append([]byte{0xfe, 0x07, 0, 0x0c}, make([]byte, 12)...)},
		{"truncated", cdb(true, 1), []byte{0xfe}},
	} {
		r := exec(t, d, req{cdb: c.cdb, dir: scsi.DirRead, expLen: 255})
		expectGood(t, c.name, r)
		if !bytes.Equal(r.data, c.want) {
			t.Errorf("%s: % x, want % x", c.name, r.data, c.want)
		}
	}
	// REPORT SUPPORTED OPERATION CODES lists it.
	r := exec(t, d, req{cdb: rsocCDB(false, 2, scsi.OpMaintenanceIn, scsi.SAReportSupportedTMFs, 64), dir: scsi.DirRead, expLen: 64})
	if r.status != scsi.StatusGood || r.data[1]&7 != supportStandard {
		t.Errorf("RSOC for REPORT SUPPORTED TMFs: % x", r.data)
	}
}

func TestModeSelectRaisesUA(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true})
	h := newTPHarness(t, d)
	sense := h.submit(t, h.s1, modeSense6CDB(true, pcCurrent, pageCaching, 0, 255), scsi.DirRead, make([]byte, 255))
	caching := append([]byte{}, sense.Data[4:]...)
	sel := func(s *stmf.Session, wce bool) {
		t.Helper()
		p := append([]byte{}, caching...)
		p[2] &^= 0x04
		if wce {
			p[2] |= 0x04
		}
		list := append([]byte{0, 0, 0, 0}, p...)
		r := h.submit(t, s, []byte{scsi.OpModeSelect6, 0x10, 0, 0, byte(len(list)), 0}, scsi.DirWrite, list)
		if r.Status != scsi.StatusGood {
			t.Fatalf("MODE SELECT: %v % x", r.Status, r.Sense)
		}
	}
	sel(h.s1, true) // unchanged: nobody is told
	if a, b := h.pendingUA(t, h.s1), h.pendingUA(t, h.s2); a != 0 || b != 0 {
		t.Fatalf("MODE SELECT without change raised %04x/%04x", a, b)
	}
	sel(h.s1, false) // WCE off: the other nexus is told, the changer is not
	if a, b := h.pendingUA(t, h.s1), h.pendingUA(t, h.s2); a != 0 || b != scsi.ASCModeParametersChanged {
		t.Fatalf("after change: session 1 %04x, session 2 %04x", a, b)
	}
	h.clearUAs(t, h.s2)
	sel(h.s2, true)
	if a, b := h.pendingUA(t, h.s1), h.pendingUA(t, h.s2); a != scsi.ASCModeParametersChanged || b != 0 {
		t.Fatalf("change from session 2: session 1 %04x, session 2 %04x", a, b)
	}
	// Without a framework session (unit tests, direct Execute) nothing breaks.
	list := append([]byte{0, 0, 0, 0}, caching...)
	list[4+2] &^= 0x04
	expectGood(t, "no session", modeSelect6(t, d, list))
	expectGood(t, "bare session", exec(t, d, req{cdb: []byte{scsi.OpModeSelect6, 0x10, 0, 0, byte(len(list)), 0},
		dir: scsi.DirWrite, expLen: uint32(len(list)), data: append(list[:4:4], caching...), session: &stmf.Session{}}))
}

func TestStandardInquiryTPGS(t *testing.T) {
	for _, thin := range []bool{false, true} {
		d := newThinDisk(t, thinOpts{thin: thin})
		r := exec(t, d, req{cdb: inquiryCDB(false, 0, 255), dir: scsi.DirRead, expLen: 255})
		if r.data[5]&0x30 != 0x10 {
			t.Errorf("thin=%v: TPGS %d, want 01b (implicit)", thin, r.data[5]>>4&3)
		}
	}
}
