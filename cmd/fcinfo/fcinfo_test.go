package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/test/fcloop"
)

// TestFcinfo runs fcinfo against a daemon serving the loopback FC adapter
// with one logged-in initiator.
func TestFcinfo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := fcloop.Start(ctx, t)
	sock := f.Socket

	fcinfo := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"--socket", sock}, args...), &out, &errb); code != want {
			t.Fatalf("fcinfo %v: exit %d, want %d; stderr %s", args, code, want, errb.String())
		}
		return out.String() + errb.String()
	}
	if out := fcinfo(0, "hba-port"); !strings.Contains(out, "HBA Port WWN: 2100001b32010203") ||
		!strings.Contains(out, "Port Mode: Target") || !strings.Contains(out, "State: link down") {
		t.Fatalf("hba-port before link up:\n%s", out)
	}
	f.LinkUp(ctx, t, 8000)
	out := fcinfo(0, "hba-port", "21:00:00:1b:32:01:02:03")
	for _, want := range []string{"State: online", "Current Speed: 8Gb", "Port ID: 10100", "Node WWN: 2000001b32010203", "Driver Name: loopback"} {
		if !strings.Contains(out, want) {
			t.Fatalf("hba-port lacks %q:\n%s", want, out)
		}
	}
	out = fcinfo(0, "remote-port", "-p", "2100001b32010203")
	for _, want := range []string{"Remote Port WWN: 10000000c9090909", "Active FC4 Types: SCSI", "Port ID: 10200", "Node WWN: 20000000c9090909"} {
		if !strings.Contains(out, want) {
			t.Fatalf("remote-port lacks %q:\n%s", want, out)
		}
	}
	var rps []api.FCRemotePort
	if err := json.Unmarshal([]byte(fcinfo(0, "remote-port", "-p", "wwn.2100001B32010203", "-o", "json")), &rps); err != nil ||
		len(rps) != 1 || !rps[0].Initiator || rps[0].PortWWN != "10000000c9090909" {
		t.Fatalf("remote-port -o json: %+v %v", rps, err)
	}
	fcinfo(1, "remote-port", "-p", "2100001b320102ff")
	fcinfo(exitUsage, "remote-port", "-p", "xyz")
	fcinfo(exitUsage, "hba-port", "-o", "yaml")
}
