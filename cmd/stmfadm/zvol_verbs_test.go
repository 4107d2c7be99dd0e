package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

// The ZFS verbs send the right requests and print the results.
func TestZFSCommands(t *testing.T) {
	lu := api.LU{GUID: guid, DataFile: "/dev/zvol/tank/v1-s1"}
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodCreateZvolLU: {Body: lu},
		api.MethodImportZvolLU: {Body: lu},
		api.MethodCloneLU:      {Body: lu},
		api.MethodSnapshotLU:   {Body: api.Snapshot{GUID: guid, Name: "tank/v1@s1"}},
	})
	for _, tc := range []struct {
		args   []string
		stdout string
		method string
		body   any
	}{
		{[]string{"stmfadm", "create-lu", "-p", "zvol=tank/v1", "-p", "blk=16384", "-p", "alias=db", "-s", "1g"},
			"Logical unit created: " + guid + "\n", api.MethodCreateZvolLU,
			api.CreateZvolLURequest{Zvol: "tank/v1", Size: 1 << 30, VolBlockSize: 16384, Props: api.LUProps{Alias: ptr("db")}}},
		{[]string{"stmfadm", "create-lu", "-p", "ZVOL=tank/v1", "-s", "8m", "-p", "wcd=true"},
			"Logical unit created: " + guid + "\n", api.MethodCreateZvolLU,
			api.CreateZvolLURequest{Zvol: "tank/v1", Size: 8 << 20, Props: api.LUProps{WCD: ptr(true)}}},
		{[]string{"stmfadm", "import-lu", "-p", "guid=600144f0aabbccdd0000000000000009", "/dev/zvol/tank/r"},
			"Logical unit imported: " + guid + "\n", api.MethodImportZvolLU,
			api.ImportZvolLURequest{File: "/dev/zvol/tank/r", GUID: "600144F0AABBCCDD0000000000000009"}},
		{[]string{"stmfadm", "snapshot-lu", guid, "s1"}, "Snapshot created: tank/v1@s1\n", api.MethodSnapshotLU,
			api.SnapshotLURequest{GUID: guid, Name: "s1"}},
		{[]string{"stmfadm", "clone-lu", "-p", "alias=copy", "-p", "zvol=tank/c", guid + "@s1"},
			"Logical unit created: " + guid + "\nData File: /dev/zvol/tank/v1-s1\n", api.MethodCloneLU,
			api.CloneLURequest{Source: guid + "@s1", Zvol: "tank/c", Props: api.LUProps{Alias: ptr("copy")}}},
		{[]string{"stmfadm", "delete-lu", "--destroy-zvol", "-k", guid}, "", api.MethodDestroyLU,
			api.DestroyLURequest{GUID: guid, KeepViews: true}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			n := len(srv.Calls())
			code, stdout, stderr := runCLI(t, srv.Socket, tc.args...)
			if code != 0 || stdout != tc.stdout {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0, %q", code, stdout, stderr, tc.stdout)
			}
			calls := srv.Calls()[n:]
			if len(calls) != 1 || calls[0].Method != tc.method {
				t.Fatalf("calls %+v, want one %s", calls, tc.method)
			}
			want, _ := json.Marshal(tc.body)
			if strings.TrimSpace(calls[0].Body) != string(want) {
				t.Errorf("request %s, want %s", calls[0].Body, want)
			}
		})
	}
}

