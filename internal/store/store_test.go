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
		Targets:    []Target{{Name: "iqn.2026-11.test:t", TPGs: []string{"tpg1"}}},
		TPGs:       []TPG{{Name: "tpg1", Tag: 2, Portals: []string{"127.0.0.1:3260"}}},
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
