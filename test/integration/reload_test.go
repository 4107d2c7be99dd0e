package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/initiator"
	"github.com/costar-project/costar/test/harness"
)

// notifySocket listens where stmfd sends its sd_notify messages, as
// systemd's $NOTIFY_SOCKET.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(dir, "notify.sock"), msgs: make(chan string, 1000)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			select {
			case n.msgs <- string(buf[:k]):
			default: // a full channel: the test stopped reading
			}
		}
	}()
	return n
}

// next returns the next message that is not a watchdog ping, counting the
// pings it skips.
func (n *notifySocket) next(t *testing.T, pings *int) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			if m == "WATCHDOG=1" {
				*pings++
				continue
			}
			return m
		case <-timeout:
			t.Fatal("no sd_notify message within 20 s")
		}
	}
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func listState(t *testing.T, d *harness.Daemon) []string {
	t.Helper()
	var st api.State
	if err := json.Unmarshal([]byte(d.OK("stmfadm", "list-state", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	slices.Sort(st.Portals)
	return st.Portals
}

func read10(ctx context.Context, s *initiator.Session) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := s.Do(cctx, 0, initiator.Read16(0, 8), nil, 8*512)
	if err != nil {
		return err
	}
	if r.Status != initiator.StatusGood {
		return fmt.Errorf("READ: %v", r)
	}
	return nil
}

// TestReloadAndNotify edits the config file and sends SIGHUP, as
// `systemctl reload stmfd` does: a new default portal accepts logins, a
// removed one stops (its session ends), a session on an unchanged portal
// keeps working, the log level changes, a restart-only change is
// reported, and a broken file or a portal that cannot listen changes
// nothing. The sd_notify protocol is checked on the way: READY=1 once the
// portals listen, RELOADING=1/READY=1 around each reload, watchdog pings,
// STOPPING=1 with EXTEND_TIMEOUT_USEC on shutdown.
func TestReloadAndNotify(t *testing.T) {
	ctx := harness.Context(t, testTimeout)
	dir := harness.TempDir(t, "reload")
	pA := "127.0.0.1:" + harness.FreePortOn(t, "127.0.0.1")
	pB := "127.0.0.2:" + harness.FreePortOn(t, "127.0.0.2")
	pC := "127.0.0.3:" + harness.FreePortOn(t, "127.0.0.3")
	pM := "127.0.0.1:" + harness.FreePortOn(t, "127.0.0.1") // metrics
	cfg := filepath.Join(dir, "stmfd.yaml")
	writeConfig(t, cfg, fmt.Sprintf("portal: [%s, %s]\nlog-level: info\n", pA, pB))
	notify := listenNotify(t, dir)
	pings := 0

	d := suite.Start(ctx, t, filepath.Join(dir, "state"), harness.Options{
		Args:       []string{"--demo", "--demo-size", "16M"},
		ConfigFile: cfg,
		Env:        []string{"NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=1000000"},
	})
	// READY=1 comes once, after the portals listen (STATUS lists the
	// listeners open at that moment) and the demo LU is online.
	m := notify.next(t, &pings)
	if !strings.HasPrefix(m, "READY=1\nSTATUS=") || !strings.Contains(m, pA) || !strings.Contains(m, pB) || !strings.Contains(m, "1 LUs online") {
		t.Fatalf("first sd_notify message %q: want READY=1 with both portals and the LU online", m)
	}
	if got := listState(t, d); !slices.Equal(got, []string{pA, pB}) {
		t.Fatalf("portals before reload: %v", got)
	}
	sA := harness.Login(ctx, t, pA, demoIQN, testInitiator, 1)
	harness.Ready(ctx, t, sA, 0)
	sB := harness.Login(ctx, t, pB, demoIQN, testInitiator, 2)
	harness.Ready(ctx, t, sB, 0)
	if strings.Contains(d.Log(), "level=DEBUG") {
		t.Fatal("debug lines at log-level info")
	}

	reload := func(body, wantStatus string) string {
		t.Helper()
		mark := len(d.Log())
		writeConfig(t, cfg, body)
		if err := syscall.Kill(d.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if m := notify.next(t, &pings); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
			t.Fatalf("after SIGHUP: %q, want RELOADING=1", m)
		}
		if m := notify.next(t, &pings); m != "READY=1\nSTATUS="+wantStatus && !strings.HasPrefix(m, "READY=1\nSTATUS="+wantStatus) {
			t.Fatalf("reload ended with %q, want READY=1 STATUS=%s", m, wantStatus)
		}
		return d.Log()[mark:]
	}

	// 1. Portal B out, C in, debug logging, metrics on, and a change that
	// needs a restart.
	log := reload(fmt.Sprintf("portal: [%s, %s]\nlog-level: debug\nmetrics-listen: %s\nabort-completed-task: function-complete\n", pA, pC, pM),
		"reloaded: 3 applied, 1 need a restart, 0 failed")
	for _, want := range []string{
		`change="log-level: debug"`,
		fmt.Sprintf(`change="portal: added %s; removed %s"`, pC, pB),
		`abort-completed-task: task-does-not-exist -> function-complete (needs a restart)`,
		fmt.Sprintf(`level=DEBUG msg="iscsi: portal opened" component=iscsi portal=%s`, pC),
		fmt.Sprintf(`change="metrics-listen: %s"`, pM),
	} {
		if !strings.Contains(log, want) {
			t.Errorf("reload log lacks %q:\n%s", want, log)
		}
	}
	if got := listState(t, d); !slices.Equal(got, []string{pA, pC}) {
		t.Errorf("portals after reload: %v, want %v", got, []string{pA, pC})
	}
	if err := read10(ctx, sA); err != nil {
		t.Errorf("session on the unchanged portal %s: %v", pA, err)
	}
	if resp, err := http.Get("http://" + pM + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("metrics listener after reload: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := read10(ctx, sB); err == nil {
		t.Errorf("session through the removed portal %s still works", pB)
	}
	if c, err := net.DialTimeout("tcp", pB, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("removed portal %s still accepts connections", pB)
	}
	sC := harness.Login(ctx, t, pC, demoIQN, testInitiator, 3)
	harness.Ready(ctx, t, sC, 0)
	if err := read10(ctx, sC); err != nil {
		t.Errorf("session on the new portal %s: %v", pC, err)
	}

	// 2. A file that does not parse changes nothing.
	log = reload("portal: [\n", "reload failed, running configuration kept")
	if !strings.Contains(log, "reload: configuration rejected, nothing changed") {
		t.Errorf("broken file not reported:\n%s", log)
	}
	if got := listState(t, d); !slices.Equal(got, []string{pA, pC}) {
		t.Errorf("portals after a broken file: %v", got)
	}

	// 3. A portal that cannot listen: the portals stay as they were, the
	// other change (log level back to info) is applied.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	log = reload(fmt.Sprintf("portal: [%s, %s, %s]\nlog-level: info\nmetrics-listen: %s\nabort-completed-task: function-complete\n", pA, pC, busy.Addr(), pM),
		"reloaded: 1 applied, 1 need a restart, 1 failed")
	if !strings.Contains(log, "reload: failed") || !strings.Contains(log, busy.Addr().String()) {
		t.Errorf("busy portal not reported:\n%s", log)
	}
	if got := listState(t, d); !slices.Equal(got, []string{pA, pC}) {
		t.Errorf("portals after a failed portal change: %v", got)
	}
	for _, s := range []*initiator.Session{sA, sC} {
		if err := read10(ctx, s); err != nil {
			t.Errorf("session after a failed portal change: %v", err)
		}
	}
	mark := len(d.Log())
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := sC.Logout(lctx); err != nil && !errors.Is(err, initiator.ErrClosed) {
		t.Errorf("logout: %v", err)
	}
	cancel()
	time.Sleep(200 * time.Millisecond) // the target logs the logout
	if strings.Contains(d.Log()[mark:], "level=DEBUG") {
		t.Errorf("debug lines after the level went back to info:\n%s", d.Log()[mark:])
	}

	// Shutdown: STOPPING=1, and systemd is told how long the drain may take.
	if code, _ := d.Stop(); code != 0 {
		t.Errorf("stmfd exit %d", code)
	}
	if m := notify.next(t, &pings); !strings.HasPrefix(m, "STOPPING=1\nEXTEND_TIMEOUT_USEC=") {
		t.Errorf("on SIGTERM: %q, want STOPPING=1 with EXTEND_TIMEOUT_USEC", m)
	}
	if pings == 0 {
		t.Error("no watchdog ping (WATCHDOG_USEC=1s)")
	}
	t.Logf("watchdog pings seen: %d", pings)
}
