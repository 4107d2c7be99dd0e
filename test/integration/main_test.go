package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	demoIQN       = "iqn.2026-11.org.costar:demo"
	testInitiator = "iqn.2026-11.org.costar:integration"
	gib           = int64(1) << 30
	mib           = int64(1) << 20

	readyTimeout    = 30 * time.Second // daemon start until iscsi-inq succeeds
	shutdownTimeout = 30 * time.Second // SIGTERM until exit
	testTimeout     = 3 * time.Minute  // whole test
)

// daemonBuild builds ./cmd/stmfd once per test binary. It is written only
// inside once.Do and by TestMain (dir), and read-only afterwards.
type daemonBuild struct {
	dir  string
	once sync.Once
	path string
	err  error
}

var stmfd daemonBuild

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "costar-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	stmfd.dir = dir
	return m.Run()
}

// goTool finds the go command: PATH first, then the standard install.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := "/usr/local/go/bin/go"
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("go command not found in PATH or %s: %w", p, err)
	}
	return p, nil
}

// daemonBinary returns the stmfd binary under test, building it on first use.
func daemonBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COSTAR_STMFD_BIN"); p != "" {
		return p
	}
	stmfd.once.Do(func() {
		gocmd, err := goTool()
		if err != nil {
			stmfd.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, gocmd, "env", "GOMOD").Output()
		if err != nil {
			stmfd.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		args := []string{"build"}
		if raceEnabled {
			args = append(args, "-race")
		}
		bin := filepath.Join(stmfd.dir, "stmfd")
		args = append(args, "-o", bin, "./cmd/stmfd")
		cmd := exec.CommandContext(ctx, gocmd, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			stmfd.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		stmfd.path = bin
	})
	if stmfd.err != nil {
		t.Fatalf("building stmfd: %v", stmfd.err)
	}
	return stmfd.path
}

// requireTools skips the test when a tool is missing, or fails it when
// COSTAR_REQUIRE_TOOLS=1.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, name := range tools {
		if _, err := exec.LookPath(name); err != nil {
			missing(t, fmt.Sprintf("%s not found in PATH", name))
		}
	}
}

func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("COSTAR_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (COSTAR_REQUIRE_TOOLS=1); run scripts/install-test-deps.sh", what)
	}
	t.Skipf("%s; run scripts/install-test-deps.sh (COSTAR_REQUIRE_TOOLS=1 makes this a failure)", what)
}

