package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

func runCLI(t *testing.T, socket, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"--socket", socket}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestFormats(t *testing.T) {
	long := "iqn.2026-11.org.example.storage:" + strings.Repeat("x", 40)
	targets := []api.Target{
		{Name: "iqn.2026-11.org.costar:demo", Online: true, Sessions: []api.Session{{}, {}}},
		{Name: long, Alias: "big", Auth: "chap", ChapUser: "tgt", ChapSecretSet: true,
			TPGs: []api.TPGTag{{TPG: "fast", Tag: 2}, {TPG: "7", Tag: 7}}},
	}
	var b strings.Builder
	for _, tc := range []struct {
		name  string
		write func()
		want  string
	}{
		{"list-target", func() { writeTargets(&b, targets, api.Defaults{}, false) },
			"TARGET NAME                                                  STATE    SESSIONS \n" +
				"iqn.2026-11.org.costar:demo                                  online   2        \n" +
				long + "\toffline  0        \n"},
		{"list-target -v", func() { writeTargets(&b, targets, api.Defaults{}, true) },
			"TARGET NAME                                                  STATE    SESSIONS \n" +
				"iqn.2026-11.org.costar:demo                                  online   2        \n" +
				"\talias:              \t-\n" +
				"\tauth:               \tnone (defaults)\n" +
				"\ttargetchapuser:     \t-\n" +
				"\ttargetchapsecret:   \tunset\n" +
				"\ttpg-tags:           \tdefault\n" +
				long + "\toffline  0        \n" +
				"\talias:              \tbig\n" +
				"\tauth:               \tchap \n" +
				"\ttargetchapuser:     \ttgt\n" +
				"\ttargetchapsecret:   \tset\n" +
				"\ttpg-tags:           \tfast = 2,7 = 7\n"},
		{"list-target -v, chap defaults", func() { writeTargets(&b, targets[:1], api.Defaults{Auth: "chap"}, true) },
			"TARGET NAME                                                  STATE    SESSIONS \n" +
				"iqn.2026-11.org.costar:demo                                  online   2        \n" +
				"\talias:              \t-\n" +
				"\tauth:               \tchap (defaults)\n" +
				"\ttargetchapuser:     \t-\n" +
				"\ttargetchapsecret:   \tunset\n" +
				"\ttpg-tags:           \tdefault\n"},
		{"list-target, none", func() { writeTargets(&b, nil, api.Defaults{}, true) }, ""},
		{"list-tpg -v", func() {
			writeTPGs(&b, []api.TPG{{Name: "fast", Portals: []string{"192.0.2.10:3260", "[2001:db8::10]:3260"}}, {Name: "empty"}}, true)
		}, "TARGET PORTAL GROUP           PORTAL COUNT\n" +
			"fast                          2        \n    portals:\t192.0.2.10:3260,[2001:db8::10]:3260\n" +
			"empty                         0        \n    portals:\t<none>\n"},
		{"list-tpg", func() { writeTPGs(&b, []api.TPG{{Name: "fast", Portals: []string{"192.0.2.10:3260"}}}, false) },
			"TARGET PORTAL GROUP           PORTAL COUNT\nfast                          1        \n"},
		{"list-initiator", func() {
			writeInitiators(&b, []api.Initiator{{Name: "iqn.1998-01.com.vmware:esx1", ChapUser: "esx1", ChapSecretSet: true},
				{Name: "iqn.1993-08.org.debian:01:abc"}, {Name: "iqn.x", ChapUser: "a-fifteen-chars"}})
		}, "INITIATOR NAME                                               CHAPUSER  SECRET \n" +
			"iqn.1998-01.com.vmware:esx1                                  esx1           set \n" +
			"iqn.1993-08.org.debian:01:abc                                <none>         unset\n" +
			"iqn.x                                                        a-fifteen-chars\tunset\n"},
		{"list-defaults", func() { writeDefaults(&b, api.Defaults{}) },
			"iSCSI Target Default Properties:\n\n" +
				"alias:         \t<none>\n" +
				"auth:          \t<none>\n" +
				"radiusserver:  \t<none>\n" +
				"radiussecret:  \tunset\n" +
				"isns:          \tdisabled\n" +
				"isnsserver:    \t<none>\n"},
		{"list-defaults, set", func() {
			writeDefaults(&b, api.Defaults{Auth: "chap", RadiusServer: "192.0.2.1:1812", RadiusSecretSet: true, ISNS: true, ISNSServers: []string{"192.0.2.2:3205", "192.0.2.3:3205"}})
		}, "iSCSI Target Default Properties:\n\n" +
			"alias:         \t<none>\n" +
			"auth:          \tchap\n" +
			"radiusserver:  \t192.0.2.1:1812\n" +
			"radiussecret:  \tset\n" +
			"isns:          \tenabled\n" +
			"isnsserver:    \t192.0.2.2:3205,192.0.2.3:3205\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.Reset()
			tc.write()
			if got := b.String(); got != tc.want {
				t.Errorf("got:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}

func TestValidationAndSecrets(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	good := filepath.Join(dir, "good")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	os.WriteFile(good, []byte("a-good-secret-1\n"), 0o600)
	srv := apitest.Serve(t, nil)
	for _, tc := range []struct {
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"", []string{"create-target", "-n", "foo"}, 22, "Invalid name foo\nitadm create-target failed with error 22\n"},
		{"", []string{"create-target", "bar"}, 22, "Invalid name bar\nitadm create-target failed with error 22\n"},
		{"short\n", []string{"create-initiator", "-s", "iqn.2026-11.org.test:i"}, 22,
			"Enter CHAP secret: Secret must be between 12 and 255 characters\nitadm create-initiator failed with error 22\n"},
		{strings.Repeat("x", 256) + "\n", []string{"create-initiator", "-s", "iqn.2026-11.org.test:i"}, 22,
			"Enter CHAP secret: Secret must be between 12 and 255 characters\nitadm create-initiator failed with error 22\n"},
		{"a-good-secret-1\na-good-secret-2\n", []string{"modify-initiator", "-s", "iqn.2026-11.org.test:i"}, 22,
			"Enter CHAP secret: Re-enter secret: Secret validation failed\nitadm modify-initiator failed with error 22\n"},
		{"", []string{"create-initiator", "-S", short, "iqn.2026-11.org.test:i"}, 22,
			"Secret must be between 12 and 255 characters\nitadm create-initiator failed with error 22\n"},
		{"", []string{"create-initiator", "-S", dir, "iqn.2026-11.org.test:i"}, 9,
			"Invalid secret file " + dir + "\nitadm create-initiator failed with error 9\n"},
		{"", []string{"create-target", "-S", filepath.Join(dir, "missing")}, 9,
			"Invalid secret file " + filepath.Join(dir, "missing") + "\nitadm create-target failed with error 9\n"},
		{"", []string{"create-initiator", "host1"}, 22, "Invalid name host1\nitadm create-initiator failed with error 22\n"},
		{"", []string{"create-tpg", "tpg1"}, 22, "Error, no portal addresses specified\nitadm create-tpg failed with error 22\n"},
		{"", []string{"create-tpg", strings.Repeat("t", 256), "127.0.0.1"}, 22,
			"Target Portal Group name must be no longer than 255 characters.\nitadm create-tpg failed with error 22\n"},
		{"", []string{"modify-defaults"}, 22, "Error, no properties specified\nitadm modify-defaults failed with error 22\n"},
		{"", []string{"modify-defaults", "-i", "maybe"}, exitUsage, "itadm: invalid value for -i\nusage: " + usageLines["modify-defaults"] + "\n"},
		{"", []string{"modify-defaults", "-I", "1,2,3,4,5,6,7,8,9"}, exitUsage,
			"itadm: Too many iSNS servers specified, maximum of 8 allowed\nusage: " + usageLines["modify-defaults"] + "\n"},
		{"", []string{"delete-target"}, exitUsage, "itadm: delete-target: operand required\nusage: " + usageLines["delete-target"] + "\n"},
		{"", []string{"nope"}, exitUsage, "itadm: nope: unknown subcommand (see itadm --help)\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, srv.Socket, tc.stdin, tc.args...)
			if code != tc.code || stderr != tc.stderr {
				t.Errorf("exit %d stderr %q\nwant %d %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
	if calls := srv.Calls(); len(calls) != 0 {
		t.Errorf("invalid command lines reached the daemon: %+v", calls)
	}
	// A good secret from a file (one trailing newline stripped) is sent, never printed.
	code, out, stderr := runCLI(t, srv.Socket, "", "create-initiator", "-u", "alice", "-S", good, "iqn.2026-11.org.test:i")
	if code != 0 || strings.Contains(out+stderr, "a-good-secret") {
		t.Fatalf("create-initiator -S: %d %q %q", code, out, stderr)
	}
	var req api.InitiatorRequest
	if calls := srv.Calls(); len(calls) != 1 || json.Unmarshal([]byte(calls[0].Body), &req) != nil ||
		req.ChapSecret == nil || *req.ChapSecret != "a-good-secret-1" || req.ChapUser == nil || *req.ChapUser != "alice" {
		t.Fatalf("request: %+v", srv.Calls())
	}
	// Prompted twice, matching.
	if code, _, stderr := runCLI(t, srv.Socket, "a-good-secret-1\na-good-secret-1\n", "modify-target", "-s", "iqn.2026-11.org.test:t"); code != 0 {
		t.Fatalf("modify-target -s: %d %q", code, stderr)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		method string
		err    *api.Error
		args   []string
		code   int
		stderr string
	}{
		{api.MethodCreateTarget, &api.Error{Code: api.CodeTargetExists}, []string{"create-target", "-n", "iqn.2026-11.org.test:t"}, 17,
			"iSCSI target iqn.2026-11.org.test:t already configured\nitadm create-target failed with error 17\n"},
		{api.MethodCreateTarget, &api.Error{Code: api.CodeInvalidISCSIName}, []string{"create-target", "iqn.bad"}, 14,
			"Invalid iSCSI name iqn.bad\nitadm create-target failed with error 14\n"},
		{api.MethodCreateTarget, &api.Error{Code: api.CodeTPGNotFound, Subject: "nope"}, []string{"create-target", "-t", "nope"}, 1,
			"Invalid tpg-tag nope, tag not defined\nitadm create-target failed with error 1\n"},
		{api.MethodCreateTarget, &api.Error{Code: api.CodeInvalidAuth, Subject: "kerberos"}, []string{"create-target", "-a", "kerberos"}, 22,
			"Error setting target properties, 22\n\tkerberos: must be none, chap, radius or default\nitadm create-target failed with error 22\n"},
		{api.MethodModifyTarget, &api.Error{Code: api.CodeTargetNotFound}, []string{"modify-target", "-l", "x", "iqn.2026-11.org.test:t"}, 22,
			"Target iqn.2026-11.org.test:t not found\nitadm modify-target failed with error 22\n"},
		{api.MethodModifyTarget, &api.Error{Code: api.CodeTargetExists}, []string{"modify-target", "-n", "iqn.2026-11.org.test:u", "iqn.2026-11.org.test:t"}, 1,
			"A target with name iqn.2026-11.org.test:u already exists\nitadm modify-target failed with error 1\n"},
		{api.MethodModifyTarget, &api.Error{Code: api.CodeTPGNotFound, Subject: "x"}, []string{"modify-target", "-t", "x", "iqn.2026-11.org.test:t"}, 1,
			"Invalid tpg-name x: not defined\nitadm modify-target failed with error 1\n"},
		{api.MethodDeleteTarget, &api.Error{Code: api.CodeTargetOnline}, []string{"delete-target", "iqn.2026-11.org.test:t"}, 16,
			"The target is online or busy. Use the -f (force) option, or 'stmfadm offline-target iqn.2026-11.org.test:t'\nitadm delete-target failed with error 16\n"},
		{api.MethodDeleteTarget, &api.Error{Code: api.CodeTargetNotFound}, []string{"delete-target", "iqn.2026-11.org.test:t"}, 1,
			"Target iqn.2026-11.org.test:t not found\nitadm delete-target failed with error 1\n"},
		{api.MethodCreateTPG, &api.Error{Code: api.CodeTPGExists}, []string{"create-tpg", "t1", "127.0.0.1"}, 1,
			"Target Portal Group t1 already exists\nitadm create-tpg failed with error 1\n"},
		{api.MethodCreateTPG, &api.Error{Code: api.CodePortalInUse, Subject: "127.0.0.1:3260"}, []string{"create-tpg", "t1", "127.0.0.1"}, 17,
			"Portal 127.0.0.1 already in use\nitadm create-tpg failed with error 17\n"},
		{api.MethodDeleteTPG, &api.Error{Code: api.CodeTPGInUse}, []string{"delete-tpg", "t1"}, 16,
			"Target portal group associated with one or more targets.  Cannot delete.\nitadm delete-tpg failed with error 16\n"},
		{api.MethodDeleteTPG, &api.Error{Code: api.CodeTPGNotFound}, []string{"delete-tpg", "t1"}, 1,
			"Target portal group t1 does not exist.\nitadm delete-tpg failed with error 1\n"},
		{api.MethodCreateInitiator, &api.Error{Code: api.CodeInitiatorExists}, []string{"create-initiator", "iqn.2026-11.org.test:i"}, 22,
			"Initiator iqn.2026-11.org.test:i already exists\nitadm create-initiator failed with error 22\n"},
		{api.MethodModifyInitiator, &api.Error{Code: api.CodeInitiatorNotFound}, []string{"modify-initiator", "-u", "x", "iqn.2026-11.org.test:i"}, 2,
			"Error, initiator iqn.2026-11.org.test:i not found.\nitadm modify-initiator failed with error 2\n"},
		{api.MethodDeleteInitiator, &api.Error{Code: api.CodeInitiatorNotFound}, []string{"delete-initiator", "iqn.2026-11.org.test:i"}, 1,
			"Initiator iqn.2026-11.org.test:i not found\nitadm delete-initiator failed with error 1\n"},
		{api.MethodModifyDefaults, &api.Error{Code: api.CodeMissingProp, Subject: "radiusserver", Message: "missing required property"}, []string{"modify-defaults", "-a", "radius"}, 22,
			"Error setting global properties: 22\n\tradiusserver: missing required property\nitadm modify-defaults failed with error 22\n"},
		{api.MethodModifyDefaults, &api.Error{Code: api.CodeInvalidAuth, Subject: "auth", Message: "must be none, chap or radius"}, []string{"modify-defaults", "-a", "default"}, 22,
			"Error setting global properties: 22\n\tauth: must be none, chap or radius\nitadm modify-defaults failed with error 22\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			srv := apitest.Serve(t, map[string]apitest.Reply{tc.method: {Err: tc.err}})
			code, _, stderr := runCLI(t, srv.Socket, "", tc.args...)
			if code != tc.code || stderr != tc.stderr {
				t.Errorf("exit %d stderr %q\nwant %d %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
}

func TestListNotFoundAndUnreachable(t *testing.T) {
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodListTargets:    {Body: []api.Target{}},
		api.MethodGetDefaults:    {Body: api.Defaults{}},
		api.MethodListTPGs:       {Body: []api.TPG{}},
		api.MethodListInitiators: {Body: []api.Initiator{}},
	})
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"list-target", "iqn.2026-11.org.test:t"}, "Target iqn.2026-11.org.test:t not found!\n\nitadm list-target failed with error 1\n"},
		{[]string{"list-tpg", "t1"}, "Target Portal Group t1 not found!\n\nitadm list-tpg failed with error 1\n"},
		{[]string{"list-initiator", "iqn.2026-11.org.test:i"}, "Initiator iqn.2026-11.org.test:i not found!\nitadm list-initiator failed with error 1\n"},
	} {
		code, _, stderr := runCLI(t, srv.Socket, "", tc.args...)
		if code != 1 || stderr != tc.stderr {
			t.Errorf("%v: exit %d stderr %q, want %q", tc.args, code, stderr, tc.stderr)
		}
	}
	code, _, stderr := runCLI(t, filepath.Join(t.TempDir(), "none"), "", "list-target")
	if code != 1 || !strings.HasPrefix(stderr, "The iSCSI target service must be online before running this command.\n") {
		t.Errorf("unreachable: exit %d %q", code, stderr)
	}
}

// itadm is iSCSI's: targets of other protocols (FC) are not listed, and
// naming one is "not found".
func TestListTargetOnlyISCSI(t *testing.T) {
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodListTargets: {Body: []api.Target{
			{Name: "wwn.2100001B32A1B2C3", Online: true, Provider: "qlt", Protocol: "Fibre Channel", TPGs: []api.TPGTag{}, Sessions: []api.Session{}},
			{Name: "iqn.2026-11.org.test:t", Online: true, Provider: "iscsit", Protocol: api.ProtocolISCSI, TPGs: []api.TPGTag{}, Sessions: []api.Session{}},
		}},
		api.MethodGetDefaults: {Body: api.Defaults{}},
	})
	code, stdout, stderr := runCLI(t, srv.Socket, "", "list-target")
	want := "TARGET NAME                                                  STATE    SESSIONS \n" +
		"iqn.2026-11.org.test:t                                       online   0        \n"
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("list-target: exit %d stdout %q stderr %q, want %q", code, stdout, stderr, want)
	}
	code, _, stderr = runCLI(t, srv.Socket, "", "list-target", "wwn.2100001B32A1B2C3")
	if want := "Target wwn.2100001B32A1B2C3 not found!\n\nitadm list-target failed with error 1\n"; code != 1 || stderr != want {
		t.Errorf("list-target of an FC target: exit %d stderr %q, want %q", code, stderr, want)
	}
}
