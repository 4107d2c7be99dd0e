package fc_test

import (
	"bytes"
	"testing"

	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/scsi"
)

// TestReadWrite writes over several FCP_XFER_RDY bursts and reads back
// through several FCP_DATA frames, checking the store itself too.
func TestReadWrite(t *testing.T) {
	e := newEnv(t, fc.Config{MaxBurst: 8192})
	e.login(t)
	const blocks = 128 // 64 KiB: 8 bursts, 32 frames
	data := pattern(blocks*blockLen, 0x5a)
	r := e.cmd(t, e.ini, write10(16, blocks, uint32(len(data))), data)
	if r.Status != scsi.StatusGood || r.Over || r.Under {
		t.Fatalf("WRITE: %+v", r.Rsp)
	}
	onDisk := make([]byte, len(data))
	if err := e.st.ReadAt(onDisk, 16*blockLen); err != nil || !bytes.Equal(onDisk, data) {
		t.Fatalf("store holds other data (%v)", err)
	}
	r = e.cmd(t, e.ini, read10(16, blocks, uint32(len(data))), nil)
	if r.Status != scsi.StatusGood || r.Over || r.Under || !bytes.Equal(r.Data, data) {
		t.Fatalf("READ: %+v, %d bytes, equal %v", r.Rsp, len(r.Data), bytes.Equal(r.Data, data))
	}
	if n := e.port.RemotePorts()[0].Exchanges; n != 0 {
		t.Fatalf("%d exchanges left open", n)
	}
}

// TestResiduals checks FCP_RSP residuals when FCP_DL and the CDB disagree
// (FCP-4 9.5.8): over-run when the command wanted more than FCP_DL,
// under-run when less, with the data clipped to FCP_DL.
func TestResiduals(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	data := pattern(8*blockLen, 1)
	if r := e.cmd(t, e.ini, write10(0, 8, 4096), data); r.Status != scsi.StatusGood {
		t.Fatal(r.Rsp)
	}
	tests := []struct {
		name      string
		c         *fc.Cmnd
		out       []byte
		over      bool
		under     bool
		resid     uint32
		wantData  []byte
		wantStore []byte // blocks 100.. after the command
	}{
		{name: "read dl short", c: read10(0, 8, 2048), over: true, resid: 2048, wantData: data[:2048]},
		{name: "read dl long", c: read10(0, 8, 8192), under: true, resid: 4096, wantData: data},
		{name: "read dl zero", c: read10(0, 8, 0), over: true, resid: 4096},
		{name: "write dl long", c: write10(100, 2, 2048), out: pattern(2048, 2), under: true, resid: 1024,
			wantStore: pattern(1024, 2)},
		{name: "write dl short", c: write10(102, 4, 1024), out: pattern(1024, 3), over: true, resid: 1024,
			wantStore: pattern(1024, 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.cmd(t, e.ini, tc.c, tc.out)
			if r.Status != scsi.StatusGood || r.Over != tc.over || r.Under != tc.under || r.Resid != tc.resid {
				t.Fatalf("rsp %+v, want over %v under %v resid %d", r.Rsp, tc.over, tc.under, tc.resid)
			}
			if !bytes.Equal(r.Data, tc.wantData) {
				t.Fatalf("got %d bytes of data, want %d", len(r.Data), len(tc.wantData))
			}
			if tc.wantStore != nil {
				lba := int64(tc.c.CDB[5]) | int64(tc.c.CDB[4])<<8
				got := make([]byte, len(tc.wantStore))
				if err := e.st.ReadAt(got, lba*blockLen); err != nil || !bytes.Equal(got, tc.wantStore) {
					t.Fatalf("store at LBA %d differs (%v)", lba, err)
				}
			}
		})
	}
}

