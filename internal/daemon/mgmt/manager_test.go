package mgmt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/stmf"
)

var bg = context.Background()

func createLU(t *testing.T, r *rig, path string, props api.LUProps) api.LU {
	t.Helper()
	return must[api.LU](t)(r.m.CreateLU(bg, api.CreateLURequest{DataFile: path, Props: props}))
}

func addView(t *testing.T, r *rig, req api.AddViewRequest) api.View {
	t.Helper()
	return must[api.View](t)(r.m.AddView(bg, req))
}

func TestCreateLUErrors(t *testing.T) {
	r := newRig(t)
	lu := createLU(t, r, "/d/lu0", api.LUProps{GUID: "600144F0AABBCCDD0000000000000001", WCD: ptr(true)})
	if lu.GUID != "600144F0AABBCCDD0000000000000001" || !lu.WriteCacheDisabled || lu.Status != "Online" || lu.Provider != "sbd" {
		t.Fatalf("created LU: %+v", lu)
	}
	r.lus.failOn["/d/broken"] = fmt.Errorf("open: %w", ErrDataFile)
	r.lus.failOn["/d/meta"] = fmt.Errorf("write: %w", ErrMetaFile)
	for _, tc := range []struct {
		name string
		req  api.CreateLURequest
		code api.Code
	}{
		{"same file", api.CreateLURequest{DataFile: "/d/lu0"}, api.CodeFileInUse},
		{"same file, unclean", api.CreateLURequest{DataFile: "/d/./lu0"}, api.CodeFileInUse},
		{"same guid", api.CreateLURequest{DataFile: "/d/lu1", Props: api.LUProps{GUID: "600144f0aabbccdd0000000000000001"}}, api.CodeGUIDInUse},
		{"relative path", api.CreateLURequest{DataFile: "lu1"}, api.CodeInvalidArgument},
		{"no path", api.CreateLURequest{}, api.CodeInvalidArgument},
		{"vid too long", api.CreateLURequest{DataFile: "/d/lu1", Props: api.LUProps{VID: ptr("123456789")}}, api.CodeInvalidPropLen},
		{"bad block size", api.CreateLURequest{DataFile: "/d/lu1", Props: api.LUProps{BlockSize: ptr(uint32(1000))}}, api.CodeInvalidBlockSize},
		{"bad guid", api.CreateLURequest{DataFile: "/d/lu1", Props: api.LUProps{GUID: "500144F0AABBCCDD0000000000000001"}}, api.CodeInvalidProp},
		{"provider data error", api.CreateLURequest{DataFile: "/d/broken"}, api.CodeDataFile},
		{"provider meta error", api.CreateLURequest{DataFile: "/d/meta"}, api.CodeMetaFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.m.CreateLU(bg, tc.req)
			wantCode(t, err, tc.code)
		})
	}
	if lus := must[[]api.LU](t)(r.m.ListLUs(bg, api.Empty{})); len(lus) != 1 {
		t.Fatalf("failed creates changed the LU list: %+v", lus)
	}
}

func TestViewsLUNsAndEntries(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	b := createLU(t, r, "/d/b", api.LUProps{})
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "hg1"}))
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "hg2"}))

	// A host's first view is LUN 0; overlapping views take the next free.
	if v := addView(t, r, api.AddViewRequest{GUID: a.GUID}); v.LUN != 0 || v.Entry != 0 {
		t.Fatalf("first view: %+v", v)
	}
	if v := addView(t, r, api.AddViewRequest{GUID: b.GUID, HostGroup: "hg1"}); v.LUN != 1 || v.Entry != 0 {
		t.Fatalf("second LU's view: %+v", v)
	}
	// Same LU, overlapping groups: conflict. Different host group: fine.
	_, err := r.m.AddView(bg, api.AddViewRequest{GUID: a.GUID, HostGroup: "hg1"})
	wantCode(t, err, api.CodeViewConflict)
	v2 := addView(t, r, api.AddViewRequest{GUID: b.GUID, HostGroup: "hg2", LUN: ptr(7)})
	if v2.LUN != 7 || v2.Entry != 1 {
		t.Fatalf("explicit LUN view: %+v", v2)
	}
	// An explicit LUN already used in an overlapping map.
	c := createLU(t, r, "/d/c", api.LUProps{})
	_, err = r.m.AddView(bg, api.AddViewRequest{GUID: c.GUID, HostGroup: "hg2", LUN: ptr(7)})
	wantCode(t, err, api.CodeLUNInUse)
	_, err = r.m.AddView(bg, api.AddViewRequest{GUID: c.GUID, HostGroup: "nope"})
	wantCode(t, err, api.CodeInvalidHostGroup)
	_, err = r.m.AddView(bg, api.AddViewRequest{GUID: c.GUID, TargetGroup: "nope"})
	wantCode(t, err, api.CodeInvalidTgtGroup)
	_, err = r.m.AddView(bg, api.AddViewRequest{GUID: c.GUID, LUN: ptr(16384)})
	wantCode(t, err, api.CodeInvalidLUN)
	_, err = r.m.AddView(bg, api.AddViewRequest{GUID: "1234"})
	wantCode(t, err, api.CodeInvalidGUID)

	// Entry numbers are the smallest free per LU.
	must[api.Empty](t)(r.m.RemoveView(bg, api.RemoveViewRequest{GUID: b.GUID, Entry: 0}))
	if v := addView(t, r, api.AddViewRequest{GUID: b.GUID, HostGroup: "hg1", LUN: ptr(3)}); v.Entry != 0 {
		t.Fatalf("reused entry: %+v", v)
	}
	_, err = r.m.RemoveView(bg, api.RemoveViewRequest{GUID: b.GUID, Entry: 5})
	wantCode(t, err, api.CodeViewNotFound)
	views := must[[]api.View](t)(r.m.ListViews(bg, api.GUIDRequest{GUID: b.GUID}))
	want := []api.View{{GUID: b.GUID, Entry: 0, HostGroup: "hg1", LUN: 3}, {GUID: b.GUID, Entry: 1, HostGroup: "hg2", LUN: 7}}
	if !reflect.DeepEqual(views, want) {
		t.Fatalf("views:\n got %+v\nwant %+v", views, want)
	}
	// Groups used by views cannot go.
	_, err = r.m.DeleteGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "hg1"})
	wantCode(t, err, api.CodeGroupInUse)
}

