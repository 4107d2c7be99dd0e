package config

import (
	"log/slog"
	"reflect"
	"testing"

	"github.com/spf13/pflag"
)

func TestDiff(t *testing.T) {
	base := func() *Config {
		return &Config{StateDir: "/var/lib/stmfd", Socket: "/var/lib/stmfd/stmfd.sock", DemoSize: 1 << 30,
			LogLevel: slog.LevelInfo, ShutdownSeconds: 30,
			ISCSI: ISCSIConfig{Portals: []string{"10.0.0.1:3260", "10.0.0.2:3260"}, AbortCompletedTask: AbortTaskDoesNotExist}}
	}
	cases := []struct {
		name string
		edit func(*Config)
		want []Change
	}{
		{"nothing", func(*Config) {}, nil},
		{"portal order only", func(c *Config) { c.ISCSI.Portals = []string{"10.0.0.2:3260", "10.0.0.1:3260"} }, nil},
		{"log level", func(c *Config) { c.LogLevel = slog.LevelDebug },
			[]Change{{Key: "log-level", Old: "info", New: "debug", Live: true}}},
		{"portal swapped", func(c *Config) { c.ISCSI.Portals = []string{"10.0.0.1:3260", "10.0.0.3:3260"} },
			[]Change{{Key: "portal", Old: "10.0.0.1:3260,10.0.0.2:3260", New: "10.0.0.1:3260,10.0.0.3:3260", Live: true}}},
		{"shutdown timeout", func(c *Config) { c.ShutdownSeconds = 60 },
			[]Change{{Key: "shutdown-timeout", Old: "30", New: "60", Live: true}}},
		{"restart-only settings", func(c *Config) {
			c.StateDir, c.Socket, c.Demo, c.DemoSize = "/srv/stmfd", "/run/stmfd.sock", true, 2<<30
			c.ISCSI.AbortCompletedTask = AbortFunctionComplete
		}, []Change{
			{Key: "state-dir", Old: "/var/lib/stmfd", New: "/srv/stmfd"},
			{Key: "socket", Old: "/var/lib/stmfd/stmfd.sock", New: "/run/stmfd.sock"},
			{Key: "demo", Old: "false", New: "true"},
			{Key: "demo-size", Old: "1073741824", New: "2147483648"},
			{Key: "abort-completed-task", Old: AbortTaskDoesNotExist, New: AbortFunctionComplete},
		}},
		{"fc adapters", func(c *Config) {
			c.FC.Adapters = []FCAdapter{{Kind: "fcoe", PortWWN: "21:00:00:00:00:00:00:01"}}
		}, []Change{{Key: "fc.adapters", Old: "", New: "[{Kind:fcoe PortWWN:21:00:00:00:00:00:00:01 NodeWWN: Interface: BeaconSeconds:0 PortGroup:0}]"}}},
		{"live and restart together", func(c *Config) { c.LogLevel = slog.LevelWarn; c.StateDir = "/x" }, []Change{
			{Key: "log-level", Old: "info", New: "warn", Live: true},
			{Key: "state-dir", Old: "/var/lib/stmfd", New: "/x"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := base()
			c.edit(next)
			if got := Diff(base(), next); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Diff = %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestDiffCoversEveryFlag(t *testing.T) {
	// A new setting must be classified (live or restart) for reload.
	known := map[string]bool{"config": true}
	for _, s := range settings() {
		known[s.key] = true
	}
	newFlagSet(nil).VisitAll(func(f *pflag.Flag) {
		if !known[f.Name] {
			t.Errorf("setting --%s is not in config.settings: reload would ignore a change to it silently", f.Name)
		}
	})
	for _, k := range fileOnlyKeys() {
		if k != "fc" && !known[k] { // "fc" is only the section holding fc.adapters
			t.Errorf("file setting %s is not in config.settings: reload would ignore a change to it silently", k)
		}
	}
}

func TestPortalDelta(t *testing.T) {
	cases := []struct {
		old, next      []string
		added, removed []string
	}{
		{[]string{"a:1"}, []string{"a:1"}, nil, nil},
		{[]string{"a:1", "b:1"}, []string{"b:1", "c:1"}, []string{"c:1"}, []string{"a:1"}},
		{nil, []string{"a:1", "a:1"}, []string{"a:1"}, nil},
		{[]string{"a:1"}, nil, nil, []string{"a:1"}},
	}
	for _, c := range cases {
		a, r := PortalDelta(c.old, c.next)
		if !reflect.DeepEqual(a, c.added) || !reflect.DeepEqual(r, c.removed) {
			t.Errorf("PortalDelta(%v, %v) = %v, %v; want %v, %v", c.old, c.next, a, r, c.added, c.removed)
		}
	}
}
