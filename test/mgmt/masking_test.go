package mgmt

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/test/harness"
)

const (
	hostA  = "iqn.2026-11.org.test:host-a"
	hostB  = "iqn.2026-11.org.test:host-b"
	target = "iqn.2026-11.org.test:masked"
)

// lunsSeen lists the LUNs iscsi-ls shows to initiator through the portal
// (nil when it sees no target).
func lunsSeen(t *testing.T, portal, initiator string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iscsi-ls", "-s", "-i", initiator, "iscsi://"+portal).CombinedOutput()
	t.Logf("$ iscsi-ls -s -i %s iscsi://%s (%v)\n%s", initiator, portal, err, out)
	if err != nil {
		t.Fatalf("iscsi-ls: %v", err)
	}
	var luns []string
	for _, m := range regexp.MustCompile(`(?m)^Lun:(\d+)\s`).FindAllStringSubmatch(string(out), -1) {
		luns = append(luns, m[1])
	}
	if !strings.Contains(string(out), "Target:"+target) {
		return nil
	}
	slices.Sort(luns)
	return luns
}

// TestMasking proves the LUN maps over the wire: two initiators see
// different LUNs through REPORT LUNS, and a view change reaches a live
// session at once (REPORTED LUNS DATA HAS CHANGED, then the new map).
func TestMasking(t *testing.T) {
	suite.Binaries(t)
	harness.RequireTools(t, "iscsi-ls", "iscsi-inq")
	dir := harness.TempDir(t, "mg")
	d := startDaemon(t, filepath.Join(dir, "state"))
	a := d.CreateLU(harness.Backing(t, dir, "a", 16*mib))
	b := d.CreateLU(harness.Backing(t, dir, "b", 16*mib))
	d.OK("itadm", "create-target", "-n", target)
	d.OK("stmfadm", "create-hg", "hosts-a")
	d.OK("stmfadm", "add-hg-member", "-g", "hosts-a", hostA)
	d.OK("stmfadm", "add-view", "-h", "hosts-a", a) // LUN 0, host A only
	d.OK("stmfadm", "add-view", b)                  // everyone; LUN 1 (0 is taken in A's map)

	if got := lunsSeen(t, d.Portal, hostA); !reflect.DeepEqual(got, []string{"0", "1"}) {
		t.Fatalf("host A sees LUNs %v, want [0 1]", got)
	}
	if got := lunsSeen(t, d.Portal, hostB); !reflect.DeepEqual(got, []string{"1"}) {
		t.Fatalf("host B sees LUNs %v, want [1]", got)
	}
	// B cannot address A's LU even by number.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "iscsi-inq", "-i", hostB, "iscsi://"+d.Portal+"/"+target+"/0").CombinedOutput(); err == nil && !strings.Contains(string(out), "not") {
		t.Errorf("host B reads an INQUIRY of LUN 0:\n%s", out)
	}

	// A live session of host A follows view changes.
	s := login(t, d.Portal, hostA, target)
	if got := s.reportLUNs(); !reflect.DeepEqual(got, []scsi.LUN{0, 1}) {
		t.Fatalf("live session LUNs %v, want [0 1]", got)
	}
	// A new nexus first reports POWER ON OCCURRED (29/00); clear it.
	for i := 0; ; i++ {
		st, sense := s.testUnitReady(0)
		if st == scsi.StatusGood {
			break
		}
		if i == 3 || !strings.HasPrefix(sense, "6/29/") {
			t.Fatalf("TEST UNIT READY before the change: %v %s", st, sense)
		}
	}
	d.OK("stmfadm", "remove-view", "-l", b, "0")
	if st, sense := s.testUnitReady(0); st != scsi.StatusCheckCondition || sense != "6/3f/0e" {
		t.Fatalf("after remove-view: TEST UNIT READY %v sense %s, want CHECK CONDITION 6/3f/0e", st, sense)
	}
	if got := s.reportLUNs(); !reflect.DeepEqual(got, []scsi.LUN{0}) {
		t.Fatalf("live session LUNs after remove-view %v, want [0]", got)
	}
	if got := lunsSeen(t, d.Portal, hostB); got != nil {
		t.Fatalf("host B, with no LUN left, still discovers the target: %v", got)
	}
	d.OK("stmfadm", "add-view", "-h", "hosts-a", "-n", "7", b)
	if st, sense := s.testUnitReady(0); st != scsi.StatusCheckCondition || sense != "6/3f/0e" {
		t.Fatalf("after add-view: TEST UNIT READY %v sense %s", st, sense)
	}
	if got := s.reportLUNs(); !reflect.DeepEqual(got, []scsi.LUN{0, 7}) {
		t.Fatalf("live session LUNs after add-view %v, want [0 7]", got)
	}
	// The unit attention is pending on every LUN of the changed map.
	if st, sense := s.testUnitReady(7); st != scsi.StatusCheckCondition || sense != "6/3f/0e" {
		t.Fatalf("TEST UNIT READY on the new LUN: %v %s", st, sense)
	}
	if st, sense := s.testUnitReady(7); st != scsi.StatusGood {
		t.Fatalf("TEST UNIT READY on the new LUN, again: %v %s", st, sense)
	}
	// list-target -v shows the live session.
	out := d.OK("stmfadm", "list-target", "-v", target)
	if !strings.Contains(out, "    Sessions          : 1\n        Initiator: "+hostA+"\n") || !strings.Contains(out, "Logged in since: ") {
		t.Fatalf("list-target -v:\n%s", out)
	}
	if out := d.OK("itadm", "list-target", target); !regexp.MustCompile(regexp.QuoteMeta(target) + `\s+online\s+1\s`).MatchString(out) {
		t.Fatalf("itadm list-target:\n%s", out)
	}
}

