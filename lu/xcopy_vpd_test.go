package lu

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// TestThirdPartyCopyVPD: 3PC=1 comes with the Third-party Copy VPD page,
// listed in Supported VPD Pages, holding the descriptors SPC-4 requires
// for EXTENDED COPY (LID1), each padded to four bytes, with the limits
// OPERATING PARAMETERS reports (newer libiscsi's Inquiry.VPDThirdPartyCopy
// checks; ReceiveCopyResults.CopyStatus is skipped without the page).
func TestThirdPartyCopyVPD(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	std := exec(t, d, req{cdb: inquiryCDB(false, 0, 96), dir: scsi.DirRead, expLen: 96})
	if std.data[5]&0x08 == 0 {
		t.Fatal("3PC is 0")
	}
	r := exec(t, d, req{cdb: inquiryCDB(true, vpdThirdPartyCopy, 1024), dir: scsi.DirRead, expLen: 1024})
	expectGood(t, "VPD 0x8F", r)
	p := r.data
	if p[1] != 0x8f || int(binary.BigEndian.Uint16(p[2:4])) != len(p)-4 {
		t.Fatalf("header % x, %d bytes", p[:4], len(p))
	}
	descs := map[uint16][]byte{}
	var order []uint16
	for off := 4; off < len(p); {
		if off+4 > len(p) {
			t.Fatalf("truncated descriptor at %d", off)
		}
		typ, n := binary.BigEndian.Uint16(p[off:]), int(binary.BigEndian.Uint16(p[off+2:]))
		if n%4 != 0 || off+4+n > len(p) {
			t.Fatalf("descriptor %#04x: length %d at %d of %d", typ, n, off, len(p))
		}
		descs[typ] = p[off+4 : off+4+n]
		order = append(order, typ)
		off += 4 + n
	}
	want := []uint16{0x0001, 0x0004, 0x0008, 0x000c, 0x8001}
	if len(order) != len(want) {
		t.Fatalf("descriptors %04x, want %04x", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("descriptors %04x, want %04x", order, want)
		}
	}
	sc := descs[0x0001]
	cmds := []byte{0x83, 1, 0x00, 0x84, 2, 0x00, 0x03}
	if int(sc[0]) != len(cmds) || !bytes.Equal(sc[1:1+len(cmds)], cmds) {
		t.Errorf("supported commands % x", sc)
	}
	// Every command listed is one the LU answers, per RSOC.
	for _, c := range [][2]int{{0x83, 0}, {0x84, 0}, {0x84, 3}} {
		if d.cmds.lookup(byte(c[0]), c[1]) == nil {
			t.Errorf("listed %#x/%d, which the LU does not implement", c[0], c[1])
		}
	}
	pd := descs[0x0004]
	op := d.operatingParameters()
	if len(pd) != 0x1c || !bytes.Equal(pd[0:4], make([]byte, 4)) ||
		!bytes.Equal(pd[4:12], op[8:16]) || binary.BigEndian.Uint32(pd[12:16]) != 0 || !bytes.Equal(pd[16:], make([]byte, 12)) {
		t.Errorf("parameter data % x (operating parameters % x)", pd, op[8:16])
	}
	if sd := descs[0x0008]; !bytes.Equal(sd, []byte{2, 0x02, 0xe4, 0}) {
		t.Errorf("supported descriptors % x", sd)
	}
	if id := descs[0x000c]; !bytes.Equal(id, []byte{0, 0, 0, 0}) {
		t.Errorf("supported CSCD IDs % x", id)
	}
	g := descs[0x8001]
	if len(g) != 0x20 || binary.BigEndian.Uint32(g[0:4]) != uint32(binary.BigEndian.Uint16(op[34:36])) ||
		binary.BigEndian.Uint32(g[4:8]) != uint32(op[36]) || !bytes.Equal(g[8:12], op[16:20]) || g[12] != op[37] || g[13] != 0 {
		t.Errorf("general copy operations % x (operating parameters % x)", g, op)
	}
}
