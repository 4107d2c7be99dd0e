package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

func TestMain(m *testing.M) {
	configureHelpFlag()
	os.Exit(m.Run())
}

const guid = "600144F0AABBCCDD0000000000000001"

// runCLI runs one command line against socket and returns exit code,
// stdout and stderr.
func runCLI(t *testing.T, socket string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	argv := append([]string{args[0], "--socket", socket}, args[1:]...)
	code := run(context.Background(), argv, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestFormats(t *testing.T) {
	since := time.Date(2026, 11, 3, 9, 5, 7, 0, time.UTC)
	lu := api.LU{GUID: guid, Status: "Online", Provider: "sbd", ViewEntryCount: 2, DataFile: "/dev/zvol/tank/vm1",
		Available: true, Size: 10737418240, BlockSize: 512, VID: "COSTAR", PID: "COMSTAR", AccessState: "Active"}
	lu2 := lu
	lu2.Alias, lu2.MetaFile, lu2.MgmtURL, lu2.Serial = "vm1", "/var/meta", "http://m", "S1"
	lu2.WriteProtect, lu2.WriteCacheDisabled = true, true
	failed := lu
	failed.ErrorState = "sync failed at 2026-12-02T04:00:00Z: input/output error"
	gone := api.LU{GUID: guid, Status: "Offline", Provider: "sbd", DataFile: "/gone", AccessState: "Active"}
	var b strings.Builder
	for _, tc := range []struct {
		name  string
		write func()
		want  string
	}{
		{"list-lu", func() { writeLU(&b, lu, false) }, "LU Name: " + guid + "\n"},
		{"list-lu -v", func() { writeLU(&b, lu, true) }, "LU Name: " + guid + "\n" +
			"    Operational Status: Online\n" +
			"    Provider Name     : sbd\n" +
			"    Alias             : -\n" +
			"    View Entry Count  : 2\n" +
			"    Data File         : /dev/zvol/tank/vm1\n" +
			"    Meta File         : not set\n" +
			"    Size              : 10737418240\n" +
			"    Block Size        : 512\n" +
			"    Management URL    : not set\n" +
			"    Vendor ID         : COSTAR\n" +
			"    Product ID        : COMSTAR\n" +
			"    Serial Num        : not set\n" +
			"    Write Protect     : Disabled\n" +
			"    Writeback Cache   : Enabled\n" +
			"    Access State      : Active\n"},
		{"list-lu -v, write-back failure", func() { writeLU(&b, failed, true) }, "LU Name: " + guid + "\n" +
			"    Operational Status: Online\n" +
			"    Provider Name     : sbd\n" +
			"    Alias             : -\n" +
			"    View Entry Count  : 2\n" +
			"    Data File         : /dev/zvol/tank/vm1\n" +
			"    Meta File         : not set\n" +
			"    Size              : 10737418240\n" +
			"    Block Size        : 512\n" +
			"    Management URL    : not set\n" +
			"    Vendor ID         : COSTAR\n" +
			"    Product ID        : COMSTAR\n" +
			"    Serial Num        : not set\n" +
			"    Write Protect     : Disabled\n" +
			"    Writeback Cache   : Enabled\n" +
			"    Access State      : Active\n" +
			"    Error State       : sync failed at 2026-12-02T04:00:00Z: input/output error\n"},
		{"list-lu -v, all set", func() { writeLU(&b, lu2, true) }, "LU Name: " + guid + "\n" +
			"    Operational Status: Online\n" +
			"    Provider Name     : sbd\n" +
			"    Alias             : vm1\n" +
			"    View Entry Count  : 2\n" +
			"    Data File         : /dev/zvol/tank/vm1\n" +
			"    Meta File         : /var/meta\n" +
			"    Size              : 10737418240\n" +
			"    Block Size        : 512\n" +
			"    Management URL    : http://m\n" +
			"    Vendor ID         : COSTAR\n" +
			"    Product ID        : COMSTAR\n" +
			"    Serial Num        : S1\n" +
			"    Write Protect     : Enabled\n" +
			"    Writeback Cache   : Disabled\n" +
			"    Access State      : Active\n"},
		{"list-lu -v, backing store missing", func() { writeLU(&b, gone, true) }, "LU Name: " + guid + "\n" +
			"    Operational Status: Offline\n" +
			"    Provider Name     : sbd\n" +
			"    Alias             : -\n" +
			"    View Entry Count  : 0\n" +
			"    Data File         : /gone\n" +
			"    Meta File         : not set\n"},
		{"list-view", func() {
			writeView(&b, api.View{Entry: 0, LUN: 0})
			writeView(&b, api.View{Entry: 1, HostGroup: "esx", TargetGroup: "fast", LUN: 12})
		}, "View Entry: 0\n    Host group   : All\n    Target group : All\n    LUN          : 0\n" +
			"View Entry: 1\n    Host group   : esx\n    Target group : fast\n    LUN          : 12\n"},
		{"list-hg -v", func() {
			writeGroup(&b, api.HostGroup, api.Group{Name: "esx", Members: []string{"iqn.a", "wwn.2100001B32AABBCC"}}, true)
			writeGroup(&b, api.HostGroup, api.Group{Name: "empty", Members: []string{}}, true)
		}, "Host Group: esx\n\tMember: iqn.a\n\tMember: wwn.2100001B32AABBCC\nHost Group: empty\n"},
		{"list-tg", func() { writeGroup(&b, api.TargetGroup, api.Group{Name: "fast", Members: []string{"iqn.t"}}, false) },
			"Target Group: fast\n"},
		{"list-target -v", func() {
			writeTarget(&b, api.Target{Name: "iqn.2026-11.org.costar:demo", Online: true, Provider: "iscsit", Protocol: "iSCSI",
				Sessions: []api.Session{{Initiator: "iqn.1993-08.org.debian:01:abc", LoggedInSince: since}, {Initiator: "iqn.x", Alias: "host", LoggedInSince: since}}}, true, time.UTC)
			writeTarget(&b, api.Target{Name: "iqn.t2", Alias: "two", Provider: "iscsit", Protocol: "iSCSI"}, true, time.UTC)
		}, "Target: iqn.2026-11.org.costar:demo\n" +
			"    Operational Status: Online\n" +
			"    Provider Name     : iscsit\n" +
			"    Alias             : -\n" +
			"    Protocol          : iSCSI\n" +
			"    Sessions          : 2\n" +
			"        Initiator: iqn.1993-08.org.debian:01:abc\n" +
			"            Alias: -\n" +
			"            Logged in since: Tue Nov  3 09:05:07 2026\n" +
			"        Initiator: iqn.x\n" +
			"            Alias: host\n" +
			"            Logged in since: Tue Nov  3 09:05:07 2026\n" +
			"Target: iqn.t2\n" +
			"    Operational Status: Offline\n" +
			"    Provider Name     : iscsit\n" +
			"    Alias             : two\n" +
			"    Protocol          : iSCSI\n" +
			"    Sessions          : 0\n"},
		{"list-state", func() { writeState(&b, api.State{Operational: "online", Config: "initialized", ALUA: "disabled"}) },
			"Operational Status: online\nConfig Status     : initialized\nALUA Status       : disabled\nALUA Node         : 0\n"},
		{"sbdadm rows", func() { writeSbdRows(&b, []api.LU{lu}) },
			"\n\t      GUID                    DATA SIZE           SOURCE\n" +
				"--------------------------------  -------------------  ----------------\n" +
				"600144f0aabbccdd0000000000000001  10737418240          /dev/zvol/tank/vm1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.Reset()
			tc.write()
			if got := b.String(); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// Bad command lines are refused before the daemon is asked.
func TestArgumentValidation(t *testing.T) {
	srv := apitest.Serve(t, nil)
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"stmfadm", "create-lu", "-p", "vid=123456789", "/x"}, exitFail, "stmfadm: unable to set vid: invalid length\n"},
		{[]string{"stmfadm", "create-lu", "-p", "pid=12345678901234567", "/x"}, exitFail, "stmfadm: unable to set pid: invalid length\n"},
		{[]string{"stmfadm", "create-lu", "-p", "Foo=1", "/x"}, exitFail, "stmfadm: invalid property specified: Foo\n"},
		{[]string{"stmfadm", "create-lu", "-p", "alias", "/x"}, exitFail, "stmfadm: alias: invalid property specifier - prop=val\n"},
		{[]string{"stmfadm", "create-lu", "-p", "WCD=maybe", "/x"}, exitFail, "stmfadm: unable to set WCD: bad format\n"},
		{[]string{"stmfadm", "create-lu", "-p", "guid=1234", "/x"}, exitFail, "stmfadm: unable to set guid: invalid length\n"},
		{[]string{"stmfadm", "create-lu", "-p", "guid=600144F0AABBCCDD000000000000000G", "/x"}, exitFail, "stmfadm: unable to set guid: bad format\n"},
		{[]string{"stmfadm", "create-lu", "-p", "blk=1000", "/x"}, exitFail, "stmfadm: invalid block size\n"},
		{[]string{"stmfadm", "create-lu", "-p", "oui=12345", "/x"}, exitFail, "stmfadm: unable to set oui: invalid length\n"},
		{[]string{"stmfadm", "create-lu", "-s", "12x", "/x"}, exitFail, "stmfadm: s: size param invalid\n"},
		{[]string{"stmfadm", "create-lu"}, exitUsage, "stmfadm: create-lu: one operand required: lu file\n"},
		{[]string{"stmfadm", "create-lu", "/a", "/b"}, exitUsage, "stmfadm: create-lu: too many operands (/a /b)\n"},
		{[]string{"stmfadm", "modify-lu", "-s", "1g", "1234"}, exitFail, "stmfadm: 1234: must be 32 hexadecimal digits\n"},
		{[]string{"stmfadm", "modify-lu", "-p", "vid=x", guid}, exitFail, "stmfadm: invalid property for modify\n"},
		{[]string{"stmfadm", "modify-lu", "-p", "nope=x", guid}, exitFail, "stmfadm: invalid property specified: nope\n"},
		{[]string{"stmfadm", "modify-lu", "-p", "alias", guid}, exitFail, "stmfadm: alias: invalid property specifier- prop=val\n"},
		{[]string{"stmfadm", "modify-lu", "-p", "wp=yes", guid}, exitFail, "stmfadm: unable to set wp: bad format\n"},
		{[]string{"stmfadm", "add-view", "-n", "16384", guid}, exitFail, "stmfadm: 16384: Logical unit number must be less than 16384\n"},
		{[]string{"stmfadm", "add-view", "-n", "x", guid}, exitFail, "stmfadm: x: invalid logical unit number\n"},
		{[]string{"stmfadm", "add-view", "600144F0"}, exitFail, "stmfadm: 600144F0: must be 32 hexadecimal digits\n"},
		{[]string{"stmfadm", "delete-lu", "xyz"}, exitFail, "stmfadm: xyz: must be 32 hexadecimal digits long\n"},
		{[]string{"stmfadm", "online-lu", "xyz"}, exitFail, "stmfadm: xyz: must be 32 hexadecimal digits long\n"},
		{[]string{"stmfadm", "list-view"}, exitUsage, "stmfadm: list-view: -l, --lu-name is required\n"},
		{[]string{"stmfadm", "list-view", "-l", "abc"}, exitFail, "stmfadm: abc: must be 32 hexadecimal digits long\n"},
		{[]string{"stmfadm", "remove-view", "-l", guid}, exitFail, "stmfadm: no view entries specified\n"},
		{[]string{"stmfadm", "remove-view", "1"}, exitFail, "stmfadm: logical unit (-l) not specified\n"},
		{[]string{"stmfadm", "add-hg-member", "iqn.x"}, exitUsage, "stmfadm: add-hg-member: -g, --group-name is required\n"},
		{[]string{"stmfadm", "list-lu", "-o", "yaml"}, exitUsage, "stmfadm: -o yaml: unknown output format (text or json)\n"},
		{[]string{"stmfadm", "frobnicate"}, exitUsage, "stmfadm: frobnicate: unknown subcommand (see stmfadm --help)\n"},
		{[]string{"stmfadm", "create-hg", "--bogus", "x"}, exitUsage, "stmfadm: flag provided but not defined: -bogus\n"},
		{[]string{"sbdadm", "modify-lu", guid}, exitUsage, "sbdadm: modify-lu: -s, --disk-size is required\n"},
		{[]string{"sbdadm", "modify-lu", "-s", "1g", "abc"}, exitFail, "sbdadm: abc: must be 32 hexadecimal digits\n"},
		{[]string{"sbdadm", "create-lu", "-s", "lots", "/x"}, exitFail, "sbdadm: s: size param invalid\n"},
		{[]string{"/usr/sbin/sbdadm", "delete-lu", guid, guid}, exitUsage, "sbdadm: delete-lu: too many operands (" + guid + " " + guid + ")\n"},
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

// API errors are printed in COMSTAR's words.
func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		method string
		err    *api.Error
		args   []string
		stderr string
	}{
		{api.MethodCreateLU, &api.Error{Code: api.CodeFileInUse, Subject: "/x"}, []string{"stmfadm", "create-lu", "/x"}, "stmfadm: filename /x: in use\n"},
		{api.MethodCreateLU, &api.Error{Code: api.CodeGUIDInUse}, []string{"stmfadm", "create-lu", "/x"}, "stmfadm: guid in use\n"},
		{api.MethodCreateLU, &api.Error{Code: api.CodeDataFile, Message: "open /x: no such file"}, []string{"stmfadm", "create-lu", "/x"},
			"stmfadm: data file error\nstmfadm: detail: open /x: no such file\n"},
		{api.MethodCreateLU, &api.Error{Code: api.CodeMetaFile, Message: "m"}, []string{"stmfadm", "create-lu", "/x"}, "stmfadm: meta file error\nstmfadm: detail: m\n"},
		{api.MethodCreateLU, &api.Error{Code: api.CodeInvalidBlockSize}, []string{"stmfadm", "create-lu", "/x"}, "stmfadm: invalid block size\n"},
		{api.MethodCreateLU, &api.Error{Code: api.CodeInvalidSize, Message: "s"}, []string{"stmfadm", "create-lu", "/x"}, "stmfadm: invalid size\nstmfadm: detail: s\n"},
		{api.MethodCreateLU, &api.Error{Code: api.CodeFileInUse, Subject: "/x"}, []string{"sbdadm", "create-lu", "/x"}, "sbdadm: filename /x: in use\n"},
		{api.MethodImportLU, &api.Error{Code: api.CodeGUIDInUse}, []string{"stmfadm", "import-lu", "/x"}, "stmfadm: guid in use\n"},
		{api.MethodModifyLU, &api.Error{Code: api.CodeLUNotFound}, []string{"stmfadm", "modify-lu", "-s", "1g", guid}, "stmfadm: " + guid + ": not found\n"},
		{api.MethodModifyLU, &api.Error{Code: api.CodeNotSupported, Subject: "size", Message: "cannot resize"}, []string{"stmfadm", "modify-lu", "-s", "1g", guid},
			"stmfadm: could not set property: size: cannot resize\n"},
		{api.MethodDeleteLU, &api.Error{Code: api.CodeLUNotFound}, []string{"stmfadm", "delete-lu", guid}, "stmfadm: " + strings.ToLower(guid) + ": not found\n"},
		{api.MethodDeleteLU, &api.Error{Code: api.CodeLUNotFound}, []string{"sbdadm", "delete-lu", guid}, "sbdadm: " + strings.ToLower(guid) + ": not found\n"},
		{api.MethodOnlineLU, &api.Error{Code: api.CodeLUNotFound}, []string{"stmfadm", "online-lu", guid}, "stmfadm: " + guid + ": not found\n"},
		{api.MethodAddView, &api.Error{Code: api.CodeViewConflict}, []string{"stmfadm", "add-view", guid}, "stmfadm: view entry exists\n"},
		{api.MethodAddView, &api.Error{Code: api.CodeLUNInUse}, []string{"stmfadm", "add-view", "-n", "3", guid}, "stmfadm: LUN already in use\n"},
		{api.MethodAddView, &api.Error{Code: api.CodeInvalidHostGroup}, []string{"stmfadm", "add-view", "-h", "x", guid}, "stmfadm: invalid host group\n"},
		{api.MethodAddView, &api.Error{Code: api.CodeInvalidTgtGroup}, []string{"stmfadm", "add-view", "-t", "x", guid}, "stmfadm: invalid target group\n"},
		{api.MethodCreateGroup, &api.Error{Code: api.CodeGroupExists}, []string{"stmfadm", "create-hg", "hg1"}, "stmfadm: hg1: already exists\n"},
		{api.MethodCreateGroup, &api.Error{Code: api.CodeInvalidGroupName}, []string{"stmfadm", "create-tg", "*x"}, "stmfadm: *x: invalid group name\n"},
		{api.MethodDeleteGroup, &api.Error{Code: api.CodeGroupNotFound}, []string{"stmfadm", "delete-hg", "hg1"}, "stmfadm: hg1: not found\n"},
		{api.MethodDeleteGroup, &api.Error{Code: api.CodeGroupInUse}, []string{"stmfadm", "delete-tg", "tg1"}, "stmfadm: tg1: group is in use by existing view entry\n"},
		{api.MethodAddGroupMember, &api.Error{Code: api.CodeMemberExists}, []string{"stmfadm", "add-hg-member", "-g", "hg1", "iqn.a", "iqn.b"},
			"stmfadm: iqn.a: already exists\nstmfadm: iqn.b: already exists\n"},
		{api.MethodAddGroupMember, &api.Error{Code: api.CodeGroupNotFound}, []string{"stmfadm", "add-hg-member", "-g", "hg1", "iqn.a"}, "stmfadm: hg1: not found\n"},
		{api.MethodAddGroupMember, &api.Error{Code: api.CodeInvalidDeviceID}, []string{"stmfadm", "add-hg-member", "-g", "hg1", "bad"}, "stmfadm: bad: unrecognized device id\n"},
		{api.MethodAddGroupMember, &api.Error{Code: api.CodeTargetOnline}, []string{"stmfadm", "add-tg-member", "-g", "tg1", "iqn.t"}, "stmfadm: STMF target must be offline\n"},
		{api.MethodRemoveGroupMember, &api.Error{Code: api.CodeMemberNotFound}, []string{"stmfadm", "remove-hg-member", "-g", "hg1", "iqn.a"}, "stmfadm: iqn.a: not found\n"},
		{api.MethodOnlineTarget, &api.Error{Code: api.CodeTargetNotFound}, []string{"stmfadm", "online-target", "iqn.t"}, "stmfadm: iqn.t: not found\n"},
		{api.MethodOfflineTarget, &api.Error{Code: api.CodeInvalidDeviceID}, []string{"stmfadm", "offline-target", "t"}, "stmfadm: t: unrecognized device id\n"},
		{api.MethodListLUs, &api.Error{Code: api.CodeInternal, Message: "boom"}, []string{"stmfadm", "list-lu"}, "stmfadm: unknown error: boom\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			srv := apitest.Serve(t, map[string]apitest.Reply{tc.method: {Err: tc.err}})
			code, stdout, stderr := runCLI(t, srv.Socket, tc.args...)
			if code != exitFail || stderr != tc.stderr || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q", code, stdout, stderr, exitFail, tc.stderr)
			}
		})
	}
}

