package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"512", 512, false},
		{"1K", 1024, false},
		{"64m", 64 << 20, false},
		{"1G", 1 << 30, false},
		{"2TB", 2 << 40, false},
		{"1P", 1 << 50, false},
		{"", 0, true},
		{"G", 0, true},
		{"1.5G", 0, true},
		{"-1", 0, true},
		{"99999999999999999999", 0, true},
		{"16777216T", 0, true},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, err=%v", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "stmfd.yaml")
	if err := os.WriteFile(file, []byte("state-dir: /from/file\ndemo-size: 2G\nlog-level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STMFD_PORTAL", "127.0.0.2:3260,127.0.0.3:3260")
	c, err := Load([]string{"--config", file, "--demo"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/from/file" || c.DemoSize != 2<<30 || !c.Demo {
		t.Errorf("file/flag values not applied: %+v", c)
	}
	if len(c.ISCSI.Portals) != 2 || c.ISCSI.Portals[1] != "127.0.0.3:3260" {
		t.Errorf("env portals not applied: %v", c.ISCSI.Portals)
	}
	if c.Socket != "/from/file/stmfd.sock" {
		t.Errorf("socket default = %q", c.Socket)
	}
	// A flag beats the file.
	c, err = Load([]string{"--config", file, "--state-dir", "/flag"}, &bytes.Buffer{})
	if err != nil || c.StateDir != "/flag" {
		t.Fatalf("flag precedence: %v %+v", err, c)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--portal", "nonsense"},
		{"--demo-size", "lots"},
		{"--log-level", "loud"},
		{"--state-dir", ""},
		{"extra"},
		{"--config", "/nonexistent/stmfd.yaml"},
	} {
		if _, err := Load(args, &bytes.Buffer{}); err == nil {
			t.Errorf("Load(%v) succeeded, want error", args)
		}
	}
	var out bytes.Buffer
	if _, err := Load([]string{"--help"}, &out); !errors.Is(err, pflag.ErrHelp) || !bytes.Contains(out.Bytes(), []byte("Examples:")) {
		t.Errorf("--help: err=%v out=%q", err, out.String())
	}
}

func TestAbortCompletedTask(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
		err  bool
	}{
		{nil, "", AbortTaskDoesNotExist, false},
		{[]string{"--abort-completed-task", AbortFunctionComplete}, "", AbortFunctionComplete, false},
		{[]string{"--abort-completed-task", AbortTaskDoesNotExist}, "", AbortTaskDoesNotExist, false},
		{nil, AbortTaskDoesNotExist, AbortTaskDoesNotExist, false},
		{[]string{"--abort-completed-task", "maybe"}, "", "", true},
	} {
		t.Setenv("STMFD_ABORT_COMPLETED_TASK", tc.env)
		if tc.env == "" {
			os.Unsetenv("STMFD_ABORT_COMPLETED_TASK")
		}
		c, err := Load(tc.args, &bytes.Buffer{})
		if (err != nil) != tc.err || (err == nil && c.ISCSI.AbortCompletedTask != tc.want) {
			t.Errorf("Load(%v) env %q: %+v, %v; want %q err=%v", tc.args, tc.env, c, err, tc.want, tc.err)
		}
	}
}

// The sample /etc/stmfd/stmfd.yaml that make install ships loads, and
// names (at least in a comment) every setting but --config.
func TestSampleConfig(t *testing.T) {
	const sample = "../contrib/stmfd.yaml"
	c, err := Load([]string{"--config", sample}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("%s: %v", sample, err)
	}
	if c.StateDir != InstalledState || c.ShutdownSeconds != 30 || len(c.ISCSI.Portals) != 1 {
		t.Errorf("%s: unexpected values %+v", sample, c)
	}
	text, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	newFlagSet(&bytes.Buffer{}).VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && !bytes.Contains(text, []byte(f.Name+":")) {
			t.Errorf("%s does not mention %s", sample, f.Name)
		}
	})
}

func TestConfigFileKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		f := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	// A typo is refused, not ignored.
	if _, err := Load([]string{"--config", write("portals: [127.0.0.1:3260]\n")}, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), "unknown setting portals") {
		t.Errorf("unknown key: err = %v", err)
	}
	// So is one inside a file-only section (fc.go); the section itself is known.
	if _, err := Load([]string{"--config", write("fc:\n  adapter: []\n")}, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), "unknown setting fc.adapter ") {
		t.Errorf("unknown fc key: err = %v", err)
	}
	if _, err := Load([]string{"--config", write("fc: {}\n")}, &bytes.Buffer{}); err != nil {
		t.Errorf("empty fc section: %v", err)
	}
	// A flag or variable overriding the file is reported.
	f := write("log-level: debug\nportal: [127.0.0.1:3260]\nstate-dir: /x\n")
	t.Setenv("STMFD_PORTAL", "127.0.0.2:3260")
	c, err := Load([]string{"--config", f, "--log-level", "warn"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Shadowed, []string{"log-level", "portal"}) || c.File != f {
		t.Errorf("Shadowed = %v, File = %q", c.Shadowed, c.File)
	}
}

func TestISCSILimits(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want func(ISCSIConfig) bool
		err  bool
	}{
		{nil, func(c ISCSIConfig) bool {
			return c.ResponseBudget == 16<<20 && c.MaxConnectionsPerPortal == 1024 && c.MaxConnectionsPerSource == 128 &&
				c.MaxLoginsInProgress == 64 && c.AuthFailDelay == time.Second && c.IdlePoll == 50*time.Microsecond
		}, false},
		{[]string{"--response-budget", "64M", "--max-connections-per-source", "-1", "--auth-fail-delay", "0"}, func(c ISCSIConfig) bool {
			return c.ResponseBudget == 64<<20 && c.MaxConnectionsPerSource == -1 && c.AuthFailDelay < 0
		}, false},
		{[]string{"--max-logins-in-progress", "8", "--auth-fail-delay", "250ms"}, func(c ISCSIConfig) bool {
			return c.MaxLoginsInProgress == 8 && c.AuthFailDelay == 250*time.Millisecond
		}, false},
		{[]string{"--response-budget", "lots"}, nil, true},
		{[]string{"--response-budget", "0"}, nil, true},
		{[]string{"--max-connections-per-portal", "0"}, nil, true},
		{[]string{"--max-connections-per-source", "-2"}, nil, true},
		{[]string{"--auth-fail-delay", "-1s"}, nil, true},
		{[]string{"--auth-fail-delay", "2h"}, nil, true},
		{[]string{"--idle-poll", "0"}, func(c ISCSIConfig) bool { return c.IdlePoll < 0 }, false},
		{[]string{"--idle-poll", "200us"}, func(c ISCSIConfig) bool { return c.IdlePoll == 200*time.Microsecond }, false},
		{[]string{"--idle-poll", "-1us"}, nil, true},
		{[]string{"--idle-poll", "2ms"}, nil, true},
	} {
		c, err := Load(tc.args, &bytes.Buffer{})
		if (err != nil) != tc.err || (err == nil && !tc.want(c.ISCSI)) {
			t.Errorf("Load(%v): %+v, %v; want err=%v", tc.args, c, err, tc.err)
		}
	}
}
