package esx

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
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

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/initiator"
)

const (
	mib = int64(1) << 20

	tgtDefault = "iqn.2026-11.org.costar.esx:default"
	tgtGrouped = "iqn.2026-11.org.costar.esx:grouped"
	hostA      = "iqn.1998-01.com.vmware:esx-a"
	hostB      = "iqn.1998-01.com.vmware:esx-b"

	readyTimeout    = 30 * time.Second
	shutdownTimeout = 30 * time.Second
	cliTimeout      = 60 * time.Second
)

// bins are the binaries under test, built on first use (read-only
// afterwards).
var bins struct {
	dir                   string
	once                  sync.Once
	stmfd, stmfadm, itadm string
	err                   error
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "costar-esx-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// missing skips the test, or fails it with COSTAR_REQUIRE_TOOLS=1.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("COSTAR_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (COSTAR_REQUIRE_TOOLS=1); run scripts/install-test-deps.sh", what)
	}
	t.Skipf("%s; run scripts/install-test-deps.sh (COSTAR_REQUIRE_TOOLS=1 makes this a failure)", what)
}

// needBinaries builds stmfd, stmfadm and itadm once (with -race when the
// tests run with it, so a data race in the daemon shows in its log).
func needBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: builds and starts stmfd")
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		gocmd = "/usr/local/go/bin/go"
		if _, err := os.Stat(gocmd); err != nil {
			missing(t, "the go tool is not in PATH or /usr/local/go/bin")
		}
	}
	bins.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, gocmd, "env", "GOMOD").Output()
		if err != nil {
			bins.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		args := []string{"build"}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "-o", bins.dir+string(os.PathSeparator), "./cmd/stmfd", "./cmd/stmfadm", "./cmd/itadm")
		cmd := exec.CommandContext(ctx, gocmd, args...)
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		bins.stmfd = filepath.Join(bins.dir, "stmfd")
		bins.stmfadm = filepath.Join(bins.dir, "stmfadm")
		bins.itadm = filepath.Join(bins.dir, "itadm")
	})
	if bins.err != nil {
		t.Fatalf("building the binaries: %v", bins.err)
	}
}

// testContext bounds a whole test.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// tempDir is a short temporary directory (unix socket paths are limited
// to 108 bytes).
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "esx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// freePortOn returns a TCP port free on ip at the time of the call.
func freePortOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		missing(t, fmt.Sprintf("cannot listen on %s (loopback address missing?): %v", ip, err))
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// backing creates a sparse file of size bytes.
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
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// daemon is one running stmfd.
type daemon struct {
	t        *testing.T
	stateDir string
	socket   string
	portal   string // actual "127.0.0.1:port" of the default portal group
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{}
}

// startDaemon starts stmfd on a random loopback port and waits until its
// management API answers. It is stopped at the end of the test.
func startDaemon(ctx context.Context, t *testing.T, stateDir string) *daemon {
	t.Helper()
	needBinaries(t)
	d := &daemon{t: t, stateDir: stateDir, socket: filepath.Join(stateDir, "stmfd.sock"), done: make(chan struct{})}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	logf, err := os.CreateTemp(t.TempDir(), "stmfd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	d.logPath = logf.Name()
	d.cmd = exec.Command(bins.stmfd, "--state-dir", stateDir, "--portal", "127.0.0.1:0", "--socket", d.socket, "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0")
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); logf.Close(); close(d.done) }()
	t.Cleanup(d.cleanup)
	deadline := time.Now().Add(readyTimeout)
	for {
		out, _, code := d.run("stmfadm", "list-state", "-o", "json")
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
			t.Fatalf("stmfd exited during start-up:\n%s", d.logTail(40))
		case <-ctx.Done():
			t.Fatalf("test deadline while waiting for stmfd:\n%s", d.logTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stmfd did not answer within %v:\n%s", readyTimeout, d.logTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop ends the daemon with SIGTERM (SIGKILL after shutdownTimeout).
func (d *daemon) stop() {
	if d.exited() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(shutdownTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("stmfd pid %d ignored SIGTERM for %v; killed", d.cmd.Process.Pid, shutdownTimeout)
	}
}

// kill9 kills the daemon without warning (a crash or power loss, as far
// as the daemon can tell).
func (d *daemon) kill9() {
	if !d.exited() {
		_ = d.cmd.Process.Kill()
	}
	<-d.done
}

func (d *daemon) cleanup() {
	d.stop()
	log := d.log()
	switch {
	case strings.Contains(log, "WARNING: DATA RACE"):
		d.t.Errorf("stmfd reported a data race; log:\n%s", log)
	case strings.Contains(log, "panic: ") || strings.Contains(log, "fatal error: "):
		d.t.Errorf("stmfd panicked; log:\n%s", d.logTail(80))
	case d.t.Failed():
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

// run executes stmfadm or itadm against the daemon (bounded by cliTimeout).
func (d *daemon) run(tool string, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	path := map[string]string{"stmfadm": bins.stmfadm, "itadm": bins.itadm}[tool]
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "STMFD_SOCKET="+d.socket)
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

// ok runs a command that must succeed and returns its standard output.
func (d *daemon) ok(tool string, args ...string) string {
	d.t.Helper()
	out, errs, code := d.run(tool, args...)
	if code != 0 {
		d.t.Fatalf("%s %s: exit %d\n%s", tool, strings.Join(args, " "), code, errs)
	}
	return out
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

// guidBytes decodes a GUID as it appears in an NAA designator.
func guidBytes(t *testing.T, g string) []byte {
	t.Helper()
	b, err := hex.DecodeString(g)
	if err != nil || len(b) != 16 {
		t.Fatalf("GUID %q: %v", g, err)
	}
	return b
}

// login opens a session from initiatorName (ISID isid) to target at portal;
// it is closed at the end of the test.
func login(ctx context.Context, t *testing.T, portal, target, initiatorName string, isid byte) *initiator.Session {
	t.Helper()
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s, err := initiator.Dial(lctx, initiator.Config{Portal: portal, Target: target, Initiator: initiatorName,
		ISID: [6]byte{0x80, 0x00, 0x45, 0x53, 0x58, isid}})
	if err != nil {
		t.Fatalf("login to %s at %s as %s: %v", target, portal, initiatorName, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// do runs one command that must reach a SCSI status (any) within the
// context and returns the response.
func do(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, cdb, dataOut []byte, readLen uint32) initiator.Response {
	t.Helper()
	r, err := s.Do(ctx, lun, cdb, dataOut, readLen)
	if err != nil {
		t.Fatalf("CDB % x: %v", cdb, err)
	}
	return r
}

// good runs a command that must answer GOOD.
func good(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64, cdb, dataOut []byte, readLen uint32) initiator.Response {
	t.Helper()
	r := do(ctx, t, s, lun, cdb, dataOut, readLen)
	if r.Status != initiator.StatusGood {
		t.Fatalf("CDB % x: %v, want GOOD", cdb, r)
	}
	return r
}

// ready clears the unit attentions a new session starts with.
func ready(ctx context.Context, t *testing.T, s *initiator.Session, lun uint64) {
	t.Helper()
	r, err := s.ClearUnitAttentions(ctx, lun)
	if err != nil || r.Status != initiator.StatusGood {
		t.Fatalf("TEST UNIT READY on LUN %d: %v %v", lun, r, err)
	}
}
