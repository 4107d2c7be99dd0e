package lu

import (
	"bytes"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// TestCDBTable drives every supported opcode with good and bad CDBs
// against a 1 MiB LU of 512-byte blocks (2048 blocks).
func TestCDBTable(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 1 << 20})
	const nb = 2048
	blk := make([]byte, 512)
	two := make([]byte, 1024)

	type want struct {
		good bool
		key  scsi.SenseKey
		asc  scsi.ASC
		tl   uint32 // TransferLen (GOOD only)
		dlen int    // bytes of Data-In (GOOD only)
	}
	ok := func(tl uint32, dlen int) want { return want{good: true, tl: tl, dlen: dlen} }
	bad := func(key scsi.SenseKey, asc scsi.ASC) want { return want{key: key, asc: asc} }
	invOp := bad(scsi.KeyIllegalRequest, scsi.ASCInvalidCommandOpcode)
	invField := bad(scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	oob := bad(scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange)
	rd, wr, none := scsi.DirRead, scsi.DirWrite, scsi.DirNone

	tests := []struct {
		name   string
		cdb    []byte
		dir    scsi.DataDir
		expLen uint32
		data   []byte
		want   want
	}{
		// Dispatch.
		{"empty CDB", []byte{}, none, 0, nil, invOp},
		{"unknown opcode", []byte{0xff, 0, 0, 0, 0, 0}, none, 0, nil, invOp},
		{"SEND DIAGNOSTIC not implemented", []byte{0x1d, 0, 0, 0, 0, 0}, none, 0, nil, invOp},
		{"UNMAP not implemented", make10(0x42), wr, 0, nil, invOp},
		{"short READ10", []byte{scsi.OpRead10, 0, 0, 0, 0}, rd, 0, nil, invField},
		{"short SERVICE ACTION IN", []byte{scsi.OpServiceActionIn}, rd, 0, nil, invField},
		{"short READ16 (10 bytes)", make10(scsi.OpRead16), rd, 0, nil, invField},
		{"NACA set", []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0x04}, none, 0, nil, invField},
		{"CDB longer than needed (iSCSI pads)", append(cdb6(scsi.OpRead6, 0, 1), make([]byte, 10)...), rd, 512, nil, ok(512, 512)},

		// TEST UNIT READY, REQUEST SENSE.
		{"TEST UNIT READY", []byte{0, 0, 0, 0, 0, 0}, none, 0, nil, ok(0, 0)},
		{"REQUEST SENSE fixed", []byte{scsi.OpRequestSense, 0, 0, 0, 252, 0}, rd, 252, nil, ok(18, 18)},
		{"REQUEST SENSE alloc 8", []byte{scsi.OpRequestSense, 0, 0, 0, 8, 0}, rd, 8, nil, ok(8, 8)},
		{"REQUEST SENSE descriptor", []byte{scsi.OpRequestSense, 1, 0, 0, 252, 0}, rd, 252, nil, ok(8, 8)},
		{"REQUEST SENSE alloc 0", []byte{scsi.OpRequestSense, 0, 0, 0, 0, 0}, rd, 0, nil, ok(0, 0)},

		// INQUIRY.
		{"INQUIRY standard", inquiryCDB(false, 0, 260), rd, 260, nil, ok(stdInquiryLen, stdInquiryLen)},
		{"INQUIRY alloc 36", inquiryCDB(false, 0, 36), rd, 36, nil, ok(36, 36)},
		{"INQUIRY alloc 0", inquiryCDB(false, 0, 0), rd, 0, nil, ok(0, 0)},
		{"INQUIRY EVPD=0 page!=0", inquiryCDB(false, 0x80, 255), rd, 255, nil, invField},
		{"INQUIRY CMDDT", []byte{scsi.OpInquiry, 2, 0, 0, 255, 0}, rd, 255, nil, invField},
		{"INQUIRY unknown VPD", inquiryCDB(true, 0x81, 255), rd, 255, nil, invField},
		{"INQUIRY VPD 0x00", inquiryCDB(true, 0x00, 255), rd, 255, nil, ok(11, 11)},
		{"INQUIRY VPD 0x80", inquiryCDB(true, 0x80, 255), rd, 255, nil, ok(36, 36)},
		{"INQUIRY VPD 0x83 no session", inquiryCDB(true, 0x83, 255), rd, 255, nil, ok(24, 24)},
		{"INQUIRY VPD 0xB0", inquiryCDB(true, 0xb0, 255), rd, 255, nil, ok(64, 64)},
		{"INQUIRY VPD 0xB0 alloc 64", inquiryCDB(true, 0xb0, 64), rd, 64, nil, ok(64, 64)},
		{"INQUIRY VPD 0xB1", inquiryCDB(true, 0xb1, 255), rd, 255, nil, ok(64, 64)},
		{"INQUIRY VPD 0xB2", inquiryCDB(true, 0xb2, 255), rd, 255, nil, ok(8, 8)},

		// READ CAPACITY.
		{"READ CAPACITY 10", make10(scsi.OpReadCapacity10), rd, 8, nil, ok(8, 8)},
		{"READ CAPACITY 10 LBA without PMI", cdb10(scsi.OpReadCapacity10, 0, 5, 0), rd, 8, nil, invField},
		{"READ CAPACITY 10 PMI", withByte(cdb10(scsi.OpReadCapacity10, 0, 5, 0), 8, 1), rd, 8, nil, ok(8, 8)},
		{"READ CAPACITY 16", rc16CDB(32), rd, 32, nil, ok(32, 32)},
		{"READ CAPACITY 16 alloc 15", rc16CDB(15), rd, 15, nil, ok(15, 15)},
		{"READ CAPACITY 16 alloc 0", rc16CDB(0), rd, 0, nil, ok(0, 0)},
		{"SERVICE ACTION IN unknown SA (REPORT REFERRALS)", withByte(rc16CDB(32), 1, 0x13), rd, 32, nil, invField},
		{"SERVICE ACTION IN SA 0x1f", withByte(rc16CDB(32), 1, 0x1f), rd, 32, nil, invField},
		{"MAINTENANCE IN unknown SA", withByte(rsocCDB(false, 0, 0, 0, 1024), 1, 0x05), rd, 1024, nil, invField},

		// READ.
		{"READ6 1 block", cdb6(scsi.OpRead6, 0, 1), rd, 512, nil, ok(512, 512)},
		{"READ6 length 0 = 256 blocks", cdb6(scsi.OpRead6, 0, 0), rd, 256 * 512, nil, ok(256*512, 256*512)},
		{"READ6 last block", cdb6(scsi.OpRead6, nb-1, 1), rd, 512, nil, ok(512, 512)},
		{"READ6 beyond end", cdb6(scsi.OpRead6, nb-1, 2), rd, 1024, nil, oob},
		{"READ6 length 0 near end", cdb6(scsi.OpRead6, nb-10, 0), rd, 256 * 512, nil, oob},
		{"READ6 LBA 0x1fffff", cdb6(scsi.OpRead6, 0x1fffff, 1), rd, 512, nil, oob},
		{"READ10", cdb10(scsi.OpRead10, 0, 0, 2), rd, 1024, nil, ok(1024, 1024)},
		{"READ10 DPO FUA", cdb10(scsi.OpRead10, 0x18, 0, 1), rd, 512, nil, ok(512, 512)},
		{"READ10 RDPROTECT 1", cdb10(scsi.OpRead10, 0x20, 0, 1), rd, 512, nil, invField},
		{"READ10 RDPROTECT 7", cdb10(scsi.OpRead10, 0xe0, 0, 1), rd, 512, nil, invField},
		{"READ10 0 blocks at 0", cdb10(scsi.OpRead10, 0, 0, 0), rd, 0, nil, ok(0, 0)},
		{"READ10 0 blocks at end", cdb10(scsi.OpRead10, 0, nb, 0), rd, 0, nil, ok(0, 0)},
		{"READ10 0 blocks past end", cdb10(scsi.OpRead10, 0, nb+1, 0), rd, 0, nil, oob},
		{"READ10 at end", cdb10(scsi.OpRead10, 0, nb-2, 2), rd, 1024, nil, ok(1024, 1024)},
		{"READ10 one past end", cdb10(scsi.OpRead10, 0, nb-1, 2), rd, 1024, nil, oob},
		{"READ10 LBA 2^31", cdb10(scsi.OpRead10, 0, 1<<31, 1), rd, 512, nil, oob},
		{"READ10 LBA -1", cdb10(scsi.OpRead10, 0, 0xffffffff, 1), rd, 512, nil, oob},
		{"READ12", cdb12(scsi.OpRead12, 0, 1, 1), rd, 512, nil, ok(512, 512)},
		{"READ12 RDPROTECT", cdb12(scsi.OpRead12, 0x40, 0, 1), rd, 512, nil, invField},
		{"READ12 beyond", cdb12(scsi.OpRead12, 0, nb, 1), rd, 512, nil, oob},
		{"READ12 longer than the maximum", cdb12(scsi.OpRead12, 0, 0, maxTransferBytes/512+1), rd, 512, nil, invField},
		{"READ12 maximum transfer outside the LU", cdb12(scsi.OpRead12, 0, 0, maxTransferBytes/512), rd, 512, nil, oob},
		{"READ16", cdb16(scsi.OpRead16, 0, 7, 1), rd, 512, nil, ok(512, 512)},
		{"READ16 RDPROTECT", cdb16(scsi.OpRead16, 0x60, 0, 1), rd, 512, nil, invField},
		{"READ16 LBA 2^63", cdb16(scsi.OpRead16, 0, 1<<63, 1), rd, 512, nil, oob},
		{"READ16 LBA -1 (uint64 overflow)", cdb16(scsi.OpRead16, 0, ^uint64(0), 2), rd, 1024, nil, oob},
		{"READ16 LBA -1, 0 blocks", cdb16(scsi.OpRead16, 0, ^uint64(0), 0), rd, 0, nil, oob},

		// WRITE.
		{"WRITE6", cdb6(scsi.OpWrite6, 0, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE6 beyond", cdb6(scsi.OpWrite6, nb, 1), wr, 512, blk, oob},
		{"WRITE10", cdb10(scsi.OpWrite10, 0, 3, 2), wr, 1024, two, ok(1024, 0)},
		{"WRITE10 FUA", cdb10(scsi.OpWrite10, 0x08, 3, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE10 WRPROTECT", cdb10(scsi.OpWrite10, 0x20, 0, 1), wr, 512, blk, invField},
		{"WRITE10 0 blocks", cdb10(scsi.OpWrite10, 0, 0, 0), wr, 0, nil, ok(0, 0)},
		{"WRITE10 0 blocks past end", cdb10(scsi.OpWrite10, 0, nb+1, 0), wr, 0, nil, oob},
		{"WRITE10 LBA -1", cdb10(scsi.OpWrite10, 0, 0xffffffff, 1), wr, 512, blk, oob},
		{"WRITE12", cdb12(scsi.OpWrite12, 0, 0, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE12 WRPROTECT", cdb12(scsi.OpWrite12, 0x80, 0, 1), wr, 512, blk, invField},
		{"WRITE16", cdb16(scsi.OpWrite16, 0x18, nb-1, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE16 overflow", cdb16(scsi.OpWrite16, 0, ^uint64(0)-1, 3), wr, 1536, nil, oob},
		{"WRITE16 too long", cdb16(scsi.OpWrite16, 0, 0, maxTransferBytes/512+1), wr, 512, blk, invField},

		// WRITE AND VERIFY.
		{"WRITE AND VERIFY10", cdb10(scsi.OpWriteVerify10, 0, 0, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE AND VERIFY10 BYTCHK", cdb10(scsi.OpWriteVerify10, 0x02, 0, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE AND VERIFY10 DPO", cdb10(scsi.OpWriteVerify10, 0x10, 0, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE AND VERIFY10 BYTCHK 2", cdb10(scsi.OpWriteVerify10, 0x04, 0, 1), wr, 512, blk, invField},
		{"WRITE AND VERIFY10 BYTCHK 3", cdb10(scsi.OpWriteVerify10, 0x06, 0, 1), wr, 512, blk, invField},
		{"WRITE AND VERIFY10 WRPROTECT", cdb10(scsi.OpWriteVerify10, 0xa0, 0, 1), wr, 512, blk, invField},
		{"WRITE AND VERIFY12 beyond", cdb12(scsi.OpWriteVerify12, 0, nb, 1), wr, 512, blk, oob},
		{"WRITE AND VERIFY16", cdb16(scsi.OpWriteVerify16, 0x02, 5, 1), wr, 512, blk, ok(512, 0)},
		{"WRITE AND VERIFY16 0 blocks past end", cdb16(scsi.OpWriteVerify16, 0, nb+1, 0), wr, 0, nil, oob},

		// VERIFY.
		{"VERIFY10 BYTCHK 0", cdb10(scsi.OpVerify10, 0, 0, 16), none, 0, nil, ok(0, 0)},
		{"VERIFY10 BYTCHK 2", cdb10(scsi.OpVerify10, 0x04, 0, 1), wr, 512, blk, invField},
		{"VERIFY10 VRPROTECT", cdb10(scsi.OpVerify10, 0x22, 0, 1), wr, 512, blk, invField},
		{"VERIFY10 beyond", cdb10(scsi.OpVerify10, 0x02, nb, 1), wr, 512, blk, oob},
		{"VERIFY10 0 blocks past end", cdb10(scsi.OpVerify10, 0x02, nb+1, 0), none, 0, nil, oob},
		{"VERIFY12 BYTCHK 0 DPO", cdb12(scsi.OpVerify12, 0x10, 0, 1), none, 0, nil, ok(0, 0)},
		{"VERIFY16 LBA -1", cdb16(scsi.OpVerify16, 0, ^uint64(0), 1), none, 0, nil, oob},

		// PRE-FETCH, SYNCHRONIZE CACHE.
		{"PRE-FETCH10", cdb10(scsi.OpPrefetch10, 0, 0, 16), none, 0, nil, ok(0, 0)},
		{"PRE-FETCH10 IMMED", cdb10(scsi.OpPrefetch10, 0x02, 0, 1), none, 0, nil, ok(0, 0)},
		{"PRE-FETCH10 at end", cdb10(scsi.OpPrefetch10, 0, nb-256, 256), none, 0, nil, ok(0, 0)},
		{"PRE-FETCH10 beyond", cdb10(scsi.OpPrefetch10, 0, nb-1, 2), none, 0, nil, oob},
		{"PRE-FETCH10 0 blocks (to the end)", cdb10(scsi.OpPrefetch10, 0, 0, 0), none, 0, nil, ok(0, 0)},
		{"PRE-FETCH10 0 blocks past end", cdb10(scsi.OpPrefetch10, 0, nb+1, 0), none, 0, nil, oob},
		{"PRE-FETCH16 LBA 2^63", cdb16(scsi.OpPrefetch16, 0, 1<<63, 1), none, 0, nil, oob},
		{"PRE-FETCH16 LBA -1", cdb16(scsi.OpPrefetch16, 0, ^uint64(0), 1), none, 0, nil, oob},
		{"PRE-FETCH16", cdb16(scsi.OpPrefetch16, 0, 0, 1), none, 0, nil, ok(0, 0)},
		{"SYNCHRONIZE CACHE10", cdb10(scsi.OpSyncCache10, 0, 0, 0), none, 0, nil, ok(0, 0)},
		{"SYNCHRONIZE CACHE10 range", cdb10(scsi.OpSyncCache10, 0x02, 10, 10), none, 0, nil, ok(0, 0)},
		{"SYNCHRONIZE CACHE10 beyond", cdb10(scsi.OpSyncCache10, 0, nb, 1), none, 0, nil, oob},
		{"SYNCHRONIZE CACHE16", cdb16(scsi.OpSyncCache16, 0, 0, 0), none, 0, nil, ok(0, 0)},
		{"SYNCHRONIZE CACHE16 past end", cdb16(scsi.OpSyncCache16, 0, nb+1, 0), none, 0, nil, oob},

		// START STOP UNIT (not removable).
		{"START", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x01, 0}, none, 0, nil, ok(0, 0)},
		{"STOP", []byte{scsi.OpStartStopUnit, 1, 0, 0, 0x00, 0}, none, 0, nil, ok(0, 0)},
		{"STOP NO_FLUSH", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x04, 0}, none, 0, nil, ok(0, 0)},
		{"eject (LOEJ, START=0)", []byte{scsi.OpStartStopUnit, 1, 0, 0, 0x02, 0}, none, 0, nil, invField},
		{"load (LOEJ, START=1)", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x03, 0}, none, 0, nil, invField},
		{"power condition ACTIVE", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x10, 0}, none, 0, nil, ok(0, 0)},
		{"power condition with LOEJ ignored", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x32, 0}, none, 0, nil, ok(0, 0)},
		{"reserved power condition 4", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x40, 0}, none, 0, nil, invField},
		{"reserved power condition 0xf", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0xf0, 0}, none, 0, nil, invField},

		// MODE SENSE / SELECT (details in mode tests).
		{"MODE SENSE6 all pages", modeSense6CDB(false, pcCurrent, pageAll, 0, 255), rd, 255, nil, ok(56, 56)},
		{"MODE SENSE6 alloc 4", modeSense6CDB(false, pcCurrent, pageAll, 0, 4), rd, 4, nil, ok(4, 4)},
		{"MODE SENSE6 saved", modeSense6CDB(false, pcSaved, pageAll, 0, 255), rd, 255, nil,
			bad(scsi.KeyIllegalRequest, scsi.ASCSavingParametersNotSupported)},
		{"MODE SENSE6 unknown page", modeSense6CDB(false, pcCurrent, 0x02, 0, 255), rd, 255, nil, invField},
		{"MODE SENSE6 unknown subpage", modeSense6CDB(false, pcCurrent, pageControl, 1, 255), rd, 255, nil, invField},
		{"MODE SENSE10 all pages and subpages", modeSense10CDB(false, false, pcCurrent, pageAll, 0xff, 1024), rd, 1024, nil, ok(60, 60)},
		{"MODE SELECT6 SP", []byte{scsi.OpModeSelect6, 0x11, 0, 0, 0, 0}, wr, 0, nil, invField},
		{"MODE SELECT6 empty", []byte{scsi.OpModeSelect6, 0x10, 0, 0, 0, 0}, wr, 0, nil, ok(0, 0)},

		// REPORT SUPPORTED OPERATION CODES (details in rsoc tests).
		{"RSOC all", rsocCDB(false, 0, 0, 0, 65535), rd, 65535, nil, ok(4+8*uint32(len(implemented(d))), 4+8*len(implemented(d)))},
		{"RSOC bad options", rsocCDB(false, 4, 0, 0, 65535), rd, 65535, nil, invField},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := exec(t, d, req{cdb: tc.cdb, dir: tc.dir, expLen: tc.expLen, data: tc.data})
			if !tc.want.good {
				expectSense(t, tc.name, r, tc.want.key, tc.want.asc)
				return
			}
			expectGood(t, tc.name, r)
			if r.transferLen != tc.want.tl || len(r.data) != tc.want.dlen {
				t.Fatalf("TransferLen %d with %d data bytes, want %d and %d", r.transferLen, len(r.data), tc.want.tl, tc.want.dlen)
			}
		})
	}
}

func make10(op byte) []byte { c := make([]byte, 10); c[0] = op; return c }

func withByte(c []byte, i int, v byte) []byte { c[i] = v; return c }

// TestSenseFieldPointers checks sense-key-specific data for a few errors.
func TestSenseFieldPointers(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	tests := []struct {
		name     string
		cdb      []byte
		byteOff  uint16
		bit      int // -1: no bit pointer
		wantSKSV bool
	}{
		{"RDPROTECT", cdb10(scsi.OpRead10, 0x20, 0, 1), 1, 7, true},
		{"READ12 length", cdb12(scsi.OpRead12, 0, 0, 1<<24), 6, -1, true},
		{"INQUIRY page without EVPD", inquiryCDB(false, 0x83, 255), 2, -1, true},
		{"SERVICE ACTION IN SA", withByte(rc16CDB(32), 1, 0x13), 1, 4, true},
		{"unknown opcode", []byte{0xff, 0, 0, 0, 0, 0}, 0, -1, true},
		{"LBA out of range has no pointer", cdb10(scsi.OpRead10, 0, 1<<30, 1), 0, -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := exec(t, d, req{cdb: tc.cdb, dir: scsi.DirRead, expLen: 512})
			if r.status != scsi.StatusCheckCondition || len(r.rawSense) != scsi.FixedLen {
				t.Fatalf("status %v sense % x", r.status, r.rawSense)
			}
			s := r.rawSense
			if got := s[15]&0x80 != 0; got != tc.wantSKSV {
				t.Fatalf("SKSV %v, want %v (sense % x)", got, tc.wantSKSV, s)
			}
			if !tc.wantSKSV {
				return
			}
			if s[15]&0x40 == 0 {
				t.Errorf("C/D bit clear: pointer not into the CDB")
			}
			if got := uint16(s[16])<<8 | uint16(s[17]); got != tc.byteOff {
				t.Errorf("field pointer byte %d, want %d", got, tc.byteOff)
			}
			bpv := s[15]&0x08 != 0
			if (tc.bit >= 0) != bpv || (bpv && int(s[15]&7) != tc.bit) {
				t.Errorf("bit pointer %v/%d, want %d", bpv, s[15]&7, tc.bit)
			}
		})
	}
}

