package lu

import (
	"fmt"
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// TestPRConflictMatrix: every persistent reservation type against the
// holder, a registered non-holder and an unregistered I_T nexus, for
// reads and writes (SPC-4 5.13.1 table, SBC-3 table 13).
func TestPRConflictMatrix(t *testing.T) {
	type access struct{ read, write bool }
	tests := []struct {
		typ                 byte
		holder, reg, nonReg access
	}{
		{prTypeWE, access{true, true}, access{true, false}, access{true, false}},
		{prTypeEA, access{true, true}, access{false, false}, access{false, false}},
		{prTypeWERO, access{true, true}, access{true, true}, access{true, false}},
		{prTypeEARO, access{true, true}, access{true, true}, access{false, false}},
		{prTypeWEAR, access{true, true}, access{true, true}, access{true, false}},
		{prTypeEAAR, access{true, true}, access{true, true}, access{false, false}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("type%d", tc.typ), func(t *testing.T) {
			e := newPREnv(t)
			holder := e.session(0, prInitA, 1)
			reg := e.session(1, prInitB, 2)
			nonReg := e.session(0, prInitC, 3)
			e.mustProut(holder, scsi.PROutRegisterIgnore, 0, 0, 0xa1, 0)
			e.mustProut(reg, scsi.PROutRegisterIgnore, 0, 0, 0xb2, 0)
			e.mustProut(holder, scsi.PROutReserve, tc.typ, 0xa1, 0, 0)
			for _, who := range []struct {
				name string
				s    *stmf.Session
				want access
			}{{"holder", holder, tc.holder}, {"registrant", reg, tc.reg}, {"non-registrant", nonReg, tc.nonReg}} {
				for _, op := range []struct {
					name string
					cdb  []byte
					data []byte
					ok   bool
				}{{"read", read10CDB, nil, who.want.read}, {"write", write10CDB, block512, who.want.write}} {
					r := e.run(who.s, op.cdb, op.data)
					name := who.name + " " + op.name
					if op.ok {
						expectGood(t, name, r)
					} else {
						expectConflict(t, name, r)
					}
				}
			}
		})
	}
}

// TestPRConflictClasses: commands other than READ/WRITE from an
// unregistered I_T nexus under Write Exclusive and Exclusive Access.
func TestPRConflictClasses(t *testing.T) {
	cmds := []struct {
		name   string
		cdb    []byte
		data   []byte
		we, ea bool // allowed under WE, under EA
	}{
		{"TEST UNIT READY", []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}, nil, true, true},
		{"INQUIRY", inquiryCDB(false, 0, 96), nil, true, true},
		{"REQUEST SENSE", []byte{scsi.OpRequestSense, 0, 0, 0, 18, 0}, nil, true, true},
		{"READ CAPACITY 10", make10(scsi.OpReadCapacity10), nil, true, true},
		{"READ CAPACITY 16", rc16CDB(32), nil, true, true},
		{"PERSISTENT RESERVE IN", prinCDB(scsi.PRInReadKeys, 100), nil, true, true},
		{"START STOP UNIT start", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x01, 0}, nil, true, true},
		{"START STOP UNIT stop", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x00, 0}, nil, false, false},
		{"READ 16", cdb16(scsi.OpRead16, 0, 0, 1), nil, true, false},
		{"VERIFY 10", cdb10(scsi.OpVerify10, 0, 0, 1), nil, true, false},
		{"PRE-FETCH 10", cdb10(scsi.OpPrefetch10, 0, 0, 1), nil, true, false},
		{"MODE SENSE 6", modeSense6CDB(false, pcCurrent, pageAll, 0, 255), nil, true, false},
		{"REPORT SUPPORTED OPCODES", rsocCDB(false, 0, 0, 0, 4096), nil, true, false},
		{"WRITE 16", cdb16(scsi.OpWrite16, 0, 0, 1), block512, false, false},
		{"SYNCHRONIZE CACHE 10", cdb10(scsi.OpSyncCache10, 0, 0, 0), nil, false, false},
		{"MODE SELECT 6", []byte{scsi.OpModeSelect6, 0x10, 0, 0, 0, 0}, nil, false, false},
		{"unknown opcode", []byte{0xff, 0, 0, 0, 0, 0}, nil, true, true}, // INVALID OPCODE comes first
	}
	for _, typ := range []byte{prTypeWE, prTypeEA} {
		e := newPREnv(t)
		holder := e.session(0, prInitA, 1)
		other := e.session(1, prInitB, 2)
		e.mustProut(holder, scsi.PROutRegister, 0, 0, 0x11, 0)
		e.mustProut(holder, scsi.PROutReserve, typ, 0x11, 0, 0)
		for _, c := range cmds {
			want := c.we
			if typ == prTypeEA {
				want = c.ea
			}
			name := fmt.Sprintf("type %d: %s", typ, c.name)
			r := e.run(other, c.cdb, c.data)
			if got := r.status != scsi.StatusReservationConflict; got != want {
				t.Errorf("%s: status %v, allowed=%v", name, r.status, want)
			}
			if r := e.run(holder, c.cdb, c.data); r.status == scsi.StatusReservationConflict {
				t.Errorf("%s: the holder got RESERVATION CONFLICT", name)
			}
		}
	}
}

