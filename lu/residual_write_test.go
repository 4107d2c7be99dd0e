package lu

import (
	"bytes"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// TestDataOutEndsInsideABlock: every command that writes (or compares)
// Data-Out, sent with an expected data transfer length that ends inside a
// block, is refused with INVALID FIELD IN COMMAND INFORMATION UNIT before
// anything is written, and still reports the CDB's length for the
// residual; GOOD would acknowledge bytes that were dropped.
func TestDataOutEndsInsideABlock(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	as := bytes.Repeat([]byte{'a'}, 1024)
	bs := bytes.Repeat([]byte{'b'}, 1024)
	tests := []struct {
		name   string
		cdb    []byte
		expLen uint32
		want   uint32 // TransferLen: the CDB's byte count
	}{
		{"WRITE (10) EDTL 200", cdb10(scsi.OpWrite10, 0, 0, 1), 200, 512},
		{"WRITE (12) EDTL 200", cdb12(scsi.OpWrite12, 0, 0, 1), 200, 512},
		{"WRITE (16) EDTL 200", cdb16(scsi.OpWrite16, 0, 0, 1), 200, 512},
		{"WRITE (16) FUA 1.5 blocks", cdb16(scsi.OpWrite16, 0x08, 0, 2), 768, 1024},
		{"WRITE (6) EDTL 200", cdb6(scsi.OpWrite6, 0, 1), 200, 512},
		{"WRITE AND VERIFY (10) 1.5 blocks", cdb10(scsi.OpWriteVerify10, 0, 0, 2), 768, 1024},
		{"WRITE AND VERIFY (16) BYTCHK 1.5 blocks", cdb16(scsi.OpWriteVerify16, 0x02, 0, 2), 768, 1024},
		{"ORWRITE (16) EDTL 200", cdb16(scsi.OpOrWrite16, 0, 0, 1), 200, 512},
		{"WRITE ATOMIC (16) 1.5 blocks", writeAtomicCDB(0, 0, 2), 768, 1024},
		{"WRITE ATOMIC (16) 1 of 2 blocks", writeAtomicCDB(0, 0, 2), 512, 1024},
		{"COMPARE AND WRITE short", cawCDB(0, 0, 1), 768, 1024},
		{"COMPARE AND WRITE long", cawCDB(0, 0, 1), 1024 + 512, 1024},
		{"VERIFY (10) BYTCHK 1.5 blocks", cdb10(scsi.OpVerify10, 0x02, 0, 2), 768, 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectGood(t, "reset", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 2), dir: scsi.DirWrite, expLen: 1024, data: as}))
			data := bs
			if tc.cdb[0] == scsi.OpCompareAndWrite {
				data = append(append([]byte{}, as[:512]...), bytes.Repeat([]byte{'b'}, 1024)...) // the compare would match
			}
			r := exec(t, d, req{cdb: tc.cdb, dir: scsi.DirWrite, expLen: tc.expLen, data: data[:tc.expLen]})
			expectSense(t, tc.name, r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit)
			if r.transferLen != tc.want {
				t.Errorf("TransferLen %d, want %d (the residual is reported)", r.transferLen, tc.want)
			}
			if got := readBlocks(t, d, 0, 2); !bytes.Equal(got, as) {
				t.Errorf("blocks changed: %q...", got[:8])
			}
		})
	}
	// Whole blocks short of the CDB are written as far as they go (FCP-4:
	// data beyond the expected length is not transferred), with the residual.
	t.Run("WRITE (16) 1 of 2 blocks", func(t *testing.T) {
		expectGood(t, "reset", exec(t, d, req{cdb: cdb10(scsi.OpWrite10, 0, 0, 2), dir: scsi.DirWrite, expLen: 1024, data: as}))
		r := exec(t, d, req{cdb: cdb16(scsi.OpWrite16, 0, 0, 2), dir: scsi.DirWrite, expLen: 512, data: bs[:512]})
		expectGood(t, "write", r)
		if r.transferLen != 1024 {
			t.Errorf("TransferLen %d", r.transferLen)
		}
		got := readBlocks(t, d, 0, 2)
		if !bytes.Equal(got[:512], bs[:512]) || !bytes.Equal(got[512:], as[512:]) {
			t.Error("want block 0 written, block 1 untouched")
		}
	})
}
