package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/lu/zvol"
	"github.com/costar-project/costar/lu/zvol/zvoltest"
	"github.com/costar-project/costar/stmf"
)

// zvolEnv is a manager with the real LU provider on a fake ZFS.
type zvolEnv struct {
	t     *testing.T
	ctx   context.Context
	f     *zvoltest.Fake
	p     *luProvider
	fw    *stmf.Framework
	st    *store.Store
	m     *mgmt.Manager
	quiet *slog.Logger
}

func newZvolEnv(t *testing.T) *zvolEnv {
	t.Helper()
	quiet := quietLog()
	e := &zvolEnv{t: t, ctx: context.Background(), f: zvoltest.New(t.TempDir()), quiet: quiet}
	e.p = newLUProvider([6]byte{0xc0, 0xa8, 1, 1}, quiet)
	e.p.zfs = e.f
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.start(&store.State{Version: store.Version})
	return e
}

// start (re)creates the framework and manager from a state.
func (e *zvolEnv) start(state *store.State) {
	e.t.Helper()
	e.fw = stmf.New(e.quiet)
	e.m = mgmt.New(mgmt.Config{Log: e.quiet, Framework: e.fw, Store: e.st, LUs: e.p})
	if err := e.m.Restore(e.ctx, state); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.m.Close() })
}

