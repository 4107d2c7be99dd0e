package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	empty, err := s.Load()
	if err != nil || len(empty.LUs) != 0 || empty.Version != Version {
		t.Fatalf("empty load: %+v %v", empty, err)
	}
	want := &State{
		LUs:        []LU{{GUID: "600144F0000000000000000000000001", DataFile: "/d/lu0"}},
		Views:      []View{{GUID: "600144F0000000000000000000000001", Entry: 0, HostGroup: "hg1", LUN: 3}},
		HostGroups: []Group{{Name: "hg1", Members: []string{"iqn.2026-11.test:a"}}},
		Targets: []Target{
			{Name: "iqn.2026-11.test:t", Protocol: ProtocolISCSI, ISCSI: ISCSITarget{TPGTs: []TPGT{{TPG: "tpg1", Tag: 2}}}},
			{Name: "wwn.2100001B32A1B2C3", Protocol: "fc", Offline: true},
		},
		ISCSI:      ISCSI{TPGs: []TPG{{Name: "tpg1", Portals: []string{"127.0.0.1:3260"}}}},
		RelPortIDs: map[string]uint16{"iqn.2026-11.test:t,t,0x0002": 1},
	}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, "state", FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v %v", fi, err)
	}
	// No temp files are left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "state"))
	if len(ents) != 1 {
		t.Errorf("state dir has %d entries, want 1", len(ents))
	}
}

func TestLoadRejectsCorruptAndFuture(t *testing.T) {
	for name, body := range map[string]string{
		"corrupt": "{not json",
		"future":  `{"version": 99}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s, _ := Open(dir)
		if _, err := s.Load(); err == nil {
			t.Errorf("%s: Load succeeded", name)
		}
	}
}

func TestCloneIsDeep(t *testing.T) {
	st := &State{
		Version:      Version,
		LUs:          []LU{{GUID: "G", DataFile: "/d"}},
		Views:        []View{{GUID: "G", LUN: 1}},
		HostGroups:   []Group{{Name: "hg", Members: []string{"iqn.a"}}},
		TargetGroups: []Group{{Name: "tg", Members: []string{"iqn.t"}}},
		Targets:      []Target{{Name: "iqn.t", Protocol: ProtocolISCSI, ISCSI: ISCSITarget{TPGTs: []TPGT{{TPG: "p", Tag: 2}}}}},
		ISCSI: ISCSI{
			TPGs:       []TPG{{Name: "p", Portals: []string{"127.0.0.1:3260"}}},
			Initiators: []Initiator{{Name: "iqn.a", ChapSecret: "0123456789ab"}},
			Defaults:   Defaults{ISNSServers: []string{"127.0.0.1:3205"}},
		},
		RelPortIDs: map[string]uint16{"p": 1},
	}
	c := st.Clone()
	if !reflect.DeepEqual(c, st) {
		t.Fatalf("clone differs:\n%+v\n%+v", c, st)
	}
	c.LUs[0].GUID = "X"
	c.Views[0].LUN = 9
	c.HostGroups[0].Members[0] = "X"
	c.TargetGroups[0].Members[0] = "X"
	c.Targets[0].ISCSI.TPGTs[0].Tag = 9
	c.ISCSI.TPGs[0].Portals[0] = "X"
	c.ISCSI.Initiators[0].ChapSecret = "X"
	c.ISCSI.Defaults.ISNSServers[0] = "X"
	c.RelPortIDs["p"] = 9
	if st.LUs[0].GUID != "G" || st.Views[0].LUN != 1 || st.HostGroups[0].Members[0] != "iqn.a" ||
		st.TargetGroups[0].Members[0] != "iqn.t" || st.Targets[0].ISCSI.TPGTs[0].Tag != 2 ||
		st.ISCSI.TPGs[0].Portals[0] != "127.0.0.1:3260" || st.ISCSI.Initiators[0].ChapSecret != "0123456789ab" ||
		st.ISCSI.Defaults.ISNSServers[0] != "127.0.0.1:3205" || st.RelPortIDs["p"] != 1 {
		t.Fatalf("changing the clone changed the original: %+v", st)
	}
}
