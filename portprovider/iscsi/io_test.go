package iscsi

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/iscsi/pdu"
	"github.com/costar-project/costar/scsi"
)

// writeThenRead writes size bytes at lba (sending immediate and
// unsolicited data as the negotiated parameters allow) and reads them back.
func writeThenRead(t *testing.T, in *initiator, lba uint32, size int, seed byte) {
	t.Helper()
	data := pattern(size, seed)
	immOK := in.answers["ImmediateData"] != "No"
	unsol := in.answers["InitialR2T"] == "No"
	first := uint32(65536)
	if v := in.answers["FirstBurstLength"]; v != "" {
		n, _ := parseNumber(v)
		first = uint32(n)
	}
	if v := in.answers["MaxBurstLength"]; v != "" {
		n, _ := parseNumber(v)
		first = min(first, uint32(n))
	}
	var imm []byte
	if immOK {
		imm = data[:min(uint32(size), first, in.targetMRDSL)]
	}
	itt := in.scsiCmd(cdbRW(0x2a, lba, uint16(size/blockSize)), false, true, uint32(size), imm, false)
	if unsol && uint32(len(imm)) < min(first, uint32(size)) {
		in.sendUnsolicited(itt, data, uint32(len(imm)), min(first, uint32(size)))
	}
	res := in.wait(map[uint32][]byte{itt: data}, itt)[itt]
	if res.status != 0 || res.flags&(pdu.FlagOver|pdu.FlagUnder) != 0 {
		t.Fatalf("write: %v sense % x", res, res.sense)
	}
	ritt := in.scsiCmd(cdbRW(0x28, lba, uint16(size/blockSize)), true, false, uint32(size), nil, false)
	r := in.wait(nil, ritt)[ritt]
	if r.status != 0 || !bytes.Equal(r.data, data) {
		t.Fatalf("read back: %v equal=%v", r, bytes.Equal(r.data, data))
	}
}

// sendUnsolicited sends unsolicited Data-Out for [from, to).
func (in *initiator) sendUnsolicited(itt uint32, data []byte, from, to uint32) {
	var sn uint32
	for off := from; off < to; {
		n := min(to-off, in.targetMRDSL)
		var h pdu.Header
		h.SetOpcode(pdu.OpDataOut, false)
		if off+n == to {
			h.SetFlags(pdu.FlagFinal)
		}
		h.SetITT(itt)
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		h.SetU32(pdu.OffDataSN, sn)
		h.SetU32(pdu.OffBufferOffset, off)
		if err := in.send(&h, nil, data[off:off+n]); err != nil {
			in.t.Fatal(err)
		}
		sn++
		off += n
	}
}

func TestDataTransfers(t *testing.T) {
	tests := []struct {
		name string
		op   []pdu.KV
		size int
	}{
		{"immediate data", []pdu.KV{kv("ImmediateData", "Yes"), kv("InitialR2T", "Yes")}, 4096},
		{"unsolicited data-out", []pdu.KV{kv("ImmediateData", "No"), kv("InitialR2T", "No"), kv("FirstBurstLength", "65536")}, 32768},
		{"immediate + unsolicited + R2T", []pdu.KV{kv("ImmediateData", "Yes"), kv("InitialR2T", "No"),
			kv("FirstBurstLength", "16384"), kv("MaxBurstLength", "16384"), kv("MaxOutstandingR2T", "2")}, 96 * 1024},
		{"R2T only, several bursts", []pdu.KV{kv("ImmediateData", "No"), kv("InitialR2T", "Yes"),
			kv("MaxBurstLength", "16384"), kv("MaxOutstandingR2T", "4")}, 128 * 1024},
		{"split Data-In", []pdu.KV{kv("MaxRecvDataSegmentLength", "4096"), kv("MaxBurstLength", "8192")}, 64 * 1024},
		{"digests", []pdu.KV{kv("HeaderDigest", "CRC32C"), kv("DataDigest", "CRC32C"), kv("InitialR2T", "Yes"),
			kv("MaxBurstLength", "8192"), kv("MaxRecvDataSegmentLength", "4096")}, 64*1024 + 512},
		{"1 MiB", []pdu.KV{kv("MaxRecvDataSegmentLength", "262144"), kv("MaxBurstLength", "1048576")}, 1 << 20},
	}
	env := startServer(t, nil)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := dial(t, env.addr)
			in.isid[5] = byte(i + 10)
			in.login(testTarget, tc.op...)
			if tc.name == "digests" && (!in.hdrDig || !in.dataDig) {
				t.Fatal("digests not negotiated")
			}
			writeThenRead(t, in, uint32(i*128), tc.size, byte(i))
			if tc.name == "split Data-In" {
				itt := in.scsiCmd(cdbRW(0x28, 0, 128), true, false, 65536, nil, false)
				r := in.wait(nil, itt)[itt]
				if r.dataIns != 16 || r.finals != 8 || !r.collapse {
					t.Fatalf("Data-In split: %v finals=%d", r, r.finals)
				}
			}
			in.logout()
		})
	}
}

