package lu

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
)

func TestOrWrite(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 1 << 20}) // 2048 blocks
	const nb = 2048
	wr := scsi.DirWrite
	fill := func(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }
	for _, lba := range []uint64{0, nb - 4} {
		expectGood(t, "zero", exec(t, d, req{cdb: cdb16(scsi.OpWrite16, 0, lba, 4), dir: wr, expLen: 2048, data: make([]byte, 2048)}))
		r := exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, lba, 4), dir: wr, expLen: 2048, data: fill(2048, 0xa5)})
		expectGood(t, "ORWRITE a5", r)
		if r.transferLen != 2048 {
			t.Errorf("TransferLen %d", r.transferLen)
		}
		expectGood(t, "ORWRITE 5a FUA", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0x18, lba, 4), dir: wr, expLen: 2048, data: fill(2048, 0x5a)}))
		got := exec(t, d, req{cdb: cdb16(scsi.OpRead16, 0, lba, 4), dir: scsi.DirRead, expLen: 2048}).data
		if !bytes.Equal(got, fill(2048, 0xff)) {
			t.Fatalf("lba %d: a5 | 5a read back as % x...", lba, got[:8])
		}
	}
	// Whole blocks of a short Data-Out are ORed in; one ending inside a
	// block is refused before anything is written.
	expectGood(t, "zero", exec(t, d, req{cdb: cdb16(scsi.OpWrite16, 0, 10, 2), dir: wr, expLen: 1024, data: make([]byte, 1024)}))
	r := exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, 10, 2), dir: wr, expLen: 700, data: fill(700, 0x0f)})
	expectSense(t, "Data-Out ending inside a block", r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit)
	r = exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, 10, 2), dir: wr, expLen: 512, data: fill(512, 0x0f)})
	expectGood(t, "short Data-Out", r)
	got := exec(t, d, req{cdb: cdb16(scsi.OpRead16, 0, 10, 2), dir: scsi.DirRead, expLen: 1024}).data
	if !bytes.Equal(got[:512], fill(512, 0x0f)) || !bytes.Equal(got[512:], make([]byte, 512)) {
		t.Fatal("short Data-Out: wrong blocks ORed")
	}

	expectGood(t, "0 blocks", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, 0, 0)}))
	expectGood(t, "0 blocks at the end", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, nb, 0)}))
	oob := func(name string, r resp) {
		t.Helper()
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange)
	}
	oob("0 blocks beyond the end", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, nb+1, 0)}))
	oob("beyond the end", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, nb-1, 2), dir: wr, expLen: 1024, data: make([]byte, 1024)}))
	oob("LBA 2^63", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, 1<<63, 1), dir: wr, expLen: 512, data: make([]byte, 512)}))
	for p := byte(1); p < 8; p++ {
		expectSense(t, "ORPROTECT", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, p<<5, 0, 1), dir: wr, expLen: 512, data: make([]byte, 512)}),
			scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
	expectSense(t, "too long", exec(t, d, req{cdb: cdb16(scsi.OpOrWrite16, 0, 0, d.maxXfer+1)}), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	wp := newTestDisk(t, diskOpts{wp: true})
	expectSense(t, "write protected", exec(t, wp, req{cdb: cdb16(scsi.OpOrWrite16, 0, 0, 1), dir: wr, expLen: 512, data: make([]byte, 512)}),
		scsi.KeyDataProtect, scsi.ASCWriteProtected)
	lockIdle(t, d)
}

// writeAtomicCDB builds WRITE ATOMIC (16).
func writeAtomicCDB(b1 byte, lba uint64, n uint16) []byte {
	c := cdb16(scsi.OpWriteAtomic16, b1, lba, 0)
	c[12], c[13] = byte(n>>8), byte(n)
	return c
}

