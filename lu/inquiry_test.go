package lu

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

func TestStandardInquiry(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	r := exec(t, d, req{cdb: inquiryCDB(false, 0, 260), dir: scsi.DirRead, expLen: 260})
	expectGood(t, "INQUIRY", r)
	b := r.data
	checks := []struct {
		name string
		ok   bool
	}{
		{"peripheral qualifier 0, device type 0", b[0] == 0},
		{"not removable", b[1]&0x80 == 0},
		{"version SPC-4", b[2] == 0x06},
		{"HISUP and response data format 2", b[3] == 0x12},
		{"additional length = n-5", int(b[4]) == len(b)-5},
		{"TPGS 01b (implicit ALUA), no PROTECT", b[5]&0x31 == 0x10},
		{"CMDQUE", b[7]&0x02 != 0},
		{"vendor", string(b[8:16]) == "COSTAR  "},
		{"product", string(b[16:32]) == "COMSTAR         "},
		{"revision printable", validASCII(string(b[32:36]))},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: % x", c.name, b)
		}
	}
	var descs []uint16
	for i := 58; i+2 <= len(b) && i < 74; i += 2 {
		descs = append(descs, binary.BigEndian.Uint16(b[i:]))
	}
	for _, want := range []uint16{0x00a0, 0x0960, 0x0460, 0x04c0} {
		found := false
		for _, v := range descs {
			found = found || v == want
		}
		if !found {
			t.Errorf("version descriptor %04x missing from %04x", want, descs)
		}
	}
	// libiscsi AllocLength: every allocation length 0..255 works, and 255
	// and 256 return the same data.
	for alloc := 0; alloc <= 256; alloc++ {
		r := exec(t, d, req{cdb: inquiryCDB(false, 0, uint16(alloc)), dir: scsi.DirRead, expLen: uint32(alloc)})
		expectGood(t, "INQUIRY alloc", r)
		want := min(alloc, stdInquiryLen)
		if len(r.data) != want || int(r.transferLen) != want || !bytes.Equal(r.data, b[:want]) {
			t.Fatalf("alloc %d: %d bytes (TransferLen %d), want %d", alloc, len(r.data), r.transferLen, want)
		}
	}
}

func TestCustomIdentity(t *testing.T) {
	cfg := fileConfig{DataFile: filepath.Join(t.TempDir(), "d"), Size: 1 << 20, VendorID: "ACME", ProductID: "SuperDisk", Serial: "XYZ123"}
	d, err := createFile(context.Background(), cfg, nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := exec(t, d, req{cdb: inquiryCDB(false, 0, 255), dir: scsi.DirRead, expLen: 255})
	if string(r.data[8:16]) != "ACME    " || string(r.data[16:32]) != "SuperDisk       " {
		t.Fatalf("identity %q %q", r.data[8:16], r.data[16:32])
	}
	s := exec(t, d, req{cdb: inquiryCDB(true, 0x80, 255), dir: scsi.DirRead, expLen: 255})
	if string(s.data[4:]) != "XYZ123" || s.data[3] != 6 {
		t.Fatalf("unit serial % x", s.data)
	}
}

func TestVPDPages(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 8 << 20})
	get := func(page byte) []byte {
		t.Helper()
		r := exec(t, d, req{cdb: inquiryCDB(true, page, 255), dir: scsi.DirRead, expLen: 255})
		expectGood(t, "VPD", r)
		if r.data[1] != page {
			t.Fatalf("page %#x answered as page %#x", page, r.data[1])
		}
		if n := int(binary.BigEndian.Uint16(r.data[2:4])); n != len(r.data)-4 {
			t.Fatalf("page %#x: page length %d with %d bytes", page, n, len(r.data))
		}
		return r.data
	}
	sup := get(0x00)
	if !bytes.Equal(sup[4:], []byte{0x00, 0x80, 0x83, 0x8f, 0xb0, 0xb1, 0xb2}) {
		t.Fatalf("supported pages % x", sup[4:])
	}
	for _, p := range sup[4:] {
		get(p) // libiscsi SupportedVPD: every listed page reads
	}
	serial := get(0x80)
	if string(serial[4:]) != d.GUID().String() {
		t.Errorf("serial %q, want the GUID when no serial is set", serial[4:])
	}
	bl := get(0xb0)
	if bl[3] != 0x3c {
		t.Errorf("block limits page length %#x", bl[3])
	}
	if g := binary.BigEndian.Uint16(bl[6:8]); g != 8 {
		t.Errorf("optimal transfer granularity %d, want 8 (4 KiB)", g)
	}
	if m := binary.BigEndian.Uint32(bl[8:12]); m != maxTransferBytes/512 {
		t.Errorf("maximum transfer length %d", m)
	}
	if bl[5] != maxCAWBlocks { // ats.go
		t.Errorf("maximum compare and write length %d, want %d", bl[5], maxCAWBlocks)
	}
	if binary.BigEndian.Uint32(bl[20:24]) != 0 || binary.BigEndian.Uint32(bl[24:28]) != 0 {
		t.Error("unmap limits advertised")
	}
	lbp := get(0xb2)
	if lbp[5] != 0 || lbp[6] != 0 {
		t.Errorf("provisioning bits % x", lbp)
	}
	bdc := get(0xb1)
	if bdc[3] != 0x3c || bdc[4] != 0 || bdc[5] != 0 {
		t.Errorf("block device characteristics % x", bdc[:8])
	}
}

