package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/costar-project/costar/api"
)

const cliTimeout = 60 * time.Second

// Run executes one CLI (stmfadm, sbdadm or itadm) against the daemon with
// stdin as its input; the command and its output are logged.
func (d *Daemon) Run(stdin, tool string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	path := map[string]string{"stmfadm": d.bins.Stmfadm, "sbdadm": d.bins.Sbdadm, "itadm": d.bins.Itadm}[tool]
	if path == "" {
		d.t.Fatalf("unknown CLI %q", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "STMFD_SOCKET="+d.Socket)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		d.t.Fatalf("%s %v: %v", tool, args, err)
	}
	d.t.Logf("$ %s %s  (exit %d)\n%s%s", tool, strings.Join(args, " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}

// OK runs a command that must succeed and returns its standard output.
func (d *Daemon) OK(tool string, args ...string) string {
	d.t.Helper()
	out, errs, code := d.Run("", tool, args...)
	if code != 0 {
		d.t.Fatalf("%s %s: exit %d\n%s", tool, strings.Join(args, " "), code, errs)
	}
	return out
}

// CreateLU runs stmfadm create-lu and returns the GUID it printed.
func (d *Daemon) CreateLU(args ...string) string {
	d.t.Helper()
	out := d.OK("stmfadm", append([]string{"create-lu"}, args...)...)
	g, ok := strings.CutPrefix(strings.TrimSpace(out), "Logical unit created: ")
	if !ok || !api.IsGUID(g) {
		d.t.Fatalf("create-lu printed %q", out)
	}
	return g
}

// Interrupt runs a CLI and sends it SIGINT (as Ctrl-C does) at the first
// line of its stderr that when accepts; it returns what the CLI printed
// and its exit code. A CLI that ends before that line fails the test.
func (d *Daemon) Interrupt(when func(line string) bool, tool string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	path := map[string]string{"stmfadm": d.bins.Stmfadm, "sbdadm": d.bins.Sbdadm, "itadm": d.bins.Itadm}[tool]
	if path == "" {
		d.t.Fatalf("unknown CLI %q", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "STMFD_SOCKET="+d.Socket)
	var out bytes.Buffer
	cmd.Stdout = &out
	pipe, err := cmd.StderrPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("%s %v: %v", tool, args, err)
	}
	var errb strings.Builder
	sent := false
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		errb.WriteString(line + "\n")
		if !sent && when(line) {
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				d.t.Fatalf("interrupting %s: %v", tool, err)
			}
			sent = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		d.t.Fatalf("%s %v: %v", tool, args, err)
	}
	d.t.Logf("$ %s %s  (interrupted: %v, exit %d)\n%s%s", tool, strings.Join(args, " "), sent, code, out.String(), errb.String())
	if !sent {
		d.t.Fatalf("%s %s ended before the line to interrupt it at", tool, strings.Join(args, " "))
	}
	return out.String(), errb.String(), code
}