// Bad ZFS command lines are refused before the daemon is asked.
func TestZFSArgumentValidation(t *testing.T) {
	srv := apitest.Serve(t, nil)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"stmfadm", "create-lu", "-p", "zvol=tank", "-s", "1g"}, exitFail,
			"stmfadm: unable to set zvol: \"tank\" names a pool, not a volume in it (want pool/volume)\n"},
		{[]string{"stmfadm", "create-lu", "-p", "zvol=tank/v", "-p", "blk=1000", "-s", "1g"}, exitFail,
			"stmfadm: invalid block size\nstmfadm: detail: with zvol=, blk= is the zvol's volblocksize: a power of two from 512 to 131072\n"},
		{[]string{"stmfadm", "create-lu", "-p", "zvol=tank/v"}, exitUsage, "stmfadm: create-lu: -p zvol= needs -s <size>\n"},
		{[]string{"stmfadm", "create-lu", "-p", "zvol=tank/v", "-s", "1g", "/dev/zvol/tank/v"}, exitUsage,
			"stmfadm: create-lu: -p zvol= creates the zvol; give no lu-file (/dev/zvol/tank/v)\n"},
		{[]string{"stmfadm", "create-lu", "-p", "zvol=tank/v", "-p", "meta=/m", "-s", "1g"}, exitFail,
			"stmfadm: meta file error\nstmfadm: detail: a zvol LU keeps its metadata in the zvol; meta= does not apply\n"},
		{[]string{"stmfadm", "create-lu", "-p", "zvol=tank/v", "-p", "vid=123456789", "-s", "1g"}, exitFail,
			"stmfadm: unable to set vid: invalid length\n"},
		{[]string{"stmfadm", "import-lu", "-p", "guid=12", "/dev/zvol/tank/v"}, exitFail, "stmfadm: unable to set guid: invalid length\n"},
		{[]string{"stmfadm", "import-lu", "-p", "vid=x", "/dev/zvol/tank/v"}, exitFail,
			"stmfadm: invalid property specified: vid\nstmfadm: detail: import-lu takes guid= and alias=\n"},
		{[]string{"stmfadm", "snapshot-lu", guid}, exitUsage, "stmfadm: snapshot-lu: operand required: lu-name snapshot-name\n"},
		{[]string{"stmfadm", "snapshot-lu", "xyz", "s1"}, exitFail, "stmfadm: xyz: must be 32 hexadecimal digits long\n"},
		{[]string{"stmfadm", "snapshot-lu", guid, "a/b"}, exitFail, "stmfadm: a/b: invalid snapshot name: snapshot name \"a/b\": invalid character '/'\n"},
		{[]string{"stmfadm", "clone-lu", guid}, exitFail,
			"stmfadm: \"" + guid + "\": want <GUID>@<snapshot> or <pool/volume>@<snapshot>\n"},
		{[]string{"stmfadm", "clone-lu", "-p", "blk=4096", guid + "@s1"}, exitFail, "stmfadm: invalid property specified: blk\n"},
		{[]string{"stmfadm", "delete-lu", "--destroy-zvol", "xyz"}, exitFail, "stmfadm: xyz: must be 32 hexadecimal digits long\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, srv.Socket, tc.args...)
			if code != tc.code || stderr != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
	if calls := srv.Calls(); len(calls) != 0 {
		t.Errorf("invalid command lines reached the daemon: %+v", calls)
	}
}

// A failing zfs command is shown with the daemon's detail (command and stderr).
func TestZFSErrorMessage(t *testing.T) {
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodCreateZvolLU: {Err: api.Errorf(api.CodeZFS, "tank/v", `"zfs create -p -V 1073741824 tank/v" failed: exit status 1: cannot create 'tank/v': out of space`)},
	})
	code, _, stderr := runCLI(t, srv.Socket, "stmfadm", "create-lu", "-p", "zvol=tank/v", "-s", "1g")
	want := "stmfadm: zfs error\nstmfadm: detail: \"zfs create -p -V 1073741824 tank/v\" failed: exit status 1: cannot create 'tank/v': out of space\n"
	if code != exitFail || stderr != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr, exitFail, want)
	}
}

func ptr[T any](v T) *T { return &v }

// list-lu -v says why an LU is offline (its zvol's pool not imported yet).
func TestListLUStatusDetail(t *testing.T) {
	var b strings.Builder
	writeLU(&b, api.LU{GUID: guid, Status: "Offline", StatusDetail: "waiting for zvol tank/v1 (pool not imported?)",
		Provider: "sbd", DataFile: "/dev/zvol/tank/v1", AccessState: "Active"}, true)
	want := "LU Name: " + guid + "\n" +
		"    Operational Status: Offline\n" +
		"    Status Detail     : waiting for zvol tank/v1 (pool not imported?)\n" +
		"    Provider Name     : sbd\n" +
		"    Alias             : -\n" +
		"    View Entry Count  : 0\n" +
		"    Data File         : /dev/zvol/tank/v1\n" +
		"    Meta File         : not set\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