func TestDaemonUnreachable(t *testing.T) {
	code, _, stderr := runCLI(t, filepath.Join(t.TempDir(), "none.sock"), "stmfadm", "list-lu")
	if code != exitFail || !strings.HasPrefix(stderr, "stmfadm: STMF service not found\n") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// The Proxmox VE "Comstar" driver parses these outputs.
func TestProxmoxParsing(t *testing.T) {
	path := "/dev/zvol/tank/vm-100-disk-0"
	lower := "600144f0c0a80101000067a1b2c30001"
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodCreateLU:  {Body: api.LU{GUID: strings.ToUpper(lower)}},
		api.MethodListViews: {Body: []api.View{{GUID: strings.ToUpper(lower), Entry: 0, LUN: 7}}},
		api.MethodListLUs: {Body: []api.LU{
			{GUID: "600144F0000000000000000000000009", DataFile: "/dev/zvol/tank/vm-100-disk-01", Size: 1024, Available: true},
			{GUID: strings.ToUpper(lower), DataFile: path, Size: 4294967296, Available: true},
			{GUID: "600144F0000000000000000000000008", DataFile: "/gone", Available: false},
		}},
	})
	code, out, _ := runCLI(t, srv.Socket, "stmfadm", "create-lu", "-p", "wcd=false", "-p", "guid="+lower, path)
	if code != 0 || out != "Logical unit created: "+strings.ToUpper(lower)+"\n" {
		t.Fatalf("create-lu: %d %q", code, out)
	}
	calls := srv.Calls()
	if len(calls) != 1 || !strings.Contains(calls[0].Body, `"guid":"`+strings.ToUpper(lower)+`"`) || !strings.Contains(calls[0].Body, `"wcd":false`) {
		t.Fatalf("create-lu request: %+v", calls)
	}
	code, out, _ = runCLI(t, srv.Socket, "stmfadm", "list-view", "-l", lower)
	m := regexp.MustCompile(`(?m)^\s*LUN\s*:\s*(\d+)$`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] != "7" {
		t.Fatalf("list-view: %d %q", code, out)
	}
	code, out, _ = runCLI(t, srv.Socket, "sbdadm", "list-lu", "")
	if code != 0 || !strings.HasPrefix(out, "\nFound 2 LU(s)\n") {
		t.Fatalf("sbdadm list-lu: %d %q", code, out)
	}
	var got string
	re := regexp.MustCompile(`(\w+)\s+\d+\s+` + regexp.QuoteMeta(path) + `$`)
	for _, line := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			got = m[1]
			break
		}
	}
	if got != lower {
		t.Fatalf("Proxmox's list_lu parse found %q in\n%s", got, out)
	}
}