func TestResidualsAndSense(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget)
	read1 := cdbRW(0x28, 0, 1)
	tests := []struct {
		name     string
		cdb      []byte
		edtl     uint32
		flag     byte
		residual uint32
		dataLen  int
	}{
		{"EDTL 0", read1, 0, pdu.FlagOver, 512, 0},
		{"EDTL larger", read1, 10000, pdu.FlagUnder, 10000 - 512, 512},
		{"EDTL smaller", read1, 200, pdu.FlagOver, 312, 200},
		{"exact", read1, 512, 0, 0, 512},
		{"allocation length", []byte{opShort, 0, 0, 0, 0, 36}, 96, pdu.FlagUnder, 60, 36},
	}
	for _, tc := range tests {
		itt := in.scsiCmd(tc.cdb, true, false, tc.edtl, nil, false)
		r := in.wait(nil, itt)[itt]
		if r.status != 0 || r.flags&(pdu.FlagOver|pdu.FlagUnder) != tc.flag || r.residual != tc.residual || len(r.data) != tc.dataLen {
			t.Errorf("%s: %v", tc.name, r)
		}
	}
	// Write: EDTL two blocks, CDB one block -> underflow, one block written.
	itt := in.scsiCmd(cdbRW(0x2a, 10, 1), false, true, 1024, pattern(1024, 3), false)
	if r := in.wait(nil, itt)[itt]; r.status != 0 || r.flags&pdu.FlagUnder == 0 || r.residual != 512 {
		t.Errorf("write underflow: %v", r)
	}
	// CHECK CONDITION goes in a SCSI Response with the sense data.
	itt = in.scsiCmd([]byte{opSense, 0, 0, 0, 0, 0}, true, false, 512, nil, false)
	r := in.wait(nil, itt)[itt]
	if r.status != byte(scsi.StatusCheckCondition) || r.collapse || len(r.sense) != scsi.FixedLen || r.sense[2] != byte(scsi.KeyMediumError) {
		t.Fatalf("sense: %v sense=% x", r, r.sense)
	}
	// A 32-byte CDB travels in an extended CDB AHS; the fake LU rejects
	// the opcode, which proves it arrived whole enough to be decoded.
	long := make([]byte, 32)
	long[0] = 0x7f
	itt = in.scsiCmd(long, false, false, 0, nil, false)
	if r := in.wait(nil, itt)[itt]; r.status != byte(scsi.StatusCheckCondition) {
		t.Fatalf("32-byte CDB: %v", r)
	}
	in.logout()
}

func TestOutOfOrderCompletionAndAbort(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget)
	slow := in.scsiCmd([]byte{opWait}, false, false, 0, nil, false)
	env.waitStarted(t)
	fast := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
	if r := in.wait(nil, fast)[fast]; r.status != 0 {
		t.Fatalf("fast: %v", r)
	}
	// Abort the slow one: FUNCTION COMPLETE, and it never answers.
	var h pdu.Header
	h.SetOpcode(pdu.OpTaskMgmtReq, true)
	h.SetFlags(pdu.FlagFinal | tmfAbortTask)
	h.SetITT(in.nextITT())
	h.SetU32(pdu.OffTTT, slow)
	h.SetU32(pdu.OffCmdSN, in.cmdSN)
	if err := in.send(&h, nil, nil); err != nil {
		t.Fatal(err)
	}
	r, _ := in.expect(pdu.OpTaskMgmtResp)
	if r[2] != tmfRespComplete {
		t.Fatalf("abort response %d", r[2])
	}
	// Abort of an unknown task whose RefCmdSN (0) is below the window: it
	// already completed, so TASK DOES NOT EXIST (RFC 7143 11.5.1).
	h.SetITT(in.nextITT())
	h.SetU32(pdu.OffTTT, 0xdead)
	if err := in.send(&h, nil, nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := in.expect(pdu.OpTaskMgmtResp); r[2] != tmfRespNoTask {
		t.Fatalf("abort unknown: %d", r[2])
	}
	// The window is whole again and nothing else arrives for the slow task.
	tur := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
	res := in.wait(nil, tur)
	if res[tur].status != 0 {
		t.Fatal("TUR after abort")
	}
	// LUN RESET and ABORT TASK SET reach stmf.
	for _, fn := range []byte{tmfAbortTaskSet, tmfLUNReset} {
		h.SetFlags(pdu.FlagFinal | fn)
		h.SetITT(in.nextITT())
		if err := in.send(&h, nil, nil); err != nil {
			t.Fatal(err)
		}
		if r, _ := in.expect(pdu.OpTaskMgmtResp); r[2] != tmfRespComplete {
			t.Fatalf("function %d: response %d", fn, r[2])
		}
	}
	in.logout()
}

