package fc_test

import (
	"testing"
	"time"

	"github.com/costar-project/costar/portprovider/fc"
)

// TestP2PFLOGI: a point-to-point FLOGI is accepted with our service
// parameters; when our port name is the greater, the target sends PLOGI
// (again after LS_RJT busy), and the peer's LS_ACC logs it in so its PRLI
// opens a session. With the smaller name the target waits for the peer's
// PLOGI.
func TestP2PFLOGI(t *testing.T) {
	e := newEnv(t, fc.Config{})
	ctx := ctxT(t)
	in := e.ini // its port name 10:00:… sorts below the target's 21:00:…
	flogi := fc.AppendPLOGI(nil, iniWWPN, iniWWNN, 2048)
	flogi[0] = fc.ELSFLOGI
	acc, err := in.ELS(ctx, flogi)
	if err != nil || acc[0] != fc.ELSLSACC {
		t.Fatalf("FLOGI: % x, %v", acc, err)
	}
	prm, err := fc.ParsePLOGI(acc)
	if err != nil || prm.PortName != targetWWPN || prm.NodeName != targetWWNN {
		t.Fatalf("FLOGI LS_ACC %+v, %v", prm, err)
	}
	isPLOGI := func(f *fc.Frame) bool {
		return f.RCtl == fc.RCtlELSReq && len(f.Payload) > 0 && f.Payload[0] == fc.ELSPLOGI
	}
	reply := func(req fc.Frame, payload []byte) {
		t.Helper()
		if err := in.Send(ctx, fc.Frame{Header: fc.Header{RCtl: fc.RCtlELSRep, Type: fc.TypeELS,
			FCtl: fc.FCtlExchResponder | fc.FCtlLastSeq | fc.FCtlEndSeq, OXID: req.OXID, RXID: 0x77}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	req, err := in.Await(ctx, isPLOGI)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := fc.ParsePLOGI(req.Payload); err != nil || p.PortName != targetWWPN || req.DID != iniID || req.SID != targetID {
		t.Fatalf("target PLOGI %+v %+v, %v", req.Header, p, err)
	}
	reply(req, []byte{fc.ELSLSRJT, 0, 0, 0, 0, 0x0e, 0, 0}) // busy
	req2, err := in.Await(ctx, isPLOGI)
	if err != nil {
		t.Fatal(err)
	}
	if req2.OXID == req.OXID {
		t.Fatal("retry reused the OX_ID")
	}
	if n := len(e.port.RemotePorts()); n != 0 {
		t.Fatalf("%d remote ports before LS_ACC", n)
	}
	reply(req2, fc.AppendLoginAcc(nil, iniWWPN, iniWWNN, 2048))
	eventually(t, "logged in by the peer's LS_ACC", func() bool {
		rps := e.port.RemotePorts()
		return len(rps) == 1 && rps[0].PortName == iniWWPN && rps[0].PortID == iniID
	})
	if _, err := in.PRLI(ctx); err != nil {
		t.Fatalf("PRLI after the target's PLOGI: %v", err)
	}
	if n := len(e.fw.Sessions()); n != 1 {
		t.Fatalf("%d sessions", n)
	}
	// A stray LS_ACC (nothing outstanding) changes nothing.
	reply(req2, fc.AppendLoginAcc(nil, iniWWPN, iniWWNN, 2048))

	// A peer with the greater name gets no PLOGI: it sends its own.
	hi := e.ad.NewInitiator(0x0a0b0c, targetID, fc.WWN{0x50, 1, 2, 3, 4, 5, 6, 7}, fc.WWN{0x50, 1, 2, 3, 4, 5, 6, 8})
	flogi = fc.AppendPLOGI(nil, hi.PortName, hi.NodeName, 2048)
	flogi[0] = fc.ELSFLOGI
	if acc, err := hi.ELS(ctx, flogi); err != nil || acc[0] != fc.ELSLSACC {
		t.Fatalf("FLOGI from the greater name: % x, %v", acc, err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := hi.Pending(); n != 0 {
		t.Fatalf("%d unsolicited frames to the greater-named peer", n)
	}
	if err := hi.Login(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReloginAfterLinkBounce: after a link bounce the initiator logs in
// again at the same N_Port ID (as Linux does over VN2VN) and I/O works on
// the new session; the old session is gone.
func TestReloginAfterLinkBounce(t *testing.T) {
	e := newEnv(t, fc.Config{})
	ctx := ctxT(t)
	e.login(t)
	old := e.fw.Sessions()
	if err := e.ad.LinkDown(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "logged out on link down", func() bool { return len(e.port.RemotePorts()) == 0 && len(e.fw.Sessions()) == 0 })
	if err := e.ad.LinkUp(ctx, targetID, 8000); err != nil {
		t.Fatal(err)
	}
	e.login(t)
	ss := e.fw.Sessions()
	if len(ss) != 1 || len(old) != 1 || ss[0] == old[0] {
		t.Fatalf("sessions before %v after %v", old, ss)
	}
	if r := e.cmd(t, e.ini, tur(), nil); r.Status != 0 {
		t.Fatalf("TEST UNIT READY after relogin: %+v", r.Rsp)
	}
}
