package mgmt

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// resultTransport hands a task's result to the test.
type resultTransport chan *stmf.Result

func (c resultTransport) ReceiveData(context.Context) ([]byte, error) {
	return nil, errors.New("no data")
}
func (c resultTransport) Deliver(r *stmf.Result) { c <- r }
func (c resultTransport) Drop()                  { c <- nil }

// senseOf runs a CDB on LUN 0 of s and returns the sense of a CHECK
// CONDITION (nil when GOOD).
func senseOf(t *testing.T, s *stmf.Session, cdb ...byte) *scsi.Sense {
	t.Helper()
	ch := make(resultTransport, 1)
	task := stmf.NewTask(ch)
	task.RawLUN = scsi.EncodeLUN(0)
	task.CDB = cdb
	task.Tag = uint64(time.Now().UnixNano())
	s.Submit(task)
	select {
	case r := <-ch:
		if r == nil {
			t.Fatal("task dropped")
		}
		if r.Status == scsi.StatusGood {
			return nil
		}
		sn, err := scsi.ParseSense(r.Sense)
		if err != nil {
			t.Fatalf("status %v, sense % x: %v", r.Status, r.Sense, err)
		}
		return sn
	case <-time.After(10 * time.Second):
		t.Fatal("no result within 10s")
	}
	return nil
}