// TestCHAP: a target with auth chap admits only initiators that prove the
// secret configured with itadm create-initiator, and with a target secret
// proves itself to initiators that ask (mutual CHAP).
func TestCHAP(t *testing.T) {
	suite.Binaries(t)
	harness.RequireTools(t, "iscsi-inq", "iscsi-ls")
	dir := harness.TempDir(t, "mg")
	d := startDaemon(t, filepath.Join(dir, "state"))
	lu := d.CreateLU(harness.Backing(t, dir, "a", 16*mib))
	d.OK("stmfadm", "add-view", lu)
	d.OK("itadm", "create-target", "-n", target, "-a", "chap")
	if _, errs, code := d.Run("host-a-secret\nhost-a-secret\n", "itadm", "create-initiator", "-u", "usera", "-s", hostA); code != 0 {
		t.Fatalf("create-initiator: %s", errs)
	}
	inqQuery := func(userinfo, query string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "iscsi-inq", "-i", hostA, "iscsi://"+userinfo+d.Portal+"/"+target+"/0"+query).CombinedOutput()
		t.Logf("$ iscsi-inq (%s) (%v)\n%s", strings.Split(userinfo, "%")[0], err, out)
		return err
	}
	inq := func(userinfo string) error { return inqQuery(userinfo, "") }
	if err := inq("usera%host-a-secret@"); err != nil {
		t.Fatalf("login with the right secret failed: %v", err)
	}
	if err := inq("usera%wrong-secret-1@"); err == nil {
		t.Fatal("login with a wrong secret succeeded")
	}
	if err := inq(""); err == nil {
		t.Fatal("login without CHAP succeeded on an auth chap target")
	}

	// Mutual CHAP: with a target secret set, an initiator that asks the
	// target to authenticate itself accepts only the right answer.
	if _, errs, code := d.Run("target-secret-1\ntarget-secret-1\n", "itadm", "modify-target", "-u", "tgtuser", "-s", target); code != 0 {
		t.Fatalf("modify-target -s: %s", errs)
	}
	if err := inqQuery("usera%host-a-secret@", "?target_user=tgtuser&target_password=target-secret-1"); err != nil {
		t.Fatalf("mutual CHAP with the right target secret failed: %v", err)
	}
	if err := inqQuery("usera%host-a-secret@", "?target_user=tgtuser&target_password=wrong-target-99"); err == nil {
		t.Fatal("the initiator accepted a target that does not know the target secret")
	}
	d.OK("itadm", "modify-target", "-a", "none", target)
	if err := inq(""); err != nil {
		t.Fatalf("login without CHAP after auth none: %v", err)
	}

	// Discovery sessions need CHAP too once the defaults require it.
	ls := func(userinfo string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "iscsi-ls", "-i", hostA, "iscsi://"+userinfo+d.Portal).CombinedOutput()
		t.Logf("$ iscsi-ls (%s) (%v)\n%s", strings.Split(userinfo, "%")[0], err, out)
		if err == nil && !strings.Contains(string(out), target) {
			return fmt.Errorf("discovery did not list %s", target)
		}
		return err
	}
	d.OK("itadm", "modify-defaults", "-a", "chap")
	if err := ls(""); err == nil {
		t.Fatal("discovery without CHAP succeeded with auth chap defaults")
	}
	if err := ls("usera%wrong-secret-1@"); err == nil {
		t.Fatal("discovery with a wrong secret succeeded")
	}
	if err := ls("usera%host-a-secret@"); err != nil {
		t.Fatalf("discovery with the right secret failed: %v", err)
	}
}
