package lu

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// prStep is one PERSISTENT RESERVE OUT in a scripted test.
type prStep struct {
	who      int // index into the test's sessions
	sa, typ  byte
	rk, sark uint64
	flags    byte
	tids     [][]byte
	param    []byte // raw parameter list instead of the basic one
	want     string // "ok", "conflict", "plerr", "invparam", "invcdb", "invrelease"
}

// Sessions of a scripted test: A, B through port 1, C through port 2, A
// through port 2, and A's second initiator port through port 1.
const (
	sA = iota
	sB
	sC
	sAport2
	sAisid4
)

func (e *prEnv) scriptSessions() []*stmf.Session {
	return []*stmf.Session{
		e.session(0, prInitA, 1), e.session(0, prInitB, 2), e.session(1, prInitC, 3),
		e.session(1, prInitA, 1), e.session(0, prInitA, 4),
	}
}

func checkOutcome(t *testing.T, name, want string, r resp) {
	t.Helper()
	switch want {
	case "ok":
		expectGood(t, name, r)
	case "conflict":
		expectConflict(t, name, r)
	case "plerr":
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCParameterListLengthError)
	case "invparam":
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInParameterList)
	case "invcdb":
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
	case "invrelease":
		expectSense(t, name, r, scsi.KeyIllegalRequest, ascInvalidReleaseOfPR)
	case "insuff":
		expectSense(t, name, r, scsi.KeyIllegalRequest, scsi.ASCInsufficientRegistrationRes)
	default:
		t.Fatalf("%s: unknown expectation %q", name, want)
	}
}

func (e *prEnv) step(ss []*stmf.Session, i int, st prStep) {
	e.t.Helper()
	p := st.param
	if p == nil {
		p = proutParam(st.rk, st.sark, st.flags, st.tids...)
	}
	r := e.run(ss[st.who], proutCDB(st.sa, 0, st.typ, uint32(len(p))), p)
	checkOutcome(e.t, fmt.Sprintf("step %d (SA %d from session %d)", i, st.sa, st.who), st.want, r)
}

type resvWant struct {
	reserved bool
	key      uint64
	typ      byte
}

