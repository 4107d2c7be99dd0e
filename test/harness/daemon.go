package harness

import (
	"bytes"
	"context"
	"encoding/json"
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

const (
	readyTimeout    = 30 * time.Second // start until the daemon answers
	shutdownTimeout = 30 * time.Second // SIGTERM until exit
)

// Options change how Start runs stmfd.
type Options struct {
	// Args are extra stmfd flags (--demo, --demo-size 64M, ...).
	Args []string
	// Ready, when set, must also succeed before Start returns (e.g. an
	// iSCSI command to the demo LU); it is retried until the ready timeout.
	Ready func(ctx context.Context, d *Daemon) error
	// ConfigFile, when set, is passed with --config and stmfd takes its
	// portals and log level from it (the harness's --portal 127.0.0.1:0
	// --log-level debug would override the file).
	ConfigFile string
	// Env is added to stmfd's environment (NOTIFY_SOCKET=...).
	Env []string
	// Cluster, when set, starts stmfd as a cluster node (cluster.go).
	Cluster *ClusterNode
}

// Daemon is one running stmfd.
type Daemon struct {
	StateDir string
	Socket   string
	Portal   string // actual "127.0.0.1:port" of the default portal group
	LogPath  string

	t       *testing.T
	bins    Binaries
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done
}

// Start starts stmfd with stateDir on a random loopback port and waits
// until its management API answers (and opt.Ready succeeds). At the end of
// the test it is stopped, and a data race or panic in its log fails the test.
func (s *Suite) Start(ctx context.Context, t *testing.T, stateDir string, opt Options) *Daemon {
	t.Helper()
	bins := s.Binaries(t)
	d := &Daemon{t: t, bins: bins, StateDir: stateDir, Socket: filepath.Join(stateDir, "stmfd.sock"), done: make(chan struct{})}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	logf, err := os.CreateTemp(t.TempDir(), "stmfd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	d.LogPath = logf.Name()
	args := []string{"--state-dir", stateDir, "--socket", d.Socket}
	if opt.ConfigFile != "" {
		args = append(args, "--config", opt.ConfigFile)
	} else {
		args = append(args, "--portal", "127.0.0.1:0", "--log-level", "debug")
	}
	args = append(args, opt.Args...)
	args = append(args, opt.Cluster.args()...)
	d.cmd = exec.Command(bins.Stmfd, args...) // not CommandContext: the tests choose the signal
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=0"), opt.Env...)
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start stmfd: %v", err)
	}
	t.Logf("started stmfd pid %d: %s %s", d.cmd.Process.Pid, bins.Stmfd, strings.Join(args, " "))
	go func() { d.waitErr = d.cmd.Wait(); logf.Close(); close(d.done) }()
	t.Cleanup(d.cleanup)
	if err := d.waitReady(ctx, opt.Ready); err != nil {
		t.Fatalf("stmfd did not become ready: %v", err)
	}
	return d
}

// waitReady polls list-state until it names the portal, then ready.
func (d *Daemon) waitReady(ctx context.Context, ready func(context.Context, *Daemon) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		if d.Exited() {
			return fmt.Errorf("stmfd exited during start-up (%v); log:\n%s", d.waitErr, d.LogTail(40))
		}
		if d.Portal == "" {
			last = d.readPortal(ctx)
		}
		if d.Portal != "" {
			if ready == nil {
				return nil
			}
			if last = ready(ctx, d); last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v (last: %v); log:\n%s", readyTimeout, last, d.LogTail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readPortal asks the daemon for its default portal (list-state -o json).
func (d *Daemon) readPortal(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, d.bins.Stmfadm, "list-state", "-o", "json")
	cmd.Env = append(os.Environ(), "STMFD_SOCKET="+d.Socket)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("stmfadm list-state: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	var st api.State
	if err := json.Unmarshal(out, &st); err != nil || len(st.Portals) == 0 {
		d.t.Fatalf("list-state -o json: %q %v", out, err)
	}
	d.Portal = st.Portals[0]
	return nil
}

// URL is the iscsi:// URL of target's LUN lun at the default portal.
func (d *Daemon) URL(target string, lun int) string {
	return fmt.Sprintf("iscsi://%s/%s/%d", d.Portal, target, lun)
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits for the exit; it returns the exit code and
// how long the shutdown took. A daemon that outlives shutdownTimeout is
// killed and fails the test.
func (d *Daemon) Stop() (code int, took time.Duration) {
	d.t.Helper()
	start := time.Now()
	if !d.Exited() {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			d.t.Logf("SIGTERM: %v", err)
		}
	}
	select {
	case <-d.done:
	case <-time.After(shutdownTimeout):
		d.Kill()
		d.t.Errorf("stmfd pid %d ignored SIGTERM for %v; killed; log:\n%s", d.PID(), shutdownTimeout, d.LogTail(40))
	}
	return d.cmd.ProcessState.ExitCode(), time.Since(start)
}

// Kill kills the daemon without warning (a crash or power loss, as far as
// the daemon can tell) and waits until it is gone.
func (d *Daemon) Kill() {
	if !d.Exited() {
		_ = d.cmd.Process.Kill()
	}
	<-d.done
}

func (d *Daemon) cleanup() {
	d.Stop()
	log := d.Log()
	switch logProblem(log) {
	case problemRace:
		d.t.Errorf("stmfd reported a data race; log:\n%s", log)
	case problemPanic:
		d.t.Errorf("stmfd panicked; log:\n%s", d.LogTail(80))
	default:
		if d.t.Failed() {
			d.t.Logf("stmfd log (%s), last lines:\n%s", d.LogPath, d.LogTail(60))
		}
	}
}

// What a daemon's log can reveal that fails the test on its own.
const (
	problemNone = iota
	problemRace
	problemPanic
)

// logProblem finds a data race report (-race builds) or a panic or fatal
// runtime error in a daemon's log.
func logProblem(log string) int {
	switch {
	case strings.Contains(log, "WARNING: DATA RACE"):
		return problemRace
	case strings.Contains(log, "panic: ") || strings.Contains(log, "fatal error: "):
		return problemPanic
	}
	return problemNone
}

// Log is everything the daemon wrote so far.
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", d.LogPath, err)
	}
	return string(b)
}

// LogTail is the last n lines of the log.
func (d *Daemon) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(d.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
