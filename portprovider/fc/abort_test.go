package fc_test

import (
	"bytes"
	"testing"

	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/loopback"
	"github.com/costar-project/costar/scsi"
)

// startWrite sends a WRITE and waits for its first FCP_XFER_RDY: the task
// is in the LU, waiting for data. It returns OX_ID and RX_ID.
func startWrite(t *testing.T, in *loopback.Initiator, lba uint32, blocks uint16) (uint16, uint16) {
	t.Helper()
	ctx := ctxT(t)
	ox, err := in.SendCmnd(ctx, write10(lba, blocks, uint32(blocks)*blockLen))
	if err != nil {
		t.Fatal(err)
	}
	f, err := in.Await(ctx, loopback.OnExchange(ox))
	if err != nil {
		t.Fatal(err)
	}
	if f.RCtl != fc.RCtlFCPXferRdy {
		t.Fatalf("first reply to WRITE: R_CTL 0x%02x % x", f.RCtl, f.Payload)
	}
	return ox, f.RXID
}

// assertSilent checks that nothing more arrived on exchange ox once a
// round trip (a TEST UNIT READY) has completed after it.
func assertSilent(t *testing.T, e *env, in *loopback.Initiator, ox ...uint16) {
	t.Helper()
	e.cmd(t, in, tur(), nil)
	for _, x := range ox {
		if _, err := in.Await(cancelled(), loopback.OnExchange(x)); err == nil {
			t.Fatalf("exchange %#x answered after it was ended", x)
		}
	}
}

// TestABTSWriteInProgress aborts a write waiting for its data: BA_ACC,
// no FCP_RSP, late FCP_DATA dropped, nothing written, the next I/O works.
func TestABTSWriteInProgress(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	ctx := ctxT(t)
	ox, rx := startWrite(t, e.ini, 40, 8)
	f, err := e.ini.ABTS(ctx, ox, rx)
	if err != nil {
		t.Fatal(err)
	}
	if f.RCtl != fc.RCtlBAACC || len(f.Payload) < 12 || f.Payload[4] != byte(ox>>8) || f.Payload[5] != byte(ox) {
		t.Fatalf("ABTS answer R_CTL 0x%02x % x", f.RCtl, f.Payload)
	}
	unknown := e.port.Stats().UnknownExchange
	if err := e.ini.SendData(ctx, ox, rx, 0, pattern(8*blockLen, 9)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "late data dropped", func() bool { return e.port.Stats().UnknownExchange == unknown+2 })
	assertSilent(t, e, e.ini, ox)
	eventually(t, "exchange retired", func() bool { return e.port.RemotePorts()[0].Exchanges == 0 })
	got := make([]byte, 8*blockLen)
	if err := e.st.ReadAt(got, 40*blockLen); err != nil || !bytes.Equal(got, make([]byte, len(got))) {
		t.Fatalf("aborted write reached the store (%v)", err)
	}
	data := pattern(8*blockLen, 4)
	if r := e.cmd(t, e.ini, write10(40, 8, uint32(len(data))), data); r.Status != scsi.StatusGood {
		t.Fatalf("write after abort: %+v", r.Rsp)
	}
}