func TestGroups(t *testing.T) {
	r := newRig(t)
	hg := api.GroupRequest{Kind: api.HostGroup, Name: "esx"}
	must[api.Empty](t)(r.m.CreateGroup(bg, hg))
	_, err := r.m.CreateGroup(bg, hg)
	wantCode(t, err, api.CodeGroupExists)
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "ESX"})) // case-sensitive
	for _, bad := range []string{"", "*x", string(make([]byte, 256))} {
		_, err = r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: bad})
		wantCode(t, err, api.CodeInvalidGroupName)
	}
	_, err = r.m.CreateGroup(bg, api.GroupRequest{Kind: "other", Name: "x"})
	wantCode(t, err, api.CodeInvalidArgument)

	add := func(group, member string) error {
		_, err := r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: group, Member: member})
		return err
	}
	if err := add("esx", "iqn.1998-01.com.VMware:Host1"); err != nil {
		t.Fatal(err)
	}
	if err := add("esx", "wwn.2100001b32aabbcc"); err != nil { // a group may mix iqn and wwn
		t.Fatal(err)
	}
	wantCode(t, add("ESX", "iqn.1998-01.com.vmware:host1"), api.CodeMemberExists) // one group per member, canonical
	wantCode(t, add("esx", "host1"), api.CodeInvalidDeviceID)
	wantCode(t, add("esx", "wwn.12"), api.CodeInvalidDeviceID)
	wantCode(t, add("nope", "iqn.2026-11.x:y"), api.CodeGroupNotFound)
	_, err = r.m.RemoveGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: "esx", Member: "iqn.2026-11.x:y"})
	wantCode(t, err, api.CodeMemberNotFound)

	groups := must[[]api.Group](t)(r.m.ListGroups(bg, api.GroupRequest{Kind: api.HostGroup}))
	want := []api.Group{{Name: "esx", Members: []string{"iqn.1998-01.com.vmware:host1", "wwn.2100001B32AABBCC"}}, {Name: "ESX", Members: []string{}}}
	if !reflect.DeepEqual(groups, want) {
		t.Fatalf("groups:\n got %+v\nwant %+v", groups, want)
	}
	if tgs := must[[]api.Group](t)(r.m.ListGroups(bg, api.GroupRequest{Kind: api.TargetGroup})); len(tgs) != 0 {
		t.Fatalf("target groups: %+v", tgs)
	}
}

// A session's LUN map follows views and membership at once.
func TestLiveSessionSeesChanges(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "hg"}))
	p, err := r.fw.RegisterPort(stmf.PortSpec{TargetName: "iqn.2026-11.test:t", Name: "iqn.2026-11.test:t,t,0x0001", Group: stmf.DefaultPortGroup})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.OpenSession(stmf.Initiator{Name: "iqn.2026-11.test:ini", PortName: "iqn.2026-11.test:ini,i,0x1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addView(t, r, api.AddViewRequest{GUID: a.GUID, HostGroup: "hg", LUN: ptr(5)})
	if n := len(s.LUNs()); n != 0 {
		t.Fatalf("not a member yet, LUNs %v", s.LUNs())
	}
	must[api.Empty](t)(r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: "hg", Member: "iqn.2026-11.test:ini"}))
	if got := s.LUNs(); !reflect.DeepEqual(got, []scsi.LUN{5}) {
		t.Fatalf("after joining: %v", got)
	}
	must[api.Empty](t)(r.m.OfflineLU(bg, api.GUIDRequest{GUID: a.GUID}))
	if n := len(s.LUNs()); n != 0 {
		t.Fatalf("offline LU still mapped: %v", s.LUNs())
	}
	must[api.Empty](t)(r.m.OnlineLU(bg, api.GUIDRequest{GUID: a.GUID}))
	if got := s.LUNs(); !reflect.DeepEqual(got, []scsi.LUN{5}) {
		t.Fatalf("after online: %v", got)
	}
}

