package mgmt

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/test/harness"
)

const mib = 1 << 20

// TestProxmoxSequence runs the commands of Proxmox VE's ZFS-over-iSCSI
// "Comstar" driver (PVE/Storage/LunCmd/Comstar.pm) as written, and parses
// their output with the driver's own regular expressions.
func TestProxmoxSequence(t *testing.T) {
	dir := harness.TempDir(t, "mg")
	d := startDaemon(t, filepath.Join(dir, "state"))
	path := harness.Backing(t, dir, "vm-100-disk-0", 64*mib)

	// create_lu: guid = "600144f" . substr(md5_hex(path), 7)
	sum := md5.Sum([]byte(path))
	guid := "600144f" + hex.EncodeToString(sum[:])[7:]
	out := d.OK("stmfadm", "create-lu", "-p", "wcd=false", "-p", "guid="+guid, path)
	if out != "Logical unit created: "+strings.ToUpper(guid)+"\n" {
		t.Fatalf("create-lu printed %q", out)
	}
	// add_view (no host/target group configured in storage.cfg).
	if out := d.OK("stmfadm", "add-view", guid); out != "" {
		t.Fatalf("add-view printed %q", out)
	}
	// list_view: the first line matching ^\s*LUN\s*:\s*(\d+)$.
	out = d.OK("stmfadm", "list-view", "-l", guid)
	lun := ""
	for _, line := range strings.Split(out, "\n") {
		if m := regexp.MustCompile(`^\s*LUN\s*:\s*(\d+)$`).FindStringSubmatch(line); m != nil {
			lun = m[1]
			break
		}
	}
	if lun != "0" {
		t.Fatalf("list-view: LUN %q in\n%s", lun, out)
	}
	// list_lu: sbdadm list-lu with an empty parameter, matched with (\w+)\s+\d+\s+<path>$.
	listLU := func() string {
		out := d.OK("sbdadm", "list-lu", "")
		re := regexp.MustCompile(`(\w+)\s+\d+\s+` + regexp.QuoteMeta(path) + `$`)
		for _, line := range strings.Split(out, "\n") {
			if m := re.FindStringSubmatch(line); m != nil {
				return m[1]
			}
		}
		return ""
	}
	if got := listLU(); got != guid {
		t.Fatalf("sbdadm list-lu: GUID %q, want %s", got, guid)
	}
	// modify_lu: -s <size>K <guid> (volume_resize).
	d.OK("stmfadm", "modify-lu", "-s", "131072K", guid)
	var lus []api.LU
	if err := json.Unmarshal([]byte(d.OK("stmfadm", "list-lu", "-o", "json", guid)), &lus); err != nil || len(lus) != 1 || lus[0].Size != 128*mib || lus[0].WriteCacheDisabled {
		t.Fatalf("after modify-lu: %+v %v", lus, err)
	}
	if out := d.OK("stmfadm", "list-lu", "-v", guid); !strings.Contains(out, "    Size              : 134217728\n") || !strings.Contains(out, "    Writeback Cache   : Enabled\n") {
		t.Fatalf("list-lu -v:\n%s", out)
	}
	// import_lu after a delete-lu (the LU comes back with its GUID).
	d.OK("stmfadm", "delete-lu", "-k", guid)
	if out := d.OK("stmfadm", "import-lu", path); out != "Logical unit imported: "+strings.ToUpper(guid)+"\n" {
		t.Fatalf("import-lu printed %q", out)
	}
	if out := d.OK("stmfadm", "list-view", "-l", guid); !strings.Contains(out, "    LUN          : 0\n") {
		t.Fatalf("views kept by delete-lu -k did not come back:\n%s", out)
	}
	// delete_lu: the LU and its views are gone, the data stays.
	d.OK("stmfadm", "delete-lu", guid)
	if got := listLU(); got != "" {
		t.Fatalf("deleted LU still listed: %s", got)
	}
	if _, errs, code := d.Run("", "stmfadm", "list-view", "-l", guid); code == 0 || errs != "stmfadm: "+guid+": no views found\n" {
		t.Fatalf("views after delete-lu: exit %d %q", code, errs)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 128*mib {
		t.Fatalf("backing store after delete-lu: %v %v", fi, err)
	}
}

// TestConfigureAndRefuse configures LUs, groups, views and targets, checks
// the list outputs, then sends bad requests: each gets COMSTAR's message, a
// non-zero exit, and leaves the configuration as it was.
func TestConfigureAndRefuse(t *testing.T) {
	dir := harness.TempDir(t, "mg")
	d := startDaemon(t, filepath.Join(dir, "state"))
	fa, fb := harness.Backing(t, dir, "a.img", 64*mib), harness.Backing(t, dir, "b.img", 64*mib)
	a := d.CreateLU("-p", "alias=a", fa)
	b := d.CreateLU("-s", "32M", "-p", "blk=4096", fb)

	d.OK("stmfadm", "create-hg", "hg1")
	d.OK("stmfadm", "create-hg", "hg2")
	d.OK("stmfadm", "add-hg-member", "-g", "hg1", "iqn.1998-01.com.VMware:esx1", "wwn.2100001b32aabbcc")
	d.OK("itadm", "create-target", "-n", "iqn.2026-11.org.test:t1", "-l", "one")
	d.OK("stmfadm", "create-tg", "tg1")
	// A target joins a target group only while offline.
	if _, errs, code := d.Run("", "stmfadm", "add-tg-member", "-g", "tg1", "iqn.2026-11.org.test:t1"); code == 0 || errs != "stmfadm: STMF target must be offline\n" {
		t.Fatalf("add-tg-member of an online target: exit %d %q", code, errs)
	}
	d.OK("stmfadm", "offline-target", "iqn.2026-11.org.test:t1")
	d.OK("stmfadm", "add-tg-member", "-g", "tg1", "iqn.2026-11.org.test:t1")
	d.OK("stmfadm", "online-target", "iqn.2026-11.org.test:t1")
	d.OK("stmfadm", "add-view", "-h", "hg1", a)
	d.OK("stmfadm", "add-view", "-h", "hg2", "-t", "tg1", "-n", "5", a)
	d.OK("stmfadm", "add-view", b)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stmfadm", "list-lu"}, "LU Name: " + a + "\nLU Name: " + b + "\n"},
		{[]string{"stmfadm", "list-view", "-l", a}, "View Entry: 0\n    Host group   : hg1\n    Target group : All\n    LUN          : 0\n" +
			"View Entry: 1\n    Host group   : hg2\n    Target group : tg1\n    LUN          : 5\n"},
		// b's view overlaps hg1's map, where LUN 0 is taken: it gets 1.
		{[]string{"stmfadm", "list-view", "-l", b, "0"}, "View Entry: 0\n    Host group   : All\n    Target group : All\n    LUN          : 1\n"},
		{[]string{"stmfadm", "list-hg", "-v"}, "Host Group: hg1\n\tMember: iqn.1998-01.com.vmware:esx1\n\tMember: wwn.2100001B32AABBCC\nHost Group: hg2\n"},
		{[]string{"stmfadm", "list-tg", "-v"}, "Target Group: tg1\n\tMember: iqn.2026-11.org.test:t1\n"},
		{[]string{"stmfadm", "list-target", "-v"}, "Target: iqn.2026-11.org.test:t1\n    Operational Status: Online\n    Provider Name     : iscsit\n" +
			"    Alias             : one\n    Protocol          : iSCSI\n    Sessions          : 0\n"},
		{[]string{"itadm", "list-target"}, fmt.Sprintf("%-61s%-9s%-9s\n%-61s%-9s%-9d\n", "TARGET NAME", "STATE", "SESSIONS", "iqn.2026-11.org.test:t1", "online", 0)},
		{[]string{"sbdadm", "list-lu"}, fmt.Sprintf("\nFound 2 LU(s)\n\n\t      GUID                    DATA SIZE           SOURCE\n"+
			"--------------------------------  -------------------  ----------------\n%s  %-19d  %s\n%s  %-19d  %s\n",
			strings.ToLower(a), 64*mib-sizeOfHeader(t, d, a), fa, strings.ToLower(b), 32*mib, fb)},
	} {
		if got := d.OK(c.args[0], c.args[1:]...); got != c.want {
			t.Errorf("%v:\ngot:\n%s\nwant:\n%s", c.args, got, c.want)
		}
	}
	if out := d.OK("stmfadm", "list-lu", "-v", b); !strings.Contains(out, "    Block Size        : 4096\n") || !strings.Contains(out, "    View Entry Count  : 1\n") {
		t.Errorf("list-lu -v:\n%s", out)
	}

	unknown := "600144F0FFFFFFFF0000000000000001"
	before := snapshot(t, d)
	for _, c := range []struct {
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"", []string{"stmfadm", "delete-lu", unknown}, 1, "stmfadm: " + strings.ToLower(unknown) + ": not found\n"},
		{"", []string{"stmfadm", "modify-lu", "-s", "1g", unknown}, 1, "stmfadm: " + unknown + ": not found\n"},
		{"", []string{"stmfadm", "online-lu", unknown}, 1, "stmfadm: " + unknown + ": not found\n"},
		{"", []string{"stmfadm", "list-lu", unknown}, 1, "stmfadm: " + unknown + ": not found\n"},
		{"", []string{"stmfadm", "list-view", "-l", unknown}, 1, "stmfadm: " + strings.ToLower(unknown) + ": no views found\n"},
		{"", []string{"stmfadm", "remove-view", "-l", a, "7"}, 1, "stmfadm: " + strings.ToLower(a) + ": 7: not found\n"},
		{"", []string{"stmfadm", "create-hg", "hg1"}, 1, "stmfadm: hg1: already exists\n"},
		{"", []string{"stmfadm", "create-tg", "tg1"}, 1, "stmfadm: tg1: already exists\n"},
		{"", []string{"stmfadm", "create-hg", "*hg"}, 1, "stmfadm: *hg: invalid group name\n"},
		{"", []string{"stmfadm", "delete-hg", "hg1"}, 1, "stmfadm: hg1: group is in use by existing view entry\n"},
		{"", []string{"stmfadm", "delete-tg", "nope"}, 1, "stmfadm: nope: not found\n"},
		{"", []string{"stmfadm", "add-hg-member", "-g", "hg1", "esx2"}, 1, "stmfadm: esx2: unrecognized device id\n"},
		{"", []string{"stmfadm", "add-hg-member", "-g", "hg2", "iqn.1998-01.com.vmware:ESX1"}, 1, "stmfadm: iqn.1998-01.com.vmware:ESX1: already exists\n"},
		{"", []string{"stmfadm", "add-hg-member", "-g", "nope", "iqn.x"}, 1, "stmfadm: nope: not found\n"},
		{"", []string{"stmfadm", "remove-hg-member", "-g", "hg2", "iqn.x"}, 1, "stmfadm: iqn.x: not found\n"},
		{"", []string{"stmfadm", "remove-tg-member", "-g", "tg1", "iqn.2026-11.org.test:t1"}, 1, "stmfadm: STMF target must be offline\n"},
		{"", []string{"stmfadm", "add-view", a}, 1, "stmfadm: view entry exists\n"},
		{"", []string{"stmfadm", "add-view", "-h", "hg2", "-t", "tg1", a}, 1, "stmfadm: view entry exists\n"},
		{"", []string{"stmfadm", "add-view", "-h", "hg1", "-n", "0", unknown}, 1, "stmfadm: LUN already in use\n"},
		{"", []string{"stmfadm", "add-view", "-h", "nope", b}, 1, "stmfadm: invalid host group\n"},
		{"", []string{"stmfadm", "add-view", "-t", "nope", b}, 1, "stmfadm: invalid target group\n"},
		{"", []string{"stmfadm", "add-view", "-n", "16384", b}, 1, "stmfadm: 16384: Logical unit number must be less than 16384\n"},
		{"", []string{"stmfadm", "create-lu", fa}, 1, "stmfadm: filename " + fa + ": in use\n"},
		{"", []string{"stmfadm", "create-lu", "-p", "guid=" + a, filepath.Join(dir, "c.img")}, 1, "stmfadm: guid in use\n"},
		{"", []string{"stmfadm", "create-lu", "-p", "vid=TOOLONGVENDOR", filepath.Join(dir, "c.img")}, 1, "stmfadm: unable to set vid: invalid length\n"},
		{"", []string{"stmfadm", "online-target", "iqn.2026-11.org.test:none"}, 1, "stmfadm: iqn.2026-11.org.test:none: not found\n"},
		{"", []string{"sbdadm", "delete-lu", unknown}, 1, "sbdadm: " + strings.ToLower(unknown) + ": not found\n"},
		{"", []string{"itadm", "create-target", "-n", "iqn.2026-11.org.test:T1"}, 17, "iSCSI target iqn.2026-11.org.test:T1 already configured\nitadm create-target failed with error 17\n"},
		{"", []string{"itadm", "create-target", "-n", "target1"}, 22, "Invalid name target1\nitadm create-target failed with error 22\n"},
		{"", []string{"itadm", "create-target", "-n", "iqn.2026-99.x"}, 14, "Invalid iSCSI name iqn.2026-99.x\nitadm create-target failed with error 14\n"},
		{"tooshort\n", []string{"itadm", "create-initiator", "-s", "iqn.1998-01.com.vmware:esx1"}, 22,
			"Enter CHAP secret: Secret must be between 12 and 255 characters\nitadm create-initiator failed with error 22\n"},
		{"", []string{"itadm", "modify-target", "-t", "nope", "iqn.2026-11.org.test:t1"}, 1, "Invalid tpg-name nope: not defined\nitadm modify-target failed with error 1\n"},
		{"", []string{"itadm", "delete-target", "iqn.2026-11.org.test:t1"}, 16,
			"The target is online or busy. Use the -f (force) option, or 'stmfadm offline-target iqn.2026-11.org.test:t1'\nitadm delete-target failed with error 16\n"},
		{"", []string{"itadm", "delete-tpg", "nope"}, 1, "Target portal group nope does not exist.\nitadm delete-tpg failed with error 1\n"},
		{"", []string{"itadm", "modify-defaults", "-a", "radius"}, 22, "Error setting global properties: 22\n\tradiusserver: missing required property\nitadm modify-defaults failed with error 22\n"},
	} {
		_, errs, code := d.Run(c.stdin, c.args[0], c.args[1:]...)
		if code != c.code || errs != c.stderr {
			t.Errorf("%v: exit %d stderr %q\nwant exit %d stderr %q", c.args, code, errs, c.code, c.stderr)
		}
	}
	sameSnapshot(t, "after refused requests", before, snapshot(t, d))
}

