package mgmt

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/test/harness"
)

const (
	applyT1    = "iqn.2026-12.org.test:apply-t1"
	applyT2    = "iqn.2026-12.org.test:apply-t2"
	applyHostA = "iqn.2026-12.org.test:apply-host-a"
	applyHostB = "iqn.2026-12.org.test:apply-host-b"
)

// TestApplyRoundTrip: a configuration exported from one stmfd and applied
// to a fresh one on the same backing stores exports byte for byte the
// same, and applying it again changes nothing.
func TestApplyRoundTrip(t *testing.T) {
	dir := harness.TempDir(t, "ap")
	d := startDaemon(t, filepath.Join(dir, "state1"))
	a := d.CreateLU("-p", "alias=db", harness.Backing(t, dir, "a", 16*mib))
	b := d.CreateLU("-p", "wcd=true", harness.Backing(t, dir, "b", 16*mib))
	d.OK("itadm", "create-tpg", "tpg-a", "127.0.0.1:"+harness.FreePortOn(t, "127.0.0.1"))
	d.OK("itadm", "create-target", "-n", applyT1, "-t", "tpg-a")
	d.OK("itadm", "create-target", "-n", applyT2, "-l", "second")
	if _, errs, code := d.Run("chap-secret-a1\nchap-secret-a1\n", "itadm", "create-initiator", "-u", "alice", "-s", applyHostA); code != 0 {
		t.Fatalf("create-initiator: %s", errs)
	}
	d.OK("stmfadm", "create-hg", "esx")
	d.OK("stmfadm", "add-hg-member", "-g", "esx", applyHostA)
	d.OK("stmfadm", "create-tg", "tg1")
	d.OK("stmfadm", "offline-target", applyT1)
	d.OK("stmfadm", "add-tg-member", "-g", "tg1", applyT1)
	d.OK("stmfadm", "online-target", applyT1)
	d.OK("stmfadm", "add-view", "-h", "esx", "-n", "3", a)
	d.OK("stmfadm", "add-view", "-t", "tg1", "-n", "5", b)
	d.OK("stmfadm", "set-alua-state", "-g", "2", "standby")
	exported := d.OK("stmfadm", "export")
	if strings.Contains(exported, "chap-secret-a1") {
		t.Fatal("export printed a CHAP secret")
	}
	for _, want := range []string{"guid: " + a, "alias: db", "chap-secret-ref: " + applyHostA, "lun: 3", "state: standby", "tag: 2"} {
		if !strings.Contains(exported, want) {
			t.Fatalf("export lacks %q:\n%s", want, exported)
		}
	}
	file := filepath.Join(dir, "stmf.yaml")
	secrets := filepath.Join(dir, "secrets.yaml")
	writeFile(t, file, exported, 0o644)
	writeFile(t, secrets, applyHostA+": chap-secret-a1\n", 0o600)
	d.Stop()

	d2 := startDaemon(t, filepath.Join(dir, "state2"))
	out, errs, code := d2.Run("", "stmfadm", "apply", "-f", file, "--secrets", secrets)
	if code != 3 || !strings.Contains(out, "stmfadm import-lu ") || !strings.Contains(out, "stmfadm add-view -h esx -n 3 "+a) || !strings.Contains(out, "# applied") {
		t.Fatalf("apply on a fresh stmfd: exit %d\n%s%s", code, out, errs)
	}
	if again := d2.OK("stmfadm", "export"); again != exported {
		t.Fatalf("export after apply differs:\n%s\nwant:\n%s", again, exported)
	}
	if out, _, code := d2.Run("", "stmfadm", "apply", "-f", file, "--secrets", secrets); code != 0 || !strings.Contains(out, "no change") {
		t.Fatalf("second apply: exit %d\n%s", code, out)
	}
	// The secret came through from the secrets file.
	if got := d2.OK("itadm", "list-initiator"); !hasLine(got, applyHostA, "alice", "set") {
		t.Fatalf("initiator and its CHAP secret not restored:\n%s", got)
	}
}