// A remembered write-back failure shows in list-lu and stays until the
// administrator takes the LU offline and brings it online again.
func TestOnlineLUClearsWriteFailure(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	const reason = "sync failed at 2026-12-02T04:00:00Z: input/output error"
	d := r.lus.open["/d/a"]
	d.mu.Lock()
	d.info.ErrorState = reason
	d.mu.Unlock()
	state := func() string {
		t.Helper()
		lus := must[[]api.LU](t)(r.m.ListLUs(bg, api.Empty{}))
		if len(lus) != 1 {
			t.Fatalf("%d LUs", len(lus))
		}
		return lus[0].ErrorState
	}
	if got := state(); got != reason {
		t.Fatalf("ErrorState %q, want %q", got, reason)
	}
	must[api.Empty](t)(r.m.OnlineLU(bg, api.GUIDRequest{GUID: a.GUID})) // already online: no action
	if got := state(); got != reason {
		t.Fatalf("online-lu of an online LU cleared the failure: %q", got)
	}
	must[api.Empty](t)(r.m.OfflineLU(bg, api.GUIDRequest{GUID: a.GUID}))
	if got := state(); got != reason {
		t.Fatalf("offline-lu cleared the failure: %q", got)
	}
	must[api.Empty](t)(r.m.OnlineLU(bg, api.GUIDRequest{GUID: a.GUID}))
	if got := state(); got != "" {
		t.Fatalf("after offline-lu, online-lu: ErrorState %q", got)
	}
}

func TestDeleteLUKeepViews(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	addView(t, r, api.AddViewRequest{GUID: a.GUID, LUN: ptr(4)})
	must[api.Empty](t)(r.m.DeleteLU(bg, api.DeleteLURequest{GUID: a.GUID, KeepViews: true}))
	if d := r.lus.open["/d/a"]; !d.closed {
		t.Fatal("deleted LU's disk not closed")
	}
	if _, ok := r.fw.LU(stmf.GUID{}); ok {
		t.Fatal("zero GUID registered")
	}
	// The views stay and come back with the GUID.
	if v := must[[]api.View](t)(r.m.ListViews(bg, api.GUIDRequest{GUID: a.GUID})); len(v) != 1 {
		t.Fatalf("kept views: %+v", v)
	}
	// Another LU cannot take LUN 4 in the same map meanwhile.
	b := createLU(t, r, "/d/b", api.LUProps{})
	if v := addView(t, r, api.AddViewRequest{GUID: b.GUID}); v.LUN != 0 {
		t.Fatalf("b's view: %+v", v)
	}
	_, err := r.m.AddView(bg, api.AddViewRequest{GUID: b.GUID, HostGroup: "", LUN: ptr(4)})
	wantCode(t, err, api.CodeViewConflict)
	back := must[api.LU](t)(r.m.ImportLU(bg, api.ImportLURequest{File: "/d/a"}))
	if back.GUID != a.GUID || back.ViewEntryCount != 1 {
		t.Fatalf("re-imported: %+v", back)
	}
	// Without -k the views go; a second delete is "not found".
	must[api.Empty](t)(r.m.DeleteLU(bg, api.DeleteLURequest{GUID: a.GUID}))
	if v := must[[]api.View](t)(r.m.ListViews(bg, api.GUIDRequest{GUID: a.GUID})); len(v) != 0 {
		t.Fatalf("views after delete: %+v", v)
	}
	_, err = r.m.DeleteLU(bg, api.DeleteLURequest{GUID: a.GUID})
	wantCode(t, err, api.CodeLUNotFound)
	_, err = r.m.DeleteLU(bg, api.DeleteLURequest{GUID: "nothex"})
	wantCode(t, err, api.CodeInvalidGUID)
	// Orphan views (kept by -k) are removed by delete-lu of their GUID.
	c := createLU(t, r, "/d/c", api.LUProps{})
	addView(t, r, api.AddViewRequest{GUID: c.GUID, HostGroup: "", LUN: ptr(9)})
	must[api.Empty](t)(r.m.DeleteLU(bg, api.DeleteLURequest{GUID: c.GUID, KeepViews: true}))
	must[api.Empty](t)(r.m.DeleteLU(bg, api.DeleteLURequest{GUID: c.GUID}))
	if v := must[[]api.View](t)(r.m.ListViews(bg, api.GUIDRequest{GUID: c.GUID})); len(v) != 0 {
		t.Fatalf("orphan views: %+v", v)
	}
}