// aluaRig is a manager with a target on the default portal group and one
// on portal group tag 2, an LU seen by all, and a session through tag 2.
func aluaRig(t *testing.T) (*rig, *stmf.Session) {
	t.Helper()
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	addView(t, r, api.AddViewRequest{GUID: a.GUID, LUN: ptr(0)})
	must[api.Empty](t)(r.m.CreateTPG(bg, api.TPG{Name: "2", Portals: []string{"127.0.0.2:3260"}}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.test:one"}))
	tg := must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.test:two", TPGs: &[]string{"2"}}))
	if len(tg.TPGs) != 1 || tg.TPGs[0].Tag != 2 {
		t.Fatalf("target bound with %+v, want tag 2", tg.TPGs)
	}
	// The fake port provider does not register ports: do what iscsi does.
	p, err := r.fw.RegisterPort(stmf.PortSpec{TargetName: "iqn.2026-11.test:two", Name: "iqn.2026-11.test:two,t,0x0002", Group: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.OpenSession(stmf.Initiator{Name: "iqn.2026-11.test:ini", PortName: "iqn.2026-11.test:ini,i,0x1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if sn := senseOf(t, s, 0, 0, 0, 0, 0, 0); sn == nil || sn.ASC != scsi.ASCPowerOnReset {
		t.Fatalf("first command: %+v, want the power-on unit attention", sn)
	}
	return r, s
}

func groupsByTag(gs []api.ALUAGroup) map[uint16]string {
	out := map[uint16]string{}
	for _, g := range gs {
		out[g.Tag] = g.State
	}
	return out
}

func TestSetALUAState(t *testing.T) {
	r, s := aluaRig(t)
	saves := r.st.saves
	g, err := r.m.SetALUAState(bg, api.SetALUAStateRequest{Tag: 2, State: "standby"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (api.ALUAGroup{Tag: 2, State: api.ALUAStandby, Targets: []string{"iqn.2026-11.test:two"}}); !reflect.DeepEqual(g, want) {
		t.Errorf("SetALUAState returned %+v, want %+v", g, want)
	}
	if r.st.saves != saves+1 || !reflect.DeepEqual(r.st.saved.ALUA, []store.ALUAGroup{{Tag: 2, State: api.ALUAStandby}}) {
		t.Fatalf("saved ALUA %+v after %d saves", r.st.saved.ALUA, r.st.saves-saves)
	}
	if st := r.fw.ALUAStates()[2]; st != stmf.ALUAStandby {
		t.Fatalf("live state %v", st)
	}
	if sn := senseOf(t, s, 0, 0, 0, 0, 0, 0); sn == nil || sn.Key != scsi.KeyUnitAttention || sn.ASC != scsi.ASCAsymmetricAccessChanged {
		t.Fatalf("after the change: %+v, want ASYMMETRIC ACCESS STATE CHANGED", sn)
	}
	// The device server refuses by the access state stmf hands it with the
	// task (lu's TestALUAStates checks the answers); here: it is handed.
	if sn := senseOf(t, s, 0, 0, 0, 0, 0, 0); sn != nil {
		t.Fatalf("TEST UNIT READY after the unit attention: %+v", sn)
	}
	if got := r.lus.open["/d/a"].accessSeen(); got != stmf.ALUAStandby {
		t.Fatalf("TEST UNIT READY reached the LU with access state %v, want standby", got)
	}
	state := must[api.State](t)(r.m.GetState(bg, api.Empty{}))
	if got := groupsByTag(state.TargetPortGroups); !reflect.DeepEqual(got, map[uint16]string{1: api.ALUAActiveOptimized, 2: api.ALUAStandby}) {
		t.Fatalf("list-state groups %+v", state.TargetPortGroups)
	}
	if state.TargetPortGroups[0].Tag != 1 || !reflect.DeepEqual(state.TargetPortGroups[0].Targets, []string{"iqn.2026-11.test:one"}) {
		t.Errorf("group 1: %+v", state.TargetPortGroups[0])
	}

	// The same state again: nothing saved, no unit attention.
	saves = r.st.saves
	must[api.ALUAGroup](t)(r.m.SetALUAState(bg, api.SetALUAStateRequest{Tag: 2, State: "Standby"}))
	if r.st.saves != saves {
		t.Error("setting the current state again saved the configuration")
	}
	if sn := senseOf(t, s, 0x12, 0, 0, 0, 36, 0); sn != nil {
		t.Errorf("INQUIRY on a standby port: %+v", sn)
	}

	// A restart restores the state before any session exists.
	n := r.restart(t)
	if st := n.fw.ALUAStates()[2]; st != stmf.ALUAStandby {
		t.Fatalf("after restart: group 2 %v", st)
	}

	// Back to active/optimized: the stored entry goes, I/O works.
	must[api.ALUAGroup](t)(r.m.SetALUAState(bg, api.SetALUAStateRequest{Tag: 2, State: "active/optimized"}))
	if len(r.st.saved.ALUA) != 0 {
		t.Errorf("stored ALUA after active-optimized: %+v", r.st.saved.ALUA)
	}
	if sn := senseOf(t, s, 0, 0, 0, 0, 0, 0); sn == nil || sn.ASC != scsi.ASCAsymmetricAccessChanged {
		t.Fatalf("after the change back: %+v", sn)
	}
	if sn := senseOf(t, s, 0, 0, 0, 0, 0, 0); sn != nil {
		t.Fatalf("TEST UNIT READY on an optimized port: %+v", sn)
	}
}

func TestSetALUAStateRefusals(t *testing.T) {
	r, s := aluaRig(t)
	must[api.ALUAGroup](t)(r.m.SetALUAState(bg, api.SetALUAStateRequest{Tag: 2, State: "an"}))
	_ = senseOf(t, s, 0, 0, 0, 0, 0, 0) // the change's unit attention
	saves, saved := r.st.saves, r.st.saved.Clone()
	for _, tc := range []struct {
		req  api.SetALUAStateRequest
		code api.Code
	}{
		{api.SetALUAStateRequest{Tag: 2, State: "standbyy"}, api.CodeInvalidALUAState},
		{api.SetALUAStateRequest{Tag: 2, State: ""}, api.CodeInvalidALUAState},
		{api.SetALUAStateRequest{Tag: 0, State: "standby"}, api.CodeInvalidTPGTag},
		{api.SetALUAStateRequest{Tag: -1, State: "standby"}, api.CodeInvalidTPGTag},
		{api.SetALUAStateRequest{Tag: 65536, State: "standby"}, api.CodeInvalidTPGTag},
		{api.SetALUAStateRequest{Tag: 7, State: "standby"}, api.CodeTPGTagNotFound},
	} {
		_, err := r.m.SetALUAState(bg, tc.req)
		wantCode(t, err, tc.code)
	}
	// A failed save changes nothing live.
	r.st.setFail(true)
	_, err := r.m.SetALUAState(bg, api.SetALUAStateRequest{Tag: 2, State: "unavailable"})
	wantCode(t, err, api.CodeInternal)
	r.st.setFail(false)
	if r.st.saves != saves || !reflect.DeepEqual(r.st.saved, saved) {
		t.Errorf("refused requests changed the stored state: %+v", r.st.saved.ALUA)
	}
	if st := r.fw.ALUAStates()[2]; st != stmf.ALUAActiveNonOptimized {
		t.Errorf("live state after refusals: %v", st)
	}
	if sn := senseOf(t, s, 0, 0, 0, 0, 0, 0); sn != nil {
		t.Errorf("a refused change raised %+v", sn)
	}
	if got := groupsByTag(must[api.State](t)(r.m.GetState(bg, api.Empty{})).TargetPortGroups); got[2] != api.ALUAActiveNonOptimized {
		t.Errorf("list-state after refusals: %v", got)
	}
}

func TestRestoreRejectsBadALUAState(t *testing.T) {
	for _, bad := range []store.ALUAGroup{{Tag: 2, State: "sleeping"}, {Tag: 0, State: "standby"}} {
		m := New(Config{Log: quietLog(), Framework: stmf.New(quietLog()), Store: &memStore{}, LUs: newFakeLUs()})
		if err := m.Restore(bg, &store.State{Version: store.Version, ALUA: []store.ALUAGroup{bad}}); err == nil {
			t.Errorf("Restore accepted stored ALUA %+v", bad)
		}
	}
}
