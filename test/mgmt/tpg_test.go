package mgmt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/scsi"
	"github.com/costar-project/costar/test/harness"
)

const (
	tgtDefault = "iqn.2026-11.org.test:tpg-default"
	tgtGrouped = "iqn.2026-11.org.test:tpg-grouped"
)

// tool runs a libiscsi tool (60 s bound) and returns its output and
// whether it succeeded.
func tool(t *testing.T, name string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	t.Logf("$ %s %s (%v)\n%s", name, strings.Join(args, " "), err, out)
	return string(out), err == nil
}

// discovered returns "target portal,tag" lines from iscsi-ls at portal:
// SendTargets through that portal.
func discovered(t *testing.T, portal string) []string {
	t.Helper()
	out, ok := tool(t, "iscsi-ls", "iscsi://"+portal)
	if !ok {
		t.Fatalf("iscsi-ls at %s failed", portal)
	}
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^Target:(\S+) Portal:(\S+)$`).FindAllStringSubmatch(out, -1) {
		got = append(got, m[1]+" "+m[2])
	}
	slices.Sort(got)
	return got
}

// vpd83Port returns the target port group and relative target port
// identifier the LU reports in VPD page 0x83 to session s.
func vpd83Port(t *testing.T, s *session) (group, rel uint16) {
	t.Helper()
	st, data, sense := s.command(0, []byte{0x12, 1, 0x83, 0x01, 0x00, 0}, 256)
	if st != scsi.StatusGood || len(data) < 4 {
		t.Fatalf("INQUIRY VPD 0x83: %v sense %x", st, sense)
	}
	d := data[4:min(len(data), 4+int(binary.BigEndian.Uint16(data[2:4])))]
	for len(d) >= 4 && len(d) >= 4+int(d[3]) {
		typ, body := d[1]&0x0f, d[4:4+int(d[3])]
		switch {
		case typ == 5 && len(body) == 4:
			group = binary.BigEndian.Uint16(body[2:])
		case typ == 4 && len(body) == 4:
			rel = binary.BigEndian.Uint16(body[2:])
		}
		d = d[4+int(d[3]):]
	}
	return group, rel
}

// rtpg returns REPORT TARGET PORT GROUPS as group -> relative port ids.
func rtpg(t *testing.T, s *session) map[uint16][]uint16 {
	t.Helper()
	cdb := make([]byte, 12)
	cdb[0], cdb[1] = 0xa3, 0x0a
	binary.BigEndian.PutUint32(cdb[6:10], 1024)
	st, data, sense := s.command(0, cdb, 1024)
	if st != scsi.StatusGood || len(data) < 4 {
		t.Fatalf("REPORT TARGET PORT GROUPS: %v sense %x", st, sense)
	}
	out := map[uint16][]uint16{}
	d := data[4:]
	for len(d) >= 8 && len(d) >= 8+4*int(d[7]) {
		g := binary.BigEndian.Uint16(d[2:4])
		for i := range int(d[7]) {
			out[g] = append(out[g], binary.BigEndian.Uint16(d[8+4*i+2:]))
		}
		d = d[8+4*int(d[7]):]
	}
	return out
}

// storedRelIDs reads the relative port identifiers stmfd persisted.
func storedRelIDs(t *testing.T, stateDir string) map[string]uint16 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "stmf.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		IDs map[string]uint16 `json:"relative_port_ids"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.IDs
}

// readyTUR clears the power-on unit attention and checks the LU answers.
func readyTUR(t *testing.T, s *session) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if st, _ := s.testUnitReady(0); st == scsi.StatusGood {
			return
		}
	}
	t.Fatal("TEST UNIT READY never GOOD")
}