func TestCmdSNWindow(t *testing.T) {
	env := startServer(t, func(c *Config) { c.QueueDepth = 16 })
	in := dial(t, env.addr)
	in.login(testTarget)
	if in.maxCmdSN != in.cmdSN+15 {
		t.Fatalf("MaxCmdSN %d, ExpCmdSN %d", in.maxCmdSN, in.cmdSN)
	}
	ping := func() pdu.Header {
		in.nopOut(in.nextITT(), pdu.ReservedTag, true, []byte("abc"))
		h, d := in.expect(pdu.OpNOPIn)
		if string(d) != "abc" {
			t.Fatalf("echo %q", d)
		}
		return h
	}
	// Too high and too low are dropped silently.
	for _, sn := range []uint32{in.maxCmdSN + 1, in.cmdSN - 1} {
		var h pdu.Header
		h.SetOpcode(pdu.OpSCSICmd, false)
		h.SetFlags(pdu.FlagFinal)
		h.SetITT(in.nextITT())
		h.SetU32(pdu.OffCmdSN, sn)
		if err := in.send(&h, nil, nil); err != nil {
			t.Fatal(err)
		}
		if r := ping(); r.U32(pdu.OffExpCmdSN) != in.cmdSN {
			t.Fatalf("ExpCmdSN moved to %d", r.U32(pdu.OffExpCmdSN))
		}
	}
	// Out of order: CmdSN+1 first, then CmdSN; both are executed.
	base := in.cmdSN
	in.cmdSN = base + 1
	b := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
	in.cmdSN = base
	a := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
	in.cmdSN = base + 2
	in.wait(nil, a, b)
	// A non-immediate NOP-Out uses a CmdSN and does not stall the window.
	in.nopOut(in.nextITT(), pdu.ReservedTag, false, nil)
	in.expect(pdu.OpNOPIn)
	// Back-pressure: with 16 commands in flight the window closes.
	var waits []uint32
	for i := 0; i < 16; i++ {
		waits = append(waits, in.scsiCmd([]byte{opWait}, false, false, 0, nil, false))
	}
	for range waits {
		env.waitStarted(t)
	}
	if r := ping(); r.U32(pdu.OffMaxCmdSN) != in.cmdSN-1 {
		t.Fatalf("window not closed: ExpCmdSN %d MaxCmdSN %d", r.U32(pdu.OffExpCmdSN), r.U32(pdu.OffMaxCmdSN))
	}
	close(env.lu.release)
	in.wait(nil, waits...)
	if r := ping(); r.U32(pdu.OffMaxCmdSN) != in.cmdSN+15 {
		t.Fatalf("window not reopened: MaxCmdSN %d", r.U32(pdu.OffMaxCmdSN))
	}
	in.logout()
}

func TestCmdSNWraparound(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.cmdSN = 0xfffffff0
	in.login(testTarget)
	var itts []uint32
	for i := 0; i < 40; i++ {
		itts = append(itts, in.scsiCmd([]byte{0}, false, false, 0, nil, false))
	}
	in.wait(nil, itts...)
	in.logout()
}