// TestCmndErrors covers FCP_CMND fields the target refuses and CDBs
// longer than 16 bytes (additional CDB length).
func TestCmndErrors(t *testing.T) {
	e := newEnv(t, fc.Config{MaxDataLen: 64 << 10})
	e.login(t)
	ctx := ctxT(t)

	// A write larger than MaxDataLen: FCP_CMND fields invalid.
	r := e.cmd(t, e.ini, write10(0, 256, 128<<10), make([]byte, 128<<10))
	if !r.RspValid || r.RspCode != fc.RspInvalidCmnd {
		t.Fatalf("oversized write: %+v", r.Rsp)
	}
	// A reserved task attribute.
	ox, err := e.ini.SendCmnd(ctx, tur())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ini.Finish(ctx, ox, nil); err != nil {
		t.Fatal(err)
	}
	raw := fc.AppendCmnd(nil, tur())
	raw[9] = 3 // reserved attribute
	if err := e.ini.Send(ctx, fc.Frame{Header: fc.Header{RCtl: fc.RCtlFCPCmnd, Type: fc.TypeFCP, OXID: 0x7000, RXID: fc.UnassignedXID}, Payload: raw}); err != nil {
		t.Fatal(err)
	}
	if rr, err := e.ini.Finish(ctx, 0x7000, nil); err != nil || !rr.RspValid || rr.RspCode != fc.RspInvalidCmnd {
		t.Fatalf("reserved attribute: %+v %v", rr.Rsp, err)
	}
	// A 32-byte CDB (additional CDB length 4 words): an unknown variable
	// length command is answered by the LU with INVALID COMMAND OPCODE,
	// proving the CDB reached it intact.
	cdb := make([]byte, 32)
	cdb[0], cdb[7] = 0x7f, 24
	r = e.cmd(t, e.ini, &fc.Cmnd{CDB: cdb}, nil)
	if r.Status != scsi.StatusCheckCondition || senseKey(r.Sense) != scsi.KeyIllegalRequest {
		t.Fatalf("32-byte CDB: %+v", r.Rsp)
	}
	// Attributes reach the task set: an ORDERED and a HEAD OF QUEUE command.
	for _, a := range []scsi.TaskAttr{scsi.TaskOrdered, scsi.TaskHeadOfQueue} {
		c := read10(0, 1, blockLen)
		c.Attr = a
		if r := e.cmd(t, e.ini, c, nil); r.Status != scsi.StatusGood {
			t.Fatalf("attr %d: %+v", a, r.Rsp)
		}
	}
}

// TestVPD83 checks that INQUIRY page 0x83 over FC names the FC target port:
// an NAA designator of the WWPN (protocol FC, PIV, target port association)
// and a relative target port.
func TestVPD83(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	r := e.cmd(t, e.ini, &fc.Cmnd{CDB: []byte{scsi.OpInquiry, 1, 0x83, 0x10, 0, 0}, Read: true, DataLn: 4096}, nil)
	if r.Status != scsi.StatusGood || len(r.Data) < 4 {
		t.Fatalf("INQUIRY: %+v", r.Rsp)
	}
	var wwpn, rel bool
	d := r.Data[4:]
	for len(d) >= 4 {
		n := 4 + int(d[3])
		if n > len(d) {
			t.Fatalf("descriptor overruns the page: % x", d)
		}
		proto, piv, assoc, typ := d[0]>>4, d[1]&0x80 != 0, (d[1]>>4)&3, d[1]&0x0f
		if assoc == byte(scsi.AssocTargetPort) && typ == scsi.DesignatorNAA {
			wwpn = proto == byte(scsi.ProtocolFC) && piv && bytes.Equal(d[4:n], targetWWPN[:])
		}
		if assoc == byte(scsi.AssocTargetPort) && typ == scsi.DesignatorRelTargetPort {
			rel = piv && proto == byte(scsi.ProtocolFC)
		}
		d = d[n:]
	}
	if !wwpn || !rel {
		t.Fatalf("page 0x83 % x: NAA WWPN %v, relative port %v", r.Data, wwpn, rel)
	}
}

// TestReadSequence checks the frames of a read: one sequence of FCP_DATA
// with SEQ_CNT counting up, relative offsets, end of sequence on the last,
// then FCP_RSP as a new, last sequence.
func TestReadSequence(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	ctx := ctxT(t)
	ox, err := e.ini.SendCmnd(ctx, read10(0, 10, 10*blockLen)) // 5120 bytes: 3 frames of ≤ 2112
	if err != nil {
		t.Fatal(err)
	}
	var ro uint32
	var seqID byte
	for i := 0; ; i++ {
		f, err := e.ini.Await(ctx, func(f *fc.Frame) bool { return f.OXID == ox })
		if err != nil {
			t.Fatal(err)
		}
		if f.RCtl == fc.RCtlFCPRsp {
			if i != 3 || f.SeqID == seqID || f.FCtl&fc.FCtlLastSeq == 0 || f.FCtl&fc.FCtlExchResponder == 0 {
				t.Fatalf("FCP_RSP after %d data frames: %+v", i, f.Header)
			}
			return
		}
		if i == 0 {
			seqID = f.SeqID
		}
		last := ro+uint32(len(f.Payload)) == 10*blockLen
		if f.RCtl != fc.RCtlFCPData || f.SeqID != seqID || f.SeqCnt != uint16(i) || f.Param != ro ||
			f.FCtl&fc.FCtlRelOffset == 0 || (f.FCtl&fc.FCtlEndSeq != 0) != last || len(f.Payload) > fc.MaxPayload {
			t.Fatalf("data frame %d: %+v, %d bytes", i, f.Header, len(f.Payload))
		}
		ro += uint32(len(f.Payload))
	}
}
