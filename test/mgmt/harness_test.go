// Package mgmt holds the management-plane integration tests: they build
// the real stmfd, stmfadm (also as sbdadm) and itadm, start stmfd on a
// random loopback port with a temporary state directory and socket, and
// drive the binaries as an administrator or a script (Proxmox VE's
// "Comstar" driver) would.
package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
)

// bins are the binaries under test, built once by TestMain (read-only
// afterwards).
var bins struct {
	dir                          string
	stmfd, stmfadm, sbdadm, itad string
	err                          error
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "costar-mgmt-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	if !testing.Short() {
		bins.err = build(dir)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles the daemon and CLIs into dir; sbdadm is a symlink to stmfadm.
func build(dir string) error {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		gocmd = "/usr/local/go/bin/go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gocmd, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.CommandContext(ctx, gocmd, "build", "-o", dir+string(os.PathSeparator), "./cmd/stmfd", "./cmd/stmfadm", "./cmd/itadm")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	bins.stmfd = filepath.Join(dir, "stmfd")
	bins.stmfadm = filepath.Join(dir, "stmfadm")
	bins.itad = filepath.Join(dir, "itadm")
	bins.sbdadm = filepath.Join(dir, "sbdadm")
	return os.Symlink("stmfadm", bins.sbdadm)
}

func needBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: builds and starts stmfd")
	}
	if bins.err != nil {
		t.Fatalf("building the binaries: %v", bins.err)
	}
}

// requireTools skips (or with COSTAR_REQUIRE_TOOLS=1 fails) when a tool is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, name := range tools {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("COSTAR_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s not found (COSTAR_REQUIRE_TOOLS=1); run scripts/install-test-deps.sh", name)
			}
			t.Skipf("%s not found; run scripts/install-test-deps.sh (COSTAR_REQUIRE_TOOLS=1 makes this a failure)", name)
		}
	}
}

// daemon is one running stmfd.
type daemon struct {
	t        *testing.T
	stateDir string
	socket   string
	portal   string // actual "127.0.0.1:port"
	cmd      *exec.Cmd
	done     chan struct{}
	log      *bytes.Buffer
}

// tempDir is a short temporary directory (unix socket paths are limited
// to 108 bytes).
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startDaemon starts stmfd on a random loopback port and waits until its
// management API answers.
func startDaemon(t *testing.T, stateDir string) *daemon {
	t.Helper()
	needBinaries(t)
	d := &daemon{t: t, stateDir: stateDir, socket: filepath.Join(stateDir, "stmfd.sock"), done: make(chan struct{}), log: &bytes.Buffer{}}
	d.cmd = exec.Command(bins.stmfd, "--state-dir", stateDir, "--portal", "127.0.0.1:0", "--socket", d.socket, "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, code := d.run("", "stmfadm", "list-state", "-o", "json")
		if code == 0 {
			var st api.State
			if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Portals) == 0 {
				t.Fatalf("list-state -o json: %q %v", out, err)
			}
			d.portal = st.Portals[0]
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("stmfd exited during start-up:\n%s", d.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stmfd did not answer within 30s:\n%s", d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the daemon cleanly (SIGTERM), or kills it after 30s.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("stmfd did not stop on SIGTERM within 30s")
	}
}

// kill9 kills the daemon without warning.
func (d *daemon) kill9() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// run executes one CLI (stmfadm, sbdadm or itadm) against the daemon.
func (d *daemon) run(stdin, tool string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	path := map[string]string{"stmfadm": bins.stmfadm, "sbdadm": bins.sbdadm, "itadm": bins.itad}[tool]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "STMFD_SOCKET="+d.socket)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("%s %v: %v", tool, args, err)
	}
	d.t.Logf("$ %s %s  (exit %d)\n%s%s", tool, strings.Join(args, " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed and returns its standard output.
func (d *daemon) ok(tool string, args ...string) string {
	d.t.Helper()
	out, errs, code := d.run("", tool, args...)
	if code != 0 {
		d.t.Fatalf("%s %s: exit %d\n%s", tool, strings.Join(args, " "), code, errs)
	}
	return out
}

// snapshot is every list command's JSON output (and sbdadm's table): the
// whole visible configuration.
func (d *daemon) snapshot() map[string]string {
	d.t.Helper()
	s := map[string]string{}
	for _, c := range [][]string{
		{"stmfadm", "list-lu", "-o", "json"},
		{"stmfadm", "list-hg", "-o", "json"},
		{"stmfadm", "list-tg", "-o", "json"},
		{"stmfadm", "list-target", "-o", "json"},
		{"sbdadm", "list-lu"},
		{"itadm", "list-target", "-o", "json"},
		{"itadm", "list-tpg", "-o", "json"},
		{"itadm", "list-initiator", "-o", "json"},
		{"itadm", "list-defaults", "-o", "json"},
	} {
		s[strings.Join(c, " ")] = d.ok(c[0], c[1:]...)
	}
	var lus []api.LU
	if err := json.Unmarshal([]byte(s["stmfadm list-lu -o json"]), &lus); err != nil {
		d.t.Fatal(err)
	}
	for _, lu := range lus {
		out, errs, code := d.run("", "stmfadm", "list-view", "-o", "json", "-l", lu.GUID)
		s["list-view "+lu.GUID] = fmt.Sprint(code, out, errs)
	}
	return s
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %q changed:\nbefore:\n%s\nafter:\n%s", what, k, v, after[k])
		}
	}
	if len(after) != len(before) {
		t.Errorf("%s: %d outputs before, %d after", what, len(before), len(after))
	}
}

// backing creates a sparse file of size bytes for an LU.
func backing(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// createLU runs stmfadm create-lu and returns the GUID it printed.
func (d *daemon) createLU(args ...string) string {
	d.t.Helper()
	out := d.ok("stmfadm", append([]string{"create-lu"}, args...)...)
	g, ok := strings.CutPrefix(strings.TrimSpace(out), "Logical unit created: ")
	if !ok || !api.IsGUID(g) {
		d.t.Fatalf("create-lu printed %q", out)
	}
	return g
}
