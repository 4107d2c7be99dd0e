package esx

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// rtpgStates returns REPORT TARGET PORT GROUPS as group -> access state.
func rtpgStates(ctx context.Context, t *testing.T, s *initiator.Session) map[uint16]byte {
	t.Helper()
	r := harness.Good(ctx, t, s, 0, initiator.ReportTargetPortGroups(1024), nil, 1024)
	groups, err := initiator.ParseTargetPortGroups(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint16]byte{}
	for _, g := range groups {
		out[g.Group] = g.State
	}
	return out
}

// listStateGroups returns list-state -o json's target port groups by tag.
func listStateGroups(t *testing.T, d *harness.Daemon) map[uint16]string {
	t.Helper()
	var st api.State
	if err := json.Unmarshal([]byte(d.OK("stmfadm", "list-state", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	out := map[uint16]string{}
	for _, g := range st.TargetPortGroups {
		out[g.Tag] = g.State
	}
	return out
}

const (
	stateAO      = 0x0
	stateStandby = 0x2
)

// TestALUAStateChangeOnLiveSession: stmfadm set-alua-state changes what a
// live session logged in through portal group 2 may do, and tells it with
// ASYMMETRIC ACCESS STATE CHANGED; the state survives a restart and bad
// requests change nothing.
func TestALUAStateChangeOnLiveSession(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	dir := harness.TempDir(t, "esx")
	state := filepath.Join(dir, "state")
	d := suite.Start(ctx, t, state, harness.Options{})
	lu := d.CreateLU(harness.Backing(t, dir, "lu", 16*mib))
	d.OK("stmfadm", "add-view", lu)
	p2 := "127.0.0.2:" + harness.FreePortOn(t, "127.0.0.2")
	d.OK("itadm", "create-tpg", "2", p2)
	d.OK("itadm", "create-target", "-n", tgtDefault)
	d.OK("itadm", "create-target", "-n", tgtGrouped, "-t", "2")
	if out := d.OK("itadm", "list-target", "-v", tgtGrouped); !strings.Contains(out, "2 = 2") {
		t.Fatalf("target not bound to portal group tag 2:\n%s", out)
	}

	s2 := harness.Login(ctx, t, p2, tgtGrouped, hostA, 1)       // through target port group 2
	s1 := harness.Login(ctx, t, d.Portal, tgtDefault, hostB, 1) // through target port group 1
	harness.Ready(ctx, t, s2, 0)
	harness.Ready(ctx, t, s1, 0)
	harness.Good(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512)
	if out := d.OK("stmfadm", "list-state"); !strings.HasPrefix(out, "Operational Status: online\n") ||
		!strings.Contains(out, "ALUA Node         : 0\nALUA Target Port Group 1: Active/Optimized\nALUA Target Port Group 2: Active/Optimized\n") {
		t.Fatalf("list-state before the change:\n%s", out)
	}

	d.OK("stmfadm", "set-alua-state", "-g", "2", "standby")

	// Every session learns of the change on its next command.
	if r := harness.Do(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512); !r.Is(initiator.KeyUnitAttention, 0x2a, 0x06) {
		t.Fatalf("READ through group 2 after the change: %v, want UNIT ATTENTION 2Ah/06h", r)
	}
	if r := harness.Do(ctx, t, s1, 0, initiator.Read16(0, 1), nil, 512); !r.Is(initiator.KeyUnitAttention, 0x2a, 0x06) {
		t.Fatalf("READ through group 1 after the change: %v, want UNIT ATTENTION 2Ah/06h", r)
	}
	// Standby: no media access, but INQUIRY and RTPG answer.
	if r := harness.Do(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512); !r.Is(initiator.KeyNotReady, 0x04, 0x0b) {
		t.Fatalf("READ through the standby group: %v, want NOT READY 04h/0Bh", r)
	}
	if r := harness.Do(ctx, t, s2, 0, initiator.Write16(0, 1), make([]byte, 512), 0); !r.Is(initiator.KeyNotReady, 0x04, 0x0b) {
		t.Fatalf("WRITE through the standby group: %v, want NOT READY 04h/0Bh", r)
	}
	if r := harness.Good(ctx, t, s2, 0, initiator.Inquiry(false, 0, 96), nil, 96); len(r.Data) < 36 || r.Data[5]&0x30 == 0 {
		t.Fatalf("INQUIRY through the standby group: % x (TPGS must be set)", r.Data)
	}
	for name, s := range map[string]*initiator.Session{"group 1": s1, "group 2": s2} {
		if got := rtpgStates(ctx, t, s); got[1] != stateAO || got[2] != stateStandby || len(got) != 2 {
			t.Fatalf("REPORT TARGET PORT GROUPS through %s: %v, want group 1 active/optimized, group 2 standby", name, got)
		}
	}
	harness.Good(ctx, t, s1, 0, initiator.Read16(0, 1), nil, 512) // group 1 still serves I/O
	if out := d.OK("stmfadm", "list-state"); !strings.Contains(out, "ALUA Target Port Group 1: Active/Optimized\nALUA Target Port Group 2: Standby\n") {
		t.Fatalf("list-state after the change:\n%s", out)
	}
	if g := listStateGroups(t, d); g[1] != api.ALUAActiveOptimized || g[2] != api.ALUAStandby {
		t.Fatalf("list-state -o json groups: %v", g)
	}

	// Bad requests: a clear message, a non-zero exit, nothing changes
	// (and no unit attention is raised).
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"set-alua-state", "-g", "9", "active-optimized"}, "9: target port group not found"},
		{[]string{"set-alua-state", "-g", "0", "active-optimized"}, "invalid target port group"},
		{[]string{"set-alua-state", "-g", "2", "optimized"}, "optimized: invalid ALUA state"},
		{[]string{"set-alua-state", "active-optimized"}, "-g, --group-name is required"},
	} {
		if _, errs, code := d.Run("", "stmfadm", bad.args...); code == 0 || !strings.Contains(errs, bad.msg) {
			t.Errorf("stmfadm %v: exit %d, stderr %q; want a failure mentioning %q", bad.args, code, errs, bad.msg)
		}
	}
	if g := listStateGroups(t, d); g[2] != api.ALUAStandby {
		t.Fatalf("a refused request changed group 2: %v", g)
	}
	if r := harness.Do(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512); !r.Is(initiator.KeyNotReady, 0x04, 0x0b) {
		t.Fatalf("READ through group 2 after refused requests: %v, want NOT READY 04h/0Bh (no new unit attention)", r)
	}

	// The state survives a restart and is in force before the first
	// command of a new session: after the power-on unit attention, READ
	// is refused at once.
	d.Stop()
	d = suite.Start(ctx, t, state, harness.Options{})
	s2 = harness.Login(ctx, t, p2, tgtGrouped, hostA, 1)
	if r := harness.Do(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512); !r.Is(initiator.KeyUnitAttention, 0x29, 0x00) {
		t.Fatalf("first READ after restart: %v, want the power-on unit attention", r)
	}
	if r := harness.Do(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512); !r.Is(initiator.KeyNotReady, 0x04, 0x0b) {
		t.Fatalf("READ through group 2 after restart: %v, want NOT READY 04h/0Bh", r)
	}
	if got := rtpgStates(ctx, t, s2); got[2] != stateStandby {
		t.Fatalf("RTPG after restart: %v", got)
	}

	// Back to active/optimized: unit attention, then I/O works again.
	d.OK("stmfadm", "set-alua-state", "-g", "2", "active/optimized")
	if r := harness.Do(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512); !r.Is(initiator.KeyUnitAttention, 0x2a, 0x06) {
		t.Fatalf("READ after the change back: %v, want UNIT ATTENTION 2Ah/06h", r)
	}
	harness.Good(ctx, t, s2, 0, initiator.Read16(0, 1), nil, 512)
	harness.Good(ctx, t, s2, 0, initiator.Write16(0, 1), make([]byte, 512), 0)
	if got := rtpgStates(ctx, t, s2); got[2] != stateAO {
		t.Fatalf("RTPG after the change back: %v", got)
	}
	if g := listStateGroups(t, d); g[2] != api.ALUAActiveOptimized {
		t.Fatalf("list-state -o json after the change back: %v", g)
	}
}