// TestSCSI2Reservation: RESERVE/RELEASE (6) and (10) across I_T nexuses,
// and the commands a non-holder may still send (SPC-2 table 10, annex B).
func TestSCSI2Reservation(t *testing.T) {
	e := newPREnv(t)
	a := e.session(0, prInitA, 1)
	b := e.session(0, prInitB, 2)
	aOther := e.session(1, prInitA, 1) // same initiator port, other target port: another nexus
	res6 := []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}
	rel6 := []byte{scsi.OpRelease6, 0, 0, 0, 0, 0}
	res10 := make10(scsi.OpReserve10)
	rel10 := make10(scsi.OpRelease10)

	expectGood(t, "RESERVE 6", e.run(a, res6, nil))
	expectGood(t, "RESERVE 6 again by the holder", e.run(a, res6, nil))
	expectGood(t, "RESERVE 10 by the holder", e.run(a, res10, nil))
	expectConflict(t, "RESERVE 6 by another initiator", e.run(b, res6, nil))
	expectConflict(t, "RESERVE 10 through another target port", e.run(aOther, res10, nil))
	expectGood(t, "RELEASE by a non-holder is a no-op", e.run(b, rel6, nil))
	expectConflict(t, "still reserved", e.run(b, res6, nil))

	nonHolder := []struct {
		name string
		cdb  []byte
		data []byte
		ok   bool
	}{
		{"INQUIRY", inquiryCDB(false, 0, 96), nil, true},
		{"REQUEST SENSE", []byte{scsi.OpRequestSense, 0, 0, 0, 18, 0}, nil, true},
		{"READ CAPACITY 10", make10(scsi.OpReadCapacity10), nil, true},
		{"READ CAPACITY 16", rc16CDB(32), nil, true},
		{"RELEASE 10", rel10, nil, true},
		{"START STOP UNIT start", []byte{scsi.OpStartStopUnit, 0, 0, 0, 0x01, 0}, nil, true},
		{"TEST UNIT READY", []byte{scsi.OpTestUnitReady, 0, 0, 0, 0, 0}, nil, false},
		{"MODE SENSE 6", modeSense6CDB(false, pcCurrent, pageAll, 0, 255), nil, false},
		{"READ 10", read10CDB, nil, false},
		{"WRITE 10", write10CDB, block512, false},
		{"SYNCHRONIZE CACHE", cdb10(scsi.OpSyncCache10, 0, 0, 0), nil, false},
		{"REPORT SUPPORTED OPCODES", rsocCDB(false, 0, 0, 0, 4096), nil, false},
		{"PERSISTENT RESERVE IN", prinCDB(scsi.PRInReadKeys, 100), nil, false},
	}
	for _, c := range nonHolder {
		r := e.run(b, c.cdb, c.data)
		if c.ok {
			expectGood(t, "non-holder "+c.name, r)
		} else {
			expectConflict(t, "non-holder "+c.name, r)
		}
		if c.cdb[0] != scsi.OpRelease10 && c.cdb[0] != scsi.OpPRIn { // PRIN: below
			expectGood(t, "holder "+c.name, e.run(a, c.cdb, c.data))
		}
	}
	// SPC-2: persistent reservation commands conflict from every I_T nexus.
	expectConflict(t, "PERSISTENT RESERVE IN from the holder", e.run(a, prinCDB(scsi.PRInReportCaps, 100), nil))
	expectConflict(t, "PERSISTENT RESERVE OUT from the holder", e.prout(a, scsi.PROutRegister, 0, 0, 1, 0))

	expectGood(t, "RELEASE 10 by the holder", e.run(a, rel10, nil))
	expectGood(t, "RESERVE 10 by b", e.run(b, res10, nil))
	expectConflict(t, "a now conflicts", e.run(a, read10CDB, nil))
	expectGood(t, "RELEASE 6 by b", e.run(b, rel6, nil))
	expectGood(t, "unreserved", e.run(a, read10CDB, nil))
	if e.d.resv.view.Load() != nil {
		t.Fatal("reservation view still published with nothing reserved")
	}

	// Third-party and extent reservations are obsolete: INVALID FIELD IN CDB.
	for _, c := range [][]byte{
		{scsi.OpReserve6, 0x10, 0, 0, 0, 0}, {scsi.OpReserve6, 0x01, 0, 0, 0, 0},
		{scsi.OpRelease6, 0x10, 0, 0, 0, 0}, {scsi.OpRelease6, 0x01, 0, 0, 0, 0},
		withByte(make10(scsi.OpReserve10), 1, 0x10), withByte(make10(scsi.OpReserve10), 1, 0x02),
		withByte(make10(scsi.OpRelease10), 1, 0x10), withByte(make10(scsi.OpRelease10), 1, 0x02),
	} {
		expectSense(t, fmt.Sprintf("cdb % x", c), e.run(a, c, nil), scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	}
	if e.d.resv.view.Load() != nil {
		t.Fatal("an invalid RESERVE reserved the LU")
	}
}

