package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

var sampleConfig = api.Config{
	Version:    api.ConfigVersion,
	Defaults:   &api.ConfigDefaults{Auth: "chap", RadiusServer: "127.0.0.1:1812", RadiusSecretRef: "radius"},
	TPGs:       []api.ConfigTPG{{Name: "a", Portals: []string{"127.0.0.1:3260"}}},
	Targets:    []api.ConfigTarget{{Name: "iqn.2026-12.test:t", TPGs: []api.TPGTag{{TPG: "a", Tag: 2}}}},
	Initiators: []api.ConfigInitiator{{Name: "iqn.2026-12.test:i", ChapUser: "u", ChapSecretRef: "iqn.2026-12.test:i"}},
	HostGroups: []api.ConfigGroup{{Name: "esx", Members: []string{"iqn.2026-12.test:i"}}},
	LUs:        []api.ConfigLU{{GUID: guid, DataFile: "/d/a", Size: 1 << 30, BlockSize: 512, Alias: "a", WCD: true}},
	Views:      []api.ConfigView{{GUID: guid, HostGroup: "esx", LUN: 3}},
	ALUA:       []api.ConfigALUA{{Tag: 2, State: "standby"}},
}

func TestConfigYAML(t *testing.T) {
	b, err := marshalConfig(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version: 1\n", "host-groups:\n  - name: esx\n", "    lun: 3\n", "chap-secret-ref: iqn.2026-12.test:i\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("export lacks %q:\n%s", want, b)
		}
	}
	got, err := parseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sampleConfig) {
		t.Fatalf("round trip:\n%+v\nwant:\n%+v", got, sampleConfig)
	}
	for _, tc := range []struct{ name, doc, err string }{
		{"unknown key", "version: 1\nlus:\n  - guid: " + guid + "\n    data-file: /d/a\n    aliass: x\n", "field aliass not found"},
		{"two documents", "version: 1\n---\nversion: 1\n", "more than one YAML document"},
		{"empty", "", "empty document"},
		{"wrong type", "version: one\n", "cannot unmarshal"},
	} {
		if _, err := parseConfig([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestApplyCLI(t *testing.T) {
	dir := t.TempDir()
	b, err := marshalConfig(sampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "stmf.yaml")
	secrets := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secrets, []byte("iqn.2026-12.test:i: secret-of-i-1\nradius: radius-secret1\nunused: not-sent-at-all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := api.ApplyResult{Generation: "g1", Steps: []string{"stmfadm create-hg esx", "stmfadm add-view -h esx -n 3 " + guid}}
	for _, tc := range []struct {
		name   string
		args   []string
		reply  apitest.Reply
		code   int
		calls  int
		stdout string
		stderr string
	}{
		{"no change", []string{"-f", file}, apitest.Reply{Body: api.ApplyResult{Generation: "g1", Steps: []string{}}},
			0, 1, "# generation g1: no change\n", ""},
		{"dry run", []string{"-f", file, "--dry-run"}, apitest.Reply{Body: plan},
			exitChanged, 1, "# generation g1: 2 steps\n" + strings.Join(plan.Steps, "\n") + "\n# dry run: nothing applied\n", ""},
		{"applied", []string{"-f", file, "--secrets", secrets}, apitest.Reply{Body: plan},
			exitChanged, 2, "# generation g1: 2 steps\n" + strings.Join(plan.Steps, "\n") + "\n# applied; generation \n", ""},
		{"state changed", []string{"-f", file, "--generation", "g0"}, apitest.Reply{Err: api.Errorf(api.CodeStateChanged, "g1", "changed since the plan")},
			exitFail, 1, "", "stmfadm: apply: configuration changed: changed since the plan\n"},
		{"failed step", []string{"-f", file}, apitest.Reply{Err: api.Errorf(api.CodeLUNInUse, "stmfadm add-view -n 3 "+guid, "step 2 failed")},
			exitFail, 1, "", "stmfadm: apply: stmfadm add-view -n 3 " + guid + ": step 2 failed\n"},
		{"no file", nil, apitest.Reply{}, exitUsage, 0, "", "stmfadm: apply: -f, --file is required\n"},
		{"unreadable file", []string{"-f", filepath.Join(dir, "missing")}, apitest.Reply{}, exitFail, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodApplyConfig: tc.reply})
			code, out, errs := runCLI(t, srv.Socket, append([]string{"stmfadm", "apply"}, tc.args...)...)
			if code != tc.code || out != tc.stdout || (tc.stderr != "" && errs != tc.stderr) {
				t.Fatalf("exit %d stdout %q stderr %q; want %d %q %q", code, out, errs, tc.code, tc.stdout, tc.stderr)
			}
			calls := srv.Calls()
			if len(calls) != tc.calls {
				t.Fatalf("%d calls, want %d: %+v", len(calls), tc.calls, calls)
			}
			for i, c := range calls {
				var req api.ApplyRequest
				if err := json.Unmarshal([]byte(c.Body), &req); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(req.Config, sampleConfig) {
					t.Errorf("call %d sent config %+v", i, req.Config)
				}
				// The plan is a dry run; the apply is pinned to its generation.
				if req.DryRun != (i == 0) || (i == 1 && req.Generation != "g1") {
					t.Errorf("call %d: dry run %v generation %q", i, req.DryRun, req.Generation)
				}
				if strings.Contains(c.Body, "not-sent-at-all") {
					t.Error("a secret the file does not refer to was sent")
				}
				if tc.name == "applied" && (req.Secrets["radius"] != "radius-secret1" || req.Secrets["iqn.2026-12.test:i"] != "secret-of-i-1") {
					t.Errorf("secrets sent: %d of 2", len(req.Secrets))
				}
			}
		})
	}
}

func TestExportCLI(t *testing.T) {
	srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodExportConfig: {Body: api.ExportResult{Config: sampleConfig, Generation: "g1"}}})
	code, out, _ := runCLI(t, srv.Socket, "stmfadm", "export")
	want, _ := marshalConfig(sampleConfig)
	if code != 0 || out != string(want) {
		t.Fatalf("export: exit %d\n%s", code, out)
	}
}

func TestApplyHelp(t *testing.T) {
	for _, cmd := range []string{"apply", "export"} {
		code, out, _ := runCLI(t, "/nonexistent", "stmfadm", cmd, "--help")
		if code != 0 || !strings.Contains(out, "EXAMPLES") || !strings.Contains(out, "stmfadm "+cmd) {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, out)
		}
	}
}
