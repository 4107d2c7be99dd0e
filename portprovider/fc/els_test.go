package fc_test

import (
	"errors"
	"testing"

	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/loopback"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// TestLoginLifecycle walks PLOGI, PRLI, ADISC, RSCN, PRLO and LOGO and
// checks the remote port database and the stmf session at each step.
func TestLoginLifecycle(t *testing.T) {
	e := newEnv(t, fc.Config{})
	ctx := ctxT(t)
	in := e.ini

	// Nothing before PLOGI: PRLI is refused, FCP_CMND is dropped.
	if _, err := in.PRLI(ctx); !errors.Is(err, loopback.ErrRejected) {
		t.Fatalf("PRLI before PLOGI: %v", err)
	}
	dropped := e.port.Stats().Dropped
	if _, err := in.SendCmnd(ctx, tur()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "FCP_CMND without login dropped", func() bool { return e.port.Stats().Dropped == dropped+1 })

	prm, err := in.PLOGI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if prm.PortName != targetWWPN || prm.NodeName != targetWWNN || prm.RxSize != fc.MaxPayload {
		t.Fatalf("PLOGI LS_ACC %+v", prm)
	}
	rps := e.port.RemotePorts()
	if len(rps) != 1 || rps[0].PortName != iniWWPN || rps[0].PortID != iniID || rps[0].Initiator {
		t.Fatalf("after PLOGI: %+v", rps)
	}
	if n := len(e.fw.Sessions()); n != 0 {
		t.Fatalf("%d sessions before PRLI", n)
	}

	pg, err := in.PRLI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pg.Type != 0x08 || pg.Flags&0x0f != 1 || pg.Flags&0x20 == 0 || pg.Params&0x10 == 0 || pg.Params&0x20 != 0 {
		t.Fatalf("PRLI LS_ACC page %+v: want FCP, executed, image pair, target function only", pg)
	}
	ss := e.fw.Sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions after PRLI", len(ss))
	}
	nx := ss[0].Nexus
	wantTID := scsi.FCTransportID(iniWWPN)
	if nx.Protocol != scsi.ProtocolFC || nx.InitiatorName != "wwn.10000000C9112233" || !nx.InitiatorPortID.Equal(wantTID) ||
		nx.TargetName != "wwn.2100001B32AABBCC" {
		t.Fatalf("nexus %+v", nx)
	}

	// ADISC answers our names and address.
	p, err := in.ELS(ctx, fc.AppendADISC(nil, fc.ELSADISC, fc.ADISC{PortName: iniWWPN, NodeName: iniWWNN, PortID: iniID}))
	if err != nil {
		t.Fatal(err)
	}
	a, err := fc.ParseADISC(p)
	if err != nil || p[0] != fc.ELSLSACC || a.PortName != targetWWPN || a.NodeName != targetWWNN || a.PortID != targetID {
		t.Fatalf("ADISC reply % x (%v)", p, err)
	}
	// RSCN is acknowledged and keeps the login.
	p, err = in.ELS(ctx, fc.AppendRSCN(nil, []fc.RSCNPage{{Format: 0, ID: iniID}}))
	if err != nil || p[0] != fc.ELSLSACC || e.port.Stats().RSCNs != 1 || len(e.fw.Sessions()) != 1 {
		t.Fatalf("RSCN reply % x (%v)", p, err)
	}
	// An ELS we do not implement gets LS_RJT "command not supported".
	p, err = in.ELS(ctx, []byte{0x50, 0, 0, 0}) // PDISC
	if err != nil || p[0] != fc.ELSLSRJT || p[5] != 0x0b {
		t.Fatalf("PDISC reply % x (%v)", p, err)
	}

	// PRLO ends the session, keeps the PLOGI.
	p, err = in.ELS(ctx, fc.AppendPRLI(nil, fc.ELSPRLO, []fc.PRLIPage{{Type: 0x08}}))
	if err != nil || p[0] != fc.ELSLSACC {
		t.Fatalf("PRLO reply % x (%v)", p, err)
	}
	eventually(t, "session closed by PRLO", func() bool { return len(e.fw.Sessions()) == 0 })
	if rps := e.port.RemotePorts(); len(rps) != 1 || rps[0].Initiator {
		t.Fatalf("after PRLO: %+v", rps)
	}

	// A new PRLI, then LOGO removes everything.
	if _, err := in.PRLI(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.LOGO(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "logout", func() bool { return len(e.fw.Sessions()) == 0 && len(e.port.RemotePorts()) == 0 })
	// After LOGO, ADISC needs a new login.
	if p, err := in.ELS(ctx, fc.AppendADISC(nil, fc.ELSADISC, fc.ADISC{})); err != nil || p[0] != fc.ELSLSRJT || p[6] != 0x1e {
		t.Fatalf("ADISC after LOGO: % x (%v)", p, err)
	}
}

// TestPLOGIReplacesLogin checks implicit logout: a second PLOGI from the
// same WWPN at a new address replaces the first login and its session.
func TestPLOGIReplacesLogin(t *testing.T) {
	e := newEnv(t, fc.Config{})
	e.login(t)
	moved := e.ad.NewInitiator(iniID+1, targetID, iniWWPN, iniWWNN)
	if err := moved.Login(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one session", func() bool { return len(e.fw.Sessions()) == 1 })
	if rps := e.port.RemotePorts(); len(rps) != 1 || rps[0].PortID != iniID+1 {
		t.Fatalf("remote ports %+v", rps)
	}
	// The old address is no longer logged in.
	if _, err := e.ini.PRLI(ctxT(t)); !errors.Is(err, loopback.ErrRejected) {
		t.Fatalf("PRLI from the old address: %v", err)
	}
}

// TestLinkAndOffline checks that link down logs everyone out, and that an
// offline target refuses PLOGI.
func TestLinkAndOffline(t *testing.T) {
	e := newEnv(t, fc.Config{})
	ctx := ctxT(t)
	e.login(t)
	if st := e.port.State(); !st.Online || !st.Link.Up || st.Link.PortID != targetID || st.Link.SpeedMbs != 8000 || st.Sessions != 1 {
		t.Fatalf("state %+v", st)
	}
	if err := e.ad.LinkDown(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "link down logout", func() bool { return len(e.fw.Sessions()) == 0 && len(e.port.RemotePorts()) == 0 })
	if err := e.ad.LinkUp(ctx, targetID, 8000); err != nil {
		t.Fatal(err)
	}
	e.login(t)

	e.port.Offline()
	if n := len(e.fw.Sessions()); n != 0 {
		t.Fatalf("%d sessions after offline", n)
	}
	// The initiator was sent a LOGO.
	if _, err := e.ini.Await(ctx, func(f *fc.Frame) bool {
		return f.RCtl == fc.RCtlELSReq && len(f.Payload) > 0 && f.Payload[0] == fc.ELSLOGO
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ini.PLOGI(ctx); !errors.Is(err, loopback.ErrRejected) {
		t.Fatalf("PLOGI to an offline target: %v", err)
	}
	if err := e.port.Online(stmf.DefaultPortGroup); err != nil {
		t.Fatal(err)
	}
	e.login(t)
}

// TestELSMalformed sends each ELS with a short payload: LS_RJT, no state.
func TestELSMalformed(t *testing.T) {
	e := newEnv(t, fc.Config{})
	ctx := ctxT(t)
	for _, code := range []byte{fc.ELSPLOGI, fc.ELSPRLI, fc.ELSPRLO, fc.ELSLOGO, fc.ELSADISC, fc.ELSRSCN} {
		p, err := e.ini.ELS(ctx, []byte{code, 0, 0, 0})
		if err != nil {
			t.Fatal(err)
		}
		if p[0] != fc.ELSLSRJT {
			t.Errorf("ELS 0x%02x of 4 bytes: reply % x", code, p)
		}
	}
	if len(e.port.RemotePorts()) != 0 || e.port.Stats().BadFrames != 6 {
		t.Fatalf("remote ports %v, stats %+v", e.port.RemotePorts(), e.port.Stats())
	}
}