// TestSCSI2ReservationReleasedByResets: LUN RESET, target reset, I_T
// nexus reset and nexus loss release a SCSI-2 reservation; a reset of
// another nexus does not.
func TestSCSI2ReservationReleasedByResets(t *testing.T) {
	res6 := []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}
	tests := []struct {
		name    string
		release func(e *prEnv, holder, other *stmf.Session) bool // reports whether it should release
	}{
		{"Reset(nil)", func(e *prEnv, _, _ *stmf.Session) bool { e.d.Reset(nil); return true }},
		{"LUN RESET", func(_ *prEnv, _, other *stmf.Session) bool { other.LUNReset(scsi.EncodeLUN(0)); return true }},
		{"TARGET WARM RESET", func(_ *prEnv, _, other *stmf.Session) bool { other.TargetReset(false); return true }},
		{"TARGET COLD RESET", func(_ *prEnv, _, other *stmf.Session) bool { other.TargetReset(true); return true }},
		{"I_T NEXUS RESET of the holder", func(_ *prEnv, holder, _ *stmf.Session) bool { holder.ITNexusReset(); return true }},
		{"nexus loss (logout)", func(_ *prEnv, holder, _ *stmf.Session) bool { holder.Close(); return true }},
		{"I_T NEXUS RESET of another nexus", func(_ *prEnv, _, other *stmf.Session) bool { other.ITNexusReset(); return false }},
		{"another nexus lost", func(_ *prEnv, _, other *stmf.Session) bool { other.Close(); return false }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newPREnv(t)
			holder := e.session(0, prInitA, 1)
			other := e.session(0, prInitB, 2)
			third := e.session(1, prInitC, 3)
			expectGood(t, "RESERVE", e.run(holder, res6, nil))
			expectConflict(t, "reserved", e.run(third, read10CDB, nil))
			if tc.release(e, holder, other) {
				expectGood(t, "released", e.run(third, res6, nil))
			} else {
				expectConflict(t, "still reserved", e.run(third, res6, nil))
			}
		})
	}
}

