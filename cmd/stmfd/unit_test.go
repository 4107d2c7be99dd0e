package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/config"
)

const (
	unitFile   = "../../contrib/systemd/stmfd.service"
	sampleFile = "../../contrib/stmfd.yaml"
)

// unitKeys reads KEY=VALUE lines of a unit file (later ones append).
func unitKeys(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			m[k] = append(m[k], v)
		}
	}
	return m
}

// The unit and the sample config agree: stmfd reads the sample's path,
// the state dir is writable under ProtectSystem=strict, systemd waits
// longer than stmfd drains, and the service is Type=notify with a watchdog.
func TestUnitMatchesSampleConfig(t *testing.T) {
	u := unitKeys(t)
	cfg, err := config.Load([]string{"--config", sampleFile}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := u["ExecStart"]; len(got) != 1 || got[0] != "/usr/sbin/stmfd --config /etc/stmfd/stmfd.yaml" {
		t.Errorf("ExecStart = %q (make install rewrites exactly /usr/sbin/stmfd and /etc/stmfd/)", got)
	}
	if got := u["Type"]; len(got) != 1 || got[0] != "notify" {
		t.Errorf("Type = %q, want notify", got)
	}
	if got := u["ExecReload"]; len(got) != 1 || !strings.Contains(got[0], "kill -HUP $MAINPID") {
		t.Errorf("ExecReload = %q", got)
	}
	if rw := strings.Join(u["ReadWritePaths"], " "); !strings.Contains(" "+rw+" ", " "+cfg.StateDir+" ") {
		t.Errorf("ReadWritePaths %q does not include the sample's state-dir %s", rw, cfg.StateDir)
	}
	stop, err := strconv.Atoi(strings.TrimSuffix(strings.Join(u["TimeoutStopSec"], ""), "s"))
	if err != nil || stop <= cfg.ShutdownSeconds {
		t.Errorf("TimeoutStopSec %v must exceed the sample's shutdown-timeout %d", u["TimeoutStopSec"], cfg.ShutdownSeconds)
	}
	wd, err := strconv.Atoi(strings.Join(u["WatchdogSec"], ""))
	if err != nil || wd < 10 {
		t.Errorf("WatchdogSec = %v", u["WatchdogSec"])
	}
}

// systemd-analyze verify accepts the unit (ExecStart pointed at an
// existing binary, as make install does).
func TestUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("COSTAR_REQUIRE_TOOLS") == "1" {
			t.Fatal("systemd-analyze not found (Debian package systemd)")
		}
		t.Skip("systemd-analyze not found")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "stmfd.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(b, []byte("/usr/sbin/stmfd"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sa, "verify", "--man=no", unit).CombinedOutput()
	// Warnings about other units installed on this machine are not ours.
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "stmfd.service") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