func TestModifyLU(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	p, _ := r.fw.RegisterPort(stmf.PortSpec{TargetName: "iqn.2026-11.test:t", Name: "iqn.2026-11.test:t,t,0x0001", Group: stmf.DefaultPortGroup})
	s, _ := p.OpenSession(stmf.Initiator{Name: "iqn.2026-11.test:i", PortName: "iqn.2026-11.test:i,i,0x1"})
	defer s.Close()
	addView(t, r, api.AddViewRequest{GUID: a.GUID})
	got := must[api.LU](t)(r.m.ModifyLU(bg, api.ModifyLURequest{GUID: a.GUID, Size: 4 << 20, Props: api.LUProps{Alias: ptr("db"), WP: ptr(true)}}))
	if got.Size != 4<<20 || got.Alias != "db" || !got.WriteProtect {
		t.Fatalf("modified: %+v", got)
	}
	// By file name, too.
	got = must[api.LU](t)(r.m.ModifyLU(bg, api.ModifyLURequest{File: "/d/a", Props: api.LUProps{WP: ptr(false)}}))
	if got.WriteProtect {
		t.Fatalf("modify -f: %+v", got)
	}
	_, err := r.m.ModifyLU(bg, api.ModifyLURequest{GUID: a.GUID, Props: api.LUProps{VID: ptr("X")}})
	wantCode(t, err, api.CodePropNotModify)
	_, err = r.m.ModifyLU(bg, api.ModifyLURequest{GUID: a.GUID, Size: 1024})
	wantCode(t, err, api.CodeInvalidSize)
	_, err = r.m.ModifyLU(bg, api.ModifyLURequest{GUID: "600144F0000000000000000000000099", Size: 1 << 30})
	wantCode(t, err, api.CodeLUNotFound)
}

// Every failed save leaves the stored and the live configuration as they were.
func TestSaveFailureRollsBack(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "hg"}))
	addView(t, r, api.AddViewRequest{GUID: a.GUID, HostGroup: "hg"})
	must[api.Empty](t)(r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: "hg", Member: "iqn.2026-11.test:i"}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.test:t"}))
	before := r.st.saved.Clone()
	g, _ := stmf.ParseGUID(a.GUID)
	fwViews := r.fw.Views(g)
	orphan := stmf.GUID{0x60, 0x01, 0x44, 0xf0, 0x42}

	r.st.setFail(true)
	ops := map[string]func() error{
		"create-lu": func() error {
			_, err := r.m.CreateLU(bg, api.CreateLURequest{DataFile: "/d/b"})
			return err
		},
		"delete-lu": func() error {
			_, err := r.m.DeleteLU(bg, api.DeleteLURequest{GUID: a.GUID})
			return err
		},
		"offline-lu": func() error {
			_, err := r.m.OfflineLU(bg, api.GUIDRequest{GUID: a.GUID})
			return err
		},
		"add-view": func() error {
			// Views may precede their LU (as after delete-lu -k).
			_, err := r.m.AddView(bg, api.AddViewRequest{GUID: orphan.String()})
			return err
		},
		"remove-view": func() error {
			_, err := r.m.RemoveView(bg, api.RemoveViewRequest{GUID: a.GUID, Entry: 0})
			return err
		},
		"create-hg": func() error {
			_, err := r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "new"})
			return err
		},
		"add-hg-member": func() error {
			_, err := r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: "hg", Member: "iqn.2026-11.test:j"})
			return err
		},
		"remove-hg-member": func() error {
			_, err := r.m.RemoveGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: "hg", Member: "iqn.2026-11.test:i"})
			return err
		},
		"create-target": func() error {
			_, err := r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.test:u"})
			return err
		},
		"offline-target": func() error {
			_, err := r.m.OfflineTarget(bg, api.NameRequest{Name: "iqn.2026-11.test:t"})
			return err
		},
		"delete-target": func() error {
			_, err := r.m.DeleteTarget(bg, api.NameRequest{Name: "iqn.2026-11.test:t", Force: true})
			return err
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			wantCode(t, op(), api.CodeInternal)
			if !reflect.DeepEqual(r.m.state, before) {
				t.Fatalf("in-memory state changed:\n got %+v\nwant %+v", r.m.state, before)
			}
			if !reflect.DeepEqual(r.fw.Views(g), fwViews) || len(r.fw.Views(orphan)) != 0 {
				t.Fatalf("live views changed: %+v %+v", r.fw.Views(g), r.fw.Views(orphan))
			}
			if _, ok := r.fw.LU(g); !ok {
				t.Fatal("LU no longer registered")
			}
			if hg := r.fw.HostGroups(); !reflect.DeepEqual(hg, map[string][]string{"hg": {"iqn.2026-11.test:i"}}) {
				t.Fatalf("live host groups changed: %v", hg)
			}
			if _, ok := r.ports.spec("iqn.2026-11.test:t"); !ok {
				t.Fatal("target no longer served")
			}
			if _, ok := r.ports.spec("iqn.2026-11.test:u"); ok {
				t.Fatal("failed create-target left the target served")
			}
		})
	}
	if d := r.lus.open["/d/b"]; d == nil || !d.closed {
		t.Fatal("failed create-lu left its disk open")
	}
	r.st.setFail(false)
	if !reflect.DeepEqual(r.st.saved, before) {
		t.Fatal("stored state changed")
	}
}

