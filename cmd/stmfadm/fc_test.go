package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/daemon"
	"github.com/costar-project/costar/test/fcloop"
)

// TestListTargetFC runs list-target -v against a daemon serving the
// loopback FC adapter with one logged-in initiator, then offline-target.
func TestListTargetFC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := fcloop.Start(ctx, t)
	f.LinkUp(ctx, t, 8000)
	sock := f.Socket
	colons := regexp.MustCompile(` +:`) // list-target -v aligns its colons
	code, out, errs := runCLI(t, sock, "stmfadm", "list-target", "-v")
	out = colons.ReplaceAllString(out, ":")
	for _, want := range []string{"Target: wwn.2100001B32010203", "Operational Status: Online", "Provider Name: loopback",
		"Protocol: Fibre Channel", "Sessions: 1", "Initiator: wwn.10000000C9090909"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("list-target -v (exit %d) lacks %q:\n%s%s", code, want, out, errs)
		}
	}
	if code, _, errs := runCLI(t, sock, "stmfadm", "offline-target", "wwn.2100001B32010203"); code != 0 {
		t.Fatalf("offline-target: %d %s", code, errs)
	}
	code, out, _ = runCLI(t, sock, "stmfadm", "list-target", "-v", "wwn.2100001B32010203")
	out = colons.ReplaceAllString(out, ":")
	if code != 0 || !strings.Contains(out, "Operational Status: Offline") || !strings.Contains(out, "Sessions: 0") {
		t.Fatalf("after offline-target:\n%s", out)
	}
}

// TestListStateFCPortGroup: an FC target in its own ALUA target port group
// is listed in that group by list-state (-o json names the targets), and
// set-alua-state on the group shows there.
func TestListStateFCPortGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := fcloop.Start(ctx, t, daemon.WithFCPortGroup(fcloop.TargetWWPN(), 7))
	f.LinkUp(ctx, t, 8000)
	groups := func() map[uint16]api.ALUAGroup {
		t.Helper()
		code, out, errs := runCLI(t, f.Socket, "stmfadm", "list-state", "-o", "json")
		var st api.State
		if code != 0 {
			t.Fatalf("list-state -o json: exit %d %s", code, errs)
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("list-state -o json: %v\n%s", err, out)
		}
		m := map[uint16]api.ALUAGroup{}
		for _, g := range st.TargetPortGroups {
			m[g.Tag] = g
		}
		return m
	}
	gs := groups()
	if !slices.Equal(gs[7].Targets, []string{"wwn.2100001B32010203"}) || slices.Contains(gs[1].Targets, "wwn.2100001B32010203") {
		t.Fatalf("list-state groups %+v", gs)
	}
	if code, _, errs := runCLI(t, f.Socket, "stmfadm", "set-alua-state", "-g", "7", "standby"); code != 0 {
		t.Fatalf("set-alua-state -g 7 standby: %d %s", code, errs)
	}
	code, out, _ := runCLI(t, f.Socket, "stmfadm", "list-state")
	if code != 0 || !strings.Contains(out, "ALUA Target Port Group 7: Standby\n") {
		t.Fatalf("list-state:\n%s", out)
	}
	if g := groups()[7]; g.State != api.ALUAStandby || !slices.Equal(g.Targets, []string{"wwn.2100001B32010203"}) {
		t.Fatalf("group 7 after set-alua-state: %+v", g)
	}
}
