// Package config loads stmfd's settings from flags, STMFD_* environment
// variables and an optional config file (YAML, TOML or JSON), in that order
// of precedence, using viper.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Config is everything stmfd needs to start: its own settings, then one
// section per port provider.
type Config struct {
	StateDir string // persisted configuration and demo LU
	Socket   string // management API unix socket; default <StateDir>/stmfd.sock
	Demo     bool   // on first start with empty state, create a demo LU and target
	DemoSize uint64 // bytes
	LogLevel slog.Level
	// ShutdownTimeout bounds how long a clean shutdown waits for I/O.
	ShutdownSeconds int
	// MetricsListen is where /metrics is served ("" = off; metrics.go).
	MetricsListen string
	// MemoryLimit is the Go soft memory limit stmfd sets at start, in
	// bytes; -1: none (memory.go).
	MemoryLimit int64
	// PprofListen is where net/http/pprof is served ("" = off; loopback
	// only, pprof.go).
	PprofListen string

	// ISCSI configures the iSCSI port provider.
	ISCSI ISCSIConfig
	// FC configures the Fibre Channel port provider (fc.go).
	FC FCConfig
	// Cluster is cluster mode (cluster.go); off by default.
	Cluster ClusterConfig

	// File is the config file read (--config), "" for none; SIGHUP
	// re-reads it.
	File string
	// Shadowed lists the keys the config file sets but a flag or an
	// STMFD_* variable overrides (a reload cannot change them either).
	Shadowed []string
}

// ISCSIConfig is the iSCSI port provider's section.
type ISCSIConfig struct {
	Portals []string // default portal group listen addresses
	// AbortCompletedTask is the iSCSI answer to ABORT TASK for a task the
	// target does not know: "task-does-not-exist" (RFC 7143 11.5.1, the
	// default) or "function-complete" (for every unknown task).
	AbortCompletedTask string
	// Memory and admission limits (portprovider/iscsi Config); 0 keeps
	// the provider's default, -1 (connection limits) means unlimited.
	ResponseBudget          int64 // bytes per connection
	MaxConnectionsPerPortal int
	MaxConnectionsPerSource int
	MaxLoginsInProgress     int
	AuthFailDelay           time.Duration // <0: no delay
	IdlePoll                time.Duration // <0: never poll
}

// Defaults used when nothing else is given.
const (
	DefaultStateDir  = "./var/stmfd"
	InstalledState   = "/var/lib/stmfd"
	DefaultPortal    = "127.0.0.1:3260"
	DefaultDemoSize  = "1G"
	DefaultTargetIQN = "iqn.2026-11.org.costar:demo"
	// Values of --abort-completed-task.
	AbortFunctionComplete = "function-complete"
	AbortTaskDoesNotExist = "task-does-not-exist"
)

// Usage is printed by --help.
const Usage = `stmfd - costar SCSI target daemon (COMSTAR for Linux)

Usage: stmfd [flags]

Examples:
  stmfd --demo                                   serve a 1 GiB demo LU on 127.0.0.1:3260
  stmfd --state-dir /var/lib/stmfd --portal 0.0.0.0:3260
  STMFD_PORTAL=10.0.0.5:3260 stmfd --config /etc/stmfd/stmfd.yaml

Every flag can also be set as STMFD_<FLAG> (dashes become underscores) or in
the config file given with --config.

Flags:
`

// Load parses args (without the program name). It returns pflag.ErrHelp
// after printing usage to out when --help is given.
func Load(args []string, out io.Writer) (*Config, error) {
	fs := newFlagSet(out)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	v := viper.New()
	v.SetEnvPrefix("STMFD")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(fs); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := &Config{File: v.GetString("config")}
	if c.File != "" {
		v.SetConfigFile(c.File)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: reading %s: %w", c.File, err)
		}
		if err := checkKeys(fs, v); err != nil {
			return nil, fmt.Errorf("config: %s: %w", c.File, err)
		}
		c.Shadowed = shadowed(fs, v)
	}
	return c.fill(v)
}