func TestRestoreReproducesConfiguration(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	b := createLU(t, r, "/d/b", api.LUProps{})
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.HostGroup, Name: "hg"}))
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.TargetGroup, Name: "tg"}))
	must[api.Empty](t)(r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.HostGroup, Group: "hg", Member: "iqn.2026-11.test:i"}))
	must[api.Empty](t)(r.m.AddGroupMember(bg, api.MemberRequest{Kind: api.TargetGroup, Group: "tg", Member: "iqn.2026-11.test:t"}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.test:t", Alias: ptr("t")}))
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.test:off"}))
	must[api.Empty](t)(r.m.OfflineTarget(bg, api.NameRequest{Name: "iqn.2026-11.test:off"}))
	addView(t, r, api.AddViewRequest{GUID: a.GUID, HostGroup: "hg", TargetGroup: "tg"})
	addView(t, r, api.AddViewRequest{GUID: b.GUID, LUN: ptr(12)})
	must[api.Empty](t)(r.m.OfflineLU(bg, api.GUIDRequest{GUID: b.GUID}))

	n := r.restart(t)
	for name, get := range map[string]func(*rig) any{
		"lus":     func(x *rig) any { return must[[]api.LU](t)(x.m.ListLUs(bg, api.Empty{})) },
		"views a": func(x *rig) any { return must[[]api.View](t)(x.m.ListViews(bg, api.GUIDRequest{GUID: a.GUID})) },
		"views b": func(x *rig) any { return must[[]api.View](t)(x.m.ListViews(bg, api.GUIDRequest{GUID: b.GUID})) },
		"hgs": func(x *rig) any {
			return must[[]api.Group](t)(x.m.ListGroups(bg, api.GroupRequest{Kind: api.HostGroup}))
		},
		"tgs": func(x *rig) any {
			return must[[]api.Group](t)(x.m.ListGroups(bg, api.GroupRequest{Kind: api.TargetGroup}))
		},
		"targets": func(x *rig) any { return must[[]api.Target](t)(x.m.ListTargets(bg, api.Empty{})) },
	} {
		if before, after := get(r), get(n); !reflect.DeepEqual(before, after) {
			t.Errorf("%s differ after restart:\n before %+v\n after  %+v", name, before, after)
		}
	}
	if _, ok := n.ports.spec("iqn.2026-11.test:off"); ok {
		t.Error("offline target served after restart")
	}
	if _, ok := n.ports.spec("iqn.2026-11.test:t"); !ok {
		t.Error("online target not served after restart")
	}
	gb, _ := stmf.ParseGUID(b.GUID)
	if _, ok := n.fw.LU(gb); ok {
		t.Error("offline LU registered after restart")
	}
	// The initiator in hg through the target in tg sees LU a at LUN 0.
	p, _ := n.fw.RegisterPort(stmf.PortSpec{TargetName: "iqn.2026-11.test:t", Name: "iqn.2026-11.test:t,t,0x0001", Group: stmf.DefaultPortGroup})
	s, _ := p.OpenSession(stmf.Initiator{Name: "iqn.2026-11.test:i", PortName: "iqn.2026-11.test:i,i,0x1"})
	defer s.Close()
	if got := s.LUNs(); !reflect.DeepEqual(got, []scsi.LUN{0}) {
		t.Errorf("restored map: %v", got)
	}
}

func TestRestoreKeepsUnavailableLU(t *testing.T) {
	r := newRig(t)
	a := createLU(t, r, "/d/a", api.LUProps{})
	r.lus.failOn["/d/a"] = errors.New("no such file")
	n := r.restart(t)
	lus := must[[]api.LU](t)(n.m.ListLUs(bg, api.Empty{}))
	if len(lus) != 1 || lus[0].GUID != a.GUID || lus[0].Available || lus[0].Status != "Offline" {
		t.Fatalf("unavailable LU: %+v", lus)
	}
	_, err := n.m.OnlineLU(bg, api.GUIDRequest{GUID: a.GUID})
	wantCode(t, err, api.CodeDataFile)
	delete(r.lus.failOn, "/d/a")
	must[api.Empty](t)(n.m.OnlineLU(bg, api.GUIDRequest{GUID: a.GUID}))
	if lus := must[[]api.LU](t)(n.m.ListLUs(bg, api.Empty{})); !lus[0].Available || lus[0].Status != "Online" {
		t.Fatalf("after online-lu: %+v", lus)
	}
}

func TestTargets(t *testing.T) {
	r := newRig(t)
	gen := must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{}))
	if len(gen.Name) != len(GeneratedIQNPrefix)+36 || gen.Name[:len(GeneratedIQNPrefix)] != GeneratedIQNPrefix {
		t.Fatalf("generated name %q", gen.Name)
	}
	if _, ok := api.CanonicalISCSIName(gen.Name); !ok {
		t.Fatalf("generated name %q is not valid", gen.Name)
	}
	tn := "iqn.2026-11.Org.Test:T1"
	tg := must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: tn, Alias: ptr("one"), Auth: ptr("chap"), ChapSecret: ptr("0123456789abc")}))
	if tg.Name != "iqn.2026-11.org.test:t1" || !tg.ChapSecretSet || tg.Auth != "chap" || !tg.Online {
		t.Fatalf("created target %+v", tg)
	}
	if s, ok := r.ports.spec(tg.Name); !ok || s.ISCSI.Auth != "chap" || s.ISCSI.ChapSecret != "0123456789abc" {
		t.Fatalf("served spec %+v %v", s, ok)
	}
	for _, tc := range []struct {
		req  api.TargetRequest
		code api.Code
	}{
		{api.TargetRequest{Name: tn}, api.CodeTargetExists},
		{api.TargetRequest{Name: "foo"}, api.CodeInvalidName},
		{api.TargetRequest{Name: "iqn.bad"}, api.CodeInvalidISCSIName},
		{api.TargetRequest{Name: "iqn.2026-13.org.test:x"}, api.CodeInvalidISCSIName},
		{api.TargetRequest{Name: "eui.0123456789ABCDEG"}, api.CodeInvalidISCSIName},
		{api.TargetRequest{Name: "iqn.2026-11.org.test:x", ChapSecret: ptr("short")}, api.CodeInvalidSecret},
		{api.TargetRequest{Name: "iqn.2026-11.org.test:x", Auth: ptr("kerberos")}, api.CodeInvalidAuth},
		{api.TargetRequest{Name: "iqn.2026-11.org.test:x", TPGs: ptr([]string{"nope"})}, api.CodeTPGNotFound},
	} {
		_, err := r.m.CreateTarget(bg, tc.req)
		wantCode(t, err, tc.code)
	}
	// Target group membership needs the target offline.
	must[api.Empty](t)(r.m.CreateGroup(bg, api.GroupRequest{Kind: api.TargetGroup, Name: "tg"}))
	mreq := api.MemberRequest{Kind: api.TargetGroup, Group: "tg", Member: tn}
	_, err := r.m.AddGroupMember(bg, mreq)
	wantCode(t, err, api.CodeTargetOnline)
	must[api.Empty](t)(r.m.OfflineTarget(bg, api.NameRequest{Name: tn}))
	if _, ok := r.ports.spec(tg.Name); ok {
		t.Fatal("offline target still served")
	}
	must[api.Empty](t)(r.m.AddGroupMember(bg, mreq))
	must[api.Empty](t)(r.m.OnlineTarget(bg, api.NameRequest{Name: tn}))
	_, err = r.m.RemoveGroupMember(bg, mreq)
	wantCode(t, err, api.CodeTargetOnline)
	_, err = r.m.OnlineTarget(bg, api.NameRequest{Name: "iqn.2026-11.org.test:none"})
	wantCode(t, err, api.CodeTargetNotFound)
	_, err = r.m.OnlineTarget(bg, api.NameRequest{Name: "bogus"})
	wantCode(t, err, api.CodeInvalidDeviceID)

	// Portal groups and their tags.
	must[api.Empty](t)(r.m.CreateTPG(bg, api.TPG{Name: "fast", Portals: []string{"127.0.0.2", "[::1]:3261"}}))
	must[api.Empty](t)(r.m.CreateTPG(bg, api.TPG{Name: "7", Portals: []string{"127.0.0.3:3262"}}))
	_, err = r.m.CreateTPG(bg, api.TPG{Name: "fast", Portals: []string{"127.0.0.9"}})
	wantCode(t, err, api.CodeTPGExists)
	_, err = r.m.CreateTPG(bg, api.TPG{Name: "other", Portals: []string{"127.0.0.2:3260"}})
	wantCode(t, err, api.CodePortalInUse)
	_, err = r.m.CreateTPG(bg, api.TPG{Name: "other", Portals: []string{"localhost"}})
	wantCode(t, err, api.CodeInvalidPortal)
	mod := must[api.Target](t)(r.m.ModifyTarget(bg, api.TargetRequest{Name: tn, TPGs: ptr([]string{"fast", "7"})}))
	if want := []api.TPGTag{{TPG: "fast", Tag: 2}, {TPG: "7", Tag: 7}}; !reflect.DeepEqual(mod.TPGs, want) {
		t.Fatalf("tags %+v, want %+v", mod.TPGs, want)
	}
	if s, _ := r.ports.spec(tg.Name); len(s.ISCSI.PortalGroups) != 2 || s.ISCSI.PortalGroups[0].Portals[0] != "127.0.0.2:3260" || s.ISCSI.PortalGroups[0].Portals[1] != "[::1]:3261" {
		t.Fatalf("served portal groups %+v", s.ISCSI.PortalGroups)
	}
	// Re-binding keeps existing tags.
	mod = must[api.Target](t)(r.m.ModifyTarget(bg, api.TargetRequest{Name: tn, TPGs: ptr([]string{"7"})}))
	if want := []api.TPGTag{{TPG: "7", Tag: 7}}; !reflect.DeepEqual(mod.TPGs, want) {
		t.Fatalf("tags %+v, want %+v", mod.TPGs, want)
	}
	_, err = r.m.DeleteTPG(bg, api.NameRequest{Name: "7"})
	wantCode(t, err, api.CodeTPGInUse)
	must[api.Empty](t)(r.m.DeleteTPG(bg, api.NameRequest{Name: "7", Force: true}))
	if tl := must[[]api.Target](t)(r.m.ListTargets(bg, api.Empty{})); len(tl[1].TPGs) != 0 {
		t.Fatalf("forced delete-tpg left bindings: %+v", tl[1])
	}
	// Rename an online target: served under the new name only.
	must[api.Target](t)(r.m.ModifyTarget(bg, api.TargetRequest{Name: tn, NewName: "iqn.2026-11.org.test:t2"}))
	if _, ok := r.ports.spec("iqn.2026-11.org.test:t2"); !ok {
		t.Fatal("renamed target not served")
	}
	if _, ok := r.ports.spec(tg.Name); ok {
		t.Fatal("old name still served")
	}
	_, err = r.m.DeleteTarget(bg, api.NameRequest{Name: "iqn.2026-11.org.test:t2"})
	wantCode(t, err, api.CodeTargetOnline)
	must[api.Empty](t)(r.m.DeleteTarget(bg, api.NameRequest{Name: "iqn.2026-11.org.test:t2", Force: true}))
	_, err = r.m.DeleteTarget(bg, api.NameRequest{Name: "iqn.2026-11.org.test:t2"})
	wantCode(t, err, api.CodeTargetNotFound)
}