// TestUnknownExchange sends frames for exchanges the target never had.
func TestUnknownExchange(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	ctx := ctxT(t)
	f, err := e.ini.ABTS(ctx, 0x4242, fc.UnassignedXID)
	if err != nil || f.RCtl != fc.RCtlBARJT {
		t.Fatalf("ABTS of an unknown exchange: R_CTL 0x%02x (%v)", f.RCtl, err)
	}
	// ABTS with the wrong RX_ID of a live exchange is refused too, and
	// leaves it alone.
	ox, rx := startWrite(t, e.ini, 0, 1)
	if f, err := e.ini.ABTS(ctx, ox, rx+1); err != nil || f.RCtl != fc.RCtlBARJT {
		t.Fatalf("ABTS with a wrong RX_ID: R_CTL 0x%02x (%v)", f.RCtl, err)
	}
	unknown := e.port.Stats().UnknownExchange
	if err := e.ini.SendData(ctx, 0x4343, 7, 0, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if err := e.ini.SendData(ctx, ox, rx+1, 0, make([]byte, blockLen)); err != nil { // wrong RX_ID
		t.Fatal(err)
	}
	eventually(t, "unknown data dropped", func() bool { return e.port.Stats().UnknownExchange == unknown+2 })
	// The live write still completes with its real RX_ID.
	data := pattern(blockLen, 8)
	if err := e.ini.SendData(ctx, ox, rx, 0, data); err != nil {
		t.Fatal(err)
	}
	r, err := e.ini.Finish(ctx, ox, nil)
	if err != nil || r.Status != scsi.StatusGood {
		t.Fatalf("write: %+v %v", r.Rsp, err)
	}
	// Data at a wrong relative offset fails the command, not the port.
	ox, rx = startWrite(t, e.ini, 0, 2)
	if err := e.ini.SendData(ctx, ox, rx, blockLen, data); err != nil {
		t.Fatal(err)
	}
	if r, err := e.ini.Finish(ctx, ox, nil); err != nil || r.Status == scsi.StatusGood {
		t.Fatalf("misplaced data: %+v %v", r.Rsp, err)
	}
}

// TestLUNResetOutstanding resets the LU under two waiting writes: the
// TMF completes, the writes never answer, and the next command sees the
// reset's unit attention.
func TestLUNResetOutstanding(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	ctx := ctxT(t)
	ox1, _ := startWrite(t, e.ini, 0, 4)
	ox2, _ := startWrite(t, e.ini, 8, 4)
	rsp, err := e.ini.TMF(ctx, [8]byte{}, fc.TMFLUNReset)
	if err != nil || !rsp.RspValid || rsp.RspCode != fc.RspComplete {
		t.Fatalf("LUN RESET: %+v %v", rsp, err)
	}
	eventually(t, "exchanges retired", func() bool { return e.port.RemotePorts()[0].Exchanges == 0 })
	r := e.cmd(t, e.ini, tur(), nil)
	if r.Status != scsi.StatusCheckCondition || senseKey(r.Sense) != scsi.KeyUnitAttention {
		t.Fatalf("after LUN RESET: %+v", r.Rsp)
	}
	assertSilent(t, e, e.ini, ox1, ox2)
}

// TestTaskManagement answers each FCP task management flag.
func TestTaskManagement(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	ctx := ctxT(t)
	noLU := [8]byte{0, 9}
	tests := []struct {
		name string
		lun  [8]byte
		flag byte
		want byte
	}{
		{"abort task set", [8]byte{}, fc.TMFAbortTaskSet, fc.RspComplete},
		{"clear task set", [8]byte{}, fc.TMFClearTaskSet, fc.RspComplete},
		{"lun reset", [8]byte{}, fc.TMFLUNReset, fc.RspComplete},
		{"lun reset, no such LU", noLU, fc.TMFLUNReset, fc.RspTMFIncorrectL},
		{"target reset", [8]byte{}, fc.TMFTargetReset, fc.RspComplete},
		{"clear aca", [8]byte{}, fc.TMFClearACA, fc.RspTMFRejected},
		{"two flags", [8]byte{}, fc.TMFLUNReset | fc.TMFClearTaskSet, fc.RspInvalidCmnd},
	}
	for _, tc := range tests {
		rsp, err := e.ini.TMF(ctx, tc.lun, tc.flag)
		if err != nil || !rsp.RspValid || rsp.RspCode != tc.want {
			t.Errorf("%s: %+v %v, want code %d", tc.name, rsp, err, tc.want)
		}
	}
	// ABORT TASK SET takes this nexus's waiting write with it (after the
	// resets' unit attention).
	e.cmd(t, e.ini, tur(), nil)
	ox, _ := startWrite(t, e.ini, 0, 1)
	if rsp, err := e.ini.TMF(ctx, [8]byte{}, fc.TMFAbortTaskSet); err != nil || rsp.RspCode != fc.RspComplete {
		t.Fatalf("ABORT TASK SET: %+v %v", rsp, err)
	}
	eventually(t, "exchange retired", func() bool { return e.port.RemotePorts()[0].Exchanges == 0 })
	assertSilent(t, e, e.ini, ox)
}

// TestLogoutWithTasksInFlight logs out with writes waiting for data and a
// read queued: the session ends, the LU finishes the aborted tasks, and
// nothing is sent for them.
func TestLogoutWithTasksInFlight(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	ctx := ctxT(t)
	ox1, _ := startWrite(t, e.ini, 0, 4)
	ox2, _ := startWrite(t, e.ini, 8, 4)
	if err := e.ini.LOGO(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "session closed", func() bool { return len(e.fw.Sessions()) == 0 && len(e.port.RemotePorts()) == 0 })
	// A new login works and the old exchanges stay silent.
	e.login(t)
	assertSilent(t, e, e.ini, ox1, ox2)
}