// newFlagSet declares every setting; Load and the man page use it.
func newFlagSet(out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("stmfd", pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.String("config", "", "config file (yaml, toml or json)")
	fs.String("state-dir", DefaultStateDir, "directory for persisted state (use "+InstalledState+" when installed)")
	fs.StringSlice("portal", []string{DefaultPortal}, "listen address of the default portal group (repeatable)")
	fs.String("socket", "", "management API unix socket (default <state-dir>/stmfd.sock)")
	fs.Bool("demo", false, "on first start with empty state, create a demo LU and target "+DefaultTargetIQN)
	fs.String("demo-size", DefaultDemoSize, "size of the demo LU (K/M/G/T suffixes)")
	fs.String("log-level", "info", "debug, info, warn or error")
	fs.Int("shutdown-timeout", 30, "seconds a clean shutdown waits for in-flight I/O")
	fs.String("metrics-listen", "", "serve Prometheus metrics on ADDR:PORT at /metrics (off when empty; keep it on loopback)")
	fs.String("pprof-listen", "", "serve Go profiles (net/http/pprof) on a loopback ADDR:PORT at /debug/pprof/ (off when empty)")
	fs.String("abort-completed-task", AbortTaskDoesNotExist, "iSCSI ABORT TASK answer for an unknown (already completed) task: "+
		AbortTaskDoesNotExist+" (RFC 7143 11.5.1) or "+AbortFunctionComplete)
	fs.String("response-budget", "16M", "iSCSI: bytes of responses one connection may hold for its initiator (K/M/G suffixes)")
	fs.Int("max-connections-per-portal", 1024, "iSCSI: open connections per listening portal (-1: unlimited)")
	fs.Int("max-connections-per-source", 128, "iSCSI: open connections per initiator IP address (-1: unlimited)")
	fs.Int("max-logins-in-progress", 64, "iSCSI: connections still logging in (-1: unlimited)")
	fs.Duration("auth-fail-delay", time.Second, "iSCSI: delay of the first failed CHAP answer per initiator and address, doubling up to 8s (0: none)")
	fs.Duration("idle-poll", 50*time.Microsecond, "iSCSI: how long a connection with nothing in flight polls its socket before it sleeps; lower QD1 latency for CPU (0: never, max 1ms)")
	addClusterFlags(fs) // cluster.go
	addMemoryFlags(fs)  // memory.go
	fs.Usage = func() {
		fmt.Fprint(out, Usage)
		fs.PrintDefaults()
	}
	return fs
}

// fill reads the settings from v into c and checks them.
func (c *Config) fill(v *viper.Viper) (*Config, error) {
	c.StateDir = v.GetString("state-dir")
	c.Socket = v.GetString("socket")
	c.Demo = v.GetBool("demo")
	c.ShutdownSeconds = v.GetInt("shutdown-timeout")
	iscsi, err := loadISCSI(v)
	if err != nil {
		return nil, err
	}
	c.ISCSI = iscsi
	if c.FC, err = loadFC(v); err != nil {
		return nil, err
	}
	if c.MetricsListen, err = loadMetricsListen(v); err != nil {
		return nil, err
	}
	if c.MemoryLimit, err = loadMemoryLimit(v); err != nil {
		return nil, err
	}
	if c.PprofListen, err = loadPprofListen(v); err != nil {
		return nil, err
	}
	if c.Cluster, err = loadCluster(v, os.Hostname); err != nil {
		return nil, err
	}
	if c.StateDir == "" {
		return nil, fmt.Errorf("config: --state-dir must not be empty")
	}
	if c.Socket == "" {
		c.Socket = filepath.Join(c.StateDir, "stmfd.sock")
	}
	size, err := ParseSize(v.GetString("demo-size"))
	if err != nil {
		return nil, fmt.Errorf("config: --demo-size: %w", err)
	}
	c.DemoSize = size
	if err := c.LogLevel.UnmarshalText([]byte(v.GetString("log-level"))); err != nil {
		return nil, fmt.Errorf("config: --log-level: %w", err)
	}
	if c.ShutdownSeconds <= 0 {
		return nil, fmt.Errorf("config: --shutdown-timeout must be positive")
	}
	return c, nil
}

// loadISCSI reads and checks the iSCSI port provider's settings.
func loadISCSI(v *viper.Viper) (ISCSIConfig, error) {
	c := ISCSIConfig{AbortCompletedTask: v.GetString("abort-completed-task")}
	// An env var gives one string; accept comma separated portals there too.
	for _, p := range v.GetStringSlice("portal") {
		for _, q := range strings.Split(p, ",") {
			if q = strings.TrimSpace(q); q != "" {
				c.Portals = append(c.Portals, q)
			}
		}
	}
	if len(c.Portals) == 0 {
		return c, fmt.Errorf("config: at least one --portal is required")
	}
	for _, p := range c.Portals {
		if _, _, err := net.SplitHostPort(p); err != nil {
			return c, fmt.Errorf("config: bad portal %q: %w", p, err)
		}
	}
	switch c.AbortCompletedTask {
	case AbortFunctionComplete, AbortTaskDoesNotExist:
	default:
		return c, fmt.Errorf("config: --abort-completed-task %q: want %s or %s", c.AbortCompletedTask, AbortFunctionComplete, AbortTaskDoesNotExist)
	}
	rb, err := ParseSize(v.GetString("response-budget"))
	if err != nil || rb == 0 || rb > 1<<40 {
		return c, fmt.Errorf("config: --response-budget %q: want a size such as 16M", v.GetString("response-budget"))
	}
	c.ResponseBudget = int64(rb)
	for _, l := range []struct {
		key string
		dst *int
	}{
		{"max-connections-per-portal", &c.MaxConnectionsPerPortal},
		{"max-connections-per-source", &c.MaxConnectionsPerSource},
		{"max-logins-in-progress", &c.MaxLoginsInProgress},
	} {
		n := v.GetInt(l.key)
		if n == 0 || n < -1 {
			return c, fmt.Errorf("config: --%s %d: want a positive count or -1 (unlimited)", l.key, n)
		}
		*l.dst = n
	}
	// 0 turns these off; the provider's "off" is negative.
	for _, d := range []struct {
		key  string
		max  time.Duration
		want string
		dst  *time.Duration
	}{
		{"auth-fail-delay", time.Minute, "0..1m", &c.AuthFailDelay},
		{"idle-poll", time.Millisecond, "0..1ms", &c.IdlePoll},
	} {
		*d.dst = v.GetDuration(d.key)
		switch {
		case *d.dst < 0 || *d.dst > d.max:
			return c, fmt.Errorf("config: --%s %v: want %s", d.key, *d.dst, d.want)
		case *d.dst == 0:
			*d.dst = -1
		}
	}
	return c, nil
}

// ParseSize parses a byte count with an optional K/M/G/T/P suffix (powers
// of 1024, as stmfadm -s does), e.g. "512", "64M", "1g", "2TB".
func ParseSize(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "B")
	if t == "" {
		return 0, fmt.Errorf("empty size %q", s)
	}
	mult := uint64(1)
	switch t[len(t)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	case 'T':
		mult = 1 << 40
	case 'P':
		mult = 1 << 50
	}
	if mult != 1 {
		t = t[:len(t)-1]
	}
	var n uint64
	if t == "" {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid size %q", s)
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, fmt.Errorf("size %q too large", s)
		}
		n = n*10 + d
	}
	if n > ^uint64(0)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}