// TestApplyFailureAndGeneration: a failing step leaves the state file
// untouched, and a change made between the plan and the apply is refused.
func TestApplyFailureAndGeneration(t *testing.T) {
	dir := harness.TempDir(t, "ap")
	d := startDaemon(t, filepath.Join(dir, "state"))
	a := d.CreateLU(harness.Backing(t, dir, "a", 16*mib))
	b := d.CreateLU(harness.Backing(t, dir, "b", 16*mib))
	d.OK("stmfadm", "add-view", "-n", "1", a)
	exported := d.OK("stmfadm", "export")
	stateFile := filepath.Join(dir, "state", store.FileName)
	before := readFile(t, stateFile)

	// The file adds a host group, moves a view, adds one, and sets the ALUA
	// state of a portal group tag no target has: that step, the last, fails.
	bad := strings.Replace(exported, "lun: 1", "lun: 2", 1)
	bad = strings.Replace(bad, "views:\n", "host-groups:\n  - name: esx\n    members: []\nviews:\n", 1)
	bad += "  - guid: " + b + "\n    host-group: esx\n    lun: 1\nalua:\n  - tag: 7\n    state: standby\n"
	file := filepath.Join(dir, "bad.yaml")
	writeFile(t, file, bad, 0o644)
	out, errs, code := d.Run("", "stmfadm", "apply", "-f", file)
	if code != 1 || !strings.Contains(errs, "step 5 failed") || !strings.Contains(errs, "rolled back") || !strings.Contains(out, "stmfadm create-hg esx") {
		t.Fatalf("failing apply: exit %d\n%s%s", code, out, errs)
	}
	if after := readFile(t, stateFile); after != before {
		t.Fatalf("state file changed by a failed apply:\n%s", after)
	}
	if got := d.OK("stmfadm", "export"); got != exported {
		t.Fatalf("configuration changed by a failed apply:\n%s", got)
	}

	// The plan's generation pins the apply.
	good := strings.Replace(exported, "lun: 1", "lun: 2", 1)
	writeFile(t, file, good, 0o644)
	out, _, code = d.Run("", "stmfadm", "apply", "-f", file, "--dry-run")
	gen := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if code != 3 || len(gen) < 3 || gen[1] != "generation" {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	d.OK("stmfadm", "create-hg", "meanwhile")
	_, errs, code = d.Run("", "stmfadm", "apply", "-f", file, "--generation", strings.TrimSuffix(gen[2], ":"))
	if code != 1 || !strings.Contains(errs, "configuration changed") {
		t.Fatalf("apply of a stale plan: exit %d\n%s", code, errs)
	}
	if got := d.OK("stmfadm", "list-view", "-l", a); !hasLine(got, "LUN", "1") {
		t.Fatalf("stale plan applied:\n%s", got)
	}
}

// TestApplyUnitAttentions: live sessions see REPORTED LUNS DATA HAS
// CHANGED only where apply changed their LUN map.
func TestApplyUnitAttentions(t *testing.T) {
	dir := harness.TempDir(t, "ap")
	d := startDaemon(t, filepath.Join(dir, "state"))
	a := d.CreateLU(harness.Backing(t, dir, "a", 16*mib))
	b := d.CreateLU(harness.Backing(t, dir, "b", 16*mib))
	d.OK("itadm", "create-target", "-n", applyT2)
	d.OK("stmfadm", "create-hg", "esx")
	d.OK("stmfadm", "add-hg-member", "-g", "esx", applyHostA)
	d.OK("stmfadm", "add-view", "-h", "esx", "-n", "3", a)
	d.OK("stmfadm", "add-view", "-n", "5", b)
	exported := d.OK("stmfadm", "export")

	// Two live sessions (internal/initiator): host A is in esx, host B sees
	// only the view for everyone.
	ctx := harness.Context(t, 2*time.Minute)
	sa := harness.Login(ctx, t, d.Portal, applyT2, applyHostA, 1)
	sb := harness.Login(ctx, t, d.Portal, applyT2, applyHostB, 2)
	harness.Ready(ctx, t, sa, 5)
	harness.Ready(ctx, t, sb, 5)
	file := filepath.Join(dir, "stmf.yaml")
	writeFile(t, file, strings.Replace(exported, "lun: 3", "lun: 4", 1), 0o644)
	if out, errs, code := d.Run("", "stmfadm", "apply", "-f", file); code != 3 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errs)
	}
	tur := make([]byte, 6)
	if r := harness.Do(ctx, t, sa, 5, tur, nil, 0); !r.Is(initiator.KeyUnitAttention, 0x3f, 0x0e) {
		t.Fatalf("host A (map changed): TEST UNIT READY %v, want REPORTED LUNS DATA HAS CHANGED", r)
	}
	reportLUNs := []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}
	if r := harness.Good(ctx, t, sa, 0, reportLUNs, nil, 4096); len(r.Data) < 24 || r.Data[3] != 16 || r.Data[9] != 4 || r.Data[17] != 5 {
		t.Fatalf("host A REPORT LUNS after apply: % x, want LUNs 4 and 5", r.Data)
	}
	if r := harness.Do(ctx, t, sb, 5, tur, nil, 0); r.Status != initiator.StatusGood {
		t.Fatalf("host B (map unchanged): TEST UNIT READY %v, want GOOD", r)
	}
}

// hasLine reports whether out has a line of exactly these fields (a lone
// ":" separator is ignored).
func hasLine(out string, fields ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := slices.DeleteFunc(strings.Fields(l), func(s string) bool { return s == ":" })
		if slices.Equal(f, fields) {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