// TestPROutActions runs every PERSISTENT RESERVE OUT service action
// through scripted sequences and checks keys, generation and reservation.
func TestPROutActions(t *testing.T) {
	const k1, k2, k3 = 0x1111, 0x2222, 0x3333
	tidB := tidBytes(prInitB, "000000000002")
	tidC := tidBytes(prInitC, "")
	reg := func(who int, sark uint64) prStep {
		return prStep{who: who, sa: scsi.PROutRegisterIgnore, sark: sark, want: "ok"}
	}
	resv := func(who int, typ byte, key uint64) prStep {
		return prStep{who: who, sa: scsi.PROutReserve, typ: typ, rk: key, want: "ok"}
	}
	none := resvWant{}
	tests := []struct {
		name  string
		steps []prStep
		keys  []uint64
		gen   uint32
		resv  resvWant
	}{
		// REGISTER / REGISTER AND IGNORE EXISTING KEY.
		{"register", []prStep{{who: sA, sa: scsi.PROutRegister, sark: k1, want: "ok"}}, []uint64{k1}, 1, none},
		{"register unregistered with a key conflicts", []prStep{{who: sA, sa: scsi.PROutRegister, rk: 5, sark: k1, want: "conflict"}}, nil, 0, none},
		{"register SARK 0 unregistered does nothing", []prStep{{who: sA, sa: scsi.PROutRegister, want: "ok"}}, nil, 0, none},
		{"re-register with the wrong key conflicts", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, want: "ok"},
			{who: sA, sa: scsi.PROutRegister, sark: k1 + 1, want: "conflict"}}, []uint64{k1}, 1, none},
		{"change key", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, want: "ok"},
			{who: sA, sa: scsi.PROutRegister, rk: k1, sark: k2, want: "ok"}}, []uint64{k2}, 2, none},
		{"unregister", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, want: "ok"},
			{who: sA, sa: scsi.PROutRegister, rk: k1, want: "ok"}}, nil, 2, none},
		{"register and ignore replaces any key", []prStep{reg(sA, k1),
			{who: sA, sa: scsi.PROutRegisterIgnore, rk: 999, sark: k2, want: "ok"}}, []uint64{k2}, 2, none},
		{"register and ignore SARK 0 unregisters", []prStep{reg(sA, k1), reg(sA, 0)}, nil, 2, none},
		{"registrations are per I_T nexus", []prStep{reg(sA, k1), reg(sAport2, k2), reg(sAisid4, k3)}, []uint64{k1, k2, k3}, 3, none},
		{"ALL_TG_PT registers every target port", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, flags: pfAllTgPt, want: "ok"},
			{who: sAport2, sa: scsi.PROutRegister, sark: k2, want: "conflict"},
			resv(sAport2, prTypeWE, k1)}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"SPEC_I_PT registers the listed initiator ports", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, flags: pfSpecIPT, tids: [][]byte{tidB, tidC}, want: "ok"},
			resv(sB, prTypeEA, k1),
			// C was registered (format 00b) through port 1 only: through port 2 it is not.
			{who: sC, sa: scsi.PROutRelease, typ: prTypeEA, rk: k1, want: "conflict"},
		}, []uint64{k1, k1, k1}, 1, resvWant{true, k1, prTypeEA}},
		{"SPEC_I_PT naming the caller itself", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, flags: pfSpecIPT, tids: [][]byte{tidBytes(prInitA, "000000000001")}, want: "ok"},
		}, []uint64{k1}, 1, none},
		{"SPEC_I_PT from a registered I_T nexus", []prStep{reg(sA, k1),
			{who: sA, sa: scsi.PROutRegister, rk: k1, sark: k2, flags: pfSpecIPT, tids: [][]byte{tidB}, want: "invcdb"}}, []uint64{k1}, 1, none},
		{"SPEC_I_PT naming a registered I_T nexus", []prStep{reg(sB, k2),
			{who: sA, sa: scsi.PROutRegister, sark: k1, flags: pfSpecIPT, tids: [][]byte{tidB}, want: "invparam"}}, []uint64{k2}, 1, none},
		{"SPEC_I_PT naming an initiator twice", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, flags: pfSpecIPT, tids: [][]byte{tidC, tidC}, want: "invparam"}}, nil, 0, none},
		{"unregistering the holder releases", []prStep{reg(sA, k1), resv(sA, prTypeEA, k1), reg(sA, 0)}, nil, 2, none},
		{"all-registrants reservation lasts until the last registrant goes", []prStep{
			reg(sA, k1), reg(sB, k2), resv(sA, prTypeWEAR, k1), reg(sA, 0)}, []uint64{k2}, 3, resvWant{true, 0, prTypeWEAR}},
		{"last all-registrants registrant", []prStep{reg(sA, k1), resv(sA, prTypeEAAR, k1), reg(sA, 0)}, nil, 2, none},

		// RESERVE.
		{"reserve unregistered conflicts", []prStep{{who: sA, sa: scsi.PROutReserve, typ: prTypeWE, want: "conflict"}}, nil, 0, none},
		{"reserve with the wrong key conflicts", []prStep{reg(sA, k1),
			{who: sA, sa: scsi.PROutReserve, typ: prTypeWE, rk: k2, want: "conflict"}}, []uint64{k1}, 1, none},
		{"reserve again with the same type", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1), resv(sA, prTypeWE, k1)},
			[]uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"reserve with another type conflicts", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutReserve, typ: prTypeEA, rk: k1, want: "conflict"}}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"reserve held by another conflicts", []prStep{reg(sA, k1), reg(sB, k2), resv(sA, prTypeWERO, k1),
			{who: sB, sa: scsi.PROutReserve, typ: prTypeWERO, rk: k2, want: "conflict"}}, []uint64{k1, k2}, 2, resvWant{true, k1, prTypeWERO}},
		{"every registrant holds an all-registrants reservation", []prStep{reg(sA, k1), reg(sB, k2),
			resv(sA, prTypeEAAR, k1), resv(sB, prTypeEAAR, k2)}, []uint64{k1, k2}, 2, resvWant{true, 0, prTypeEAAR}},

		// RELEASE.
		{"release", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRelease, typ: prTypeWE, rk: k1, want: "ok"}}, []uint64{k1}, 1, none},
		{"release with another type", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRelease, typ: prTypeEA, rk: k1, want: "invrelease"}}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"release by a registered non-holder does nothing", []prStep{reg(sA, k1), reg(sB, k2), resv(sA, prTypeWE, k1),
			{who: sB, sa: scsi.PROutRelease, typ: prTypeWE, rk: k2, want: "ok"}}, []uint64{k1, k2}, 2, resvWant{true, k1, prTypeWE}},
		{"release by a non-registrant conflicts", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sB, sa: scsi.PROutRelease, typ: prTypeWE, want: "conflict"}}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"release with the wrong key conflicts", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRelease, typ: prTypeWE, rk: k2, want: "conflict"}}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"release without a reservation", []prStep{reg(sA, k1),
			{who: sA, sa: scsi.PROutRelease, typ: prTypeWE, rk: k1, want: "ok"}}, []uint64{k1}, 1, none},
		{"any registrant releases an all-registrants reservation", []prStep{reg(sA, k1), reg(sB, k2), resv(sA, prTypeWEAR, k1),
			{who: sB, sa: scsi.PROutRelease, typ: prTypeWEAR, rk: k2, want: "ok"}}, []uint64{k1, k2}, 2, none},

		// CLEAR.
		{"clear", []prStep{reg(sA, k1), reg(sB, k2), resv(sA, prTypeEA, k1),
			{who: sB, sa: scsi.PROutClear, rk: k2, want: "ok"}}, nil, 3, none},
		{"clear by a non-registrant conflicts", []prStep{reg(sA, k1),
			{who: sB, sa: scsi.PROutClear, want: "conflict"}}, []uint64{k1}, 1, none},
		{"clear with the wrong key conflicts", []prStep{reg(sA, k1),
			{who: sA, sa: scsi.PROutClear, rk: k2, want: "conflict"}}, []uint64{k1}, 1, none},

		// PREEMPT.
		{"preempt a registration without a reservation", []prStep{reg(sA, k1), reg(sB, k2),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeEA, rk: k2, sark: k1, want: "ok"}}, []uint64{k2}, 3, none},
		{"preempt SARK 0 without a reservation", []prStep{reg(sA, k1), reg(sB, k2),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeEA, rk: k2, want: "invparam"}}, []uint64{k1, k2}, 2, none},
		{"preempt an unknown key conflicts", []prStep{reg(sA, k1), reg(sB, k2),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeEA, rk: k2, sark: k3, want: "conflict"}}, []uint64{k1, k2}, 2, none},
		{"preempt by a non-registrant conflicts", []prStep{reg(sA, k1),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeEA, sark: k1, want: "conflict"}}, []uint64{k1}, 1, none},
		{"preempt the holder", []prStep{reg(sA, k1), reg(sB, k2), resv(sA, prTypeWE, k1),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeEA, rk: k2, sark: k1, want: "ok"}}, []uint64{k2}, 3, resvWant{true, k2, prTypeEA}},
		{"preempt a non-holder keeps the reservation", []prStep{reg(sA, k1), reg(sB, k2), reg(sC, k3), resv(sA, prTypeWE, k1),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeWE, rk: k2, sark: k3, want: "ok"}}, []uint64{k1, k2}, 4, resvWant{true, k1, prTypeWE}},
		{"preempt an all-registrants reservation", []prStep{reg(sA, k1), reg(sB, k2), reg(sC, k3), resv(sA, prTypeEAAR, k1),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeWE, rk: k2, want: "ok"}}, []uint64{k2}, 4, resvWant{true, k2, prTypeWE}},
		{"preempt one key under all-registrants", []prStep{reg(sA, k1), reg(sB, k2), reg(sC, k3), resv(sA, prTypeWEAR, k1),
			{who: sB, sa: scsi.PROutPreempt, typ: prTypeWEAR, rk: k2, sark: k3, want: "ok"}}, []uint64{k1, k2}, 4, resvWant{true, 0, prTypeWEAR}},
		{"preempt own reservation to change its type", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutPreempt, typ: prTypeEA, rk: k1, sark: k1, want: "ok"}}, []uint64{k1}, 2, resvWant{true, k1, prTypeEA}},
		{"preempt removes every registration with the key", []prStep{reg(sA, k1), reg(sC, k1), reg(sB, k2), resv(sA, prTypeWE, k1),
			{who: sB, sa: scsi.PROutPreemptAbort, typ: prTypeWE, rk: k2, sark: k1, want: "ok"}}, []uint64{k2}, 4, resvWant{true, k2, prTypeWE}},

		// REGISTER AND MOVE.
		{"register and move", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeWE, param: moveParam(k1, k2, false, false, 1, tidB), want: "ok"},
			{who: sB, sa: scsi.PROutRelease, typ: prTypeWE, rk: k2, want: "ok"}, // B holds it now
			resv(sB, prTypeWE, k2)}, []uint64{k1, k2}, 2, resvWant{true, k2, prTypeWE}},
		{"register and move, unregistering the source", []prStep{reg(sA, k1), resv(sA, prTypeEA, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeEA, param: moveParam(k1, k2, true, false, 1, tidB), want: "ok"}},
			[]uint64{k2}, 2, resvWant{true, k2, prTypeEA}},
		{"register and move to another target port", []prStep{reg(sA, k1), resv(sA, prTypeEA, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeEA, param: moveParam(k1, k3, false, false, 2, tidBytes(prInitC, "000000000003")), want: "ok"},
			{who: sC, sa: scsi.PROutRelease, typ: prTypeEA, rk: k3, want: "ok"}}, []uint64{k1, k3}, 2, none},
		{"register and move without a reservation conflicts", []prStep{reg(sA, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeWE, param: moveParam(k1, k2, false, false, 1, tidB), want: "conflict"}}, []uint64{k1}, 1, none},
		{"register and move by a non-holder conflicts", []prStep{reg(sA, k1), reg(sC, k3), resv(sA, prTypeWE, k1),
			{who: sC, sa: scsi.PROutRegisterMove, typ: prTypeWE, param: moveParam(k3, k2, false, false, 1, tidB), want: "conflict"}}, []uint64{k1, k3}, 2, resvWant{true, k1, prTypeWE}},
		{"register and move to itself", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeWE, param: moveParam(k1, k2, false, false, 1, tidBytes(prInitA, "000000000001")), want: "invparam"}}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"register and move with SARK 0", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeWE, param: moveParam(k1, 0, false, false, 1, tidB), want: "invparam"}}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"register and move to an unknown target port", []prStep{reg(sA, k1), resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeWE, param: moveParam(k1, k2, false, false, 77, tidB), want: "invparam"}}, []uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"register and move within the caller's ALL_TG_PT registration", []prStep{
			{who: sA, sa: scsi.PROutRegister, sark: k1, flags: pfAllTgPt, want: "ok"}, resv(sA, prTypeWE, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeWE, param: moveParam(k1, k2, true, false, 2, tidBytes(prInitA, "000000000001")), want: "invparam"}},
			[]uint64{k1}, 1, resvWant{true, k1, prTypeWE}},
		{"register and move an all-registrants reservation conflicts", []prStep{reg(sA, k1), resv(sA, prTypeWEAR, k1),
			{who: sA, sa: scsi.PROutRegisterMove, typ: prTypeWEAR, param: moveParam(k1, k2, false, false, 1, tidB), want: "conflict"}}, []uint64{k1}, 1, resvWant{true, 0, prTypeWEAR}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newPREnv(t)
			ss := e.scriptSessions()
			for i, st := range tc.steps {
				e.step(ss, i, st)
			}
			gen, keys := e.readKeys(ss[sA])
			if !reflect.DeepEqual(keys, tc.keys) || gen != tc.gen {
				t.Errorf("keys %x generation %d, want %x generation %d", keys, gen, tc.keys, tc.gen)
			}
			ok, key, typ := e.readReservation(ss[sA])
			if got := (resvWant{ok, key, typ}); got != tc.resv {
				t.Errorf("reservation %+v, want %+v", got, tc.resv)
			}
		})
	}
}

