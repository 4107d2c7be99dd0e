package lu

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/scsi"
)

type rsocDesc struct {
	op       byte
	sa       uint16
	servactv bool
	ctdp     bool
	cdbLen   int
	tdLen    int
}

func parseRSOCAll(t *testing.T, b []byte) []rsocDesc {
	t.Helper()
	if n := int(binary.BigEndian.Uint32(b[0:4])); n != len(b)-4 {
		t.Fatalf("command data length %d with %d bytes", n, len(b))
	}
	var out []rsocDesc
	for p := b[4:]; len(p) > 0; {
		if len(p) < 8 {
			t.Fatalf("truncated descriptor")
		}
		d := rsocDesc{op: p[0], sa: binary.BigEndian.Uint16(p[2:4]), servactv: p[5]&1 != 0, ctdp: p[5]&2 != 0,
			cdbLen: int(binary.BigEndian.Uint16(p[6:8]))}
		p = p[8:]
		if d.ctdp {
			if len(p) < 12 {
				t.Fatalf("truncated timeouts descriptor")
			}
			d.tdLen = int(binary.BigEndian.Uint16(p[0:2]))
			p = p[12:]
		}
		out = append(out, d)
	}
	return out
}

func TestReportSupportedOpcodes(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	rsoc := func(cdb []byte) resp {
		t.Helper()
		return exec(t, d, req{cdb: cdb, dir: scsi.DirRead, expLen: 65535})
	}

	for _, rctd := range []bool{false, true} {
		r := rsoc(rsocCDB(rctd, 0, 0, 0, 65535))
		expectGood(t, "all", r)
		descs := parseRSOCAll(t, r.data)
		if len(descs) != len(implemented(d)) {
			t.Fatalf("%d descriptors, want %d", len(descs), len(implemented(d)))
		}
		for _, ds := range descs {
			if ds.ctdp != rctd || (rctd && ds.tdLen != 0x0a) {
				t.Errorf("opcode %#x: CTDP %v timeouts length %#x with RCTD %v", ds.op, ds.ctdp, ds.tdLen, rctd)
			}
			if !ds.servactv && ds.sa != 0 {
				t.Errorf("opcode %#x: service action %#x without SERVACTV", ds.op, ds.sa)
			}
			// libiscsi OneCommand: 001b works exactly for opcodes without
			// service actions, 010b exactly for those with; the usage data
			// starts with the opcode and has the CDB's length.
			var one, two resp
			one = rsoc(rsocCDB(false, 1, ds.op, ds.sa, 65535))
			two = rsoc(rsocCDB(false, 2, ds.op, ds.sa, 65535))
			good, bad := one, two
			if ds.servactv {
				good, bad = two, one
			}
			expectGood(t, "one command", good)
			expectSense(t, "one command, wrong option", bad, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
			three := rsoc(rsocCDB(rctd, 3, ds.op, ds.sa, 65535))
			for _, r := range []resp{good, three} {
				b := r.data
				if b[1]&7 != supportStandard || int(binary.BigEndian.Uint16(b[2:4])) != ds.cdbLen || ds.cdbLen == 0 {
					t.Fatalf("opcode %#x one-command header % x", ds.op, b[:4])
				}
				usage := b[4 : 4+ds.cdbLen]
				if usage[0] != ds.op {
					t.Errorf("opcode %#x: usage data starts %#x", ds.op, usage[0])
				}
				if usage[ds.cdbLen-1]&0x04 != 0 {
					t.Errorf("opcode %#x: NACA advertised", ds.op)
				}
			}
			if rctd && (three.data[1]&0x80 == 0 || len(three.data) != 4+ds.cdbLen+12) {
				t.Errorf("opcode %#x: one-command with RCTD % x", ds.op, three.data)
			}
		}
	}

	usage := func(op byte) []byte {
		r := rsoc(rsocCDB(false, 1, op, 0, 65535))
		expectGood(t, "one command", r)
		return r.data[4:]
	}
	// DPO/FUA advertised where libiscsi's DpoFua tests look for them.
	for _, op := range []byte{scsi.OpRead10, scsi.OpRead12, scsi.OpRead16, scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16} {
		if usage(op)[1]&0x18 != 0x18 {
			t.Errorf("opcode %#x: DPO/FUA not in the usage data", op)
		}
	}
	for _, op := range []byte{scsi.OpVerify10, scsi.OpVerify12, scsi.OpVerify16, scsi.OpWriteVerify10, scsi.OpWriteVerify12, scsi.OpWriteVerify16} {
		u := usage(op)[1]
		if u&0x10 == 0 || u&0x08 != 0 {
			t.Errorf("opcode %#x: usage byte 1 %#x, want DPO and no FUA", op, u)
		}
	}

	// Unsupported opcodes and service actions: support 001b.
	for _, c := range [][]byte{
		rsocCDB(false, 1, 0x42, 0, 65535),                      // UNMAP (thick LU)
		rsocCDB(false, 2, scsi.OpServiceActionIn, 0x13, 65535), // REPORT REFERRALS
		rsocCDB(false, 3, scsi.OpRead10, 1, 65535),             // READ10 has no SA 1
		rsocCDB(false, 2, 0x42, 0, 65535),                      // unknown opcode, by SA
	} {
		r := rsoc(c)
		expectGood(t, "unsupported", r)
		if len(r.data) != 4 || r.data[1]&7 != supportNotSupported {
			t.Errorf("cdb % x: % x, want SUPPORT 001b", c, r.data)
		}
	}
	// REPORT TARGET PORT GROUPS (TPGS=01b): stmf answers it, the LU lists
	// it, and the one-command query says supported with its usage data.
	for _, opts := range []byte{2, 3} {
		c := rsocCDB(false, opts, scsi.OpMaintenanceIn, scsi.SAReportTargetPortGroups, 65535)
		r := rsoc(c)
		expectGood(t, "REPORT TARGET PORT GROUPS", r)
		want := []byte{0, supportStandard, 0, 12, 0xa3, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}
		if !bytes.Equal(r.data, want) {
			t.Errorf("cdb % x: % x, want % x", c, r.data, want)
		}
	}
	all := rsoc(rsocCDB(false, 0, 0, 0, 65535))
	found := false
	for off := 4; off+8 <= len(all.data); off += 8 {
		if all.data[off] == scsi.OpMaintenanceIn && all.data[off+3] == scsi.SAReportTargetPortGroups && all.data[off+5]&1 != 0 {
			found = true
		}
	}
	if !found {
		t.Error("all-commands list lacks REPORT TARGET PORT GROUPS")
	}
	// Allocation length truncates.
	r := rsoc(rsocCDB(false, 0, 0, 0, 10))
	if len(r.data) != 10 || r.transferLen != 10 {
		t.Fatalf("truncated all-commands: %d bytes", len(r.data))
	}
}

// TestReportSupportedOpcodesListsTable: the all-commands list is exactly
// the LU's implemented rows, in table order, for every kind of LU.
func TestReportSupportedOpcodesListsTable(t *testing.T) {
	for name, d := range map[string]*Device{
		"thick":     newThinDisk(t, thinOpts{}),
		"thin":      newThinDisk(t, thinOpts{thin: true}),
		"no atomic": withoutAtomicWrites(t),
	} {
		r := exec(t, d, req{cdb: rsocCDB(false, 0, 0, 0, 65535), dir: scsi.DirRead, expLen: 65535})
		expectGood(t, name, r)
		descs := parseRSOCAll(t, r.data)
		rows := implemented(d)
		if len(descs) != len(rows) {
			t.Fatalf("%s: %d descriptors, %d implemented rows", name, len(descs), len(rows))
		}
		for i, c := range rows {
			want := rsocDesc{op: c.op, cdbLen: c.cdbLen}
			if c.sa >= 0 {
				want.sa, want.servactv = uint16(c.sa), true
			}
			if descs[i] != want {
				t.Errorf("%s: descriptor %d %+v, want %+v", name, i, descs[i], want)
			}
		}
	}
}

// implemented is the rows of d's table that have a handler.
func implemented(d *Device) []command {
	var out []command
	for _, c := range d.cmds.rows {
		if c.fn != nil {
			out = append(out, c)
		}
	}
	return out
}