type designator struct {
	proto, codeSet, assoc, typ byte
	piv                        bool
	val                        []byte
}

func parseDesignators(t *testing.T, b []byte) []designator {
	t.Helper()
	var out []designator
	p := b[4:]
	for len(p) > 0 {
		if len(p) < 4 || len(p) < 4+int(p[3]) {
			t.Fatalf("truncated designator in % x", b)
		}
		out = append(out, designator{proto: p[0] >> 4, codeSet: p[0] & 0xf, piv: p[1]&0x80 != 0,
			assoc: p[1] >> 4 & 3, typ: p[1] & 0xf, val: p[4 : 4+int(p[3])]})
		p = p[4+int(p[3]):]
	}
	return out
}

func TestDeviceIdentification(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	target := "iqn.2010-08.org.example:disk"
	spec := iscsiPortSpec(target, 1)
	pd, _ := scsi.NameDesignator(spec.Name)
	td, _ := scsi.NameDesignator(target)
	iscsi := stmf.Nexus{Protocol: scsi.ProtocolISCSI, TargetName: target, TargetPort: spec.Name,
		RelativePortID: 0x0102, PortGroup: 7, Designators: stmf.PortDesignators{PIV: true,
			Port: []scsi.Designator{pd}, Target: []scsi.Designator{td}}}
	tests := []struct {
		name  string
		nexus stmf.Nexus
		want  []designator // after the LU's NAA designator
	}{
		{"iSCSI", iscsi, []designator{
			{proto: 5, codeSet: 3, piv: true, assoc: 1, typ: 8, val: pd.Value},
			{proto: 5, codeSet: 1, piv: true, assoc: 1, typ: 4, val: []byte{0, 0, 1, 2}},
			{proto: 5, codeSet: 1, piv: true, assoc: 1, typ: 5, val: []byte{0, 0, 0, 7}},
			{proto: 5, codeSet: 3, piv: true, assoc: 2, typ: 8, val: td.Value},
		}},
		{"no designators from the port provider, no PIV", stmf.Nexus{Protocol: scsi.ProtocolFC, RelativePortID: 3, PortGroup: 1},
			[]designator{
				{codeSet: 1, assoc: 1, typ: 4, val: []byte{0, 0, 0, 3}},
				{codeSet: 1, assoc: 1, typ: 5, val: []byte{0, 0, 0, 1}},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sess := &stmf.Session{Nexus: tc.nexus}
			r := exec(t, d, req{cdb: inquiryCDB(true, 0x83, 255), dir: scsi.DirRead, expLen: 255, session: sess})
			expectGood(t, "VPD 0x83", r)
			ds := parseDesignators(t, r.data)
			g := d.GUID()
			if naa := ds[0]; naa.typ != 3 || naa.assoc != 0 || naa.codeSet != 1 || naa.piv || !bytes.Equal(naa.val, g[:]) ||
				naa.val[0]>>4 != 6 {
				t.Errorf("NAA designator %+v", naa)
			}
			if !reflect.DeepEqual(ds[1:], tc.want) {
				t.Errorf("designators\n got %+v\nwant %+v", ds[1:], tc.want)
			}
		})
	}
}
