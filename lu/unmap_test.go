package lu

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/costar-project/costar/scsi"
)

// tpUnmapList builds an UNMAP parameter list.
func tpUnmapList(descs ...unmapDescriptor) []byte {
	b := make([]byte, 8, 8+16*len(descs))
	for _, u := range descs {
		var d [16]byte
		binary.BigEndian.PutUint64(d[0:8], u.lba)
		binary.BigEndian.PutUint32(d[8:12], u.n)
		b = append(b, d[:]...)
	}
	binary.BigEndian.PutUint16(b[0:2], uint16(len(b)-2))
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-8))
	return b
}

func tpUnmapCDB(anchor bool, plen int) []byte {
	c := make([]byte, 10)
	c[0] = scsi.OpUnmap
	if anchor {
		c[1] = 0x01
	}
	binary.BigEndian.PutUint16(c[7:9], uint16(plen))
	return c
}

func tpUnmapReq(list []byte) req {
	return req{cdb: tpUnmapCDB(false, len(list)), dir: scsi.DirWrite, expLen: uint32(len(list)), data: list}
}

func TestUnmap(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true}) // 2048 blocks
	nb := d.nblocks.Load()
	ones := bytes.Repeat([]byte{1}, 512)
	check := func(name string, lba uint64, zero bool) {
		t.Helper()
		got := tpRead(t, d, lba, 1)
		if zero != bytes.Equal(got, make([]byte, 512)) || !zero && !bytes.Equal(got, ones) {
			t.Errorf("%s: block %d: %x..., want zero=%v", name, lba, got[0], zero)
		}
	}
	tpWrite(t, d, 0, 64, 1)
	tpWrite(t, d, nb-8, 8, 1)

	// Several descriptors, unaligned and overlapping.
	r := exec(t, d, tpUnmapReq(tpUnmapList(unmapDescriptor{0, 8}, unmapDescriptor{9, 2}, unmapDescriptor{10, 3}, unmapDescriptor{nb - 1, 1})))
	expectGood(t, "UNMAP", r)
	if r.transferLen != 8+4*16 {
		t.Errorf("TransferLen %d", r.transferLen)
	}
	for _, c := range []struct {
		lba  uint64
		zero bool
	}{{0, true}, {7, true}, {8, false}, {9, true}, {12, true}, {13, false}, {nb - 2, false}, {nb - 1, true}} {
		check("after UNMAP", c.lba, c.zero)
	}

	// Accepted without effect: no parameter list, an empty list, 0 blocks
	// (even at the capacity), an incomplete last descriptor.
	r = exec(t, d, req{cdb: tpUnmapCDB(false, 0), dir: scsi.DirNone})
	expectGood(t, "parameter list length 0", r)
	if r.received != 0 {
		t.Error("parameter list length 0 pulled Data-Out")
	}
	expectGood(t, "header only", exec(t, d, tpUnmapReq(tpUnmapList())))
	expectGood(t, "0 blocks at capacity", exec(t, d, tpUnmapReq(tpUnmapList(unmapDescriptor{nb, 0}, unmapDescriptor{40, 0}))))
	partial := append(tpUnmapList(unmapDescriptor{20, 1}), make([]byte, 8)...)
	binary.BigEndian.PutUint16(partial[2:4], 24) // 1.5 descriptors
	binary.BigEndian.PutUint32(partial[8+16:], 0xffffffff)
	expectGood(t, "incomplete last descriptor", exec(t, d, tpUnmapReq(partial)))
	check("incomplete", 20, true)
	check("incomplete", 21, false)
	// BLOCK DESCRIPTOR DATA LENGTH larger than the list: what arrived counts.
	long := tpUnmapList(unmapDescriptor{22, 1})
	binary.BigEndian.PutUint16(long[2:4], 4096)
	expectGood(t, "descriptor length beyond the list", exec(t, d, tpUnmapReq(long)))
	check("long", 22, true)
	// Data-Out cut short of the parameter list length by the expected
	// data transfer length: a named descriptor was lost, so nothing is
	// unmapped (GOOD would claim block 25 was).
	short := tpUnmapList(unmapDescriptor{24, 1}, unmapDescriptor{25, 1})
	r = exec(t, d, req{cdb: tpUnmapCDB(false, len(short)), dir: scsi.DirWrite, expLen: 24, data: short[:24]})
	expectSense(t, "short Data-Out", r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit)
	if r.transferLen != uint32(len(short)) {
		t.Errorf("short Data-Out: TransferLen %d, want %d (the residual)", r.transferLen, len(short))
	}
	check("short", 24, false)
	check("short", 25, false)
	// Cut only inside padding after the last whole descriptor: nothing lost.
	pad := append(tpUnmapList(unmapDescriptor{24, 1}), make([]byte, 8)...)
	expectGood(t, "short padding", exec(t, d, req{cdb: tpUnmapCDB(false, len(pad)), dir: scsi.DirWrite, expLen: 24, data: pad[:24]}))
	check("short padding", 24, true)

	// Errors: nothing is deallocated, not even the valid descriptors.
	many := make([]unmapDescriptor, 513) // 513 * 2048 blocks > MAXIMUM UNMAP LBA COUNT
	for i := range many {
		many[i] = unmapDescriptor{0, uint32(nb)}
	}
	wp := newThinDisk(t, thinOpts{thin: true, wp: true})
	for _, c := range []struct {
		name string
		d    *Device
		r    req
		key  scsi.SenseKey
		asc  scsi.ASC
	}{
		{"beyond the end", d, tpUnmapReq(tpUnmapList(unmapDescriptor{30, 1}, unmapDescriptor{nb, 1})), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"straddles the end", d, tpUnmapReq(tpUnmapList(unmapDescriptor{30, 1}, unmapDescriptor{nb - 1, 2})), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"LBA -1", d, tpUnmapReq(tpUnmapList(unmapDescriptor{30, 1}, unmapDescriptor{^uint64(0), 0})), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"wrapping", d, tpUnmapReq(tpUnmapList(unmapDescriptor{^uint64(0) - 1, 4})), scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange},
		{"over MAXIMUM UNMAP LBA COUNT", d, tpUnmapReq(tpUnmapList(append([]unmapDescriptor{{30, 1}}, many...)...)), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInParameterList},
		{"list shorter than its header", d, tpUnmapReq(tpUnmapList()[:7]), scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError},
		{"no Data-Out", d, req{cdb: tpUnmapCDB(false, 24), dir: scsi.DirNone}, scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError},
		{"ANCHOR", d, req{cdb: tpUnmapCDB(true, 24), dir: scsi.DirWrite, expLen: 24, data: tpUnmapList(unmapDescriptor{30, 1})}, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB},
		{"write protected", wp, tpUnmapReq(tpUnmapList(unmapDescriptor{0, 1})), scsi.KeyDataProtect, scsi.ASCWriteProtected},
	} {
		expectSense(t, c.name, exec(t, c.d, c.r), c.key, c.asc)
	}
	check("after errors", 30, false)

	// Software write protect (control mode page SWP) refuses UNMAP too.
	d.swp.Store(true)
	expectSense(t, "SWP", exec(t, d, tpUnmapReq(tpUnmapList(unmapDescriptor{30, 1}))), scsi.KeyDataProtect, scsi.ASCWriteProtected)
	d.swp.Store(false)

	// A thick LU does not have the command.
	thick := newThinDisk(t, thinOpts{})
	expectSense(t, "thick", exec(t, thick, tpUnmapReq(tpUnmapList(unmapDescriptor{0, 1}))), scsi.KeyIllegalRequest, scsi.ASCInvalidCommandOpcode)
}

func TestUnmapDurability(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true, wcd: true})
	var c syncCounter
	c.install(d)
	expectGood(t, "UNMAP", exec(t, d, tpUnmapReq(tpUnmapList(unmapDescriptor{0, 8}))))
	if c.fdatasync.Load() == 0 {
		t.Error("write cache disabled but UNMAP did not fdatasync")
	}
}

func TestParseUnmapListLimits(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true})
	// The largest list a 16-bit parameter list length carries is accepted.
	descs := make([]unmapDescriptor, maxUnmapDescriptors)
	list := tpUnmapList(descs...)
	if len(list) > 0xffff {
		t.Fatalf("list of %d bytes", len(list))
	}
	got, r := d.parseUnmapList(list)
	if r != nil || len(got) != maxUnmapDescriptors {
		t.Fatalf("%d descriptors, %v", len(got), r)
	}
	// UNMAP BLOCK DESCRIPTOR DATA LENGTH cannot name more.
	if 0xffff/16 > maxUnmapDescriptors {
		t.Errorf("MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT %d is below what a list can carry", maxUnmapDescriptors)
	}
}
