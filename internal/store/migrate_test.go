package store

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// copyState copies a testdata state directory to a temporary one, so that
// Save never writes into testdata.
func copyState(t *testing.T, from string) *Store {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(from, FileName))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testdata/v1 was written by the previous release's stmfd (version 1: flat
// iSCSI target records, portal groups, initiators and defaults at the top).
func TestLoadVersion1(t *testing.T) {
	s := copyState(t, filepath.Join("testdata", "v1"))
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	const (
		a = "600144F0AABBCCDD0000000000000001"
		b = "600144F0AABBCCDD0000000000000002"
		c = "600144F0AABBCCDD0000000000000003"
	)
	want := &State{
		Version: Version,
		LUs:     []LU{{GUID: a, DataFile: "/d/a.img"}, {GUID: b, DataFile: "/d/b.img", MetaFile: "/d/b.meta"}, {GUID: c, DataFile: "/d/c.img", Offline: true}},
		Views: []View{
			{GUID: a, Entry: 0, HostGroup: "esx", TargetGroup: "fast", LUN: 0},
			{GUID: a, Entry: 1, HostGroup: "empty", LUN: 5},
			{GUID: b, Entry: 0, LUN: 1},
			{GUID: c, Entry: 0, LUN: 12},
		},
		HostGroups:   []Group{{Name: "esx", Members: []string{"iqn.1998-01.com.vmware:esx1", "wwn.2100001B32AABBCC"}}, {Name: "empty", Members: []string{}}},
		TargetGroups: []Group{{Name: "fast", Members: []string{"iqn.2026-11.org.test:fast"}}},
		Targets: []Target{
			{Name: "iqn.2026-11.org.test:fast", Protocol: ProtocolISCSI, Alias: "fast one", ISCSI: ISCSITarget{
				TPGTs: []TPGT{{TPG: "2", Tag: 2}, {TPG: "backup", Tag: 3}}, Auth: "chap", ChapUser: "tgtuser", ChapSecret: "target-secret-1"}},
			{Name: "iqn.2026-11.org.test:plain", Protocol: ProtocolISCSI},
			{Name: "iqn.2026-11.org.test:off", Protocol: ProtocolISCSI, Offline: true, ISCSI: ISCSITarget{Auth: "none"}},
		},
		ISCSI: ISCSI{
			TPGs: []TPG{{Name: "2", Portals: []string{"127.0.0.2:3260"}}, {Name: "backup", Portals: []string{"127.0.0.3:3261", "[::1]:3260"}}},
			Initiators: []Initiator{
				{Name: "iqn.1998-01.com.vmware:esx1", ChapUser: "esx1", ChapSecret: "initiator-secret"},
				{Name: "iqn.1993-08.org.debian:01:abc", ChapSecret: "other-secret-12"},
			},
			Defaults: Defaults{Auth: "chap", RadiusServer: "10.0.0.9:1812", RadiusSecret: "radius-secret-1", ISNS: true,
				ISNSServers: []string{"10.0.0.7:3205", "10.0.0.8:3206"}},
		},
		RelPortIDs: map[string]uint16{
			"iqn.2026-11.org.test:fast,t,0x0002":  2,
			"iqn.2026-11.org.test:fast,t,0x0003":  3,
			"iqn.2026-11.org.test:plain,t,0x0001": 1,
		},
		ALUA: []ALUAGroup{{Tag: 2, State: "standby"}, {Tag: 3, State: "active-nonoptimized"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("version 1 document:\n got %+v\nwant %+v", got, want)
	}
	// Saved, it is a current document that loads back the same.
	if err := s.Save(got); err != nil {
		t.Fatal(err)
	}
	again, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("after save and load:\n got %+v\nwant %+v", again, want)
	}
}

func TestLoadDefaultsProtocol(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want []Target
	}{
		"v1 target": {`{"version":1,"targets":[{"name":"iqn.a","auth":"chap"}]}`,
			[]Target{{Name: "iqn.a", Protocol: ProtocolISCSI, ISCSI: ISCSITarget{Auth: "chap"}}}},
		"v2 target without protocol": {`{"version":2,"targets":[{"name":"iqn.a"}]}`,
			[]Target{{Name: "iqn.a", Protocol: ProtocolISCSI}}},
		"v2 fc target": {`{"version":2,"targets":[{"name":"wwn.2100001B32A1B2C3","protocol":"fc"}]}`,
			[]Target{{Name: "wwn.2100001B32A1B2C3", Protocol: "fc"}}},
		"no version": {`{"targets":[{"name":"iqn.a","tpgts":[{"tpg":"p","tag":2}]}]}`,
			[]Target{{Name: "iqn.a", Protocol: ProtocolISCSI, ISCSI: ISCSITarget{TPGTs: []TPGT{{TPG: "p", Tag: 2}}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			st, err := decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != Version || !reflect.DeepEqual(st.Targets, tc.want) {
				t.Fatalf("got version %d targets %+v, want %+v", st.Version, st.Targets, tc.want)
			}
		})
	}
}