func TestWriteProtectedLU(t *testing.T) {
	d := newTestDisk(t, diskOpts{wp: true})
	blk := make([]byte, 512)
	for _, c := range [][]byte{
		cdb6(scsi.OpWrite6, 0, 1), cdb10(scsi.OpWrite10, 0, 0, 1), cdb12(scsi.OpWrite12, 0, 0, 1),
		cdb16(scsi.OpWrite16, 0, 0, 1), cdb10(scsi.OpWriteVerify10, 0, 0, 1), cdb16(scsi.OpWriteVerify16, 0, 0, 1),
	} {
		r := exec(t, d, req{cdb: c, dir: scsi.DirWrite, expLen: 512, data: blk})
		expectSense(t, "write to WP LU", r, scsi.KeyDataProtect, scsi.ASCWriteProtected)
		if r.received != 0 {
			t.Errorf("opcode %#x pulled Data-Out before failing", c[0])
		}
	}
	expectGood(t, "read from WP LU", exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, 0, 1), dir: scsi.DirRead, expLen: 512}))
	ms := exec(t, d, req{cdb: modeSense6CDB(true, pcCurrent, pageAll, 0, 255), dir: scsi.DirRead, expLen: 255})
	if ms.data[2]&0x80 == 0 {
		t.Errorf("WP bit clear in MODE SENSE device-specific parameter %#x", ms.data[2])
	}
	if !d.Info().WriteProtect {
		t.Error("Info().WriteProtect false")
	}
	no := false
	if err := d.SetProps(Props{WriteProtect: &no}); err != nil {
		t.Fatal(err)
	}
	expectGood(t, "write after clearing WP", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: blk}))
}

func TestReportLUNsFallback(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	c := make([]byte, 12)
	c[0] = scsi.OpReportLUNs
	c[9] = 255
	r := exec(t, d, req{cdb: c, dir: scsi.DirRead, expLen: 255})
	expectGood(t, "REPORT LUNS", r)
	if !bytes.Equal(r.data, []byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("REPORT LUNS data % x", r.data)
	}
	c[9] = 8
	expectSense(t, "REPORT LUNS alloc 8", exec(t, d, req{cdb: c, dir: scsi.DirRead, expLen: 8}),
		scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
}