func TestKeepalive(t *testing.T) {
	env := startServer(t, func(c *Config) {
		c.NOPInInterval = 30 * time.Millisecond
		c.NOPInTimeout = 150 * time.Millisecond
	})
	in := dial(t, env.addr)
	in.login(testTarget)
	for i := 0; i < 2; i++ {
		h, _ := in.recvPing(t)
		in.nopOut(pdu.ReservedTag, h.U32(pdu.OffTTT), true, nil)
	}
	// Stop answering: the target drops the connection.
	in.recvPing(t)
	start := time.Now()
	in.expectClosed()
	if time.Since(start) > 3*time.Second {
		t.Fatal("connection not dropped in time")
	}
}

func (in *initiator) recvPing(t *testing.T) (pdu.Header, []byte) {
	h, d, err := in.recv()
	if err != nil || h.Opcode() != pdu.OpNOPIn || h.ITT() != pdu.ReservedTag || h.U32(pdu.OffTTT) == pdu.ReservedTag {
		t.Fatalf("want NOP-In ping, got %s %v", h.Opcode(), err)
	}
	return h, d
}

func TestReinstatement(t *testing.T) {
	env := startServer(t, nil)
	a := dial(t, env.addr)
	a.login(testTarget)
	a.scsiCmd([]byte{opWait}, false, false, 0, nil, false)
	env.waitStarted(t)
	b := dial(t, env.addr) // same initiator name and ISID
	b.login(testTarget)
	a.expectClosed()
	if n := len(env.srv.Sessions()); n != 1 {
		t.Fatalf("%d sessions after reinstatement", n)
	}
	if b.tsih == a.tsih {
		t.Fatal("TSIH reused")
	}
	writeThenRead(t, b, 0, 4096, 1)
	// A different ISID is a second session of the same initiator.
	c := dial(t, env.addr)
	c.isid[5] = 9
	c.login(testTarget)
	if n := len(env.srv.Sessions()); n != 2 {
		t.Fatalf("%d sessions", n)
	}
	c.logout()
	b.logout()
}

func TestDataSNInvalid(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "No"))
	cases := [][]uint32{{0, 0}, {27}, {0xffffffff}, {1, 0}}
	for _, sns := range cases {
		n := len(sns)
		data := pattern(n*blockSize, 1)
		itt := in.scsiCmd(cdbRW(0x2a, 100, uint16(n)), false, true, uint32(n*blockSize), nil, false)
		for i, sn := range sns {
			var h pdu.Header
			h.SetOpcode(pdu.OpDataOut, false)
			if i == n-1 {
				h.SetFlags(pdu.FlagFinal)
			}
			h.SetITT(itt)
			h.SetU32(pdu.OffTTT, pdu.ReservedTag)
			h.SetU32(pdu.OffDataSN, sn)
			h.SetU32(pdu.OffBufferOffset, uint32(i*blockSize))
			if err := in.send(&h, nil, data[i*blockSize:(i+1)*blockSize]); err != nil {
				t.Fatal(err)
			}
		}
		r := in.wait(nil, itt)[itt]
		if r.status != byte(scsi.StatusCheckCondition) || len(r.sense) < 14 || r.sense[2] != byte(scsi.KeyAbortedCommand) ||
			r.sense[12] != 0x47 || r.sense[13] != 0x05 {
			t.Fatalf("DataSN %v: %v sense % x", sns, r, r.sense)
		}
	}
	writeThenRead(t, in, 0, 8192, 2) // the connection survived
	in.logout()
}

