package lu

import (
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// FuzzExecuteThin is FuzzExecuteCDB on a thin LU, seeded with the thin
// provisioning and small SPC/SBC commands: Execute must never panic,
// complete every task exactly once with GOOD (at most TransferLen bytes)
// or well-formed CHECK CONDITION, and leave the metadata header intact.
func FuzzExecuteThin(f *testing.F) {
	list := tpUnmapList(unmapDescriptor{0, 8}, unmapDescriptor{100, 0}, unmapDescriptor{511, 1})
	seeds := []struct {
		cdb  []byte
		data []byte
		dir  byte
		exp  uint32
	}{
		{tpWS10(0, 0, 4), make([]byte, 512), 2, 512},
		{tpWS10(0x08, 3, 0), make([]byte, 512), 2, 512},
		{tpWS16(0x01, 10, 20), nil, 0, 0},
		{tpWS16(0x09, 0, 0), nil, 0, 0},
		{tpWS16(0, 500, 12), []byte{1, 2, 3}, 2, 512},
		{tpUnmapCDB(false, len(list)), list, 2, uint32(len(list))},
		{tpUnmapCDB(false, 7), list[:7], 2, 7},
		{tpGetLBAStatusCDB(0, 24), nil, 1, 24},
		{tpGetLBAStatusCDB(511, 4096), nil, 1, 4096},
		{[]byte{scsi.OpPreventAllow, 0, 0, 0, 1, 0}, nil, 0, 0},
		{[]byte{scsi.OpReadDefectData10, 0, 0x1d, 0, 0, 0, 0, 0, 32, 0}, nil, 1, 32},
		{[]byte{scsi.OpReadDefectData12, 0x18, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, nil, 1, 32},
		{[]byte{scsi.OpMaintenanceIn, scsi.SAReportSupportedTMFs, 0x80, 0, 0, 0, 0, 0, 0, 16, 0, 0}, nil, 1, 16},
		{rc16CDB(32), nil, 1, 32},
		{inquiryCDB(true, vpdLogicalBlockProv, 64), nil, 1, 64},
		{inquiryCDB(true, vpdBlockLimits, 64), nil, 1, 64},
		{rsocCDB(false, 1, scsi.OpUnmap, 0, 64), nil, 1, 64},
	}
	for _, s := range seeds {
		f.Add(s.cdb, s.data, s.dir, s.exp)
	}
	d := newThinDisk(f, thinOpts{thin: true, size: 256 << 10, soft: 100})
	f.Fuzz(func(t *testing.T, cdb, data []byte, dir byte, expLen uint32) {
		expLen %= 1 << 20
		tr := &fakeTransport{data: data}
		task := stmf.NewTask(tr)
		task.CDB = cdb
		task.Dir = scsi.DataDir(dir & 3)
		task.ExpectedLen = expLen
		d.Execute(task)
		if n := tr.completions(); n != 1 || len(tr.results) != 1 {
			t.Fatalf("cdb % x: %d completions", cdb, n)
		}
		r := tr.results[0]
		switch r.Status {
		case scsi.StatusGood:
			if uint64(len(r.Data)) > uint64(r.TransferLen) || r.Sense != nil {
				t.Fatalf("cdb % x: GOOD with %d data bytes (TransferLen %d), sense % x", cdb, len(r.Data), r.TransferLen, r.Sense)
			}
		case scsi.StatusCheckCondition:
			s, err := scsi.ParseSense(r.Sense)
			if len(r.Sense) != scsi.FixedLen || err != nil || s.Key == scsi.KeyNoSense || len(r.Data) != 0 ||
				r.TransferLen != 0 && s.ASC != scsi.ASCInvalidFieldInCmdInfoUnit {
				t.Fatalf("cdb % x: bad CHECK CONDITION: sense % x, %d data bytes", cdb, r.Sense, len(r.Data))
			}
		case scsi.StatusReservationConflict:
			// An earlier input took a SCSI-2 reservation (RESERVE, or it
			// persists from a crafted PR OUT); PR IN/OUT then conflict for
			// every nexus (SPC-2), which is correct, not a failure.
			if r.Sense != nil || len(r.Data) != 0 {
				t.Fatalf("cdb % x: RESERVATION CONFLICT with sense or data", cdb)
			}
		default:
			t.Fatalf("cdb % x: status %v", cdb, r.Status)
		}
		if r.Release != nil {
			r.Release()
		}
		if d.panics.Load() != 0 {
			t.Fatalf("cdb % x: a handler panicked", cdb)
		}
		d.Reset(nil) // drop a SCSI-2 reservation so inputs stay independent
		d.swp.Store(false)
		d.wcd.Store(false)
		if _, err := d.store.LoadMeta(); err != nil {
			t.Fatalf("cdb % x: metadata damaged: %v", cdb, err)
		}
	})
}