// TestPROutChecks: CDB and parameter list validation.
func TestPROutChecks(t *testing.T) {
	e := newPREnv(t)
	a := e.session(0, prInitA, 1)
	e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
	basic := proutParam(1, 0, 0)
	withFlags := func(f byte) []byte { p := proutParam(1, 2, 0); p[20] = f; return p }
	tid := tidBytes(prInitB, "000000000002")
	badTID := func(mut func([]byte)) []byte {
		x := append([]byte(nil), tid...)
		mut(x)
		return proutParam(0, 5, pfSpecIPT, x)
	}
	tests := []struct {
		name  string
		cdb   []byte
		param []byte
		want  string
	}{
		{"unknown service action", proutCDB(0x08, 0, 0, 24), basic, "invcdb"},
		{"service action 1Fh", proutCDB(0x1f, 0, 0, 24), basic, "invcdb"},
		{"reserve with a scope", proutCDB(scsi.PROutReserve, 1, prTypeWE, 24), basic, "invcdb"},
		{"reserve with type 0", proutCDB(scsi.PROutReserve, 0, 0, 24), basic, "invcdb"},
		{"reserve with type 2", proutCDB(scsi.PROutReserve, 0, 2, 24), basic, "invcdb"},
		{"preempt with type 9", proutCDB(scsi.PROutPreempt, 0, 9, 24), basic, "invcdb"},
		{"release with a scope", proutCDB(scsi.PROutRelease, 2, prTypeWE, 24), basic, "invcdb"},
		{"register ignores scope and type", proutCDB(scsi.PROutRegister, 3, 0xf, 24), proutParam(1, 1, 0), "ok"},
		{"parameter list length 0", proutCDB(scsi.PROutReserve, 0, prTypeWE, 0), nil, "plerr"},
		{"parameter list length 23", proutCDB(scsi.PROutReserve, 0, prTypeWE, 23), basic[:23], "plerr"},
		{"parameter list length 25", proutCDB(scsi.PROutClear, 0, 0, 25), append(basic, 0), "plerr"},
		{"register with 28 bytes and no SPEC_I_PT", proutCDB(scsi.PROutRegister, 0, 0, 28), append(proutParam(1, 1, 0), 0, 0, 0, 0), "plerr"},
		{"register shorter than 24", proutCDB(scsi.PROutRegister, 0, 0, 20), basic[:20], "plerr"},
		{"less data than the parameter list length", proutCDB(scsi.PROutRegister, 0, 0, 24), basic[:16], "plerr"},
		{"register and ignore with SPEC_I_PT", proutCDB(scsi.PROutRegisterIgnore, 0, 0, 24), withFlags(pfSpecIPT), "invparam"},
		{"reserve with SPEC_I_PT", proutCDB(scsi.PROutReserve, 0, prTypeWE, 24), func() []byte { p := proutParam(1, 0, 0); p[20] = pfSpecIPT; return p }(), "invparam"},
		{"SPEC_I_PT without TransportID length", proutCDB(scsi.PROutRegister, 0, 0, 24), withFlags(pfSpecIPT), "plerr"},
		{"SPEC_I_PT TransportIDs beyond the list", proutCDB(scsi.PROutRegister, 0, 0, 28), func() []byte {
			p := proutParam(0, 5, pfSpecIPT)
			binary.BigEndian.PutUint32(p[24:28], 100)
			return p
		}(), "plerr"},
		{"TransportID of another protocol", nil, badTID(func(b []byte) { b[0] = 0x00 }), "invparam"},
		{"TransportID format 10b", nil, badTID(func(b []byte) { b[0] = 0x85 }), "invparam"},
		{"TransportID without NUL", nil, badTID(func(b []byte) {
			for i := 4; i < len(b); i++ {
				b[i] = 'x'
			}
		}), "invparam"},
		{"TransportID with a bad ISID", nil, badTID(func(b []byte) { b[4+len(prInitB)+len(",i,0x")+3] = 'z' }), "invparam"},
		{"TransportID longer than the data", nil, badTID(func(b []byte) { binary.BigEndian.PutUint16(b[2:4], 400) }), "invparam"},
		{"register and move with two TransportIDs", nil, func() []byte {
			p := moveParam(1, 2, false, false, 1, append(append([]byte(nil), tid...), tid...))
			return p
		}(), "invparam"},
		{"register and move TransportID beyond the list", proutCDB(scsi.PROutRegisterMove, 0, prTypeWE, 30), func() []byte {
			p := moveParam(1, 2, false, false, 1, tid)
			return p[:30]
		}(), "plerr"},
	}
	for _, tc := range tests {
		cdb := tc.cdb
		if cdb == nil {
			sa := byte(scsi.PROutRegister)
			if tc.param[20]&pfSpecIPT == 0 {
				sa = scsi.PROutRegisterMove
			}
			cdb = proutCDB(sa, 0, prTypeWE, uint32(len(tc.param)))
		}
		r := e.run(a, cdb, tc.param)
		checkOutcome(t, tc.name, tc.want, r)
	}
	if gen, keys := e.readKeys(a); len(keys) != 1 {
		t.Fatalf("registrations changed by invalid commands: %x (generation %d)", keys, gen)
	}
}

