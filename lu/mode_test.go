package lu

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// findPage returns a page from MODE SENSE data (header length hdr).
func findPage(t *testing.T, b []byte, hdr, bdl int, code byte) []byte {
	t.Helper()
	p := b[hdr+bdl:]
	for len(p) >= 2 {
		n := 2 + int(p[1])
		if n > len(p) {
			t.Fatalf("page %#x overruns the data", p[0])
		}
		if p[0]&0x3f == code {
			return p[:n]
		}
		p = p[n:]
	}
	return nil
}

func TestModeSense(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 1 << 20})
	rd := func(cdb []byte) []byte {
		t.Helper()
		r := exec(t, d, req{cdb: cdb, dir: scsi.DirRead, expLen: 1024})
		expectGood(t, "MODE SENSE", r)
		return r.data
	}

	b := rd(modeSense6CDB(false, pcCurrent, pageAll, 0, 255))
	if int(b[0]) != len(b)-1 || b[1] != 0 || b[2] != 0x10 || b[3] != 8 {
		t.Fatalf("MODE SENSE6 header % x (len %d)", b[:4], len(b))
	}
	if nb := binary.BigEndian.Uint32(b[4:8]); nb != 2048 || b[9] != 0 || b[10] != 2 || b[11] != 0 {
		t.Fatalf("block descriptor % x", b[4:12])
	}
	for _, code := range []byte{pageRWErrorRecovery, pageCaching, pageControl} {
		if findPage(t, b, 4, 8, code) == nil {
			t.Errorf("page %#x missing from all pages", code)
		}
	}
	caching := findPage(t, b, 4, 8, pageCaching)
	if len(caching) != 20 || caching[2]&0x04 == 0 {
		t.Errorf("caching page % x: want WCE with the write cache enabled", caching)
	}
	control := findPage(t, b, 4, 8, pageControl)
	if len(control) != 12 || control[2]&0x04 != 0 || control[4]&0x08 != 0 {
		t.Errorf("control page % x: want D_SENSE 0, SWP 0", control)
	}
	// The control page alone equals the one in all pages.
	ct := rd(modeSense6CDB(true, pcCurrent, pageControl, 0, 255))
	if ct[3] != 0 || !bytes.Equal(ct[4:], control) {
		t.Errorf("control page alone % x, in all pages % x", ct[4:], control)
	}
	// Subpage 0xff of one page.
	if sub := rd(modeSense6CDB(true, pcCurrent, pageCaching, 0xff, 255)); !bytes.Equal(sub[4:], caching) {
		t.Errorf("caching page with subpage ff % x", sub[4:])
	}
	// Changeable: WCE and SWP only; block descriptor zero.
	chg := rd(modeSense6CDB(false, pcChangeable, pageAll, 0, 255))
	if !bytes.Equal(chg[4:12], make([]byte, 8)) {
		t.Errorf("changeable block descriptor % x", chg[4:12])
	}
	if p := findPage(t, chg, 4, 8, pageCaching); p[2] != 0x04 || !bytes.Equal(p[3:], make([]byte, 17)) {
		t.Errorf("changeable caching page % x", p)
	}
	if p := findPage(t, chg, 4, 8, pageControl); p[4] != 0x08 || p[2] != 0 || p[3] != 0 || p[5] != 0 {
		t.Errorf("changeable control page % x", p)
	}
	if p := findPage(t, chg, 4, 8, pageRWErrorRecovery); !bytes.Equal(p[2:], make([]byte, 10)) {
		t.Errorf("changeable error recovery page % x", p)
	}
	// Default equals current here.
	if def := rd(modeSense6CDB(false, pcDefault, pageAll, 0, 255)); !bytes.Equal(def, b) {
		t.Errorf("default values % x differ from current % x", def, b)
	}

	// MODE SENSE10 with LLBAA: a 16-byte block descriptor.
	b10 := rd(modeSense10CDB(true, false, pcCurrent, pageAll, 0, 1024))
	if int(binary.BigEndian.Uint16(b10[0:2])) != len(b10)-2 || b10[3] != 0x10 || b10[4]&1 != 1 || binary.BigEndian.Uint16(b10[6:8]) != 16 {
		t.Fatalf("MODE SENSE10 header % x", b10[:8])
	}
	if binary.BigEndian.Uint64(b10[8:16]) != 2048 || binary.BigEndian.Uint32(b10[20:24]) != 512 {
		t.Fatalf("long block descriptor % x", b10[8:24])
	}
	// MODE SENSE10, DBD.
	b10 = rd(modeSense10CDB(false, true, pcCurrent, pageAll, 0, 1024))
	if binary.BigEndian.Uint16(b10[6:8]) != 0 || b10[4] != 0 || findPage(t, b10, 8, 0, pageControl) == nil {
		t.Fatalf("MODE SENSE10 DBD % x", b10)
	}
	// Truncation keeps the full mode data length.
	short := rd(modeSense6CDB(false, pcCurrent, pageAll, 0, 4))
	if len(short) != 4 || int(short[0]) != len(b)-1 {
		t.Fatalf("truncated MODE SENSE % x", short)
	}
}

// modeSelect6 sends a MODE SELECT (6) parameter list.
func modeSelect6(t *testing.T, d *Device, list []byte) resp {
	t.Helper()
	return exec(t, d, req{cdb: []byte{scsi.OpModeSelect6, 0x10, 0, 0, byte(len(list)), 0}, dir: scsi.DirWrite,
		expLen: uint32(len(list)), data: list})
}