func TestMalformedPDUs(t *testing.T) {
	env := startServer(t, func(c *Config) { c.MaxRecvDataSegmentLength = 8192 })
	in := dial(t, env.addr)
	in.login(testTarget)
	// Unknown opcode: Reject, the connection stays.
	var h pdu.Header
	h.SetOpcode(0x1c, true)
	h.SetFlags(pdu.FlagFinal)
	if err := in.send(&h, nil, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if r, d := in.expect(pdu.OpReject); r[2] != rejectCmdNotSupported || len(d) != 48 || d[0]&0x3f != 0x1c {
		t.Fatalf("reject reason %#x", r[2])
	}
	// SNACK at ErrorRecoveryLevel 0: Reject.
	h = pdu.Header{}
	h.SetOpcode(pdu.OpSNACKReq, false)
	h.SetFlags(pdu.FlagFinal)
	if err := in.send(&h, nil, nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := in.expect(pdu.OpReject); r[2] != rejectProtocolError {
		t.Fatalf("SNACK reject reason %#x", r[2])
	}
	// Immediate data without the W bit: Reject, CmdSN consumed.
	itt := in.scsiCmd([]byte{0}, false, false, 0, []byte("data"), false)
	if r, _ := in.expect(pdu.OpReject); r[2] != rejectProtocolError {
		t.Fatalf("reject %#x for ITT %#x", r[2], itt)
	}
	tur := in.scsiCmd([]byte{0}, false, false, 0, nil, false)
	in.wait(nil, tur)
	// A data segment beyond our MaxRecvDataSegmentLength: Reject, close.
	h = pdu.Header{}
	h.SetOpcode(pdu.OpNOPOut, true)
	h.SetFlags(pdu.FlagFinal)
	h.SetITT(in.nextITT())
	if err := in.send(&h, nil, make([]byte, 8196)); err != nil {
		t.Fatal(err)
	}
	in.expect(pdu.OpReject)
	in.expectClosed()

	// A header digest error drops the connection.
	in2 := dial(t, env.addr)
	in2.isid[5] = 2
	in2.login(testTarget, kv("HeaderDigest", "CRC32C"))
	h = pdu.Header{}
	h.SetOpcode(pdu.OpNOPOut, true)
	h.SetFlags(pdu.FlagFinal)
	b := pdu.AppendPDU(nil, &h, nil, nil, true, false)
	b[47] ^= 0xff
	if _, err := in2.nc.Write(b); err != nil {
		t.Fatal(err)
	}
	in2.expectClosed()
}

func TestDiscovery(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login("")
	sendTargets := func(v string) string {
		var h pdu.Header
		h.SetOpcode(pdu.OpTextReq, true)
		h.SetFlags(pdu.FlagFinal)
		h.SetITT(in.nextITT())
		h.SetU32(pdu.OffTTT, pdu.ReservedTag)
		h.SetU32(pdu.OffCmdSN, in.cmdSN)
		if err := in.send(&h, nil, pdu.EncodeText([]pdu.KV{kv("SendTargets", v)})); err != nil {
			t.Fatal(err)
		}
		r, d := in.expect(pdu.OpTextResp)
		if !r.Final() {
			t.Fatal("text response not final")
		}
		return strings.ReplaceAll(string(d), "\x00", ";")
	}
	want := "TargetName=" + testTarget + ";TargetAddress=" + env.addr + ",1;"
	if got := sendTargets("All"); got != want {
		t.Fatalf("SendTargets=All: %q, want %q", got, want)
	}
	if err := env.srv.AddTarget(TargetConfig{Name: "iqn.2026-01.test:two", TPGT: 7}); err != nil {
		t.Fatal(err)
	}
	if got := sendTargets("iqn.2026-01.test:two"); got != "TargetName=iqn.2026-01.test:two;TargetAddress="+env.addr+",7;" {
		t.Fatalf("SendTargets=name: %q", got)
	}
	if err := env.srv.RemoveTarget("iqn.2026-01.test:two"); err != nil {
		t.Fatal(err)
	}
	if got := sendTargets("All"); got != want {
		t.Fatalf("after RemoveTarget: %q", got)
	}
	// SCSI commands are not allowed in a discovery session.
	in.scsiCmd([]byte{0}, false, false, 0, nil, true)
	if r, _ := in.expect(pdu.OpReject); r[2] != rejectProtocolError {
		t.Fatalf("reject %#x", r[2])
	}
	in.logout()
}

func TestLongTextResponse(t *testing.T) {
	env := startServer(t, nil)
	for i := 0; i < 40; i++ {
		if err := env.srv.AddTarget(TargetConfig{Name: "iqn.2026-01.test:a-fairly-long-target-name-number-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}); err != nil {
			t.Fatal(err)
		}
	}
	in := dial(t, env.addr)
	in.login("", kv("MaxRecvDataSegmentLength", "512"))
	var h pdu.Header
	h.SetOpcode(pdu.OpTextReq, true)
	h.SetFlags(pdu.FlagFinal)
	itt := in.nextITT()
	h.SetITT(itt)
	h.SetU32(pdu.OffTTT, pdu.ReservedTag)
	if err := in.send(&h, nil, pdu.EncodeText([]pdu.KV{kv("SendTargets", "All")})); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for parts := 0; ; parts++ {
		r, d := in.expect(pdu.OpTextResp)
		if len(d) > 512 {
			t.Fatalf("text segment %d > 512", len(d))
		}
		all = append(all, d...)
		if r.Final() {
			if parts == 0 {
				t.Fatal("response was not split")
			}
			break
		}
		h.SetU32(pdu.OffTTT, r.U32(pdu.OffTTT))
		if err := in.send(&h, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	kvs, err := pdu.ParseText(all)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(all), "TargetName="); n != 41 || len(kvs) != 82 {
		t.Fatalf("%d targets in %d keys", n, len(kvs))
	}
	in.logout()
}

func TestDataInSplitFlags(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget, kv("MaxRecvDataSegmentLength", "1024"), kv("MaxBurstLength", "4096"))
	itt := in.scsiCmd(cdbRW(0x28, 0, 24), true, false, 24*512, nil, false)
	r := in.wait(nil, itt)[itt]
	// 12 KiB in 1 KiB segments, sequences of 4 KiB: 12 PDUs, 3 with F.
	if r.dataIns != 12 || r.finals != 3 || !r.collapse || len(r.data) != 12288 {
		t.Fatalf("%v finals=%d", r, r.finals)
	}
	_ = binary.BigEndian
	in.logout()
}

func (e *testEnv) waitStarted(t testing.TB) uint64 {
	t.Helper()
	select {
	case tag := <-e.lu.started:
		return tag
	case <-time.After(5 * time.Second):
		t.Fatal("task did not reach the LU")
		return 0
	}
}

func TestBidirectional(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget, kv("ImmediateData", "No"), kv("InitialR2T", "Yes"), kv("MaxBurstLength", "4096"))
	out := pattern(8192, 5)
	var h pdu.Header
	h.SetOpcode(pdu.OpSCSICmd, false)
	h.SetFlags(pdu.FlagFinal | pdu.FlagRead | pdu.FlagWrite | 1)
	itt := in.nextITT()
	h.SetITT(itt)
	h.SetU32(pdu.OffEDTL, 8192)
	h.SetU32(pdu.OffCmdSN, in.cmdSN)
	in.cmdSN++
	h.CDB16()[0] = opBidi
	if err := in.send(&h, pdu.AppendBidiAHS(nil, 8192), nil); err != nil {
		t.Fatal(err)
	}
	r := in.wait(map[uint32][]byte{itt: out}, itt)[itt]
	// Two R2Ts (R2TSN 0, 1), then Data-In continuing the numbering (2, 3).
	if r.status != 0 || r.r2ts != 2 || r.dataIns != 2 || len(r.data) != 8192 || r.data[0] != out[8191] || r.collapse {
		t.Fatalf("bidi: %v r2ts=%d", r, r.r2ts)
	}
	in.logout()
}

func TestRemoveTargetClosesSessions(t *testing.T) {
	env := startServer(t, nil)
	in := dial(t, env.addr)
	in.login(testTarget)
	if err := env.srv.RemoveTarget(testTarget); err != nil {
		t.Fatal(err)
	}
	in.expectClosed()
	in2 := dial(t, env.addr)
	r, _ := in2.loginPDU(true, 0, 1, []pdu.KV{kv("InitiatorName", testInitiator), kv("TargetName", testTarget)}, nil)
	if loginStatusOf(r) != 0x0203 {
		t.Fatalf("status %#x", loginStatusOf(r))
	}
	if err := env.srv.AddTarget(TargetConfig{Name: testTarget}); err != nil {
		t.Fatal(err)
	}
	in3 := dial(t, env.addr)
	in3.login(testTarget)
	in3.logout()
}

func TestWildcardPortalAddress(t *testing.T) {
	env := startServer(t, func(c *Config) { c.Portals = []string{"0.0.0.0:0"} })
	_, port, _ := strings.Cut(env.addr, "]:")
	if port == "" {
		_, port, _ = strings.Cut(env.addr, ":")
	}
	in := dial(t, "127.0.0.1:"+port)
	in.login("")
	var h pdu.Header
	h.SetOpcode(pdu.OpTextReq, true)
	h.SetFlags(pdu.FlagFinal)
	h.SetITT(in.nextITT())
	h.SetU32(pdu.OffTTT, pdu.ReservedTag)
	if err := in.send(&h, nil, pdu.EncodeText([]pdu.KV{kv("SendTargets", "All")})); err != nil {
		t.Fatal(err)
	}
	_, d := in.expect(pdu.OpTextResp)
	if want := "TargetAddress=127.0.0.1:" + port + ",1\x00"; !strings.Contains(string(d), want) {
		t.Fatalf("got %q, want %q", d, want)
	}
	in.logout()
}