// requireQemuISCSI checks that qemu-img/qemu-io can open iscsi:// URLs
// (Debian ships the driver in qemu-block-extra).
func requireQemuISCSI(t *testing.T) {
	t.Helper()
	requireTools(t, "qemu-img", "qemu-io")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-img", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " iscsi") {
		missing(t, "qemu-img has no iscsi block driver (package qemu-block-extra)")
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// run executes a tool with the context's deadline and returns its combined
// output; the output is logged (shortened) for failure reports.
func run(ctx context.Context, t *testing.T, name string, args ...string) (string, error) {
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

func mustRun(ctx context.Context, t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(ctx, t, name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// daemon is one running stmfd process.
type daemon struct {
	t        *testing.T
	stateDir string
	port     int
	url      string // iscsi://127.0.0.1:PORT/demo-iqn/0
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid after done
}

// startDaemon starts stmfd --demo on a free loopback port with stateDir and
// waits until iscsi-inq succeeds on the demo LUN. It is stopped (SIGTERM,
// then SIGKILL) at the end of the test if still running.
func startDaemon(ctx context.Context, t *testing.T, stateDir string, extra ...string) *daemon {
	t.Helper()
	requireTools(t, "iscsi-inq")
	bin := daemonBinary(t)
	logDir := t.TempDir()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		d := &daemon{
			t:        t,
			stateDir: stateDir,
			port:     port,
			url:      fmt.Sprintf("iscsi://127.0.0.1:%d/%s/0", port, demoIQN),
			logPath:  filepath.Join(logDir, fmt.Sprintf("stmfd-%d.log", attempt)),
			done:     make(chan struct{}),
		}
		if err := d.start(bin, extra); err != nil {
			t.Fatalf("start stmfd: %v", err)
		}
		t.Cleanup(d.cleanup)
		if lastErr = d.waitReady(ctx); lastErr == nil {
			return d
		}
		d.kill()
		if !strings.Contains(d.log(), "address already in use") {
			break
		}
	}
	t.Fatalf("stmfd did not become ready: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("listener address is not TCP")
	}
	return addr.Port, nil
}

func (d *daemon) start(bin string, extra []string) error {
	logf, err := os.Create(d.logPath)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	args := []string{
		"--state-dir", d.stateDir,
		"--portal", fmt.Sprintf("127.0.0.1:%d", d.port),
		"--demo", "--log-level", "debug",
	}
	args = append(args, extra...)
	d.cmd = exec.Command(bin, args...) // not CommandContext: the tests choose the signal
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	d.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0")
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", bin, err)
	}
	d.t.Logf("started stmfd pid %d: %s %s", d.cmd.Process.Pid, bin, strings.Join(args, " "))
	go func() {
		d.waitErr = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	return nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *daemon) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		if d.exited() {
			return fmt.Errorf("stmfd exited during start-up (%v); log:\n%s", d.waitErr, d.logTail(40))
		}
		ictx, icancel := context.WithTimeout(ctx, 5*time.Second)
		err := exec.CommandContext(ictx, "iscsi-inq", "-i", testInitiator, d.url).Run()
		icancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no successful iscsi-inq on %s within %v (last: %v); log:\n%s",
				d.url, readyTimeout, err, d.logTail(40))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for the exit; it returns the exit code and how
// long the shutdown took, and fails the test if the process outlives
// shutdownTimeout.
func (d *daemon) stop() (int, time.Duration) {
	d.t.Helper()
	start := time.Now()
	if !d.exited() {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			d.t.Logf("SIGTERM: %v", err)
		}
	}
	select {
	case <-d.done:
	case <-time.After(shutdownTimeout):
		d.kill()
		d.t.Fatalf("stmfd did not exit within %v of SIGTERM; log:\n%s", shutdownTimeout, d.logTail(40))
	}
	return d.cmd.ProcessState.ExitCode(), time.Since(start)
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	if !d.exited() {
		_ = d.cmd.Process.Kill()
	}
	<-d.done
}

func (d *daemon) cleanup() {
	if !d.exited() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(shutdownTimeout):
			d.t.Errorf("stmfd pid %d ignored SIGTERM for %v; killed", d.cmd.Process.Pid, shutdownTimeout)
			d.kill()
		}
	}
	logText := d.log()
	if strings.Contains(logText, "WARNING: DATA RACE") {
		d.t.Errorf("stmfd reported a data race; log:\n%s", logText)
	} else if strings.Contains(logText, "panic: ") || strings.Contains(logText, "fatal error: ") {
		d.t.Errorf("stmfd panicked; log:\n%s", d.logTail(80))
	} else if d.t.Failed() {
		d.t.Logf("stmfd log (%s), last lines:\n%s", d.logPath, d.logTail(60))
	}
}

func (d *daemon) log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", d.logPath, err)
	}
	return string(b)
}

func (d *daemon) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(d.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (d *daemon) portal() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

// keyValues parses "Key:value" lines (libiscsi tools' output format).
func keyValues(out string) map[string]string {
	m := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			if _, dup := m[k]; !dup {
				m[k] = strings.TrimSpace(v)
			}
		}
	}
	return m
}

func atoi64(t *testing.T, what, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number: %v", what, s, err)
	}
	return n
}

// naaFromInqOutput returns the bytes iscsi-inq printed for the first NAA
// designator of VPD page 0x83. iscsi-inq prints the binary designator with
// %s, so the bytes stop at the first zero byte.
func naaFromInqOutput(out []byte) ([]byte, bool) {
	marker := []byte("Designator Type:(3) NAA\nDesignator:[")
	i := bytes.Index(out, marker)
	if i < 0 {
		return nil, false
	}
	rest := out[i+len(marker):]
	j := bytes.Index(rest, []byte("]\n"))
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}
