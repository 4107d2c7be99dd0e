package lu

import (
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// FuzzExecuteCDB sends arbitrary CDBs, Data-Out and transfer lengths to a
// small file LU: Execute must never panic, must complete every task
// exactly once, and must answer either GOOD with at most TransferLen bytes
// of data, or CHECK CONDITION with well-formed fixed sense and no data.
// The metadata header must survive whatever the commands do.
func FuzzExecuteCDB(f *testing.F) {
	seeds := [][]byte{
		{scsi.OpTestUnitReady, 0, 0, 0, 0, 0},
		{scsi.OpRequestSense, 1, 0, 0, 255, 0},
		inquiryCDB(false, 0, 255), inquiryCDB(true, 0x83, 255), inquiryCDB(true, 0xb0, 64),
		cdb6(scsi.OpRead6, 0, 0), cdb6(scsi.OpWrite6, 1, 1),
		cdb10(scsi.OpRead10, 0x18, 0, 4), cdb10(scsi.OpWrite10, 0x08, 2, 1), cdb10(scsi.OpVerify10, 0x02, 0, 1),
		cdb10(scsi.OpVerify10, 0x06, 0, 3), cdb10(scsi.OpWriteVerify10, 0x02, 4, 1),
		cdb10(scsi.OpPrefetch10, 0, 0, 0), cdb10(scsi.OpSyncCache10, 2, 0, 0), make10(scsi.OpReadCapacity10),
		cdb12(scsi.OpRead12, 0, 1, 2), cdb12(scsi.OpWrite12, 0, 1, 2), cdb12(scsi.OpVerify12, 0x02, 0, 1),
		cdb16(scsi.OpRead16, 0, ^uint64(0), 2), cdb16(scsi.OpWrite16, 0, 500, 12), cdb16(scsi.OpPrefetch16, 0, 0, 1),
		cdb16(scsi.OpSyncCache16, 0, 0, 0), cdb16(scsi.OpWriteVerify16, 0, 0, 1), cdb16(scsi.OpVerify16, 0x06, 0, 2),
		rc16CDB(32), rsocCDB(true, 0, 0, 0, 65535), rsocCDB(false, 3, scsi.OpRead10, 0, 100),
		rsocCDB(true, 2, scsi.OpServiceActionIn, scsi.SAReadCapacity16, 100),
		modeSense6CDB(false, pcCurrent, pageAll, 0xff, 255), modeSense10CDB(true, false, pcChangeable, pageAll, 0, 512),
		{scsi.OpModeSelect6, 0x10, 0, 0, 24, 0}, {scsi.OpModeSelect10, 0x10, 0, 0, 0, 0, 0, 0, 28, 0},
		{scsi.OpStartStopUnit, 1, 0, 0, 0x10, 0}, {scsi.OpReportLUNs, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0},
		{}, {0xff}, {scsi.OpServiceActionIn}, {scsi.OpMaintenanceIn, 0x0c},
		{scsi.OpReserve6, 0, 0, 0, 0, 0}, {scsi.OpRelease6, 0, 0, 0, 0, 0}, prinCDB(scsi.PRInReadFullStatus, 512),
		proutCDB(scsi.PROutRegister, 0, 0, 24), proutCDB(scsi.PROutReserve, 0, prTypeEA, 24),
	}
	for _, s := range seeds {
		f.Add(s, []byte{0, 0, 0, 0, 0x08, 0x12, 0x04, 0, 0, 0}, byte(3), uint32(512))
	}
	f.Add(cdb10(scsi.OpWriteVerify10, 0x02, 0, 2), make([]byte, 1024), byte(2), uint32(1024))

	d := newTestDisk(f, diskOpts{size: 256 << 10})
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
			if uint64(len(r.Data)) > uint64(r.TransferLen) {
				t.Fatalf("cdb % x: %d data bytes for TransferLen %d", cdb, len(r.Data), r.TransferLen)
			}
			if r.Sense != nil {
				t.Fatalf("cdb % x: GOOD with sense", cdb)
			}
		case scsi.StatusReservationConflict:
			if r.Sense != nil || r.TransferLen != 0 || len(r.Data) != 0 {
				t.Fatalf("cdb % x: RESERVATION CONFLICT with sense or data", cdb)
			}
		case scsi.StatusCheckCondition:
			if len(r.Sense) != scsi.FixedLen || r.Sense[0]&0x7f != 0x70 || r.Sense[7] != scsi.FixedLen-8 {
				t.Fatalf("cdb % x: malformed sense % x", cdb, r.Sense)
			}
			s, err := scsi.ParseSense(r.Sense)
			if err != nil || s.Key == scsi.KeyNoSense {
				t.Fatalf("cdb % x: sense % x: %v", cdb, r.Sense, err)
			}
			// TransferLen only where the residual matters: a Data-Out
			// length that disagrees with the CDB.
			if len(r.Data) != 0 || r.TransferLen != 0 && s.ASC != scsi.ASCInvalidFieldInCmdInfoUnit {
				t.Fatalf("cdb % x: CHECK CONDITION with data", cdb)
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
		// Keep the LU writable for the next input, and its header intact.
		d.swp.Store(false)
		d.Reset(nil) // drop a SCSI-2 reservation (persistent ones never block this one nexus)
		d.wcd.Store(false)
		if _, err := d.store.LoadMeta(); err != nil {
			t.Fatalf("cdb % x: metadata damaged: %v", cdb, err)
		}
	})
}