// TestTargetPortalGroups proves portal groups over the wire with the real
// stmfd and libiscsi: a target bound to a portal group is reachable only
// through its portals, SendTargets reports each target's portals and
// tags, a portal group added to a live target starts its listener at once
// without disturbing sessions, each portal group is its own ALUA target
// port group, and all of it survives a restart.
func TestTargetPortalGroups(t *testing.T) {
	suite.Binaries(t)
	harness.RequireTools(t, "iscsi-ls", "iscsi-inq")
	dir := harness.TempDir(t, "mg")
	state := filepath.Join(dir, "state")
	d := startDaemon(t, state)
	lu := d.CreateLU(harness.Backing(t, dir, "a", 16*mib))
	d.OK("stmfadm", "add-view", lu)
	fast := "127.0.0.2:" + harness.FreePortOn(t, "127.0.0.2")
	slow := "127.0.0.3:" + harness.FreePortOn(t, "127.0.0.3")

	d.OK("itadm", "create-tpg", "fast", fast)
	d.OK("itadm", "create-target", "-n", tgtDefault)
	d.OK("itadm", "create-target", "-n", tgtGrouped, "-t", "fast")
	if out := d.OK("itadm", "list-target", "-v", tgtGrouped); !strings.Contains(out, "\ttpg-tags:           \tfast = 2\n") {
		t.Fatalf("list-target -v:\n%s", out)
	}

	// Reachable through its portal group's portal, not the default one.
	if out, ok := tool(t, "iscsi-inq", "iscsi://"+fast+"/"+tgtGrouped+"/0"); !ok || !strings.Contains(out, "Peripheral Device Type:DIRECT_ACCESS") {
		t.Fatalf("iscsi-inq through the portal group's portal failed")
	}
	if out, ok := tool(t, "iscsi-inq", "iscsi://"+d.Portal+"/"+tgtGrouped+"/0"); ok || !strings.Contains(out, "Target not found") {
		t.Fatalf("login through the default portal was not refused with 'target not found'")
	}
	if _, ok := tool(t, "iscsi-inq", "iscsi://"+fast+"/"+tgtDefault+"/0"); ok {
		t.Fatalf("default-group target reachable through a portal group's portal")
	}
	// The SCSI name of the target port (VPD 0x83) carries the tag.
	if out, _ := tool(t, "iscsi-inq", "-e", "1", "-c", "131", "iscsi://"+fast+"/"+tgtGrouped+"/0"); !strings.Contains(out, "Designator:["+tgtGrouped+",t,0x0002]") {
		t.Fatal("VPD 0x83 does not name the portal group's target port")
	}

	// SendTargets through either portal lists each target's portals and tags.
	want := []string{tgtDefault + " " + d.Portal + ",1", tgtGrouped + " " + fast + ",2"}
	for _, p := range []string{d.Portal, fast} {
		if got := discovered(t, p); !slices.Equal(got, want) {
			t.Fatalf("SendTargets at %s: %q, want %q", p, got, want)
		}
		// iscsi-ls -s logs in to each target at the address it was given.
		if out, ok := tool(t, "iscsi-ls", "-s", "iscsi://"+p); !ok || strings.Count(out, "Lun:0 ") != 2 {
			t.Fatalf("iscsi-ls -s at %s: both targets' LUN 0 expected", p)
		}
	}

	// Live sessions: the LU tells each its own target port group and
	// relative port, and RTPG reports both groups with their ports.
	sg := login(t, fast, hostA, tgtGrouped)
	readyTUR(t, sg)
	sd := login(t, d.Portal, hostB, tgtDefault)
	readyTUR(t, sd)
	ids := storedRelIDs(t, state)
	relG, relD := ids[tgtGrouped+",t,0x0002"], ids[tgtDefault+",t,0x0001"]
	if relG == 0 || relD == 0 || relG == relD {
		t.Fatalf("persisted relative port ids %v", ids)
	}
	if g, r := vpd83Port(t, sg); g != 2 || r != relG {
		t.Fatalf("VPD 0x83 through fast: group %d rel %d, want 2 %d", g, r, relG)
	}
	if g, r := vpd83Port(t, sd); g != 1 || r != relD {
		t.Fatalf("VPD 0x83 through the default portal: group %d rel %d, want 1 %d", g, r, relD)
	}
	groups := rtpg(t, sg)
	if !slices.Contains(groups[2], relG) || !slices.Contains(groups[1], relD) || slices.Contains(groups[1], relG) {
		t.Fatalf("RTPG %v: want group 2 with port %d and group 1 with port %d", groups, relG, relD)
	}
	out := d.OK("stmfadm", "list-target", "-v", tgtGrouped)
	if !strings.Contains(out, "    Sessions          : 1\n") || !strings.Contains(out, "Initiator: "+hostA+"\n") {
		t.Fatalf("stmfadm list-target -v:\n%s", out)
	}
	if out := d.OK("itadm", "list-target", tgtGrouped); !regexp.MustCompile(`online\s+1\s`).MatchString(out) {
		t.Fatalf("itadm list-target:\n%s", out)
	}

	// Live: binding a second portal group opens its listener; the
	// session through the first group stays.
	d.OK("itadm", "create-tpg", "slow", slow)
	if _, err := net.DialTimeout("tcp", slow, time.Second); err == nil {
		t.Fatal("an unbound portal group already listens")
	}
	d.OK("itadm", "modify-target", "-t", "fast,slow", tgtGrouped)
	if out := d.OK("itadm", "list-target", "-v", tgtGrouped); !strings.Contains(out, "\ttpg-tags:           \tfast = 2,slow = 3\n") {
		t.Fatalf("list-target -v:\n%s", out)
	}
	want = []string{tgtDefault + " " + d.Portal + ",1", tgtGrouped + " " + fast + ",2", tgtGrouped + " " + slow + ",3"}
	if got := discovered(t, slow); !slices.Equal(got, want) {
		t.Fatalf("SendTargets at the new portal: %q, want %q", got, want)
	}
	if _, ok := tool(t, "iscsi-inq", "iscsi://"+slow+"/"+tgtGrouped+"/0"); !ok {
		t.Fatal("iscsi-inq through the new portal failed")
	}
	readyTUR(t, sg)
	ss := login(t, slow, hostB, tgtGrouped)
	readyTUR(t, ss)
	if g, _ := vpd83Port(t, ss); g != 3 {
		t.Fatalf("VPD 0x83 through slow: group %d, want 3", g)
	}
	if groups := rtpg(t, ss); len(groups[1]) == 0 || len(groups[2]) == 0 || len(groups[3]) == 0 {
		t.Fatalf("RTPG %v: want groups 1, 2 and 3", groups)
	}

	// delete-tpg is refused while bound; forced, it unbinds: the
	// listener closes, its session ends, the other group's stays.
	if _, errs, code := d.Run("", "itadm", "delete-tpg", "slow"); code != 16 || !strings.Contains(errs, "associated with one or more targets") {
		t.Fatalf("delete-tpg of a bound group: exit %d %q", code, errs)
	}
	d.OK("itadm", "delete-tpg", "-f", "slow")
	if _, err := net.DialTimeout("tcp", slow, time.Second); err == nil {
		t.Fatal("the deleted portal group still listens")
	}
	_ = ss.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := ss.conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the session through the deleted portal group is still open")
	}
	readyTUR(t, sg)

	// A restart brings back the listeners and the same relative port ids.
	d.Stop()
	d2 := startDaemon(t, state)
	if got := discovered(t, d2.Portal); len(got) != 2 || !slices.Contains(got, tgtGrouped+" "+fast+",2") {
		t.Fatalf("SendTargets after restart: %q", got)
	}
	s2 := login(t, fast, hostA, tgtGrouped)
	readyTUR(t, s2)
	if g, r := vpd83Port(t, s2); g != 2 || r != relG {
		t.Fatalf("after restart: group %d rel %d, want 2 %d", g, r, relG)
	}
}
