package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Missing skips the test, or fails it with COSTAR_REQUIRE_TOOLS=1.
func Missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("COSTAR_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (COSTAR_REQUIRE_TOOLS=1); run scripts/install-test-deps.sh", what)
	}
	t.Skipf("%s; run scripts/install-test-deps.sh (COSTAR_REQUIRE_TOOLS=1 makes this a failure)", what)
}

// RequireTools calls Missing for the first tool not in PATH.
func RequireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, name := range tools {
		if _, err := exec.LookPath(name); err != nil {
			Missing(t, fmt.Sprintf("%s not found in PATH", name))
		}
	}
}

// RequireQemuISCSI checks that qemu-img/qemu-io can open iscsi:// URLs
// (Debian ships the driver in qemu-block-extra).
func RequireQemuISCSI(t *testing.T) {
	t.Helper()
	RequireTools(t, "qemu-img", "qemu-io")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-img", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " iscsi") {
		Missing(t, "qemu-img has no iscsi block driver (package qemu-block-extra)")
	}
}

// Context bounds a whole test.
func Context(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TempDir is a short temporary directory (unix socket paths are limited
// to 108 bytes), removed at the end of the test.
func TempDir(t *testing.T, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// FreePortOn returns a TCP port free on ip at the time of the call.
func FreePortOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		Missing(t, fmt.Sprintf("cannot listen on %s (loopback address missing?): %v", ip, err))
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Backing creates a sparse file of size bytes in dir, for an LU.
func Backing(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// Exec runs a tool with the context's deadline and returns its combined
// output; the output is logged (shortened) for failure reports.
func Exec(ctx context.Context, t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	s := string(out)
	shown := s
	if len(shown) > 3000 {
		shown = shown[:3000] + "\n... (truncated)"
	}
	t.Logf("$ %s %s\n%s", name, strings.Join(args, " "), shown)
	if err != nil {
		return s, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// MustExec is Exec for a tool that must succeed.
func MustExec(ctx context.Context, t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := Exec(ctx, t, name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}
