package pdu

import (
	"bufio"
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

func hdr(op Opcode, imm bool, flags byte, set func(h *Header)) Header {
	var h Header
	h.SetOpcode(op, imm)
	h.SetFlags(flags)
	h.SetLUN([8]byte{0, 5})
	h.SetITT(0x11223344)
	if set != nil {
		set(&h)
	}
	return h
}

func TestRoundTripAllOpcodes(t *testing.T) {
	ext := bytes.Repeat([]byte{0xab}, 16) // 32-byte CDB
	ahs := AppendBidiAHS(AppendExtCDBAHS(nil, ext), 4096)
	tests := []struct {
		name string
		h    Header
		ahs  []byte
		data []byte
	}{
		{"nop-out", hdr(OpNOPOut, true, FlagFinal, func(h *Header) { h.SetU32(OffTTT, ReservedTag); h.SetU32(OffCmdSN, 7) }), nil, []byte("ping")},
		{"scsi-cmd", hdr(OpSCSICmd, false, FlagFinal|FlagRead|FlagWrite|1, func(h *Header) { h.SetU32(OffEDTL, 512); copy(h.CDB16(), []byte{0x28, 0, 0, 0, 0, 1}) }), ahs, bytes.Repeat([]byte{1}, 511)},
		{"tmf", hdr(OpTaskMgmtReq, true, FlagFinal|1, func(h *Header) { h.SetU32(OffTTT, 9); h.SetU32(OffRefCmdSN, 3) }), nil, nil},
		{"login", hdr(OpLoginReq, true, 0, func(h *Header) {
			h.SetLoginFlags(true, false, StageSecurity, StageOperational)
			h.SetISID([6]byte{0x80, 1, 2, 3, 4, 5})
			h.SetTSIH(0)
			h.SetCID(1)
		}), nil, EncodeText([]KV{{"InitiatorName", "iqn.x"}, {"AuthMethod", "None"}})},
		{"text", hdr(OpTextReq, false, FlagFinal, nil), nil, EncodeText([]KV{{"SendTargets", "All"}})},
		{"data-out", hdr(OpDataOut, false, FlagFinal, func(h *Header) { h.SetU32(OffDataSN, 2); h.SetU32(OffBufferOffset, 8192) }), nil, bytes.Repeat([]byte{7}, 8192)},
		{"logout", hdr(OpLogoutReq, true, FlagFinal|0, func(h *Header) { h.SetCID(1) }), nil, nil},
		{"snack", hdr(OpSNACKReq, false, FlagFinal|1, nil), nil, nil},
		{"nop-in", hdr(OpNOPIn, false, FlagFinal, func(h *Header) { h.SetU32(OffStatSN, 1); h.SetU32(OffExpCmdSN, 2); h.SetU32(OffMaxCmdSN, 3) }), nil, []byte("pong!")},
		{"scsi-resp", hdr(OpSCSIResp, false, FlagFinal|FlagUnder, func(h *Header) { h[3] = 2; h.SetU32(OffResidual, 100) }), nil, append([]byte{0, 18}, make([]byte, 18)...)},
		{"tmf-resp", hdr(OpTaskMgmtResp, false, FlagFinal, nil), nil, nil},
		{"login-resp", hdr(OpLoginResp, false, 0, func(h *Header) { h[36], h[37] = 2, 3 }), nil, EncodeText([]KV{{"TargetPortalGroupTag", "1"}})},
		{"text-resp", hdr(OpTextResp, false, FlagFinal, nil), nil, EncodeText([]KV{{"TargetName", "iqn.t"}})},
		{"data-in", hdr(OpDataIn, false, FlagFinal|FlagStatus, func(h *Header) { h.SetU32(OffDataSN, 4) }), nil, bytes.Repeat([]byte{9}, 3)},
		{"logout-resp", hdr(OpLogoutResp, false, FlagFinal, nil), nil, nil},
		{"r2t", hdr(OpR2T, false, FlagFinal, func(h *Header) { h.SetU32(OffResidual, 65536) }), nil, nil},
		{"async", hdr(OpAsyncMsg, false, FlagFinal, func(h *Header) { h[36] = 1 }), nil, nil},
		{"reject", hdr(OpReject, false, FlagFinal, func(h *Header) { h[2] = 4 }), nil, make([]byte, 48)},
	}
	for _, dig := range []bool{false, true} {
		for _, tc := range tests {
			h := tc.h
			wire := AppendPDU(nil, &h, tc.ahs, tc.data, dig, dig)
			rd := NewReader(bufio.NewReader(bytes.NewReader(wire)), 1<<20)
			rd.HeaderDigest, rd.DataDigest = dig, dig
			var got Header
			gahs, err := rd.ReadHeader(&got)
			if err != nil {
				t.Fatalf("%s digest=%v: ReadHeader: %v", tc.name, dig, err)
			}
			if got != h || !bytes.Equal(gahs, tc.ahs) {
				t.Fatalf("%s: header mismatch", tc.name)
			}
			if got.Opcode() != tc.h.Opcode() || got.Immediate() != tc.h.Immediate() || got.ITT() != 0x11223344 {
				t.Fatalf("%s: fields mismatch", tc.name)
			}
			data := make([]byte, got.DataSegmentLength())
			if err := rd.ReadData(&got, data); err != nil {
				t.Fatalf("%s: ReadData: %v", tc.name, err)
			}
			if !bytes.Equal(data, tc.data) && !(len(data) == 0 && len(tc.data) == 0) {
				t.Fatalf("%s: data mismatch", tc.name)
			}
			if _, err := rd.ReadHeader(&got); err != io.EOF {
				t.Fatalf("%s: trailing bytes: %v", tc.name, err)
			}
			if tc.name == "scsi-cmd" {
				a, err := ParseAHS(gahs)
				if err != nil || !bytes.Equal(a.ExtCDB, ext) || !a.HasBidi || a.BidiReadLen != 4096 {
					t.Fatalf("AHS: %+v %v", a, err)
				}
			}
			if tc.name == "login" {
				csg, nsg := got.LoginStages()
				if csg != StageSecurity || nsg != StageOperational || !got.Final() || got.CID() != 1 || got.ISID() != [6]byte{0x80, 1, 2, 3, 4, 5} {
					t.Fatalf("login fields: csg=%d nsg=%d", csg, nsg)
				}
			}
		}
	}
}

func TestCRC32CVectors(t *testing.T) {
	// RFC 7143 B.4: 32 bytes of zeros -> aa 36 91 8a on the wire.
	var b [4]byte
	PutDigest(b[:], CRC32C(0, make([]byte, 32)))
	if !bytes.Equal(b[:], []byte{0xaa, 0x36, 0x91, 0x8a}) {
		t.Fatalf("zeros: % x", b)
	}
	ones := bytes.Repeat([]byte{0xff}, 32)
	PutDigest(b[:], CRC32C(0, ones))
	if !bytes.Equal(b[:], []byte{0x43, 0xab, 0xa8, 0x62}) {
		t.Fatalf("ones: % x", b)
	}
	inc := make([]byte, 32)
	for i := range inc {
		inc[i] = byte(i)
	}
	PutDigest(b[:], CRC32C(0, inc))
	if !bytes.Equal(b[:], []byte{0x4e, 0x79, 0xdd, 0x46}) {
		t.Fatalf("incrementing: % x", b)
	}
	if DataDigest([]byte{1, 2, 3}) != crc32.Checksum([]byte{1, 2, 3, 0}, crc32.MakeTable(crc32.Castagnoli)) {
		t.Fatal("data digest must cover the padding")
	}
}

func TestReaderErrors(t *testing.T) {
	h := hdr(OpDataOut, false, FlagFinal, nil)
	wire := AppendPDU(nil, &h, nil, make([]byte, 100), true, true)
	t.Run("too long", func(t *testing.T) {
		rd := NewReader(bufio.NewReader(bytes.NewReader(wire)), 64)
		rd.HeaderDigest = true
		var g Header
		if _, err := rd.ReadHeader(&g); !errors.Is(err, ErrDataTooLong) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("header digest", func(t *testing.T) {
		bad := append([]byte(nil), wire...)
		bad[20] ^= 1
		rd := NewReader(bufio.NewReader(bytes.NewReader(bad)), 1024)
		rd.HeaderDigest = true
		var g Header
		if _, err := rd.ReadHeader(&g); !errors.Is(err, ErrHeaderDigest) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("data digest keeps sync", func(t *testing.T) {
		bad := append([]byte(nil), wire...)
		bad[60] ^= 1
		bad = append(bad, wire...)
		rd := NewReader(bufio.NewReader(bytes.NewReader(bad)), 1024)
		rd.HeaderDigest, rd.DataDigest = true, true
		var g Header
		if _, err := rd.ReadHeader(&g); err != nil {
			t.Fatal(err)
		}
		if err := rd.ReadData(&g, make([]byte, 100)); !errors.Is(err, ErrDataDigest) {
			t.Fatalf("got %v", err)
		}
		if _, err := rd.ReadHeader(&g); err != nil {
			t.Fatalf("next PDU: %v", err)
		}
		if err := rd.ReadData(&g, make([]byte, 100)); err != nil {
			t.Fatalf("next PDU data: %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		rd := NewReader(bufio.NewReader(bytes.NewReader(wire[:70])), 1024)
		rd.HeaderDigest, rd.DataDigest = true, true
		var g Header
		if _, err := rd.ReadHeader(&g); err != nil {
			t.Fatal(err)
		}
		if err := rd.ReadData(&g, make([]byte, 100)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestParseAHSErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":        {0, 1, 1},
		"overrun":      {0, 20, 1, 0},
		"zero length":  {0, 0, 1, 0},
		"unknown type": {0, 1, 9, 0},
		"bad bidi len": {0, 2, 2, 0},
		"two ext":      append(AppendExtCDBAHS(nil, []byte{1, 2, 3}), AppendExtCDBAHS(nil, []byte{1})...),
	} {
		if _, err := ParseAHS(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if a, err := ParseAHS(nil); err != nil || a.ExtCDB != nil {
		t.Fatal("empty AHS")
	}
}

func TestSerial(t *testing.T) {
	tests := []struct {
		a, b   uint32
		lt, gt bool
	}{
		{1, 2, true, false},
		{2, 1, false, true},
		{5, 5, false, false},
		{0xffffffff, 0, true, false}, // wraparound
		{0, 0xffffffff, false, true},
		{0x7fffffff, 0x80000000, true, false},
		{0xfffffff0, 0x10, true, false},
	}
	for _, tc := range tests {
		if SerialLT(tc.a, tc.b) != tc.lt || SerialGT(tc.a, tc.b) != tc.gt {
			t.Errorf("%#x vs %#x: lt=%v gt=%v", tc.a, tc.b, SerialLT(tc.a, tc.b), SerialGT(tc.a, tc.b))
		}
		if SerialLE(tc.a, tc.b) != (tc.lt || tc.a == tc.b) {
			t.Errorf("LE %#x %#x", tc.a, tc.b)
		}
	}
	if !SerialInWindow(2, 0xfffffffe, 5) || SerialInWindow(6, 0xfffffffe, 5) || SerialInWindow(0xfffffffd, 0xfffffffe, 5) {
		t.Fatal("window across wraparound")
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		in      string
		want    []KV
		wantErr bool
	}{
		{"A=1\x00B=\x00", []KV{{"A", "1"}, {"B", ""}}, false},
		{"A=1\x00\x00\x00", []KV{{"A", "1"}}, false},
		{"A=x=y\x00", []KV{{"A", "x=y"}}, false},
		{"X-com.example.k=v\x00", []KV{{"X-com.example.k", "v"}}, false},
		{"A=1", nil, true},
		{"novalue\x00", nil, true},
		{"=v\x00", nil, true},
		{"bad key=v\x00", nil, true},
		{string(bytes.Repeat([]byte{'k'}, 64)) + "=v\x00", nil, true},
		{"K=" + string(bytes.Repeat([]byte{'v'}, MaxValueLen+1)) + "\x00", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseText([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err=%v", tc.in, err)
			continue
		}
		if !tc.wantErr && (len(got) != len(tc.want) || len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%q: got %v", tc.in, got)
		}
	}
	round := []KV{{"HeaderDigest", "CRC32C,None"}, {"MaxBurstLength", "262144"}}
	if got, err := ParseText(EncodeText(round)); err != nil || len(got) != 2 || got[1] != round[1] {
		t.Fatalf("round trip: %v %v", got, err)
	}
}
