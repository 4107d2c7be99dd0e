package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Child is a server a test runs in the foreground as its own child (a
// RADIUS or iSNS server), with its output in a file. It is stopped by its
// PID, at the latest when the test ends.
type Child struct {
	Name    string
	LogPath string

	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
}

// LookTool finds a tool in PATH or in the sbin directories a non-root
// PATH may lack; it calls Missing when the tool is not installed.
func LookTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	Missing(t, name+" not found")
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// StartChild starts path with args; its output goes to dir/<name>.log.
func StartChild(t *testing.T, dir, path string, args ...string) *Child {
	t.Helper()
	c := &Child{Name: filepath.Base(path), t: t, done: make(chan struct{})}
	c.LogPath = filepath.Join(dir, c.Name+".log")
	f, err := os.Create(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(path, args...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	if err := c.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", path, err)
	}
	t.Logf("started %s pid %d: %s", c.Name, c.cmd.Process.Pid, strings.Join(args, " "))
	go func() { _ = c.cmd.Wait(); f.Close(); close(c.done) }()
	t.Cleanup(c.Stop)
	return c
}

// Log is the child's output so far.
func (c *Child) Log() string {
	b, _ := os.ReadFile(c.LogPath)
	return string(b)
}

// WaitLog waits until the child's output contains s; it fails the test
// when the child exits or d passes first.
func (c *Child) WaitLog(s string, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(c.Log(), s) {
		select {
		case <-c.done:
			c.t.Fatalf("%s exited before %q:\n%s", c.Name, s, c.tail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no %q within %v:\n%s", c.Name, s, d, c.tail())
		}
	}
}

func (c *Child) tail() string {
	l := c.Log()
	if len(l) > 4000 {
		l = "...\n" + l[len(l)-4000:]
	}
	return l
}

// Stop ends the child by its PID (SIGTERM, then SIGKILL after 5 s) and
// waits for it. Stopping twice is harmless.
func (c *Child) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.t.Logf("stopped %s pid %d", c.Name, c.cmd.Process.Pid)
}

// Exited reports whether the child has exited.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// FreeUDPPortOn returns a UDP port free on ip at the time of the call.
func FreeUDPPortOn(t *testing.T, ip string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		Missing(t, fmt.Sprintf("cannot listen on udp %s: %v", ip, err))
	}
	defer pc.Close()
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	return port
}
