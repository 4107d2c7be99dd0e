package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries are the programs under test.
type Binaries struct {
	Stmfd, Stmfadm, Sbdadm, Itadm string
}

// Suite is what the tests of one package share: the binaries, built on
// first use into a directory that lives as long as the test binary.
type Suite struct {
	name string
	dir  string
	once sync.Once
	bins Binaries
	err  error
}

// NewSuite returns the suite of the test package name; its Main runs the
// tests.
func NewSuite(name string) *Suite { return &Suite{name: name} }

// Main runs the package's tests (call it from TestMain) and returns the
// exit code.
func (s *Suite) Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "costar-"+s.name+"-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: temp dir: %v\n", s.name, err)
		return 1
	}
	defer os.RemoveAll(dir)
	s.dir = dir
	return m.Run()
}

// Binaries returns the programs under test, building them on first use.
// It skips the test with -short.
func (s *Suite) Binaries(t *testing.T) Binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: builds and starts stmfd")
	}
	gocmd, err := goTool()
	if err != nil {
		Missing(t, err.Error())
	}
	s.once.Do(func() { s.bins, s.err = build(gocmd, s.dir) })
	if s.err != nil {
		t.Fatalf("building the binaries: %v", s.err)
	}
	return s.bins
}

// goTool finds the go command: PATH first, then the standard install.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := "/usr/local/go/bin/go"
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the go tool is not in PATH or %s: %w", p, err)
	}
	return p, nil
}

// build compiles the daemon and the CLIs of this module into dir; sbdadm
// is a symlink to stmfadm (it acts on its name).
func build(gocmd, dir string) (Binaries, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gocmd, "env", "GOMOD").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("go env GOMOD: %w", err)
	}
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", dir+string(os.PathSeparator), "./cmd/stmfd", "./cmd/stmfadm", "./cmd/itadm")
	cmd := exec.CommandContext(ctx, gocmd, args...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	b := Binaries{
		Stmfd:   filepath.Join(dir, "stmfd"),
		Stmfadm: filepath.Join(dir, "stmfadm"),
		Sbdadm:  filepath.Join(dir, "sbdadm"),
		Itadm:   filepath.Join(dir, "itadm"),
	}
	if p := os.Getenv("COSTAR_STMFD_BIN"); p != "" {
		b.Stmfd = p
	}
	if err := os.Symlink("stmfadm", b.Sbdadm); err != nil {
		return Binaries{}, fmt.Errorf("sbdadm link: %w", err)
	}
	return b, nil
}
