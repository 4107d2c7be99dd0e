package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/api/apitest"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// The three renderings of the same call: a bar redrawn in place on a
// terminal, plain lines with --progress, and the quiet view (a note only
// when the call takes long).
func TestProgressViews(t *testing.T) {
	alloc := func(done uint64) api.Progress {
		return api.Progress{Phase: "allocating /srv/a.img", Done: done, Total: 4 << 30}
	}
	type step struct {
		at  time.Duration // clock when it happens
		ev  *api.Progress // an event, or a tick when nil
		end bool          // the call ends (successfully)
	}
	p := func(v api.Progress) *api.Progress { return &v }
	steps := []step{
		{at: 0, ev: p(api.Progress{Phase: "creating the LU on /srv/a.img"})},
		{at: 200 * time.Millisecond, ev: p(alloc(0))},
		{at: 1200 * time.Millisecond, ev: p(alloc(1 << 30))},
		{at: 1500 * time.Millisecond, ev: p(alloc(2 << 30))},
		{at: 2500 * time.Millisecond},
		{at: 2600 * time.Millisecond, ev: p(alloc(4 << 30))},
		{at: 2700 * time.Millisecond, ev: p(api.Progress{Phase: "registering LU X"})},
		{at: 2800 * time.Millisecond, end: true},
	}
	for _, tc := range []struct {
		name string
		mode progressMode
		want string
	}{
		{"terminal", progressBar,
			"\r\x1b[Kstmfadm: creating: allocating /srv/a.img [#####---------------] 1.0G/4.0G (25%) 1.2s" +
				"\r\x1b[Kstmfadm: creating: allocating /srv/a.img [##########----------] 2.0G/4.0G (50%) 1.5s" +
				"\r\x1b[Kstmfadm: creating: allocating /srv/a.img [##########----------] 2.0G/4.0G (50%) 2.5s" +
				"\r\x1b[Kstmfadm: creating: allocating /srv/a.img [####################] 4.0G/4.0G (100%) 2.6s" +
				"\r\x1b[Kstmfadm: creating: registering LU X 2.7s" +
				"\r\x1b[Kstmfadm: creating: done after 2.8s\n"},
		{"--progress", progressLines,
			"stmfadm: creating: creating the LU on /srv/a.img 0.0s\n" +
				"stmfadm: creating: allocating /srv/a.img 0B/4.0G (0%) 0.2s\n" +
				"stmfadm: creating: allocating /srv/a.img 1.0G/4.0G (25%) 1.2s\n" +
				"stmfadm: creating: allocating /srv/a.img 2.0G/4.0G (50%) 2.5s\n" +
				"stmfadm: creating: allocating /srv/a.img 4.0G/4.0G (100%) 2.6s\n" +
				"stmfadm: creating: registering LU X 2.7s\n" +
				"stmfadm: creating: done after 2.8s\n"},
		{"quiet", progressQuiet, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1e9, 0)}
			start := clock.t
			var b strings.Builder
			v := newProgressView(&b, "stmfadm", "creating", tc.mode, 0, clock.now)
			for _, s := range steps {
				clock.t = start.Add(s.at)
				switch {
				case s.end:
					v.finish(nil, false)
				case s.ev != nil:
					v.event(*s.ev)
				default:
					v.tick()
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// The quiet view says something only for a slow call, and how it ended;
// a cancel is reported as such; a bar is cut to the terminal's width.
func TestProgressViewEdges(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	start := clock.t
	var b strings.Builder
	v := newProgressView(&b, "stmfadm", "cloning x", progressQuiet, 0, clock.now)
	v.event(api.Progress{Phase: "zfs clone a@b c"})
	clock.t = start.Add(3100 * time.Millisecond)
	v.tick()
	clock.t = start.Add(4 * time.Second)
	v.finish(&api.Error{Code: api.CodeCancelled, Message: "cancelled"}, true)
	if want := "stmfadm: cloning x ...\nstmfadm: cloning x: cancelled after 4.0s\n"; b.String() != want {
		t.Errorf("quiet slow call: %q, want %q", b.String(), want)
	}

	b.Reset()
	v = newProgressView(&b, "stmfadm", strings.Repeat("w", 100), progressBar, 40, clock.now)
	clock.t = start.Add(5 * time.Second)
	v.event(api.Progress{Phase: "zfs create"})
	if line := strings.TrimPrefix(b.String(), "\r\x1b[K"); len(line) != 39 || !strings.HasSuffix(line, "w... 1.0s") {
		t.Errorf("bar not cut to 39 columns: %q (%d)", line, len(line))
	}
}

// Through the CLI (stderr is not a terminal here): stdout is what it
// always was, with or without a streaming daemon; --progress adds lines on
// stderr only; a cancelled call prints COMSTAR-style error lines.
func TestLongVerbsStream(t *testing.T) {
	lu := api.LU{GUID: guid}
	events := []api.Progress{
		{Phase: "allocating /srv/a.img", Done: 0, Total: 2 << 20},
		{Phase: "allocating /srv/a.img", Done: 2 << 20, Total: 2 << 20},
		{Phase: "registering LU " + guid},
	}
	srv := apitest.Serve(t, map[string]apitest.Reply{
		api.MethodCreateLU: {Body: lu, Progress: events},
		api.MethodModifyLU: {Body: lu, Progress: events[2:]},
		api.MethodImportLU: {Err: &api.Error{Code: api.CodeCancelled, Message: "cancelled: context canceled"}, Progress: events[2:]},
	})
	plain := apitest.Serve(t, map[string]apitest.Reply{api.MethodCreateLU: {Body: lu}})
	for _, tc := range []struct {
		name           string
		socket         string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"streamed, quiet", srv.Socket, []string{"stmfadm", "create-lu", "-s", "2m", "/srv/a.img"}, 0,
			"Logical unit created: " + guid + "\n", ""},
		{"not streamed (older stmfd)", plain.Socket, []string{"stmfadm", "create-lu", "-s", "2m", "/srv/a.img"}, 0,
			"Logical unit created: " + guid + "\n", ""},
		{"sbdadm, quiet", srv.Socket, []string{"sbdadm", "create-lu", "-s", "2m", "/srv/a.img"}, 0,
			"Created the following LU:\n" + sbdRows(lu), ""},
		{"modify-lu, quiet", srv.Socket, []string{"stmfadm", "modify-lu", "-s", "4m", guid}, 0, "", ""},
		{"cancelled", srv.Socket, []string{"stmfadm", "import-lu", "/srv/a.img"}, 1, "",
			"stmfadm: cancelled; nothing was changed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.socket, tc.args...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}

	code, stdout, stderr := runCLI(t, srv.Socket, "stmfadm", "create-lu", "--progress", "-s", "2m", "/srv/a.img")
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 0 || stdout != "Logical unit created: "+guid+"\n" || len(lines) != 4 ||
		!strings.HasPrefix(lines[0], "stmfadm: creating LU on /srv/a.img: allocating /srv/a.img 0B/2.0M (0%) ") ||
		!strings.HasPrefix(lines[1], "stmfadm: creating LU on /srv/a.img: allocating /srv/a.img 2.0M/2.0M (100%) ") ||
		!strings.HasPrefix(lines[2], "stmfadm: creating LU on /srv/a.img: registering LU "+guid+" ") ||
		!strings.HasPrefix(lines[3], "stmfadm: creating LU on /srv/a.img: done after ") {
		t.Fatalf("--progress: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

// openPTY opens a pseudo-terminal: the master to read what was drawn, the
// slave to hand stmfadm as its stderr.
func openPTY(t *testing.T, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: 24}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// With stderr on a terminal, a slow create-lu draws its bar there, cut to
// the terminal's width, and ends with one line; stdout is as ever.
func TestLongVerbOnTerminal(t *testing.T) {
	master, slave := openPTY(t, 100)
	lu := api.LU{GUID: guid}
	srv := apitest.Serve(t, map[string]apitest.Reply{api.MethodCreateLU: {Body: lu, Pace: 600 * time.Millisecond,
		Progress: []api.Progress{
			{Phase: "writing zeroes to /srv/a.img", Done: 0, Total: 4 << 20},
			{Phase: "writing zeroes to /srv/a.img", Done: 2 << 20, Total: 4 << 20},
			{Phase: "writing zeroes to /srv/a.img", Done: 4 << 20, Total: 4 << 20},
		}}})
	var out bytes.Buffer
	code := run(context.Background(), []string{"stmfadm", "--socket", srv.Socket, "create-lu", "-s", "4m", "/srv/a.img"},
		strings.NewReader(""), &out, slave)
	slave.Close()
	drawn, _ := io.ReadAll(master) // until the slave's last close (EIO)
	if code != 0 || out.String() != "Logical unit created: "+guid+"\n" {
		t.Fatalf("exit %d, stdout %q", code, out.String())
	}
	tty := strings.ReplaceAll(string(drawn), "\r\n", "\n") // the terminal's output processing
	frames := strings.Split(tty, "\r\x1b[K")
	if len(frames) < 3 || !strings.Contains(tty, "[##########----------] 2.0M/4.0M (50%) ") ||
		!strings.HasPrefix(frames[len(frames)-1], "stmfadm: creating LU on /srv/a.img: done after ") {
		t.Fatalf("drawn on the terminal: %q", drawn)
	}
	for _, f := range frames[1 : len(frames)-1] {
		if len(f) > 99 || strings.Contains(f, "\n") {
			t.Errorf("frame wider than the terminal or not in place: %q", f)
		}
	}
}

func sbdRows(lus ...api.LU) string {
	var b strings.Builder
	writeSbdRows(&b, lus)
	return b.String()
}