// TestPRIn: service action range, allocation lengths and REPORT
// CAPABILITIES.
func TestPRIn(t *testing.T) {
	e := newPREnv(t)
	a := e.session(0, prInitA, 1)
	for sa := byte(0); sa < 0x20; sa++ {
		r := e.run(a, prinCDB(sa, 16384), nil)
		if sa <= scsi.PRInReadFullStatus {
			expectGood(t, fmt.Sprintf("SA %d", sa), r)
		} else {
			expectSense(t, fmt.Sprintf("SA %d", sa), r, scsi.KeyIllegalRequest, scsi.ASCInvalidFieldInCDB)
		}
	}
	e.mustProut(a, scsi.PROutRegister, 0, 0, 0x0102030405060708, 0)
	e.mustProut(e.session(1, prInitB, 2), scsi.PROutRegister, 0, 0, 0x99, 0)

	// READ KEYS cut to 8 bytes keeps the ADDITIONAL LENGTH of the full list.
	r := e.run(a, prinCDB(scsi.PRInReadKeys, 8), nil)
	expectGood(t, "READ KEYS alloc 8", r)
	if len(r.data) != 8 || r.transferLen != 8 || binary.BigEndian.Uint32(r.data[4:8]) != 16 || binary.BigEndian.Uint32(r.data[0:4]) != 2 {
		t.Fatalf("READ KEYS alloc 8: % x", r.data)
	}
	r = e.run(a, prinCDB(scsi.PRInReadKeys, 12), nil)
	if !bytes.Equal(r.data, []byte{0, 0, 0, 2, 0, 0, 0, 16, 1, 2, 3, 4}) {
		t.Fatalf("READ KEYS alloc 12: % x", r.data)
	}
	r = e.run(a, prinCDB(scsi.PRInReadKeys, 0), nil)
	if len(r.data) != 0 || r.status != scsi.StatusGood {
		t.Fatalf("READ KEYS alloc 0: %v % x", r.status, r.data)
	}

	caps := func() []byte {
		r := e.run(a, prinCDB(scsi.PRInReportCaps, 100), nil)
		expectGood(t, "REPORT CAPABILITIES", r)
		return r.data
	}
	want := []byte{0, 8, 0x1d, 0xb0, 0xea, 0x01, 0, 0}
	if got := caps(); !bytes.Equal(got, want) {
		t.Fatalf("REPORT CAPABILITIES % x, want % x", got, want)
	}
	e.mustProut(a, scsi.PROutRegister, 0, 0x0102030405060708, 7, pfAPTPL)
	want[3] |= 0x01 // PTPL_A
	if got := caps(); !bytes.Equal(got, want) {
		t.Fatalf("REPORT CAPABILITIES with APTPL % x, want % x", got, want)
	}

	// READ RESERVATION: the key of the holder; 0 for all-registrants.
	e.mustProut(a, scsi.PROutReserve, prTypeEARO, 7, 0, 0)
	if ok, key, typ := e.readReservation(a); !ok || key != 7 || typ != prTypeEARO {
		t.Fatalf("READ RESERVATION %v %#x %d", ok, key, typ)
	}
	e.mustProut(a, scsi.PROutRelease, prTypeEARO, 7, 0, 0)
	e.mustProut(a, scsi.PROutReserve, prTypeWEAR, 7, 0, 0)
	if ok, key, typ := e.readReservation(a); !ok || key != 0 || typ != prTypeWEAR {
		t.Fatalf("READ RESERVATION all registrants %v %#x %d", ok, key, typ)
	}
}

