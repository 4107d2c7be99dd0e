package mgmt

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/stmf"
)

// The state directory ../../store/testdata/v1 and testdata/v1-lists.json
// were both written by the previous release's code: its stmfd's store
// document, and what its manager listed after restoring that document with
// the fakes below. This release must load the one and list the other.

// upgradeRig restores the state in dir into a manager on a real store.
func upgradeRig(t *testing.T, dir string) (*rig, *store.Store) {
	t.Helper()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{fw: stmf.New(quietLog()), st: &memStore{}, lus: newFakeLUs(), ports: newFakePorts(), fc: newFakePorts()}
	for _, l := range st.LUs {
		g, err := stmf.ParseGUID(l.GUID)
		if err != nil {
			t.Fatal(err)
		}
		r.lus.files[l.DataFile] = LUInfo{GUID: g, DataFile: l.DataFile, MetaFile: l.MetaFile, Size: 1 << 20, BlockSize: 512, VID: "COSTAR", PID: "COMSTAR"}
	}
	r.m = r.newManager()
	if err := r.m.Restore(bg, st); err != nil {
		t.Fatal(err)
	}
	return r, s
}

// listings is everything the manager lists, as the golden file holds it.
func listings(t *testing.T, r *rig) []byte {
	t.Helper()
	out := map[string]any{}
	lus := must[[]api.LU](t)(r.m.ListLUs(bg, api.Empty{}))
	out["lus"] = lus
	views := []api.View{}
	for _, l := range lus {
		views = append(views, must[[]api.View](t)(r.m.ListViews(bg, api.GUIDRequest{GUID: l.GUID}))...)
	}
	out["views"] = views
	out["host_groups"] = must[[]api.Group](t)(r.m.ListGroups(bg, api.GroupRequest{Kind: api.HostGroup}))
	out["target_groups"] = must[[]api.Group](t)(r.m.ListGroups(bg, api.GroupRequest{Kind: api.TargetGroup}))
	out["targets"] = must[[]api.Target](t)(r.m.ListTargets(bg, api.Empty{}))
	out["tpgs"] = must[[]api.TPG](t)(r.m.ListTPGs(bg, api.Empty{}))
	out["initiators"] = must[[]api.Initiator](t)(r.m.ListInitiators(bg, api.Empty{}))
	out["defaults"] = must[api.Defaults](t)(r.m.GetDefaults(bg, api.Empty{}))
	st := must[api.State](t)(r.m.GetState(bg, api.Empty{}))
	if st.Goroutines <= 0 {
		t.Errorf("list-state goroutines = %d, want the daemon's count", st.Goroutines)
	}
	st.Goroutines, st.HeapLiveBytes = 0, 0 // vary from run to run
	out["state"] = st
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestUpgradeFromVersion1(t *testing.T) {
	dir := t.TempDir()
	doc, err := os.ReadFile(filepath.Join("..", "..", "store", "testdata", "v1", store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, store.FileName), doc, 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "v1-lists.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, s := upgradeRig(t, dir)
	if got := listings(t, r); !bytes.Equal(got, want) {
		t.Fatalf("listings after loading a version 1 state differ:\n got %s\nwant %s", got, want)
	}
	// The online iSCSI targets are served with their portal groups and
	// authentication; the offline one is not.
	fast, ok := r.ports.spec("iqn.2026-11.org.test:fast")
	wantFast := TargetSpec{Name: "iqn.2026-11.org.test:fast", Alias: "fast one", ISCSI: ISCSITargetSpec{
		PortalGroups: []PortalGroup{{Name: "2", Tag: 2, Portals: []string{"127.0.0.2:3260"}}, {Name: "backup", Tag: 3, Portals: []string{"127.0.0.3:3261", "[::1]:3260"}}},
		Auth:         "chap", ChapUser: "tgtuser", ChapSecret: "target-secret-1",
	}}
	if !ok || !reflect.DeepEqual(fast, wantFast) {
		t.Fatalf("served %+v\nwant %+v", fast, wantFast)
	}
	if plain, ok := r.ports.spec("iqn.2026-11.org.test:plain"); !ok || plain.ISCSI.Auth != "chap" { // the defaults'
		t.Fatalf("plain target served %v: %+v", ok, plain)
	}
	if _, ok := r.ports.spec("iqn.2026-11.org.test:off"); ok {
		t.Fatal("offline target served")
	}
	la, err := r.m.LoginAuth("iqn.1998-01.com.vmware:esx1", "iqn.2026-11.org.test:fast", false)
	if err != nil || !la.Required || la.InitiatorUser != "esx1" || la.InitiatorSecret != "initiator-secret" || la.TargetSecret != "target-secret-1" {
		t.Fatalf("login auth %+v %v", la, err)
	}

	// Saved in the current format and loaded again, it lists the same.
	if err := s.Save(r.m.published.Load().Clone()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, store.FileName)); bytes.Equal(b, doc) {
		t.Fatal("saving did not write the current format")
	}
	again, _ := upgradeRig(t, dir)
	if got := listings(t, again); !bytes.Equal(got, want) {
		t.Fatalf("listings after save and load differ:\n got %s\nwant %s", got, want)
	}
}