// TestCRHExceptions: SPC-4 5.13.3, RESERVE/RELEASE while persistent
// registrations exist.
func TestCRHExceptions(t *testing.T) {
	res6 := []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}
	rel6 := []byte{scsi.OpRelease6, 0, 0, 0, 0, 0}
	e := newPREnv(t)
	a := e.session(0, prInitA, 1)
	b := e.session(0, prInitB, 2)
	c := e.session(0, prInitC, 3)
	e.mustProut(a, scsi.PROutRegister, 0, 0, 0xa, 0)
	expectConflict(t, "RESERVE while registrations exist", e.run(b, res6, nil))
	expectConflict(t, "RESERVE by a registrant without a reservation", e.run(a, res6, nil))
	expectConflict(t, "RELEASE by a non-registrant", e.run(b, rel6, nil))
	e.mustProut(b, scsi.PROutRegister, 0, 0, 0xb, 0)
	e.mustProut(a, scsi.PROutReserve, prTypeWERO, 0xa, 0, 0)
	expectGood(t, "RESERVE by the holder: no-op", e.run(a, res6, nil))
	expectGood(t, "RELEASE by a registrant under registrants-only: no-op", e.run(b, rel6, nil))
	expectConflict(t, "RESERVE by a non-registrant", e.run(c, res6, nil))
	if ok, key, typ := e.readReservation(a); !ok || key != 0xa || typ != prTypeWERO {
		t.Fatalf("reservation changed: %v %#x %d", ok, key, typ)
	}
	if e.d.resv.s2 != nil {
		t.Fatal("a SCSI-2 reservation was established")
	}
}

// TestIOConflicts: the check copy managers use on another LU.
func TestIOConflicts(t *testing.T) {
	e := newPREnv(t)
	a, b := e.session(0, prInitA, 1), e.session(0, prInitB, 2)
	task := func(s *stmf.Session) *stmf.Task { x := stmf.NewTask(&fakeTransport{}); x.Session = s; return x }
	if e.d.ioConflicts(task(b), true) {
		t.Fatal("conflict without a reservation")
	}
	e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
	e.mustProut(a, scsi.PROutReserve, prTypeWE, 1, 0, 0)
	if e.d.ioConflicts(task(a), true) || e.d.ioConflicts(task(b), false) || !e.d.ioConflicts(task(b), true) {
		t.Fatal("Write Exclusive: wrong answers")
	}
	e.mustProut(a, scsi.PROutClear, 0, 1, 0, 0)
	expectGood(t, "RESERVE", e.run(a, []byte{scsi.OpReserve6, 0, 0, 0, 0, 0}, nil))
	if e.d.ioConflicts(task(a), true) || !e.d.ioConflicts(task(b), false) {
		t.Fatal("SCSI-2 reservation: wrong answers")
	}
}

// TestClassifyTotal: every command classifies, and the classes the
// conflict check relies on hold.
func TestClassifyTotal(t *testing.T) {
	d := newThinDisk(t, thinOpts{thin: true})
	for _, c := range d.cmds.rows {
		for _, b4 := range []byte{0, 0x01, 0x03, 0x11} {
			cdb := make([]byte, c.cdbLen)
			cdb[0], cdb[4] = c.op, b4
			cls, s2 := c.classify(cdb)
			if s2 && cls != clsAllowed {
				t.Errorf("op %#x/%d: allowed by a SCSI-2 reservation but class %d under PR", c.op, c.sa, cls)
			}
		}
	}
	for _, op := range []byte{scsi.OpWrite6, scsi.OpWrite10, scsi.OpWrite12, scsi.OpWrite16, scsi.OpWriteVerify10, scsi.OpSyncCache16, scsi.OpModeSelect10, 0x89, 0x41, 0x93, 0x42, 0x83} {
		c := d.cmds.row(d.cmds.decode([]byte{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
		if c == nil {
			t.Fatalf("op %#x: no row", op)
		}
		if cls, s2 := c.classify([]byte{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}); cls != clsOther || s2 {
			t.Errorf("op %#x: class %d, scsi2 %v; want a write-class conflict", op, cls, s2)
		}
	}
}
