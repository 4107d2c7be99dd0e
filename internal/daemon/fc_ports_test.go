package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/loopback"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

// TestFCTargetThroughDaemon serves an LU through the daemon over the
// loopback FC adapter: the adapter's port is a target wwn.<WWPN> from the
// start, list-target shows it with the initiator's session, I/O reaches
// the LU's file, and offline-target/online-target log initiators out and
// let them back in.
func TestFCTargetThroughDaemon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wwpn, wwnn := fc.WWN{0x21, 0, 0, 0x1b, 0x32, 1, 2, 3}, fc.WWN{0x20, 0, 0, 0x1b, 0x32, 1, 2, 3}
	ad := loopback.New(wwpn, wwnn)
	d, dir := startFCDaemon(ctx, t, WithFCAdapters(ad))
	m := d.Manager()
	lu, err := m.CreateLU(ctx, api.CreateLURequest{DataFile: filepath.Join(dir, "fc.img"), Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddView(ctx, api.AddViewRequest{GUID: lu.GUID, LUN: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	if err := ad.LinkUp(ctx, 0x010100, 16000); err != nil {
		t.Fatal(err)
	}
	iniWWPN := fc.WWN{0x10, 0, 0, 0, 0xc9, 9, 9, 9}
	in := ad.NewInitiator(0x010200, 0x010100, iniWWPN, fc.WWN{0x20, 0, 0, 0, 0xc9, 9, 9, 9})
	if err := in.Login(ctx); err != nil {
		t.Fatal(err)
	}

	target := func() api.Target {
		t.Helper()
		ts, err := m.ListTargets(ctx, api.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			if x.Name == "wwn.2100001B32010203" {
				return x
			}
		}
		t.Fatalf("no FC target in %+v", ts)
		return api.Target{}
	}
	tg := target()
	if !tg.Online || tg.Provider != "loopback" || tg.Protocol != api.ProtocolFC || len(tg.Sessions) != 1 ||
		tg.Sessions[0].Initiator != "wwn.10000000C9090909" {
		t.Fatalf("list-target: %+v", tg)
	}

	run := func(c *fc.Cmnd, out []byte) loopback.Response {
		t.Helper()
		r, err := in.Command(ctx, c, out)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	run(&fc.Cmnd{CDB: make([]byte, 6)}, nil) // unit attention of the new nexus
	cdb := func(op byte) []byte {
		c := make([]byte, 10)
		c[0] = op
		binary.BigEndian.PutUint32(c[2:], 8)
		binary.BigEndian.PutUint16(c[7:], 8)
		return c
	}
	data := bytes.Repeat([]byte("costar-fc"), 4096/9+1)[:4096]
	if r := run(&fc.Cmnd{CDB: cdb(scsi.OpWrite10), Write: true, DataLn: 4096}, data); r.Status != scsi.StatusGood {
		t.Fatalf("WRITE: %+v", r.Rsp)
	}
	if r := run(&fc.Cmnd{CDB: cdb(scsi.OpRead10), Read: true, DataLn: 4096}, nil); r.Status != scsi.StatusGood || !bytes.Equal(r.Data, data) {
		t.Fatalf("READ: %+v", r.Rsp)
	}

	// A write waits for its Data-Out when the target goes offline: the
	// initiator is sent LOGO, the exchange ends without FCP_RSP (the
	// initiator recovers it), and nothing reaches the LU.
	ox, err := in.SendCmnd(ctx, &fc.Cmnd{CDB: cdb(scsi.OpWrite10), Write: true, DataLn: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Await(ctx, func(f *fc.Frame) bool { return f.OXID == ox && f.RCtl == fc.RCtlFCPXferRdy }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.OfflineTarget(ctx, api.NameRequest{Name: tg.Name}); err != nil {
		t.Fatal(err)
	}
	logo, err := in.Await(ctx, func(f *fc.Frame) bool {
		return f.RCtl == fc.RCtlELSReq && f.Type == fc.TypeELS && len(f.Payload) > 0 && f.Payload[0] == fc.ELSLOGO
	})
	if err != nil {
		t.Fatalf("no LOGO after offline-target: %v", err)
	}
	if id, name, err := fc.ParseLOGO(logo.Payload); err != nil || id != 0x010100 || name != wwpn || logo.SID != 0x010100 {
		t.Fatalf("LOGO from %06x: port %06x name %s: %v", logo.SID, id, name, err)
	}
	// OfflineTarget returned after the session closed, so an FCP_RSP
	// would have arrived by now.
	done, cancelDone := context.WithCancel(ctx)
	cancelDone() // Await only looks at what has arrived
	if f, err := in.Await(done, loopback.OnExchange(ox)); err == nil {
		t.Fatalf("the write in flight was answered after offline-target: R_CTL %#x", f.RCtl)
	}
	if tg := target(); tg.Online || len(tg.Sessions) != 0 {
		t.Fatalf("after offline-target: %+v", tg)
	}
	// A command to the offline target is dropped (no image pair): no
	// answer within a short wait.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = in.Command(short, &fc.Cmnd{CDB: cdb(scsi.OpRead10), Read: true, DataLn: 4096}, nil)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a command to the offline target: %v", err)
	}
	if _, err := in.PLOGI(ctx); !errors.Is(err, loopback.ErrRejected) {
		t.Fatalf("PLOGI to an offline target: %v", err)
	}
	if _, err := m.OnlineTarget(ctx, api.NameRequest{Name: tg.Name}); err != nil {
		t.Fatal(err)
	}
	if err := in.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if tg := target(); !tg.Online || len(tg.Sessions) != 1 {
		t.Fatalf("after online-target: %+v", tg)
	}
	// I/O resumes on the new login (past the new nexus' unit attention)
	// and the aborted write left the LU as it was.
	run(&fc.Cmnd{CDB: make([]byte, 6)}, nil)
	if r := run(&fc.Cmnd{CDB: cdb(scsi.OpRead10), Read: true, DataLn: 4096}, nil); r.Status != scsi.StatusGood || !bytes.Equal(r.Data, data) {
		t.Fatalf("READ after online-target: %+v", r.Rsp)
	}
}

// TestFCNotRegisteredWithoutAdapters: with no adapter there is no "fc"
// provider, so an FC target is refused as for any unknown protocol.
func TestFCNotRegisteredWithoutAdapters(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{StateDir: dir, Socket: filepath.Join(dir, "s"), ShutdownSeconds: 5,
		ISCSI: config.ISCSIConfig{Portals: []string{"127.0.0.1:0"}, AbortCompletedTask: config.AbortTaskDoesNotExist}}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	_, err = d.Manager().AddTarget(context.Background(), fcProtocol, "wwn.2100001B32010203")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNotSupported {
		t.Fatalf("AddTarget fc without adapters: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	if _, _, err := buildFCAdapters(config.FCConfig{Adapters: []config.FCAdapter{{Kind: "loopback"}}}, log); err == nil {
		t.Fatal("the loopback adapter was built from the configuration")
	}
	// An fcoe adapter over an interface that is missing, or has no
	// Ethernet address, is refused when the daemon builds it.
	for _, ifname := range []string{"costar-no-such-if", "lo"} {
		_, _, err := buildFCAdapters(config.FCConfig{Adapters: []config.FCAdapter{{Kind: config.FCAdapterFCoE, Interface: ifname}}}, log)
		if err == nil || !strings.Contains(err.Error(), ifname) {
			t.Fatalf("fcoe over %s: %v", ifname, err)
		}
	}
}

// TestFCTargetPortGroup: an FC target placed in its own ALUA target port
// group takes set-alua-state on that group alone: standby answers media
// access with NOT READY, ALUA standby (04/0B) over FC, and back.
func TestFCTargetPortGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wwpn := fc.WWN{0x21, 0, 0, 0x1b, 0x32, 1, 2, 4}
	ad := loopback.New(wwpn, fc.WWN{0x20, 0, 0, 0x1b, 0x32, 1, 2, 4})
	d, dir := startFCDaemon(ctx, t, WithFCAdapters(ad), WithFCPortGroup(wwpn, 5))
	m := d.Manager()
	lu, err := m.CreateLU(ctx, api.CreateLURequest{DataFile: filepath.Join(dir, "g.img"), Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddView(ctx, api.AddViewRequest{GUID: lu.GUID, LUN: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	if err := ad.LinkUp(ctx, 0x010100, 0); err != nil {
		t.Fatal(err)
	}
	in := ad.NewInitiator(0x010200, 0x010100, fc.WWN{0x10, 0, 0, 0, 0xc9, 9, 9, 8}, fc.WWN{0x20, 0, 0, 0, 0xc9, 9, 9, 8})
	if err := in.Login(ctx); err != nil {
		t.Fatal(err)
	}
	read := func() loopback.Response {
		t.Helper()
		cdb := make([]byte, 10)
		cdb[0] = scsi.OpRead10
		binary.BigEndian.PutUint16(cdb[7:], 1)
		for range 4 { // past unit attentions (new nexus, state changed)
			r, err := in.Command(ctx, &fc.Cmnd{CDB: cdb, Read: true, DataLn: 512}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != scsi.StatusCheckCondition || len(r.Sense) < 3 || r.Sense[2]&0x0f != 0x06 {
				return r
			}
		}
		t.Fatal("unit attentions do not end")
		return loopback.Response{}
	}
	if r := read(); r.Status != scsi.StatusGood {
		t.Fatalf("READ in group 5, active: %+v", r.Rsp)
	}
	// list-state: the FC target is listed in group 5, where it serves,
	// and not in the default group.
	groups := func() map[uint16]api.ALUAGroup {
		t.Helper()
		st, err := m.GetState(ctx, api.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint16]api.ALUAGroup{}
		for _, g := range st.TargetPortGroups {
			out[g.Tag] = g
		}
		return out
	}
	gs := groups()
	if g := gs[5]; !slices.Equal(g.Targets, []string{"wwn.2100001B32010204"}) || g.State != api.ALUAActiveOptimized {
		t.Fatalf("list-state group 5: %+v (all %+v)", g, gs)
	}
	if g, ok := gs[1]; !ok || slices.Contains(g.Targets, "wwn.2100001B32010204") {
		t.Fatalf("list-state group 1: %+v (all %+v)", g, gs)
	}
	if _, err := m.SetALUAState(ctx, api.SetALUAStateRequest{Tag: 5, State: "standby"}); err != nil {
		t.Fatalf("set-alua-state -g 5 standby: %v", err)
	}
	if g := groups()[5]; g.State != api.ALUAStandby || !slices.Equal(g.Targets, []string{"wwn.2100001B32010204"}) {
		t.Fatalf("list-state group 5 after standby: %+v", g)
	}
	// Offline, the target keeps its group in the listing (it is
	// configured there); online again it serves there.
	if _, err := m.OfflineTarget(ctx, api.NameRequest{Name: "wwn.2100001B32010204"}); err != nil {
		t.Fatal(err)
	}
	if g := groups()[5]; !slices.Equal(g.Targets, []string{"wwn.2100001B32010204"}) {
		t.Fatalf("list-state group 5 with the target offline: %+v", g)
	}
	if _, err := m.OnlineTarget(ctx, api.NameRequest{Name: "wwn.2100001B32010204"}); err != nil {
		t.Fatal(err)
	}
	if err := in.Login(ctx); err != nil {
		t.Fatal(err)
	}
	r := read()
	if r.Status != scsi.StatusCheckCondition || len(r.Sense) < 14 || r.Sense[2]&0x0f != 0x02 || r.Sense[12] != 0x04 || r.Sense[13] != 0x0b {
		t.Fatalf("READ in group 5, standby: %+v sense % x", r.Rsp, r.Sense)
	}
	// The default group (iSCSI) is untouched.
	if st := d.fw.ALUAStates()[1]; st != stmf.ALUAActiveOptimized {
		t.Fatalf("default group state %v", st)
	}
	if _, err := m.SetALUAState(ctx, api.SetALUAStateRequest{Tag: 5, State: "active-optimized"}); err != nil {
		t.Fatal(err)
	}
	if r := read(); r.Status != scsi.StatusGood {
		t.Fatalf("READ back in active: %+v", r.Rsp)
	}
}

// startFCDaemon starts a daemon with opts (its FC adapters), shut down
// when the test ends, and returns it with its state directory.
func startFCDaemon(ctx context.Context, t *testing.T, opts ...Option) (*Daemon, string) {
	t.Helper()
	cfg := testConfig(t)
	dir := cfg.StateDir
	d, err := New(cfg, quietLog(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return d, dir
}
