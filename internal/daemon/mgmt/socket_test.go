package mgmt

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// syncBuf is a log sink tests can read while the server writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func shutdown(t *testing.T, s *Server) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
}

// TestListenStalePath: a stale socket is replaced; any other file at the
// socket path is refused and left as it was.
func TestListenStalePath(t *testing.T) {
	h := http.NewServeMux()
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T, path string)
		wantErr string
	}{
		{"stale socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, ""},
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a socket"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a socket"},
		{"symlink", func(t *testing.T, path string) {
			if err := os.Symlink("/etc/hostname", path); err != nil {
				t.Fatal(err)
			}
		}, "not a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stmfd.sock")
			tc.make(t, path)
			before, _ := os.Lstat(path)
			s, err := Listen(path, h, quietLog())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				shutdown(t, s)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			after, err := os.Lstat(path)
			if err != nil || after.Mode() != before.Mode() || after.Size() != before.Size() {
				t.Fatalf("%s changed: %v %v", path, after, err)
			}
		})
	}
}

// TestListenTightensDir: a socket directory open to others is closed to
// them, with a log line; /tmp-like sticky directories are left alone.
func TestListenTightensDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var log syncBuf
	s, err := Listen(filepath.Join(dir, "stmfd.sock"), http.NewServeMux(), slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, s)
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	if !strings.Contains(log.String(), "tightened") {
		t.Fatalf("no log line: %q", log.String())
	}
	sticky := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := TightenDir(sticky, quietLog()); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(sticky); fi.Mode().Perm() != 0o777 {
		t.Fatalf("sticky directory changed to %v", fi.Mode().Perm())
	}
}

// TestPeerCheckRefuses: a peer the check does not allow is disconnected
// before any request is read, and the refusal is logged.
func TestPeerCheckRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuf
	var asked atomic.Int64
	asked.Store(-1)
	l := &peerCheckListener{Listener: ul, log: slog.New(slog.NewTextHandler(&log, nil)),
		allow: func(uid int) bool { asked.Store(int64(uid)); return false }}
	defer l.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "served") })
	go func() { _ = http.Serve(l, mux) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	// Closed unanswered: EOF, or a reset when the request was unread.
	if ne, ok := err.(net.Error); len(b) != 0 || ok && ne.Timeout() {
		t.Fatalf("refused peer got %q (%v)", b, err)
	}
	if asked.Load() != int64(os.Getuid()) || !strings.Contains(log.String(), "refused") {
		t.Fatalf("peer uid %d asked, log %q", asked.Load(), log.String())
	}
}

// TestPeerUIDOtherUser: run as root, a child process running as nobody
// reaches the socket (its permissions loosened for the test) and is
// refused by the peer-uid check, while root is served.
func TestPeerUIDOtherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	if os.Getenv("MGMT_PEER_SOCK") != "" {
		t.Skip("helper process")
	}
	dir, err := os.MkdirTemp("", "peeruid")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "mgmt.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "stmfd.sock")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "served") })
	s, err := Listen(sock, mux, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, s)
	// Only the peer check stands between nobody and the API now.
	for _, p := range []string{dir, filepath.Dir(sock)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	run := func(uid uint32) string {
		cmd := exec.Command(bin, "-test.run=^TestPeerUIDHelper$")
		cmd.Env = append(os.Environ(), "MGMT_PEER_SOCK="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as uid %d: %v\n%s", uid, err, out)
		}
		return string(out)
	}
	if out := run(0); !strings.Contains(out, "answer: served") {
		t.Fatalf("root not served: %s", out)
	}
	if out := run(65534); !strings.Contains(out, "answer: none") {
		t.Fatalf("nobody: %s", out)
	}
}

// TestPeerUIDHelper is the child of TestPeerUIDOtherUser.
func TestPeerUIDHelper(t *testing.T) {
	sock := os.Getenv("MGMT_PEER_SOCK")
	if sock == "" {
		t.Skip("helper process only")
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		os.Stdout.WriteString("answer: " + string(b[i+4:]) + "\n")
	} else {
		os.Stdout.WriteString("answer: none\n")
	}
}