func TestTagFor(t *testing.T) {
	for _, tc := range []struct {
		tpg  string
		used []uint16
		want uint16
	}{
		{"a", nil, 2},
		{"5", nil, 5},
		{"1", nil, 2},
		{"65535", nil, 2},
		{"5", []uint16{5}, 6},
		{"b", []uint16{2, 9}, 10},
		{"b", []uint16{65535, 2}, 3},
	} {
		var used []store.TPGT
		for _, u := range tc.used {
			used = append(used, store.TPGT{TPG: "x", Tag: u})
		}
		got, err := tagFor(tc.tpg, used)
		if err != nil || got != tc.want {
			t.Errorf("tagFor(%q, %v) = %d, %v; want %d", tc.tpg, tc.used, got, err, tc.want)
		}
	}
}

func TestInitiatorsAndDefaults(t *testing.T) {
	r := newRig(t)
	must[api.Empty](t)(r.m.CreateInitiator(bg, api.InitiatorRequest{Name: "iqn.1993-08.org.debian:01:ABC", ChapSecret: ptr("averysecretone")}))
	_, err := r.m.CreateInitiator(bg, api.InitiatorRequest{Name: "iqn.1993-08.org.debian:01:abc"})
	wantCode(t, err, api.CodeInitiatorExists)
	_, err = r.m.CreateInitiator(bg, api.InitiatorRequest{Name: "iqn.1993-08.org.debian:01:x", ChapSecret: ptr("short")})
	wantCode(t, err, api.CodeInvalidSecret)
	_, err = r.m.CreateInitiator(bg, api.InitiatorRequest{Name: "host"})
	wantCode(t, err, api.CodeInvalidName)
	_, err = r.m.ModifyInitiator(bg, api.InitiatorRequest{Name: "iqn.1993-08.org.debian:01:none", ChapUser: ptr("u")})
	wantCode(t, err, api.CodeInitiatorNotFound)
	must[api.Empty](t)(r.m.ModifyInitiator(bg, api.InitiatorRequest{Name: "iqn.1993-08.org.debian:01:abc", ChapUser: ptr("alice")}))
	la, err := r.m.LoginAuth("iqn.1993-08.org.debian:01:abc", "iqn.2026-11.org.test:none", false)
	if err != nil || la.Required || la.InitiatorUser != "alice" || la.InitiatorSecret != "averysecretone" {
		t.Fatalf("login auth %+v %v", la, err)
	}
	ini := must[[]api.Initiator](t)(r.m.ListInitiators(bg, api.Empty{}))
	if want := []api.Initiator{{Name: "iqn.1993-08.org.debian:01:abc", ChapUser: "alice", ChapSecretSet: true}}; !reflect.DeepEqual(ini, want) {
		t.Fatalf("initiators %+v", ini)
	}
	must[api.Empty](t)(r.m.DeleteInitiator(bg, api.NameRequest{Name: "iqn.1993-08.org.debian:01:abc"}))
	_, err = r.m.DeleteInitiator(bg, api.NameRequest{Name: "iqn.1993-08.org.debian:01:abc"})
	wantCode(t, err, api.CodeInitiatorNotFound)

	_, err = r.m.ModifyDefaults(bg, api.DefaultsRequest{})
	wantCode(t, err, api.CodeInvalidArgument)
	_, err = r.m.ModifyDefaults(bg, api.DefaultsRequest{Auth: ptr("radius")})
	wantCode(t, err, api.CodeMissingProp)
	_, err = r.m.ModifyDefaults(bg, api.DefaultsRequest{Auth: ptr("default")})
	wantCode(t, err, api.CodeInvalidAuth)
	// A target following the defaults gets the new method live.
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.org.test:d"}))
	must[api.Empty](t)(r.m.ModifyDefaults(bg, api.DefaultsRequest{Auth: ptr("chap"), RadiusServer: ptr("10.0.0.1"), ISNSServers: ptr([]string{"10.0.0.2", "10.0.0.3:99"})}))
	if s, _ := r.ports.spec("iqn.2026-11.org.test:d"); s.ISCSI.Auth != "chap" {
		t.Fatalf("target following defaults serves auth %q", s.ISCSI.Auth)
	}
	if la, err := r.m.LoginAuth("iqn.1993-08.org.debian:01:x", "iqn.2026-11.org.test:d", false); err != nil || !la.Required || la.InitiatorSecret != "" {
		t.Fatalf("login auth with chap defaults and no initiator secret: %+v %v", la, err)
	}
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.org.test:m", Auth: ptr("none"), ChapSecret: ptr("targetsecret1")}))
	if la, err := r.m.LoginAuth("iqn.1993-08.org.debian:01:x", "iqn.2026-11.org.test:m", false); err != nil || la.Required || la.TargetUser != "iqn.2026-11.org.test:m" || la.TargetSecret != "targetsecret1" {
		t.Fatalf("login auth for a target with auth none: %+v %v", la, err)
	}
	if la, err := r.m.LoginAuth("iqn.1993-08.org.debian:01:x", "", true); err != nil || !la.Required {
		t.Fatalf("discovery login auth: %+v %v", la, err)
	}
	// A target with auth radius and no RADIUS secret yet cannot be logged in to.
	must[api.Target](t)(r.m.CreateTarget(bg, api.TargetRequest{Name: "iqn.2026-11.org.test:r", Auth: ptr("radius")}))
	if _, err := r.m.LoginAuth("iqn.1993-08.org.debian:01:x", "iqn.2026-11.org.test:r", false); err == nil {
		t.Fatal("radius login auth without a RADIUS secret: no error")
	}
	must[api.Empty](t)(r.m.CreateInitiator(bg, api.InitiatorRequest{Name: "iqn.1993-08.org.debian:01:x", ChapSecret: ptr("localsecret12")}))
	must[api.Empty](t)(r.m.ModifyDefaults(bg, api.DefaultsRequest{RadiusSecret: ptr("radiussecret1")}))
	if la, err := r.m.LoginAuth("iqn.1993-08.org.debian:01:x", "iqn.2026-11.org.test:r", false); err != nil || !la.Required || la.InitiatorSecret != "" ||
		!reflect.DeepEqual(la.RadiusServers, []string{"10.0.0.1:1812"}) || la.RadiusSecret != "radiussecret1" {
		t.Fatalf("radius login auth: %+v %v", la, err)
	}
	d := must[api.Defaults](t)(r.m.GetDefaults(bg, api.Empty{}))
	want := api.Defaults{Auth: "chap", RadiusServer: "10.0.0.1:1812", RadiusSecretSet: true, ISNSServers: []string{"10.0.0.2:3205", "10.0.0.3:99"}}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("defaults %+v, want %+v", d, want)
	}
}
