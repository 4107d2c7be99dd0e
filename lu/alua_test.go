package lu

import (
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// aluaAllowedToday is what a port in each access state served before the
// device server took over the ALUA filter from stmf (SPC-4 5.15.2.4), plus
// READ CAPACITY (10) and (16) in standby, which the Linux initiator needs to
// size a path that logs in on a standby node: the test pins that behaviour
// for every command.
func aluaAllowedToday(st stmf.ALUAState, op, sa byte) bool {
	maint := op == 0xa3 && (sa == 0x0a || sa == 0x0c || sa == 0x0d) || op == 0xa4 && sa == 0x0a
	switch st {
	case stmf.ALUAStandby:
		switch op {
		case 0x12, 0xa0, 0x03, 0x4c, 0x4d, 0x15, 0x55, 0x1a, 0x5a, 0x1c, 0x1d, 0x5e, 0x5f, 0x25:
			return true
		}
		return maint || op == 0x9e && sa == 0x10
	case stmf.ALUAUnavailable, stmf.ALUATransitioning:
		return op == 0x12 || op == 0xa0 || op == 0x03 || maint
	}
	return true
}

// aluaTestCDBs is one harmless CDB per command of the table, plus
// commands the LU does not implement (some of which a standby port must
// still pass on) and service actions it does not know.
func aluaTestCDBs(d *Device) [][]byte {
	var out [][]byte
	for _, c := range d.cmds.rows {
		cdb := make([]byte, c.cdbLen)
		cdb[0] = c.op
		if c.sa >= 0 {
			cdb[1] = byte(c.sa)
		}
		if c.op == scsi.OpStartStopUnit {
			cdb[4] = 0x01 // START
		}
		out = append(out, cdb)
	}
	extra := [][]byte{
		{0x4c, 0, 0, 0, 0, 0, 0, 0, 0, 0},             // LOG SELECT
		{0x4d, 0, 0, 0, 0, 0, 0, 0, 0, 0},             // LOG SENSE
		{0x1c, 0, 0, 0, 0, 0},                         // RECEIVE DIAGNOSTIC RESULTS
		{0x1d, 0, 0, 0, 0, 0},                         // SEND DIAGNOSTIC
		{0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},    // SET TARGET PORT GROUPS
		{0xa4, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},    // MAINTENANCE OUT, other
		{0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0}, // REPORT TARGET PORT GROUPS
		{0xa3, 0x05, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0}, // REPORT IDENTIFYING INFORMATION
		{0x9e, 0x1e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // UNMAP (thick LU: not supported)
		{0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0},
		{0xff, 0, 0, 0, 0, 0},
		{0xa3}, // too short to carry a service action
	}
	return append(out, extra...)
}

// TestALUAStates runs every command through stmf on a port in each access
// state: a refused command gets NOT READY with the state's ASC, an allowed
// one whatever the LU answers.
func TestALUAStates(t *testing.T) {
	refusal := map[stmf.ALUAState]scsi.ASC{
		stmf.ALUAStandby:       scsi.ASCLUNotAccessibleStandby,
		stmf.ALUAUnavailable:   scsi.ASCLUNotAccessibleUnavailable,
		stmf.ALUATransitioning: scsi.ASCLUNotAccessibleTransitioning,
	}
	for _, st := range []stmf.ALUAState{stmf.ALUAActiveOptimized, stmf.ALUAActiveNonOptimized,
		stmf.ALUAStandby, stmf.ALUAUnavailable, stmf.ALUATransitioning} {
		t.Run(st.String(), func(t *testing.T) {
			e := newPREnv(t)
			if err := e.fw.SetALUAState(stmf.DefaultPortGroup, st); err != nil {
				t.Fatal(err)
			}
			s := e.session(0, prInitA, 1)
			e.clearUAs(s)
			for _, cdb := range aluaTestCDBs(e.d) {
				sa := byte(0)
				if len(cdb) > 1 {
					sa = cdb[1] & 0x1f
				}
				want := aluaAllowedToday(st, cdb[0], sa)
				if len(cdb) < 2 && (cdb[0] == 0xa3 || cdb[0] == 0xa4) {
					want = st == stmf.ALUAActiveOptimized || st == stmf.ALUAActiveNonOptimized
				}
				r := e.submit(s, cdb)
				refused := false
				if r.Status == scsi.StatusCheckCondition {
					sn, err := scsi.ParseSense(r.Sense)
					if err != nil {
						t.Fatalf("cdb % x: %v", cdb, err)
					}
					if sn.Key == scsi.KeyNotReady && sn.ASC == refusal[st] {
						refused = true
					}
				}
				if refused == want {
					t.Errorf("cdb % x in %v: refused %v, want %v", cdb, st, refused, !want)
				}
			}
		})
	}
}