// fullStatus is one decoded READ FULL STATUS descriptor.
type fullStatus struct {
	key      uint64
	allTgPt  bool
	holder   bool
	typ      byte
	relPort  uint16
	tid      []byte
	tidName  string
	tidISID  string
	tidFmt01 bool
}

func (e *prEnv) readFullStatus(s *stmf.Session) (uint32, []fullStatus) {
	e.t.Helper()
	r := e.run(s, prinCDB(scsi.PRInReadFullStatus, 65535), nil)
	expectGood(e.t, "READ FULL STATUS", r)
	if int(binary.BigEndian.Uint32(r.data[4:8])) != len(r.data)-8 {
		e.t.Fatalf("READ FULL STATUS additional length % x", r.data[:8])
	}
	var out []fullStatus
	for p := r.data[8:]; len(p) > 0; {
		if len(p) < 24 {
			e.t.Fatalf("truncated descriptor % x", p)
		}
		n := int(binary.BigEndian.Uint32(p[20:24]))
		if n > len(p)-24 {
			e.t.Fatalf("descriptor length %d with %d bytes", n, len(p)-24)
		}
		fs := fullStatus{key: binary.BigEndian.Uint64(p[0:8]), allTgPt: p[12]&2 != 0, holder: p[12]&1 != 0,
			typ: p[13], relPort: binary.BigEndian.Uint16(p[18:20]), tid: p[24 : 24+n]}
		tids, res := parseTransportIDs(fs.tid, 0, scsi.ProtocolISCSI)
		if res != nil || len(tids) != 1 || n%4 != 0 || n < 24 {
			e.t.Fatalf("bad TransportID % x", fs.tid)
		}
		fs.tidName, fs.tidFmt01 = tids[0].id.ISCSIName(), fs.tid[0]>>6 == 1
		if isid, ok := tids[0].id.ISID(); ok {
			fs.tidISID = hex.EncodeToString(isid[:])
		}
		out = append(out, fs)
		p = p[24+n:]
	}
	return binary.BigEndian.Uint32(r.data[0:4]), out
}