func TestListFiltersAndJSON(t *testing.T) {
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodListLUs:    {Body: []api.LU{{GUID: guid, Status: "Online"}}},
		api.MethodListGroups: {Body: []api.Group{{Name: "esx", Members: []string{"iqn.a"}}}},
		api.MethodListViews:  {Body: []api.View{{GUID: guid, Entry: 0, LUN: 0}, {GUID: guid, Entry: 2, HostGroup: "esx", LUN: 1}}},
		api.MethodListTargets: {Body: []api.Target{{Name: "iqn.2026-11.org.test:t", Online: true, Provider: "iscsit", Protocol: "iSCSI",
			TPGs: []api.TPGTag{}, Sessions: []api.Session{}}}},
	})
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"stmfadm", "list-lu", strings.ToLower(guid)}, 0, "LU Name: " + guid + "\n", ""},
		{[]string{"stmfadm", "list-lu", "600144F0AABBCCDD0000000000000002"}, exitFail, "", "stmfadm: 600144F0AABBCCDD0000000000000002: not found\n"},
		{[]string{"stmfadm", "list-hg", "esx", "other"}, exitFail, "Host Group: esx\n", "stmfadm: other: not found\n"},
		{[]string{"stmfadm", "list-view", "-l", guid, "2", "1"}, exitFail,
			"View Entry: 2\n    Host group   : esx\n    Target group : All\n    LUN          : 1\n",
			"stmfadm: " + strings.ToLower(guid) + ", 1: not found\n"},
		{[]string{"stmfadm", "list-target", "iqn.2026-11.ORG.test:T"}, 0, "Target: iqn.2026-11.org.test:t\n", ""},
		{[]string{"stmfadm", "list-target", "iqn.2026-11.org.test:x"}, exitFail, "", "stmfadm: iqn.2026-11.org.test:x: not found\n"},
		{[]string{"stmfadm", "list-hg", "-o", "json"}, 0, "[\n  {\n    \"name\": \"esx\",\n    \"members\": [\n      \"iqn.a\"\n    ]\n  }\n]\n", ""},
		{[]string{"stmfadm", "list-view", "-o", "json", "-l", guid, "0"}, 0,
			"[\n  {\n    \"guid\": \"" + guid + "\",\n    \"entry\": 0,\n    \"lun\": 0\n  }\n]\n", ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, srv.Socket, tc.args...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant %d\n%q\n%q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestRemoveViewEntries(t *testing.T) {
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodListViews:  {Body: []api.View{{GUID: guid, Entry: 0}, {GUID: guid, Entry: 3}}},
		api.MethodRemoveView: {Err: &api.Error{Code: api.CodeViewNotFound}},
	})
	code, _, stderr := runCLI(t, srv.Socket, "stmfadm", "remove-view", "-l", guid, "5", "x")
	want := "stmfadm: x: invalid input\nstmfadm: " + strings.ToLower(guid) + ": 5: not found\n"
	if code != exitFail || stderr != want {
		t.Errorf("exit %d stderr %q, want %q", code, stderr, want)
	}
	srv = apitest.Serve(t, map[string]apitest.Reply{api.MethodListViews: {Body: []api.View{{GUID: guid, Entry: 0}, {GUID: guid, Entry: 3}}}})
	if code, _, stderr := runCLI(t, srv.Socket, "stmfadm", "remove-view", "-a", "-l", guid); code != 0 || stderr != "" {
		t.Fatalf("remove-view -a: %d %q", code, stderr)
	}
	var removed []string
	for _, c := range srv.Calls() {
		if c.Method == api.MethodRemoveView {
			removed = append(removed, strings.TrimSpace(c.Body))
		}
	}
	want2 := []string{`{"guid":"` + guid + `","entry":0}`, `{"guid":"` + guid + `","entry":3}`}
	if strings.Join(removed, "|") != strings.Join(want2, "|") {
		t.Errorf("remove-view -a sent %v, want %v", removed, want2)
	}
}

func TestHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"stmfadm", "--help"}, {"stmfadm", "add-view", "--help"}, {"sbdadm", "--help"}} {
		code, out, _ := runCLI(t, "/nonexistent", args...)
		if code != 0 || !strings.Contains(out, "EXAMPLE") {
			t.Errorf("%v: exit %d, no examples in\n%s", args, code, out)
		}
	}
	// -h is the host group, not help.
	code, _, stderr := runCLI(t, "/nonexistent", "stmfadm", "add-view", "-h", "esx", guid)
	if code != exitFail || !strings.HasPrefix(stderr, "stmfadm: STMF service not found") {
		t.Errorf("add-view -h: exit %d %q", code, stderr)
	}
}

// list-target lists targets of every protocol; an FC target shows its
// provider and protocol as COMSTAR's does, and can be picked by name in
// any case.
func TestListTargetMixedProtocols(t *testing.T) {
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodListTargets: {Body: []api.Target{
			{Name: "iqn.2026-11.org.test:t", Online: true, Provider: "iscsit", Protocol: api.ProtocolISCSI, TPGs: []api.TPGTag{}, Sessions: []api.Session{}},
			{Name: "wwn.2100001B32A1B2C3", Provider: "qlt", Protocol: "Fibre Channel", TPGs: []api.TPGTag{}, Sessions: []api.Session{}},
		}},
	})
	code, stdout, stderr := runCLI(t, srv.Socket, "stmfadm", "list-target", "-v", "wwn.2100001b32a1b2c3", "iqn.2026-11.org.test:t")
	want := "Target: wwn.2100001B32A1B2C3\n" +
		"    Operational Status: Offline\n" +
		"    Provider Name     : qlt\n" +
		"    Alias             : -\n" +
		"    Protocol          : Fibre Channel\n" +
		"    Sessions          : 0\n" +
		"Target: iqn.2026-11.org.test:t\n" +
		"    Operational Status: Online\n" +
		"    Provider Name     : iscsit\n" +
		"    Alias             : -\n" +
		"    Protocol          : iSCSI\n" +
		"    Sessions          : 0\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Fatalf("exit %d stdout\n%s\nstderr %q\nwant\n%s", code, stdout, stderr, want)
	}
}
