package lu

import (
	"bytes"
	"strings"
	"testing"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
)

// TestWriteFailureIsSticky is "fsyncgate": the store reports a failed
// sync once (as Linux reports a failed fdatasync once per file) and the
// next sync succeeds. The LU must not then answer GOOD to a SYNCHRONIZE
// CACHE, FUA or write-through write: the dropped write-back data was
// acknowledged to somebody. Everything that does not claim durability
// still works, and clearing the failure ends it.
func TestWriteFailureIsSticky(t *testing.T) {
	blk := bytes.Repeat([]byte{0x5a}, 512)
	wr := func(cdb []byte, n int) req {
		return req{cdb: cdb, dir: scsi.DirWrite, expLen: uint32(n), data: bytes.Repeat(blk, n/512)}
	}
	st := memstore.New(1<<20, 512, backing.Caps{})
	d := newMemDisk(t, st, Config{})
	expectGood(t, "write-back WRITE", exec(t, d, wr(cdb10(scsi.OpWrite10, 0, 7, 1), 512)))
	st.Inject(memstore.OpSync, &memstore.Fault{Err: memstore.ErrIO}) // fires once
	expectSense(t, "failing SYNCHRONIZE CACHE", exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}), scsi.KeyMediumError, scsi.ASCWriteError)
	f := d.Info().WriteFailure
	if f == nil || f.Op != "sync" || !strings.Contains(f.String(), "sync failed at ") || !strings.Contains(f.String(), memstore.ErrIO.Error()) {
		t.Fatalf("latched failure %v", f)
	}
	syncsBefore := st.Syncs()

	medium := []struct {
		name string
		r    req
		wcd  bool
	}{
		{"SYNCHRONIZE CACHE (10)", req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}, false},
		{"SYNCHRONIZE CACHE (16)", req{cdb: cdb16(scsi.OpSyncCache16, 0, 0, 0)}, false},
		{"WRITE (10) FUA", wr(cdb10(scsi.OpWrite10, 0x08, 7, 1), 512), false},
		{"WRITE (16) FUA", wr(cdb16(scsi.OpWrite16, 0x08, 7, 1), 512), false},
		{"WRITE (10) write cache disabled", wr(cdb10(scsi.OpWrite10, 0, 7, 1), 512), true},
		{"WRITE AND VERIFY (10)", wr(cdb10(scsi.OpWriteVerify10, 0, 7, 1), 512), false},
		{"ORWRITE (16) FUA", wr(cdb16(scsi.OpOrWrite16, 0x08, 7, 1), 512), false},
		{"COMPARE AND WRITE FUA", req{cdb: cawCDB(0x08, 7, 1), dir: scsi.DirWrite, expLen: 1024, data: cawData(blk, blk)}, false},
		{"WRITE SAME (16) write cache disabled", wr(cdb16(scsi.OpWriteSame16, 0, 7, 4), 512), true},
		{"STOP UNIT (flushes)", req{cdb: []byte{scsi.OpStartStopUnit, 0, 0, 0, 0, 0}}, false},
	}
	for _, tc := range medium {
		d.wcd.Store(tc.wcd)
		expectSense(t, tc.name, exec(t, d, tc.r), scsi.KeyMediumError, scsi.ASCWriteError)
	}
	d.wcd.Store(false)
	if n := st.Syncs(); n != syncsBefore {
		t.Errorf("%d syncs reached the store while the failure was latched", n-syncsBefore)
	}
	// No durability claimed: these still work.
	expectGood(t, "write-back WRITE", exec(t, d, wr(cdb10(scsi.OpWrite10, 0, 8, 1), 512)))
	if got := readBlocksMem(t, d, 8); !bytes.Equal(got, blk) {
		t.Error("write-back WRITE did not land")
	}
	if d.ClearWriteFailure() == nil || d.Info().WriteFailure != nil {
		t.Fatal("clearing did not report or forget the failure")
	}
	expectGood(t, "SYNCHRONIZE CACHE after clearing", exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}))
	expectGood(t, "FUA WRITE after clearing", exec(t, d, wr(cdb10(scsi.OpWrite10, 0x08, 7, 1), 512)))
}

// A failed durable write latches a failure too, but a refusal before
// anything reached the medium (no space) does not.
func TestDurableWriteFailureLatches(t *testing.T) {
	blk := make([]byte, 512)
	fua := req{cdb: cdb10(scsi.OpWrite10, 0x08, 3, 1), dir: scsi.DirWrite, expLen: 512, data: blk}
	for _, tc := range []struct {
		name    string
		fault   memstore.Fault
		latched bool
	}{
		{"EIO", memstore.Fault{Err: memstore.ErrIO}, true},
		{"ENOSPC", memstore.NoSpace(), false},
	} {
		st := memstore.New(1<<20, 512, backing.Caps{})
		d := newMemDisk(t, st, Config{})
		st.Inject(memstore.OpDurableWrite, &tc.fault)
		if r := exec(t, d, fua); r.status != scsi.StatusCheckCondition {
			t.Fatalf("%s: %v", tc.name, r.status)
		}
		if got := d.WriteFailure() != nil; got != tc.latched {
			t.Errorf("%s: latched %v, want %v", tc.name, got, tc.latched)
		}
	}
}

func readBlocksMem(t *testing.T, d *Device, lba uint32) []byte {
	t.Helper()
	r := exec(t, d, req{cdb: cdb10(scsi.OpRead10, 0, lba, 1), dir: scsi.DirRead, expLen: 512})
	expectGood(t, "READ", r)
	return r.data
}