// sizeOfHeader is how much of a backing file the LU's in-band metadata
// takes (file size minus LU size), read from list-lu.
func sizeOfHeader(t *testing.T, d *harness.Daemon, guid string) int64 {
	t.Helper()
	var lus []api.LU
	if err := json.Unmarshal([]byte(d.OK("stmfadm", "list-lu", "-o", "json", guid)), &lus); err != nil || len(lus) != 1 {
		t.Fatalf("list-lu -o json: %v", err)
	}
	return 64*mib - int64(lus[0].Size)
}

// TestRestartKeepsConfiguration configures everything, kills stmfd with
// SIGKILL, starts it again on the same state directory and compares every
// list output: GUIDs, LUNs, groups, targets, portal groups, initiators and
// defaults survive.
func TestRestartKeepsConfiguration(t *testing.T) {
	dir := harness.TempDir(t, "mg")
	state := filepath.Join(dir, "state")
	d := startDaemon(t, state)
	var luns []string
	for i := range 3 {
		luns = append(luns, d.CreateLU(harness.Backing(t, dir, fmt.Sprintf("lu%d", i), 16*mib)))
	}
	d.OK("stmfadm", "create-hg", "esx")
	d.OK("stmfadm", "add-hg-member", "-g", "esx", "iqn.1998-01.com.vmware:esx1")
	d.OK("stmfadm", "create-tg", "fast")
	d.OK("itadm", "create-tpg", "fast", "127.0.0.1:3299")
	d.OK("itadm", "create-target", "-n", "iqn.2026-11.org.test:fast", "-t", "fast")
	d.OK("itadm", "create-target", "-n", "iqn.2026-11.org.test:slow", "-a", "none")
	d.OK("stmfadm", "offline-target", "iqn.2026-11.org.test:fast")
	d.OK("stmfadm", "add-tg-member", "-g", "fast", "iqn.2026-11.org.test:fast")
	d.OK("stmfadm", "add-view", "-h", "esx", luns[0])
	d.OK("stmfadm", "add-view", "-t", "fast", "-n", "7", luns[1])
	d.OK("stmfadm", "add-view", luns[2])
	d.OK("stmfadm", "offline-lu", luns[1])
	if _, errs, code := d.Run("a-good-secret-1\na-good-secret-1\n", "itadm", "create-initiator", "-s", "-u", "esx1", "iqn.1998-01.com.vmware:esx1"); code != 0 {
		t.Fatalf("create-initiator: %s", errs)
	}
	d.OK("itadm", "modify-defaults", "-a", "chap", "-I", "127.0.0.1")
	before := snapshot(t, d)

	d.Kill()
	d2 := startDaemon(t, state)
	after := snapshot(t, d2)
	sameSnapshot(t, "after kill -9 and restart", before, after)
	if !strings.Contains(after["stmfadm list-lu -o json"], `"status": "Offline"`) {
		t.Errorf("offline LU not offline after restart:\n%s", after["stmfadm list-lu -o json"])
	}
	if strings.Contains(strings.Join(mapValues(after), ""), "a-good-secret") {
		t.Error("a CHAP secret appears in list output")
	}
	if b, err := os.ReadFile(filepath.Join(state, "stmf.json")); err != nil || !strings.Contains(string(b), "a-good-secret-1") {
		t.Errorf("CHAP secret not persisted: %v", err)
	}
	if fi, err := os.Stat(d2.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket after restart: %v %v", fi, err)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
