package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/loopback"
)

// TestListTargetFC runs list-target -v against a daemon serving the
// loopback FC adapter with one logged-in initiator, then offline-target.
func TestListTargetFC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "fcs")
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
	if err := ad.LinkUp(ctx, 0x010100, 8000); err != nil {
		t.Fatal(err)
	}
	in := ad.NewInitiator(0x010200, 0x010100, fc.WWN{0x10, 0, 0, 0, 0xc9, 9, 9, 9}, fc.WWN{0x20, 0, 0, 0, 0xc9, 9, 9, 9})
	if err := in.Login(ctx); err != nil {
		t.Fatal(err)
	}
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