func TestWriteAtomic16(t *testing.T) {
	d := newTestDisk(t, diskOpts{size: 1 << 20})
	const nb = 2048
	wr := scsi.DirWrite
	for _, n := range []uint16{1, 8, 256} {
		for _, lba := range []uint64{0, nb - uint64(n)} {
			data := vpattern(int(n)*512, byte(n))
			r := exec(t, d, req{cdb: writeAtomicCDB(0, lba, n), dir: wr, expLen: uint32(len(data)), data: data})
			expectGood(t, "WRITE ATOMIC", r)
			if r.transferLen != uint32(len(data)) {
				t.Errorf("TransferLen %d", r.transferLen)
			}
			got := exec(t, d, req{cdb: cdb16(scsi.OpRead16, 0, lba, uint32(n)), dir: scsi.DirRead, expLen: uint32(len(data))}).data
			if !bytes.Equal(got, data) {
				t.Fatalf("%d blocks at %d: data differs", n, lba)
			}
		}
	}
	var sc syncCounter
	sc.install(d)
	expectGood(t, "DPO FUA", exec(t, d, req{cdb: writeAtomicCDB(0x18, 0, 1), dir: wr, expLen: 512, data: make([]byte, 512)}))
	if sc.dsyncWrites.Load()+sc.fdatasync.Load() == 0 {
		t.Error("FUA write not made durable")
	}
	expectGood(t, "0 blocks", exec(t, d, req{cdb: writeAtomicCDB(0, 0, 0)}))
	oob := func(name string, r resp) {
		t.Helper()
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCLBAOutOfRange)
	}
	oob("0 blocks past the end", exec(t, d, req{cdb: writeAtomicCDB(0, nb+1, 0)}))
	oob("0 blocks at 2^63", exec(t, d, req{cdb: writeAtomicCDB(0, 1<<63, 0)}))
	oob("0 blocks at -1", exec(t, d, req{cdb: writeAtomicCDB(0, ^uint64(0), 0)}))
	oob("beyond the end", exec(t, d, req{cdb: writeAtomicCDB(0, nb-1, 2), dir: wr, expLen: 1024, data: make([]byte, 1024)}))
	invField := func(name string, r resp) {
		t.Helper()
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
	for p := byte(1); p < 8; p++ {
		invField("WRPROTECT", exec(t, d, req{cdb: writeAtomicCDB(p<<5, 0, 1), dir: wr, expLen: 512, data: make([]byte, 512)}))
	}
	invField("atomic boundary", exec(t, d, req{cdb: withByte(writeAtomicCDB(0, 0, 1), 11, 1), dir: wr, expLen: 512, data: make([]byte, 512)}))
	expectSense(t, "short Data-Out", exec(t, d, req{cdb: writeAtomicCDB(0, 0, 2), dir: wr, expLen: 512, data: make([]byte, 512)}), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCmdInfoUnit)
	big := newTestDisk(t, diskOpts{size: 16 << 20, blockSize: 65536})
	if big.maxAtomicBlocks() != journalBytes/65536 {
		t.Errorf("64 KiB blocks: maximum atomic transfer length %d", big.maxAtomicBlocks())
	}
	invField("more than the maximum", exec(t, big, req{cdb: writeAtomicCDB(0, 0, uint16(big.maxAtomicBlocks()+1))}))
	wp := newTestDisk(t, diskOpts{wp: true})
	expectSense(t, "write protected", exec(t, wp, req{cdb: writeAtomicCDB(0, 0, 1), dir: wr, expLen: 512, data: make([]byte, 512)}),
		scsi.KeyDataProtect, scsi.ASCWriteProtected)

	// Block Limits: atomic writes up to what the journal holds, no
	// alignment, granularity or boundaries.
	bl := exec(t, d, req{cdb: inquiryCDB(true, vpdBlockLimits, 64), dir: scsi.DirRead, expLen: 64}).data
	if got := be32(bl[44:48]); got != journalBytes/512 || got > be32(bl[8:12]) {
		t.Errorf("MAXIMUM ATOMIC TRANSFER LENGTH %d (maximum transfer length %d)", got, be32(bl[8:12]))
	}
	if !bytes.Equal(bl[48:64], make([]byte, 16)) {
		t.Errorf("atomic alignment/granularity/boundary fields % x", bl[48:64])
	}
	lockIdle(t, d)
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// TestVAAIIdentity: 3PC in standard INQUIRY, MAXIMUM COMPARE AND WRITE
// LENGTH, and REPORT SUPPORTED OPERATION CODES usage data with DPO/FUA for
// the writes (libiscsi *.DpoFua) and the service actions of the copy
// commands.
func TestVAAIIdentity(t *testing.T) {
	d := newTestDisk(t, diskOpts{})
	std := exec(t, d, req{cdb: inquiryCDB(false, 0, 255), dir: scsi.DirRead, expLen: 255}).data
	if std[5]&0x08 == 0 {
		t.Error("3PC not set")
	}
	bl := exec(t, d, req{cdb: inquiryCDB(true, vpdBlockLimits, 64), dir: scsi.DirRead, expLen: 64}).data
	if bl[5] < 1 {
		t.Error("MAXIMUM COMPARE AND WRITE LENGTH is 0: ESXi would not use ATS")
	}
	for _, c := range []struct {
		op     byte
		sa     uint16
		opts   byte
		dpoFua bool
	}{
		{scsi.OpCompareAndWrite, 0, 1, true}, {scsi.OpOrWrite16, 0, 1, true}, {scsi.OpWriteAtomic16, 0, 1, true},
		{scsi.OpExtendedCopy, scsi.SAExtendedCopyLID1, 2, false}, {scsi.OpReceiveCopyRes, scsi.SACopyStatus, 2, false},
		{scsi.OpReceiveCopyRes, scsi.SAOperatingParams, 2, false},
	} {
		r := exec(t, d, req{cdb: rsocCDB(false, c.opts, c.op, c.sa, 512), dir: scsi.DirRead, expLen: 512})
		expectGood(t, "RSOC", r)
		if r.data[1]&7 != supportStandard || be16(r.data[2:4]) != 16 || len(r.data) != 20 || r.data[4] != c.op {
			t.Errorf("op %#x sa %d: % x", c.op, c.sa, r.data)
			continue
		}
		if c.dpoFua && r.data[5]&0x18 != 0x18 {
			t.Errorf("op %#x: DPO/FUA not in the usage data", c.op)
		}
	}
	if r := exec(t, d, req{cdb: rsocCDB(false, 1, scsi.OpExtendedCopy, 0, 512), dir: scsi.DirRead, expLen: 512}); r.status != scsi.StatusCheckCondition {
		t.Error("EXTENDED COPY reported without its service action")
	}
}

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// WRITE ATOMIC is offered by default on file LUs (journaled), not with
// NoAtomicWrites, and never on block devices (no journal path).
func TestWriteAtomicDefault(t *testing.T) {
	d, err := createFile(context.Background(), fileConfig{DataFile: filepath.Join(t.TempDir(), "lu.img"), Size: 1 << 20, NoAtomicWrites: true},
		&GUIDGenerator{HostID: HostIDFrom32(1)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if c := d.cmds.lookup(scsi.OpWriteAtomic16, -1); c != nil {
		t.Error("WRITE ATOMIC (16) is in the command table with NoAtomicWrites")
	}
	if n := d.maxAtomicBlocks(); n != 0 {
		t.Errorf("NoAtomicWrites: MAXIMUM ATOMIC TRANSFER LENGTH = %d, want 0", n)
	}
	on := newTestDisk(t, diskOpts{})
	if on.cmds.lookup(scsi.OpWriteAtomic16, -1) == nil || on.maxAtomicBlocks() != journalBytes/512 || on.atomicW == nil {
		t.Error("a file LU does not offer WRITE ATOMIC (16) by default")
	}
	// A store without crash-atomic writes (block devices, zvols) does not
	// offer it.
	blk := newMemDisk(t, memstore.New(1<<20, 512, backing.Caps{}), Config{})
	if blk.cmds.lookup(scsi.OpWriteAtomic16, -1) != nil || blk.maxAtomicBlocks() != 0 {
		t.Error("a store without atomic writes offers WRITE ATOMIC (16)")
	}
}
