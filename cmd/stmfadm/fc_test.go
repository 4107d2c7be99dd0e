package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

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
