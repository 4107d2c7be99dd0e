package lu

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/costar-project/costar/lu/backing"
	"github.com/costar-project/costar/lu/backing/memstore"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// The device server's answers to store failures, driven through the
// in-memory store's fault injection: each failure gets the sense data
// ioError gives it, and nothing is acknowledged as stable that is not.
func TestStoreErrors(t *testing.T) {
	blk := bytes.Repeat([]byte{0x5a}, 512)
	write10 := func(b1 byte) req {
		return req{cdb: cdb10(scsi.OpWrite10, b1, 7, 1), dir: scsi.DirWrite, expLen: 512, data: blk}
	}
	eio := memstore.Fault{Err: memstore.ErrIO}
	readOnly := memstore.Fault{Err: fmt.Errorf("%w: injected EROFS", backing.ErrReadOnly)}
	tests := []struct {
		name    string
		cfg     Config
		op      memstore.Op
		fault   memstore.Fault
		r       req
		key     scsi.SenseKey
		asc     scsi.ASC
		lbaInfo bool // INFORMATION holds the LBA
		latches bool // a write-back failure: remembered until cleared (writefail.go)
	}{
		{"WRITE EIO", Config{}, memstore.OpWrite, eio, write10(0), scsi.KeyMediumError, scsi.ASCWriteError, true, false},
		{"WRITE short then EIO", Config{}, memstore.OpWrite, memstore.Fault{Err: memstore.ErrIO, Short: 256}, write10(0),
			scsi.KeyMediumError, scsi.ASCWriteError, true, false},
		{"WRITE ENOSPC", Config{}, memstore.OpWrite, memstore.NoSpace(), write10(0), scsi.KeyDataProtect, scsi.ASCSpaceAllocationFailedWP, false, false},
		{"WRITE read-only store", Config{}, memstore.OpWrite, readOnly, write10(0), scsi.KeyDataProtect, scsi.ASCWriteProtected, false, false},
		{"FUA WRITE durable write fails", Config{}, memstore.OpDurableWrite, eio, write10(0x08), scsi.KeyMediumError, scsi.ASCWriteError, true, true},
		{"WRITE with WCD durable write fails", Config{WriteCacheDisabled: true}, memstore.OpDurableWrite, eio, write10(0),
			scsi.KeyMediumError, scsi.ASCWriteError, true, true},
		{"WRITE AND VERIFY durable write fails", Config{}, memstore.OpDurableWrite, eio,
			req{cdb: cdb10(scsi.OpWriteVerify10, 0, 7, 1), dir: scsi.DirWrite, expLen: 512, data: blk}, scsi.KeyMediumError, scsi.ASCWriteError, true, true},
		{"READ EIO", Config{}, memstore.OpRead, eio, req{cdb: cdb10(scsi.OpRead10, 0, 7, 1), dir: scsi.DirRead, expLen: 512},
			scsi.KeyMediumError, scsi.ASCUnrecoveredReadError, true, false},
		{"SYNCHRONIZE CACHE fails", Config{}, memstore.OpSync, eio, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)},
			scsi.KeyMediumError, scsi.ASCWriteError, false, true},
		{"UNMAP fails", Config{Thin: true}, memstore.OpDeallocate, eio, tpUnmapReq(tpUnmapList(unmapDescriptor{lba: 8, n: 8})),
			scsi.KeyMediumError, scsi.ASCWriteError, false, false},
		{"WRITE SAME UNMAP ENOSPC", Config{Thin: true}, memstore.OpDeallocate, memstore.NoSpace(),
			req{cdb: cdb16(scsi.OpWriteSame16, 0x08, 8, 8), dir: scsi.DirWrite, expLen: 512, data: make([]byte, 512)},
			scsi.KeyDataProtect, scsi.ASCSpaceAllocationFailedWP, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New(1<<20, 512, backing.Caps{DeallocZeroes: true})
			d := newMemDisk(t, st, tc.cfg)
			f := tc.fault
			st.Inject(tc.op, &f)
			r := exec(t, d, tc.r)
			expectSense(t, tc.name, r, tc.key, tc.asc)
			if tc.lbaInfo && (r.sense.Info == nil || *r.sense.Info != 7) {
				t.Errorf("INFORMATION %v, want LBA 7", r.sense.Info)
			}
			// A one-shot fault is gone: the command now succeeds, unless
			// the failure may have lost acknowledged writes.
			if tc.latches {
				expectSense(t, tc.name+" retried", exec(t, d, tc.r), scsi.KeyMediumError, scsi.ASCWriteError)
				if d.ClearWriteFailure() == nil {
					t.Fatal("no failure latched")
				}
			}
			expectGood(t, tc.name+" retried", exec(t, d, tc.r))
		})
	}
}

// A sticky fault keeps failing; a failed flush is never reported GOOD,
// and the write cache can only be disabled once the flush succeeds.
func TestStoreStickyFaults(t *testing.T) {
	st := memstore.New(1<<20, 512, backing.Caps{})
	d := newMemDisk(t, st, Config{})
	st.Inject(memstore.OpSync, &memstore.Fault{Err: memstore.ErrIO, Sticky: true})
	for i := 0; i < 3; i++ {
		expectSense(t, "SYNCHRONIZE CACHE", exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}), scsi.KeyMediumError, scsi.ASCWriteError)
	}
	yes := true
	if err := d.SetProps(Props{WriteCacheDisabled: &yes}); err == nil {
		t.Error("disabling the write cache succeeded although the flush failed")
	}
	st.Inject(memstore.OpSync, nil)
	// The store healed, but writes the failed syncs covered may be lost:
	// still MEDIUM ERROR until an administrator clears the failure.
	expectSense(t, "SYNCHRONIZE CACHE healed", exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}), scsi.KeyMediumError, scsi.ASCWriteError)
	d.ClearWriteFailure()
	expectGood(t, "SYNCHRONIZE CACHE cleared", exec(t, d, req{cdb: cdb10(scsi.OpSyncCache10, 0, 0, 0)}))
	if st.Syncs() == 0 {
		t.Error("no successful sync reached the store")
	}
}

// Open writes the metadata back only when it changed it (a read-only
// store still opens), and names a copy anew.
func TestOpenSavesOnlyChanges(t *testing.T) {
	ctx := context.Background()
	alias := "new"
	tests := []struct {
		name      string
		o         OpenOptions
		saves     int
		newGUID   bool
		wantAlias string
	}{
		{"unchanged", OpenOptions{}, 0, false, "a"},
		{"override", OpenOptions{Alias: &alias}, 1, false, "new"},
		{"forced", OpenOptions{Save: true}, 1, false, "a"},
		{"copy", OpenOptions{Copy: true}, 1, true, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New(1<<20, 512, backing.Caps{})
			d, err := New(ctx, st, Config{Alias: "a", Serial: "S"}, nil, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			g := d.GUID()
			d.Close()
			before := st.Saves()
			tc.o.Log = quietLog()
			d, err = Open(ctx, st, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			i := d.Info()
			if n := st.Saves() - before; n != tc.saves {
				t.Errorf("%d saves, want %d", n, tc.saves)
			}
			if (i.GUID != g) != tc.newGUID || i.Alias != tc.wantAlias || (tc.newGUID && i.Serial != "") {
				t.Errorf("opened %+v (GUID was %s)", i, g)
			}
			if _, err := Open(ctx, st, OpenOptions{Log: quietLog(), Expect: stmf.GUID{0x60, 9}}); err == nil {
				t.Error("Open expecting another GUID succeeded")
			}
		})
	}
}
