package lu

import (
	"bytes"
	"testing"

	"github.com/costar-project/costar/scsi"
)

func tpWS10(b1 byte, lba uint32, n uint16) []byte { return cdb10(scsi.OpWriteSame10, b1, lba, n) }
func tpWS16(b1 byte, lba uint64, n uint32) []byte { return cdb16(scsi.OpWriteSame16, b1, lba, n) }

func TestWriteSameErrors(t *testing.T) {
	thin := newThinDisk(t, thinOpts{thin: true})
	thick := newThinDisk(t, thinOpts{})
	wp := newThinDisk(t, thinOpts{wp: true})
	wpThin := newThinDisk(t, thinOpts{thin: true, wp: true})
	big := newThinDisk(t, thinOpts{thin: true, size: 64 << 20}) // 131072 blocks > MAXIMUM WRITE SAME LENGTH
	nb := uint64(2048)
	blk := bytes.Repeat([]byte{7}, 512)
	wr := func(cdb []byte) req { return req{cdb: cdb, dir: scsi.DirWrite, expLen: 512, data: blk} }
	tests := []struct {
		name string
		d    *Device
		r    req
		key  scsi.SenseKey
		asc  scsi.ASC
	}{
		{"WRPROTECT 10", thin, wr(tpWS10(0x20, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"WRPROTECT 16", thin, wr(tpWS16(0xe0, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"ANCHOR", thin, wr(tpWS16(0x10, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"ANCHOR+UNMAP", thin, wr(tpWS10(0x18, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"PBDATA", thin, wr(tpWS16(0x04, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"LBDATA", thin, wr(tpWS10(0x02, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"WS10 reserved bit 0", thin, wr(tpWS10(0x01, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"UNMAP on thick", thick, wr(tpWS16(0x08, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"write protected", wp, wr(tpWS10(0, 0, 1)), scsi.KeyDataProtect, scsi.ASCWriteProtected},
		{"write protected UNMAP thick", wp, req{cdb: tpWS16(0x08, 0, 1), dir: scsi.DirWrite, expLen: 512}, scsi.KeyDataProtect, scsi.ASCWriteProtected},
		{"write protected UNMAP thin", wpThin, wr(tpWS10(0x08, 0, 1)), scsi.KeyDataProtect, scsi.ASCWriteProtected},
		{"one past the end", thin, wr(tpWS10(0, uint32(nb), 1)), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"straddles the end", thin, wr(tpWS16(0, nb-1, 2)), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"LBA 2^31", thin, wr(tpWS10(0, 1<<31, 1)), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"LBA -1 0 blocks", thin, wr(tpWS16(0, ^uint64(0), 0)), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"0 blocks past the end", thin, wr(tpWS10(0, uint32(nb+1), 0)), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"wrapping count", thin, wr(tpWS16(0, ^uint64(0)-2, 16)), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"over max length", big, wr(tpWS16(0, 0, 0x10000)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"0 blocks over max length", big, wr(tpWS10(0, 0, 0)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"0 blocks max+1 from end", big, wr(tpWS16(0, 131072-0x10000, 0)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"Data-Out half a block", thin, req{cdb: tpWS10(0x08, 0, 1), dir: scsi.DirWrite, expLen: 256, data: blk[:256]}, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit},
		{"Data-Out two blocks", thin, req{cdb: tpWS10(0x08, 0, 1), dir: scsi.DirWrite, expLen: 1024, data: append(blk, blk...)}, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit},
		{"no Data-Out", thin, req{cdb: tpWS16(0, 0, 1), dir: scsi.DirNone}, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit},
		{"Data-Out short of its length", thin, req{cdb: tpWS16(0, 0, 1), dir: scsi.DirWrite, expLen: 512, data: blk[:100]}, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit},
		{"NDOB with Data-Out", thin, wr(tpWS16(0x01, 0, 1)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectSense(t, tc.name, exec(t, tc.d, tc.r), tc.key, tc.asc)
		})
	}
	// Nothing above touched the medium.
	if got := tpRead(t, thin, 0, 1); !bytes.Equal(got, make([]byte, 512)) {
		t.Error("a rejected WRITE SAME wrote")
	}
}

func TestWriteSame(t *testing.T) {
	for _, thin := range []bool{false, true} {
		d := newThinDisk(t, thinOpts{thin: thin, size: 4 << 20}) // 8192 blocks
		nb := d.nblocks.Load()
		pat := make([]byte, 512)
		for i := range pat {
			pat[i] = byte(i)
		}
		// Pattern over more than one write chunk (4096 blocks = 2 MiB).
		r := exec(t, d, req{cdb: tpWS16(0, 100, 4096), dir: scsi.DirWrite, expLen: 512, data: pat})
		expectGood(t, "WRITE SAME (16)", r)
		if r.transferLen != 512 || r.received != 1 {
			t.Errorf("TransferLen %d, Data-Out pulled %d times", r.transferLen, r.received)
		}
		got := tpRead(t, d, 99, 4098)
		if !bytes.Equal(got[:512], make([]byte, 512)) || !bytes.Equal(got[4097*512:], make([]byte, 512)) {
			t.Error("WRITE SAME wrote outside its range")
		}
		for i := 1; i <= 4096; i++ {
			if !bytes.Equal(got[i*512:(i+1)*512], pat) {
				t.Fatalf("block %d not the pattern", 99+i)
			}
		}
		// WRITE SAME (10), NUMBER 0: to the end of the LU.
		expectGood(t, "to the end", exec(t, d, req{cdb: tpWS10(0, uint32(nb-3), 0), dir: scsi.DirWrite, expLen: 512, data: bytes.Repeat([]byte{0xee}, 512)}))
		if got := tpRead(t, d, nb-4, 4); !bytes.Equal(got[:512], make([]byte, 512)) || !bytes.Equal(got[512:], bytes.Repeat([]byte{0xee}, 1536)) {
			t.Error("to the end: wrong data")
		}
		// NUMBER 0 at the capacity: nothing to do.
		expectGood(t, "0 blocks at capacity", exec(t, d, req{cdb: tpWS16(0, nb, 0), dir: scsi.DirWrite, expLen: 512, data: pat}))
		// A zero pattern (fallocate ZERO_RANGE) and NDOB zero the blocks.
		expectGood(t, "zeroes", exec(t, d, req{cdb: tpWS10(0, 100, 2048), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}))
		r = exec(t, d, req{cdb: tpWS16(0x01, 2148, 2048), dir: scsi.DirNone})
		expectGood(t, "NDOB", r)
		if r.transferLen != 0 || r.received != 0 {
			t.Errorf("NDOB: TransferLen %d, Data-Out pulled %d times", r.transferLen, r.received)
		}
		if got := tpRead(t, d, 100, 4096); !bytes.Equal(got, make([]byte, 4096*512)) {
			t.Error("zero WRITE SAME left data")
		}
		if !thin {
			continue
		}
		// UNMAP bit: deallocated, reads zeroes whatever the Data-Out holds
		// (SBC-3, LIO and libiscsi's UnmapUntilEnd).
		tpWrite(t, d, 0, 64, 0x11)
		expectGood(t, "WS16 UNMAP", exec(t, d, req{cdb: tpWS16(0x08, 0, 16), dir: scsi.DirWrite, expLen: 512, data: bytes.Repeat([]byte{0xff}, 512)}))
		expectGood(t, "WS10 UNMAP unaligned", exec(t, d, req{cdb: tpWS10(0x08, 17, 3), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)}))
		expectGood(t, "WS16 UNMAP NDOB", exec(t, d, req{cdb: tpWS16(0x09, 40, 8), dir: scsi.DirNone}))
		got = tpRead(t, d, 0, 64)
		for lba := 0; lba < 64; lba++ {
			zero := lba < 16 || lba >= 17 && lba < 20 || lba >= 40 && lba < 48
			want := bytes.Repeat([]byte{0x11}, 512)
			if zero {
				want = make([]byte, 512)
			}
			if !bytes.Equal(got[lba*512:(lba+1)*512], want) {
				t.Errorf("block %d after unmap: %x..., want zero=%v", lba, got[lba*512], zero)
			}
		}
		if tpLBAStatus(t, d, 6000)[0].status == lbaDeallocated { // the file system has holes
			if st := tpLBAStatus(t, d, 0); st[0] != (lbaExtent{0, 16, lbaDeallocated}) {
				t.Errorf("after WRITE SAME UNMAP: %+v", st[0])
			}
		}
	}
}

func TestWriteSameDurability(t *testing.T) {
	for _, thin := range []bool{false, true} {
		d := newThinDisk(t, thinOpts{thin: thin, wcd: true})
		var c syncCounter
		c.install(d)
		blk := bytes.Repeat([]byte{3}, 512)
		cases := []req{
			{cdb: tpWS10(0, 0, 8), dir: scsi.DirWrite, expLen: 512, data: blk},
			{cdb: tpWS16(0x01, 8, 8), dir: scsi.DirNone},
		}
		if thin {
			cases = append(cases, req{cdb: tpWS16(0x08, 0, 8), dir: scsi.DirWrite, expLen: 512, data: blk})
		}
		for i, r := range cases {
			before := c.fdatasync.Load()
			expectGood(t, "WRITE SAME", exec(t, d, r))
			if c.fdatasync.Load() == before {
				t.Errorf("thin=%v case %d: write cache disabled but no fdatasync", thin, i)
			}
		}
	}
}

func TestAllZero(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{nil, true}, {make([]byte, 7), true}, {make([]byte, 4096), true},
		{append(make([]byte, 4095), 1), false}, {[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, false}, {[]byte{1}, false},
	} {
		if got := allZero(c.b); got != c.want {
			t.Errorf("allZero(% x) = %v", c.b, got)
		}
	}
}