func TestModeSelect(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	page := func(code byte) []byte {
		r := exec(t, d, req{cdb: modeSense6CDB(true, pcCurrent, code, 0, 255), dir: scsi.DirRead, expLen: 255})
		return append([]byte{}, r.data[4:]...)
	}
	hdr6 := []byte{0, 0, 0, 0}

	// Turn the write cache off: WCE clears, writes become durable.
	caching := page(pageCaching)
	caching[2] &^= 0x04
	expectGood(t, "WCE off", modeSelect6(t, d, append(append([]byte{}, hdr6...), caching...)))
	if !d.wcd.Load() || !d.Info().WriteCacheDisabled {
		t.Fatal("write cache still enabled")
	}
	var c syncCounter
	c.install(d)
	expectGood(t, "write", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}))
	if c.dsyncWrites.Load()+c.fdatasync.Load() != 1 {
		t.Fatal("write not synced after MODE SELECT turned the cache off")
	}
	if page(pageCaching)[2]&0x04 != 0 {
		t.Fatal("WCE still reported")
	}
	caching[2] |= 0x04
	expectGood(t, "WCE on", modeSelect6(t, d, append(append([]byte{}, hdr6...), caching...)))
	if d.wcd.Load() {
		t.Fatal("write cache still disabled")
	}

	// SWP makes the LU write-protected, and WP shows in MODE SENSE.
	control := page(pageControl)
	control[4] |= 0x08
	expectGood(t, "SWP on", modeSelect6(t, d, append(append([]byte{}, hdr6...), control...)))
	expectSense(t, "write with SWP", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}),
		scsi.KeyDataProtect, scsi.ASCWriteProtected)
	ms := exec(t, d, req{cdb: modeSense6CDB(true, pcCurrent, pageControl, 0, 255), dir: scsi.DirRead, expLen: 255})
	if ms.data[2]&0x80 == 0 || ms.data[4+4]&0x08 == 0 {
		t.Fatalf("WP/SWP not reported: % x", ms.data)
	}
	control[4] &^= 0x08
	expectGood(t, "SWP off", modeSelect6(t, d, append(append([]byte{}, hdr6...), control...)))
	expectGood(t, "write after SWP off", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}))

	// A matching block descriptor and two pages in one list.
	bd := []byte{0, 0, 0x08, 0, 0, 0, 0x02, 0}
	list := append(append(append([]byte{0, 0, 0, 8}, bd...), page(pageCaching)...), page(pageControl)...)
	expectGood(t, "descriptor and two pages", modeSelect6(t, d, list))

	// MODE SELECT (10).
	list10 := append([]byte{0, 0, 0, 0, 0, 0, 0, 0}, page(pageControl)...)
	c10 := make([]byte, 10)
	c10[0], c10[1] = scsi.OpModeSelect10, 0x10
	binary.BigEndian.PutUint16(c10[7:9], uint16(len(list10)))
	expectGood(t, "MODE SELECT10", exec(t, d, req{cdb: c10, dir: scsi.DirWrite, expLen: uint32(len(list10)), data: list10}))

	invParam := func(name string, list []byte, wantASC scsi.ASC) {
		t.Helper()
		expectSense(t, name, modeSelect6(t, d, list), scsi.KeyIllegalRequest, wantASC)
	}
	bad := page(pageControl)
	bad[2] |= 0x04 // D_SENSE is not changeable
	invParam("unchangeable bit", append(append([]byte{}, hdr6...), bad...), scsi.ASCInvalidFieldInParameterList)
	invParam("unknown page", append(append([]byte{}, hdr6...), 0x02, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), scsi.ASCInvalidFieldInParameterList)
	short := page(pageCaching)
	short[1] = 0x10
	invParam("wrong page length", append(append([]byte{}, hdr6...), short[:18]...), scsi.ASCInvalidFieldInParameterList)
	invParam("page overruns list", append(append([]byte{}, hdr6...), page(pageCaching)[:10]...), scsi.ASCParameterListLengthError)
	invParam("header only, too short", []byte{0, 0}, scsi.ASCParameterListLengthError)
	invParam("wrong block length", append([]byte{0, 0, 0, 8}, 0, 0, 0, 0, 0, 0, 0x10, 0), scsi.ASCInvalidFieldInParameterList)
	invParam("wrong block count", append([]byte{0, 0, 0, 8}, 0, 0, 0, 5, 0, 0, 0x02, 0), scsi.ASCInvalidFieldInParameterList)
	invParam("medium type", append([]byte{0, 1, 0, 0}, page(pageControl)...), scsi.ASCInvalidFieldInParameterList)
	subpage := page(pageControl)
	subpage[0] |= 0x40
	invParam("subpage format", append(append([]byte{}, hdr6...), subpage...), scsi.ASCInvalidFieldInParameterList)

	// A rejected list changes nothing, even if an earlier page was fine.
	wceOff := page(pageCaching)
	wceOff[2] &^= 0x04
	invParam("atomic", append(append(append([]byte{}, hdr6...), wceOff...), bad...), scsi.ASCInvalidFieldInParameterList)
	if d.wcd.Load() {
		t.Fatal("a rejected MODE SELECT changed WCE")
	}
	// Data-Out shorter than the parameter list length.
	r := exec(t, d, req{cdb: []byte{scsi.OpModeSelect6, 0x10, 0, 0, 20, 0}, dir: scsi.DirWrite, expLen: 8, data: make([]byte, 8)})
	expectSense(t, "short Data-Out", r, scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError)
}
