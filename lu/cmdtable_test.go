package lu

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// withoutAtomicWrites is a file LU created with NoAtomicWrites.
func withoutAtomicWrites(t *testing.T) *Device {
	t.Helper()
	d, err := createFile(context.Background(), fileConfig{DataFile: filepath.Join(t.TempDir(), "lu.img"), Size: 1 << 20, NoAtomicWrites: true},
		&GUIDGenerator{HostID: HostIDFrom32(1)}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// tableVariants are LUs whose tables differ (thin, thick, no atomic writes).
func tableVariants(t *testing.T) map[string]*Device {
	return map[string]*Device{
		"thick":     newThinDisk(t, thinOpts{}),
		"thin":      newThinDisk(t, thinOpts{thin: true}),
		"no atomic": withoutAtomicWrites(t),
	}
}

// TestCommandTableComplete: no row leaves a class undecided, and the
// fields agree with each other.
func TestCommandTableComplete(t *testing.T) {
	for _, c := range commandTable {
		name := func() string { return fmt.Sprintf("opcode %#x", c.op) }
		if c.lock == lockUnset || c.resv == resvUnset || c.alua&aluaActive == 0 {
			t.Errorf("%s SA %d: lock %d, reservation %d, ALUA %b: undecided", name(), c.sa, c.lock, c.resv, c.alua)
		}
		if c.resv == resvUnlessHarmless && c.harmless == nil {
			t.Errorf("%s: resvUnlessHarmless without harmless", name())
		}
		switch c.lock {
		case lockRead, lockWrite, lockAtomic:
			if c.layout == layoutNone {
				t.Errorf("%s: range lock without a block layout", name())
			}
		}
		if c.inline && (c.layout < layout6 || c.layout > layout16 || (c.lock != lockRead && c.lock != lockWrite)) {
			t.Errorf("%s: inline but not a plain READ or WRITE", name())
		}
		if c.fn == nil && (c.usage != nil || c.timeout != 0 || c.inline) {
			t.Errorf("%s: not implemented but listed as if it were", name())
		}
	}
}

// TestCommandTable checks every LU's table as REPORT SUPPORTED OPERATION
// CODES and dispatch use it: one row per opcode/service action, usage
// data of the CDB's length starting with the opcode, service actions
// exactly where dispatch expects them, a timeout for each.
func TestCommandTable(t *testing.T) {
	for name, d := range tableVariants(t) {
		seen := map[[2]int]bool{}
		for _, c := range d.cmds.rows {
			key := [2]int{int(c.op), c.sa}
			if seen[key] {
				t.Errorf("%s: opcode %#x SA %d listed twice", name, c.op, c.sa)
			}
			seen[key] = true
			if c.fn == nil {
				continue
			}
			if len(c.usage) != c.cdbLen || c.usage[0] != c.op {
				t.Errorf("%s: opcode %#x: usage data % x for a %d-byte CDB", name, c.op, c.usage, c.cdbLen)
			}
			if (c.sa >= 0) != d.cmds.hasServiceActions(c.op) {
				t.Errorf("%s: opcode %#x: service action %d inconsistent", name, c.op, c.sa)
			}
			if c.timeout == 0 {
				t.Errorf("%s: opcode %#x: no timeout", name, c.op)
			}
		}
	}
}

// TestCommandKinds: every row tells stmf's counters what kind of command
// it is (Admit), so a task counts as a read, write, ... on its LU.
func TestCommandKinds(t *testing.T) {
	want := func(op byte) stmf.Kind {
		switch op {
		case scsi.OpRead6, scsi.OpRead10, scsi.OpRead12, scsi.OpRead16:
			return stmf.KindRead
		case scsi.OpWrite6, scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16,
			scsi.OpWriteVerify10, scsi.OpWriteVerify12, scsi.OpWriteVerify16,
			scsi.OpWriteSame10, scsi.OpWriteSame16, scsi.OpOrWrite16, scsi.OpWriteAtomic16:
			return stmf.KindWrite
		case scsi.OpUnmap:
			return stmf.KindUnmap
		case scsi.OpCompareAndWrite:
			return stmf.KindATS
		case scsi.OpExtendedCopy:
			return stmf.KindXCopy
		case scsi.OpSyncCache10, scsi.OpSyncCache16:
			return stmf.KindFlush
		}
		return stmf.KindOther
	}
	e := newPREnvDisk(t, newThinDisk(t, thinOpts{thin: true}))
	s := e.session(0, prInitA, 1)
	e.clearUAs(s)
	seen := map[stmf.Kind]bool{}
	for _, c := range e.d.cmds.rows {
		if c.fn == nil || c.op == scsi.OpReportLUNs { // stmf answers REPORT LUNS, not the LU
			continue
		}
		cdb := make([]byte, c.cdbLen)
		cdb[0] = c.op
		if c.sa >= 0 {
			cdb[1] = byte(c.sa)
		}
		before := e.fw.Stats().LUs[e.d.GUID()]
		e.submit(s, cdb)
		after := e.fw.Stats().LUs[e.d.GUID()]
		k := want(c.op)
		seen[k] = true
		if after.Commands[k] != before.Commands[k]+1 || after.Total() != before.Total()+1 {
			t.Errorf("cdb % x: counted %v -> %v, want one more %v", cdb, before.Commands, after.Commands, k)
		}
	}
	if len(seen) != int(stmf.NumKinds) {
		t.Errorf("the table covers kinds %v, want all %d", seen, stmf.NumKinds)
	}
}