func (e *zvolEnv) lu(guid string) api.LU {
	e.t.Helper()
	lus, err := e.m.ListLUs(e.ctx, api.Empty{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range lus {
		if strings.EqualFold(l.GUID, guid) {
			return l
		}
	}
	e.t.Fatalf("LU %s not listed", guid)
	return api.LU{}
}

func (e *zvolEnv) create(name string, size uint64, props api.LUProps) api.LU {
	e.t.Helper()
	lu, err := e.m.CreateZvolLU(e.ctx, api.CreateZvolLURequest{Zvol: name, Size: size, VolBlockSize: 16384, Props: props})
	if err != nil {
		e.t.Fatalf("CreateZvolLU %s: %v", name, err)
	}
	return lu
}

// overwrite writes s at the start of a (fake) device without truncating it.
func overwrite(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(s), 0); err != nil {
		t.Fatal(err)
	}
}

func guidOf(t *testing.T, s string) stmf.GUID {
	t.Helper()
	g, err := stmf.ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestZvolCreateSnapshotClone(t *testing.T) {
	e := newZvolEnv(t)
	alias := "vm1"
	lu := e.create("tank/vm1", 1<<20, api.LUProps{Alias: &alias})
	if !lu.Available || lu.Size != 1<<20 || lu.DataFile != e.f.Device("tank/vm1") || lu.Status != "Online" {
		t.Fatalf("created %+v", lu)
	}
	if _, ok := e.fw.LU(guidOf(t, lu.GUID)); !ok {
		t.Fatal("LU not registered")
	}
	m, err := zvol.DecodeMeta(e.f.Props("tank/vm1")[zvol.PropLU])
	if err != nil || !strings.EqualFold(m.GUID.String(), lu.GUID) || m.Zvol != "tank/vm1" || m.Alias != "vm1" {
		t.Fatalf("zvol metadata %+v, %v", m, err)
	}

	// Data written through the LU, then a snapshot, then a clone.
	dev := e.f.Device("tank/vm1")
	overwrite(t, dev, "before snapshot")
	snap, err := e.m.SnapshotLU(e.ctx, api.SnapshotLURequest{GUID: lu.GUID, Name: "s1"})
	if err != nil || snap.Name != "tank/vm1@s1" {
		t.Fatalf("SnapshotLU = %+v, %v", snap, err)
	}
	overwrite(t, dev, "after  snapshot")
	calias := "copy"
	c1, err := e.m.CloneLU(e.ctx, api.CloneLURequest{Source: lu.GUID + "@s1", Props: api.LUProps{Alias: &calias}})
	if err != nil {
		t.Fatal(err)
	}
	if c1.GUID == lu.GUID || c1.DataFile != e.f.Device("tank/vm1-s1") || c1.Alias != "copy" || c1.Status != "Online" {
		t.Fatalf("clone %+v", c1)
	}
	if b, _ := os.ReadFile(c1.DataFile); !strings.HasPrefix(string(b), "before snapshot") {
		t.Fatalf("clone data %q", b[:16])
	}
	// By snapshot name, default name taken: the next free one.
	c2, err := e.m.CloneLU(e.ctx, api.CloneLURequest{Source: "tank/vm1@s1"})
	if err != nil || c2.DataFile != e.f.Device("tank/vm1-s1-2") || c2.GUID == c1.GUID || c2.GUID == lu.GUID {
		t.Fatalf("second clone %+v, %v", c2, err)
	}
	if _, err := e.m.CloneLU(e.ctx, api.CloneLURequest{Source: "tank/vm1@nope"}); err == nil {
		t.Fatal("clone of a missing snapshot succeeded")
	}

	// delete-lu --destroy-zvol: refused while snapshots exist (the LU stays), done for a clone.
	_, err = e.m.DestroyLU(e.ctx, api.DestroyLURequest{GUID: lu.GUID})
	if !api.IsCode(err, api.CodeZFS) || !strings.Contains(err.Error(), "dependents") {
		t.Fatalf("DestroyLU with snapshots = %v", err)
	}
	if l := e.lu(lu.GUID); l.Status != "Online" || !l.Available {
		t.Fatalf("LU after a refused destroy: %+v", l)
	}
	if _, ok := e.fw.LU(guidOf(t, lu.GUID)); !ok {
		t.Fatal("LU not registered after a refused destroy")
	}
	if _, err := e.m.DestroyLU(e.ctx, api.DestroyLURequest{GUID: c2.GUID}); err != nil {
		t.Fatal(err)
	}
	if e.f.Exists("tank/vm1-s1-2") {
		t.Fatal("clone zvol not destroyed")
	}
	lus, _ := e.m.ListLUs(e.ctx, api.Empty{})
	if len(lus) != 2 {
		t.Fatalf("%d LUs after destroying one of 3", len(lus))
	}
}

func TestZvolCreateFailuresLeaveNothing(t *testing.T) {
	e := newZvolEnv(t)
	first := e.create("tank/a", 1<<20, api.LUProps{})
	// GUID in use: refused before any zvol is made.
	if _, err := e.m.CreateZvolLU(e.ctx, api.CreateZvolLURequest{Zvol: "tank/b", Size: 1 << 20, Props: api.LUProps{GUID: first.GUID}}); !api.IsCode(err, api.CodeGUIDInUse) {
		t.Fatalf("GUID in use: %v", err)
	}
	// zfs create failing: its command and stderr come back.
	e.f.FailOn = func(op, name string) error {
		if op == "create" {
			return errors.New("cannot create 'tank/b': out of space")
		}
		return nil
	}
	_, err := e.m.CreateZvolLU(e.ctx, api.CreateZvolLURequest{Zvol: "tank/b", Size: 1 << 20})
	if !api.IsCode(err, api.CodeZFS) || !strings.Contains(err.Error(), "out of space") || !strings.Contains(err.Error(), "zfs create") {
		t.Fatalf("zfs create failing: %v", err)
	}
	// Failing after the zvol was made: it is destroyed again.
	e.f.FailOn = func(op, name string) error {
		if op == "setprop" {
			return errors.New("cannot set property for 'tank/b': pool I/O is currently suspended")
		}
		return nil
	}
	if _, err := e.m.CreateZvolLU(e.ctx, api.CreateZvolLURequest{Zvol: "tank/b", Size: 1 << 20}); !api.IsCode(err, api.CodeZFS) {
		t.Fatalf("zfs set failing: %v", err)
	}
	if e.f.Exists("tank/b") {
		t.Fatal("a zvol made for a failed create-lu was left behind")
	}
	e.f.FailOn = nil
	// Size checks.
	for _, req := range []api.CreateZvolLURequest{
		{Zvol: "tank/c"},
		{Zvol: "tank/c", Size: 1000},
		{Zvol: "tank/c", Size: 1 << 20, VolBlockSize: 1000},
		{Zvol: "tank/c", Size: 1<<20 + 512, VolBlockSize: 16384},
		{Zvol: "tank", Size: 1 << 20},
	} {
		if _, err := e.m.CreateZvolLU(e.ctx, req); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
	if e.f.Exists("tank/c") {
		t.Fatal("a refused request made a zvol")
	}
	lus, _ := e.m.ListLUs(e.ctx, api.Empty{})
	if len(lus) != 1 {
		t.Fatalf("%d LUs", len(lus))
	}
}

func TestZvolImportAndResize(t *testing.T) {
	e := newZvolEnv(t)
	lu := e.create("tank/a", 1<<20, api.LUProps{})
	if err := e.f.Snapshot(e.ctx, "tank/a", "s", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Receive("tank/a@s", "tank/r", true); err != nil {
		t.Fatal(err)
	}
	// A received copy under another name: a new GUID unless one is given.
	want := "600144F0C0A80101000067A1B2C3F00D"
	r, err := e.m.ImportZvolLU(e.ctx, api.ImportZvolLURequest{File: e.f.Device("tank/r"), GUID: want})
	if err != nil || r.GUID != want {
		t.Fatalf("ImportZvolLU with a GUID = %+v, %v", r, err)
	}
	if _, err := e.m.ImportZvolLU(e.ctx, api.ImportZvolLURequest{File: e.f.Device("tank/a"), GUID: want}); !api.IsCode(err, api.CodeFileInUse) {
		t.Fatalf("import of a zvol in use: %v", err)
	}
	// Online resize grows volsize.
	if _, err := e.m.ModifyLU(e.ctx, api.ModifyLURequest{GUID: lu.GUID, Size: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.f.Volume(e.ctx, "tank/a"); v.Size != 2<<20 || e.lu(lu.GUID).Size != 2<<20 {
		t.Fatalf("volsize %d after modify-lu -s", v.Size)
	}
	if _, err := e.m.ModifyLU(e.ctx, api.ModifyLURequest{GUID: lu.GUID, Size: 1 << 20}); err == nil {
		t.Fatal("shrinking accepted")
	}
}

func TestZvolWaitsForPool(t *testing.T) {
	e := newZvolEnv(t)
	lu := e.create("tank/a", 1<<20, api.LUProps{})
	if _, err := e.m.AddView(e.ctx, api.AddViewRequest{GUID: lu.GUID, LUN: new(int)}); err != nil {
		t.Fatal(err)
	}
	state, err := e.st.Load()
	if err != nil {
		t.Fatal(err)
	}
	e.m.Close()

	// "zpool export": the zvol is gone when stmfd starts.
	if err := e.f.Rename("tank/a", "away/a"); err != nil {
		t.Fatal(err)
	}
	e.start(state)
	l := e.lu(lu.GUID)
	if l.Status != "Offline" || l.Available || !strings.Contains(l.StatusDetail, "waiting for zvol tank/a") {
		t.Fatalf("LU with its pool missing: %+v", l)
	}
	if _, ok := e.fw.LU(guidOf(t, lu.GUID)); ok {
		t.Fatal("LU registered without its zvol")
	}
	stop := e.m.WatchZvols(10 * time.Millisecond)
	defer stop()
	time.Sleep(50 * time.Millisecond)
	if e.lu(lu.GUID).Available {
		t.Fatal("LU opened while its zvol is missing")
	}
	// "zpool import": it comes online by itself, views and all.
	if err := e.f.Rename("away/a", "tank/a"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !e.lu(lu.GUID).Available {
		if time.Now().After(deadline) {
			t.Fatalf("LU not online after its zvol appeared: %+v", e.lu(lu.GUID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l := e.lu(lu.GUID); l.Status != "Online" || l.StatusDetail != "" || l.ViewEntryCount != 1 {
		t.Fatalf("LU after its zvol appeared: %+v", l)
	}
	if _, ok := e.fw.LU(guidOf(t, lu.GUID)); !ok {
		t.Fatal("LU not registered after its zvol appeared")
	}
	stop()
}

func TestZvolRestoreNeverRewritesACopy(t *testing.T) {
	e := newZvolEnv(t)
	lu := e.create("tank/a", 1<<20, api.LUProps{})
	state, _ := e.st.Load()
	e.m.Close()
	// Someone put another zvol's copy under this LU's name.
	if err := e.f.Rename("tank/a", "tank/orig"); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Snapshot(e.ctx, "tank/orig", "s", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Clone(e.ctx, "tank/orig@s", "tank/a", nil); err != nil {
		t.Fatal(err)
	}
	e.start(state)
	if l := e.lu(lu.GUID); l.Available {
		t.Fatalf("a clone was opened as the configured LU: %+v", l)
	}
	if _, ok := e.f.Props("tank/a")[zvol.PropLU]; ok {
		t.Fatal("restore wrote metadata to a zvol holding another LU")
	}
	if _, err := e.m.OnlineLU(e.ctx, api.GUIDRequest{GUID: lu.GUID}); err == nil {
		t.Fatal("online-lu opened a clone as the configured LU")
	}
	if _, ok := e.f.Props("tank/a")[zvol.PropLU]; ok {
		t.Fatal("online-lu wrote metadata to a zvol holding another LU")
	}
}

func TestZvolProviderErrors(t *testing.T) {
	e := newZvolEnv(t)
	e.f.FailOn = func(op, name string) error { return errors.New("boom") }
	_, err := e.p.Import(e.ctx, e.f.Device("tank/x"), "")
	if !errors.Is(err, mgmt.ErrZFS) {
		t.Fatalf("Import with zfs failing = %v", err)
	}
	e.f.FailOn = nil
	_, err = e.p.Import(e.ctx, e.f.Device("tank/x"), "")
	if errors.Is(err, mgmt.ErrZFS) || !errors.Is(err, mgmt.ErrDataFile) || !errors.Is(err, zvol.ErrNotFound) {
		t.Fatalf("Import of a missing zvol = %v", err)
	}
	if err := e.f.CreateVolume(e.ctx, "tank/bare", 1<<20, 8192, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Import(e.ctx, e.f.Device("tank/bare"), ""); !errors.Is(err, mgmt.ErrNotAnLU) {
		t.Fatalf("Import of a zvol without an LU = %v", err)
	}
}

func TestZvolInUseUnderIllumosNames(t *testing.T) {
	e := newZvolEnv(t)
	e.create("tank/a", 1<<20, api.LUProps{})
	for _, p := range []string{e.f.DevDir() + "/rdsk/tank/a", e.f.DevDir() + "/dsk/tank/a"} {
		if _, err := e.m.CreateLU(e.ctx, api.CreateLURequest{DataFile: p}); !api.IsCode(err, api.CodeFileInUse) {
			t.Errorf("create-lu %s of a zvol in use = %v", p, err)
		}
		if _, err := e.m.ImportLU(e.ctx, api.ImportLURequest{File: p}); !api.IsCode(err, api.CodeFileInUse) {
			t.Errorf("import-lu %s of a zvol in use = %v", p, err)
		}
	}
}

// A parked LU (closed for a release hook) is not reopened by WatchZvols
// until unparked; RetryZvolLU opens a waiting LU at once.
func TestZvolParkAndRetry(t *testing.T) {
	e := newZvolEnv(t)
	l := e.create("tank/a", 1<<20, api.LUProps{})
	g := guidOf(t, l.GUID)
	stop := e.m.WatchZvols(10 * time.Millisecond)
	defer stop()
	if err := e.m.ParkZvolLU(l.GUID, "released to another node"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // ten WatchZvols rounds
	if got := e.lu(l.GUID); got.Available || !strings.Contains(got.StatusDetail, "released to another node") {
		t.Fatalf("parked LU: %+v", got)
	}
	if _, ok := e.fw.LU(g); ok {
		t.Fatal("parked LU still registered")
	}
	if err := e.m.RetryZvolLU(e.ctx, l.GUID); err != nil || e.lu(l.GUID).Available {
		t.Fatalf("RetryZvolLU opened a parked LU (%v)", err)
	}
	// "zpool export" while parked, then unparked: waiting, with the reason.
	if err := e.f.Rename("tank/a", "away/a"); err != nil {
		t.Fatal(err)
	}
	stop()
	e.m.UnparkZvolLU(l.GUID)
	if err := e.m.RetryZvolLU(e.ctx, l.GUID); err == nil || e.lu(l.GUID).Available {
		t.Fatalf("RetryZvolLU without the zvol: %v", err)
	}
	// "zpool import": RetryZvolLU opens and registers it without waiting for a poll.
	if err := e.f.Rename("away/a", "tank/a"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.RetryZvolLU(e.ctx, l.GUID); err != nil {
		t.Fatal(err)
	}
	if got := e.lu(l.GUID); !got.Available || got.Status != "Online" {
		t.Fatalf("LU after RetryZvolLU: %+v", got)
	}
	if _, ok := e.fw.LU(g); !ok {
		t.Fatal("LU not registered after RetryZvolLU")
	}
	h, ok := e.m.HandoverLUOf(l.GUID)
	if !ok || !h.Open || !h.Online || h.Zvol != "tank/a" {
		t.Fatalf("HandoverLUOf = %+v, %v", h, ok)
	}
}