// TestReadFullStatus: descriptors, R_HOLDER, ALL_TG_PT, relative target
// port identifiers and both iSCSI TransportID formats.
func TestReadFullStatus(t *testing.T) {
	e := newPREnv(t)
	a := e.session(0, prInitA, 1)
	b := e.session(1, prInitB, 0xabc)
	e.mustProut(a, scsi.PROutRegister, 0, 0, 0xa, pfSpecIPT, tidBytes(prInitC, ""))
	e.mustProut(b, scsi.PROutRegister, 0, 0, 0xb, pfAllTgPt)
	e.mustProut(a, scsi.PROutReserve, prTypeWERO, 0xa, 0, 0)
	gen, got := e.readFullStatus(b)
	want := []fullStatus{
		{key: 0xa, holder: true, typ: prTypeWERO, relPort: 1, tidName: prInitA, tidISID: "000000000001", tidFmt01: true},
		{key: 0xa, relPort: 1, tidName: prInitC},
		{key: 0xb, allTgPt: true, tidName: prInitB, tidISID: "000000000abc", tidFmt01: true},
	}
	if gen != 2 || len(got) != len(want) {
		t.Fatalf("generation %d, %d descriptors: %+v", gen, len(got), got)
	}
	for i := range want {
		got[i].tid = nil
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("descriptor %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Under an all-registrants type every registrant is a holder.
	e.mustProut(a, scsi.PROutRelease, prTypeWERO, 0xa, 0, 0)
	e.mustProut(b, scsi.PROutReserve, prTypeEAAR, 0xb, 0, 0)
	_, got = e.readFullStatus(a)
	for i, fs := range got {
		if !fs.holder || fs.typ != prTypeEAAR {
			t.Errorf("descriptor %d under all-registrants: %+v", i, fs)
		}
	}
	// Truncation keeps the additional length.
	r := e.run(a, prinCDB(scsi.PRInReadFullStatus, 10), nil)
	if len(r.data) != 10 || binary.BigEndian.Uint32(r.data[4:8]) < 3*24 {
		t.Fatalf("truncated READ FULL STATUS % x", r.data)
	}
}

// TestParseTransportIDs: a list of TransportIDs in a parameter list,
// each checked; a malformed one, or one of another protocol than the
// nexus, is INVALID FIELD IN PARAMETER LIST pointing at it.
func TestParseTransportIDs(t *testing.T) {
	a, c := tidBytes(prInitA, "00023d000001"), tidBytes(prInitC, "")
	tids, res := parseTransportIDs(append(append([]byte(nil), a...), c...), 28, scsi.ProtocolISCSI)
	if res != nil || len(tids) != 2 || tids[0].off != 28 || tids[1].off != 28+len(a) ||
		tids[0].id.ISCSIName() != prInitA || tids[1].id.ISCSIName() != prInitC {
		t.Fatalf("%+v %v", tids, res)
	}
	fc := scsi.FCTransportID([8]byte{0x21}).AppendTo(nil)
	for _, tc := range []struct {
		name  string
		list  []byte
		proto scsi.ProtocolID
		field int
	}{
		{"short header", append(append([]byte(nil), a...), 0x05, 0, 0), scsi.ProtocolISCSI, 24 + len(a)},
		{"empty name", []byte{0x05, 0, 0, 4, 0, 0, 0, 0}, scsi.ProtocolISCSI, 24},
		{"format 01b without ISID", []byte{0x45, 0, 0, 8, 'i', 'q', 'n', 0, 0, 0, 0, 0}, scsi.ProtocolISCSI, 24},
		{"format 11b", []byte{0xc5, 0, 0, 8, 'i', 'q', 'n', 0, 0, 0, 0, 0}, scsi.ProtocolISCSI, 24},
		{"FC from an iSCSI nexus", fc, scsi.ProtocolISCSI, 24},
		{"iSCSI from an FC nexus", a, scsi.ProtocolFC, 24},
	} {
		_, res := parseTransportIDs(tc.list, 24, tc.proto)
		if res == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		sn, err := scsi.ParseSense(res.Sense)
		if err != nil || sn.ASC != scsi.ASCInvalidFieldInParameterList || res.Sense[15]&0x80 == 0 ||
			int(binary.BigEndian.Uint16(res.Sense[16:18])) != tc.field {
			t.Errorf("%s: sense % x %v, want field %d", tc.name, res.Sense, err, tc.field)
		}
	}
	if tids, res := parseTransportIDs(fc, 0, scsi.ProtocolFC); res != nil || len(tids) != 1 {
		t.Errorf("FC from an FC nexus: %+v %v", tids, res)
	}
}

// TestPRUnitAttentions: who is told what (SPC-4 5.13.11, 5.13.12).
func TestPRUnitAttentions(t *testing.T) {
	const k1, k2, k3 = 1, 2, 3
	tests := []struct {
		name  string
		steps func(e *prEnv, a, b, c, u *stmf.Session)
		// unit attentions expected for a, b, c (registered) and u (not).
		want [4][]scsi.ASC
	}{
		{"CLEAR", func(e *prEnv, a, b, c, u *stmf.Session) {
			e.mustProut(a, scsi.PROutReserve, prTypeWE, k1, 0, 0)
			e.mustProut(b, scsi.PROutClear, 0, k2, 0, 0)
		}, [4][]scsi.ASC{{scsi.ASCReservationsPreempted}, nil, {scsi.ASCReservationsPreempted}, nil}},
		{"PREEMPT a registration", func(e *prEnv, a, b, c, u *stmf.Session) {
			e.mustProut(b, scsi.PROutPreempt, prTypeWE, k2, k1, 0)
		}, [4][]scsi.ASC{{scsi.ASCRegistrationsPreempted}, nil, nil, nil}},
		{"PREEMPT the holder with another type", func(e *prEnv, a, b, c, u *stmf.Session) {
			e.mustProut(a, scsi.PROutReserve, prTypeWE, k1, 0, 0)
			e.mustProut(b, scsi.PROutPreempt, prTypeEA, k2, k1, 0)
		}, [4][]scsi.ASC{{scsi.ASCRegistrationsPreempted}, nil, {scsi.ASCReservationsReleased}, nil}},
		{"RELEASE of a registrants-only reservation", func(e *prEnv, a, b, c, u *stmf.Session) {
			e.mustProut(a, scsi.PROutReserve, prTypeWERO, k1, 0, 0)
			e.mustProut(a, scsi.PROutRelease, prTypeWERO, k1, 0, 0)
		}, [4][]scsi.ASC{nil, {scsi.ASCReservationsReleased}, {scsi.ASCReservationsReleased}, nil}},
		{"RELEASE of an all-registrants reservation", func(e *prEnv, a, b, c, u *stmf.Session) {
			e.mustProut(a, scsi.PROutReserve, prTypeEAAR, k1, 0, 0)
			e.mustProut(c, scsi.PROutRelease, prTypeEAAR, k3, 0, 0)
		}, [4][]scsi.ASC{{scsi.ASCReservationsReleased}, {scsi.ASCReservationsReleased}, nil, nil}},
		{"RELEASE of Write Exclusive tells nobody", func(e *prEnv, a, b, c, u *stmf.Session) {
			e.mustProut(a, scsi.PROutReserve, prTypeWE, k1, 0, 0)
			e.mustProut(a, scsi.PROutRelease, prTypeWE, k1, 0, 0)
		}, [4][]scsi.ASC{}},
		{"registrants-only holder unregisters", func(e *prEnv, a, b, c, u *stmf.Session) {
			e.mustProut(a, scsi.PROutReserve, prTypeEARO, k1, 0, 0)
			e.mustProut(a, scsi.PROutRegister, 0, k1, 0, 0)
		}, [4][]scsi.ASC{nil, {scsi.ASCReservationsReleased}, {scsi.ASCReservationsReleased}, nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newPREnv(t)
			a, b, c, u := e.session(0, prInitA, 1), e.session(0, prInitB, 2), e.session(1, prInitC, 3), e.session(1, prInitA, 9)
			e.clearUAs(a, b, c, u)
			e.mustProut(a, scsi.PROutRegister, 0, 0, k1, 0)
			e.mustProut(b, scsi.PROutRegister, 0, 0, k2, 0)
			e.mustProut(c, scsi.PROutRegister, 0, 0, k3, 0)
			tc.steps(e, a, b, c, u)
			for i, s := range []*stmf.Session{a, b, c, u} {
				if got := e.pendingUAs(s); !reflect.DeepEqual(got, tc.want[i]) {
					t.Errorf("session %d: unit attentions %04x, want %04x", i, got, tc.want[i])
				}
			}
		})
	}
}

// TestPreemptAndAbort: PREEMPT AND ABORT aborts the preempted I_T nexus's
// tasks (their responses never reach the initiator); PREEMPT does not.
func TestPreemptAndAbort(t *testing.T) {
	for _, abort := range []bool{true, false} {
		e := newPREnv(t)
		a, b := e.session(0, prInitA, 1), e.session(0, prInitB, 2)
		e.clearUAs(a, b)
		e.mustProut(a, scsi.PROutRegister, 0, 0, 1, 0)
		e.mustProut(b, scsi.PROutRegister, 0, 0, 2, 0)
		victim := e.start(b, 10, write10CDB, nil, true) // waits for Data-Out until aborted
		bystander := e.start(a, 11, write10CDB, nil, true)
		sa := byte(scsi.PROutPreempt)
		if abort {
			sa = scsi.PROutPreemptAbort
		}
		e.mustProut(a, sa, prTypeEA, 1, 2, 0)
		if abort {
			if r := victim.wait(t); r != nil {
				t.Fatalf("preempted task completed with %v", r.Status)
			}
		} else {
			b.AbortTask(10)
			victim.wait(t)
		}
		select {
		case r := <-bystander.done:
			t.Fatalf("the preempting nexus's own task was aborted (%v)", r)
		default:
		}
		a.AbortTask(11)
		bystander.wait(t)
	}
}

// TestAPTPLSurvivesRestart: with APTPL the registrations and the
// reservation are stored with the LU and come back after Close and Import;
// without it they are lost.
func TestAPTPLSurvivesRestart(t *testing.T) {
	for _, metaFile := range []bool{false, true} {
		t.Run(fmt.Sprintf("metafile=%v", metaFile), func(t *testing.T) {
			dir := t.TempDir()
			cfg := fileConfig{DataFile: filepath.Join(dir, "lu.img"), Size: 1 << 20}
			if metaFile {
				cfg.MetaFile = filepath.Join(dir, "lu.meta")
			}
			d, err := createFile(context.Background(), cfg, nil, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			restart := func() *prEnv {
				t.Helper()
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
				data := cfg.DataFile
				if metaFile {
					data = ""
				}
				if d, err = importFile(context.Background(), data, cfg.MetaFile, quietLog()); err != nil {
					t.Fatal(err)
				}
				return newPREnvDisk(t, d)
			}
			e := newPREnvDisk(t, d)
			a, b := e.session(0, prInitA, 1), e.session(1, prInitB, 2)
			e.mustProut(a, scsi.PROutRegister, 0, 0, 0xaa, pfAPTPL)
			e.mustProut(b, scsi.PROutRegister, 0, 0, 0xbb, pfAPTPL|pfAllTgPt)
			e.mustProut(a, scsi.PROutReserve, prTypeEA, 0xaa, 0, 0)
			gen0, fs0 := e.readFullStatus(a)
			a.Close()
			b.Close()

			e = restart()
			a, b = e.session(0, prInitA, 1), e.session(1, prInitB, 2)
			gen, fs := e.readFullStatus(b)
			if gen != gen0 || !reflect.DeepEqual(fs, fs0) {
				t.Fatalf("after restart: generation %d %+v, want %d %+v", gen, fs, gen0, fs0)
			}
			expectGood(t, "holder writes after restart", e.run(a, write10CDB, block512))
			expectConflict(t, "registrant reads under EA after restart", e.run(b, read10CDB, nil))
			if r := e.run(a, prinCDB(scsi.PRInReportCaps, 8), nil); r.data[3]&1 == 0 {
				t.Fatal("PTPL_A clear after restart")
			}

			// A REGISTER without APTPL turns persistence off: the next
			// restart forgets everything.
			e.mustProut(b, scsi.PROutRegister, 0, 0xbb, 0xbc, 0)
			a.Close()
			b.Close()
			e = restart()
			a = e.session(0, prInitA, 1)
			if gen, keys := e.readKeys(a); gen != 0 || len(keys) != 0 {
				t.Fatalf("state kept without APTPL: generation %d keys %x", gen, keys)
			}
			if ok, _, _ := e.readReservation(a); ok {
				t.Fatal("reservation kept without APTPL")
			}
			expectGood(t, "write after losing the reservation", e.run(a, write10CDB, block512))
		})
	}
}

// TestPersistedPRRejects: a damaged stored state is refused, not trusted.
func TestPersistedPRRejects(t *testing.T) {
	p := &prState{gen: 7, aptpl: true, resType: prTypeWERO}
	p.regs = []*registration{{key: 1, tid: scsi.ISCSIPortTransportID("iqn.a", [6]byte{5: 1}), tport: "iqn.t,t,0x0001", relPort: 1},
		{key: 2, tid: scsi.ISCSIDeviceTransportID("iqn.b"), allTgPt: true}}
	p.holder = p.regs[1]
	enc, err := encodePR(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := decodePR(enc)
	if err != nil || q.gen != 7 || !q.aptpl || q.resType != prTypeWERO || q.holder != q.regs[1] ||
		!reflect.DeepEqual(*q.regs[0], *p.regs[0]) || !reflect.DeepEqual(*q.regs[1], *p.regs[1]) {
		t.Fatalf("round trip: %+v %v", q, err)
	}
	for i := 0; i < len(enc); i++ {
		if _, err := decodePR(enc[:i]); err == nil && i > 0 {
			t.Errorf("truncated to %d bytes: accepted", i)
		}
	}
	mut := func(f func([]byte)) []byte { b := append([]byte(nil), enc...); f(b); return b }
	for name, b := range map[string][]byte{
		"version":       mut(func(b []byte) { b[0] = 9 }),
		"type":          mut(func(b []byte) { b[6] = 2 }),
		"holder":        mut(func(b []byte) { b[8] = 5 }),
		"count":         mut(func(b []byte) { b[10] = 3 }),
		"trailing data": append(append([]byte(nil), enc...), 0),
	} {
		if _, err := decodePR(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Too many registrations to persist: INSUFFICIENT REGISTRATION RESOURCES.
	big := &prState{aptpl: true}
	for i := 0; i < 200; i++ {
		big.regs = append(big.regs, &registration{key: uint64(i), tid: scsi.ISCSIDeviceTransportID(string(bytes.Repeat([]byte("n"), 200))), tport: "t"})
	}
	if _, err := encodePR(big); err == nil {
		t.Fatal("oversized state encoded")
	}
}

// TestAPTPLTooManyRegistrations: registering beyond what the metadata can
// hold fails cleanly and changes nothing.
func TestAPTPLTooManyRegistrations(t *testing.T) {
	e := newPREnv(t)
	long := prInitA + string(bytes.Repeat([]byte("x"), 180))
	var last resp
	n := 0
	for ; n < 200; n++ {
		s := e.session(n%2, long, uint64(n+1))
		last = e.prout(s, scsi.PROutRegister, 0, 0, uint64(n+1), pfAPTPL)
		if last.status != scsi.StatusGood {
			break
		}
	}
	checkOutcome(t, "registration beyond the persistent limit", "insuff", last)
	if _, keys := e.readKeys(e.session(0, prInitB, 1)); len(keys) != n {
		t.Fatalf("%d keys after %d good registrations", len(keys), n)
	}
}

// FuzzPROut: arbitrary PERSISTENT RESERVE OUT/IN CDBs and parameter lists
// from a few I_T nexuses never panic and always complete.
func FuzzPROut(f *testing.F) {
	f.Add(byte(0), byte(0), byte(0), proutParam(0, 1, 0))
	f.Add(byte(1), byte(1), byte(1), proutParam(1, 0, 0))
	f.Add(byte(0), byte(0), byte(2), proutParam(0, 3, pfSpecIPT|pfAPTPL, tidBytes(prInitB, "000000000002")))
	f.Add(byte(7), byte(3), byte(0), moveParam(1, 2, true, true, 1, tidBytes(prInitC, "")))
	f.Add(byte(0x83), byte(0), byte(1), []byte(nil))
	f.Fuzz(func(t *testing.T, sa, typ, who byte, param []byte) {
		e := newPREnv(t)
		ss := []*stmf.Session{e.session(0, prInitA, 1), e.session(1, prInitB, 2), e.session(0, prInitC, 3)}
		s := ss[int(who)%len(ss)]
		e.run(ss[0], proutCDB(scsi.PROutRegister, 0, 0, 24), proutParam(0, 1, 0))
		e.run(ss[1], proutCDB(scsi.PROutRegister, 0, 0, 24), proutParam(0, 2, 0))
		var cdb []byte
		if sa&0x80 != 0 {
			cdb = prinCDB(sa&0x1f, uint16(len(param)))
			param = nil
		} else {
			cdb = proutCDB(sa&0x1f, typ>>4, typ&0xf, uint32(len(param)))
		}
		r := e.run(s, cdb, param)
		if r.status != scsi.StatusGood && r.status != scsi.StatusCheckCondition && r.status != scsi.StatusReservationConflict {
			t.Fatalf("status %v", r.status)
		}
		for _, x := range ss {
			e.run(x, read10CDB, nil)
			e.run(x, prinCDB(scsi.PRInReadFullStatus, 4096), nil)
		}
		if e.d.panics.Load() != 0 {
			t.Fatal("a handler panicked")
		}
	})
}
