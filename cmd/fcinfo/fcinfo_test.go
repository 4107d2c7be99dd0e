package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/loopback"
)

// TestFcinfo runs fcinfo against a daemon serving the loopback FC adapter
// with one logged-in initiator.
func TestFcinfo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "fci")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "s")
	cfg := &config.Config{StateDir: dir, Socket: sock, ShutdownSeconds: 5,
		ISCSI: config.ISCSIConfig{Portals: []string{"127.0.0.1:0"}, AbortCompletedTask: config.AbortTaskDoesNotExist}}
	ad := loopback.New(fc.WWN{0x21, 0, 0, 0x1b, 0x32, 1, 2, 3}, fc.WWN{0x20, 0, 0, 0x1b, 0x32, 1, 2, 3})
	d, err := daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), daemon.WithFCAdapters(ad))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())

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
	if err := ad.LinkUp(ctx, 0x010100, 8000); err != nil {
		t.Fatal(err)
	}
	in := ad.NewInitiator(0x010200, 0x010100, fc.WWN{0x10, 0, 0, 0, 0xc9, 9, 9, 9}, fc.WWN{0x20, 0, 0, 0, 0xc9, 9, 9, 9})
	if err := in.Login(ctx); err != nil {
		t.Fatal(err)
	}
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
