package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// ClusterConfig is cluster mode (README "Cluster (etcd)"); off when
// Endpoints is empty, the default.
type ClusterConfig struct {
	Endpoints []string      // etcd client URLs
	Node      string        // this node's name (default: the host name)
	NodeID    int           // 1..255: relative target port ids start at NodeID*256
	Portals   []string      // advertised portals (default: the portals' actual addresses)
	LeaseTTL  time.Duration // per-LU ownership lease; whole seconds
	Prefix    string        // etcd key prefix
	// TakeoverHook and ReleaseHook are executables run (no shell) when
	// this node takes an LU over or has given it up ("" none); README
	// "Takeover and release hooks".
	TakeoverHook, ReleaseHook string
	HookTimeout               time.Duration // bounds one hook run
}

// DefaultHookTimeout bounds a takeover or release hook. It need not fit
// in the lease TTL: the owner keeps renewing while it takes an LU over.
const DefaultHookTimeout = 30 * time.Second

// Hooks reports whether a takeover or release hook is configured.
func (c ClusterConfig) Hooks() bool { return c.TakeoverHook != "" || c.ReleaseHook != "" }

// Enabled reports cluster mode.
func (c ClusterConfig) Enabled() bool { return len(c.Endpoints) > 0 }

// addClusterFlags adds the cluster flags (kept in their own block).
func addClusterFlags(fs *pflag.FlagSet) {
	fs.StringSlice("cluster-endpoints", nil, "cluster mode: etcd client URLs (repeatable or comma separated; off when empty)")
	fs.String("node-name", "", "cluster mode: this node's name, unique in the cluster (default: the host name)")
	fs.Int("node-id", 0, "cluster mode: this node's number, 1-255, unique in the cluster; relative target port ids start at node-id*256")
	fs.StringSlice("advertise-portal", nil, "cluster mode: portals advertised to the other nodes, as given (default: every address an iSCSI portal listens on, kept current)")
	fs.Duration("cluster-lease-ttl", 5*time.Second, "cluster mode: LU ownership lease TTL, whole seconds (an owner that cannot renew stops serving before it ends)")
	fs.String("cluster-prefix", "/costar/", "cluster mode: etcd key prefix")
	fs.String("cluster-takeover-hook", "", "cluster mode: executable run (no shell) with argument \"takeover\" before this node serves an LU, e.g. to import the zvol's pool; a failure gives the LU up")
	fs.String("cluster-release-hook", "", "cluster mode: executable run (no shell) with argument \"release\" after this node stopped serving an LU (standby, drained, zvol closed), e.g. to export the zvol's pool")
	fs.Duration("cluster-hook-timeout", DefaultHookTimeout, "cluster mode: time limit of one takeover or release hook run (and of the LU coming up after a takeover hook), 1s..10m")
}

// loadCluster reads and checks the cluster settings.
func loadCluster(v *viper.Viper, hostname func() (string, error)) (ClusterConfig, error) {
	c := ClusterConfig{
		Endpoints: splitList(v.GetStringSlice("cluster-endpoints")),
		Node:      v.GetString("node-name"),
		NodeID:    v.GetInt("node-id"),
		Portals:   splitList(v.GetStringSlice("advertise-portal")),
		LeaseTTL:  v.GetDuration("cluster-lease-ttl"),
		Prefix:    v.GetString("cluster-prefix"),

		TakeoverHook: v.GetString("cluster-takeover-hook"),
		ReleaseHook:  v.GetString("cluster-release-hook"),
		HookTimeout:  v.GetDuration("cluster-hook-timeout"),
	}
	if !c.Enabled() {
		return c, nil
	}
	if c.Node == "" {
		h, err := hostname()
		if err != nil {
			return c, fmt.Errorf("config: --node-name not given and no host name: %w", err)
		}
		c.Node = h
	}
	if strings.ContainsAny(c.Node, "/ \t\n") {
		return c, fmt.Errorf("config: --node-name %q: no slashes or spaces", c.Node)
	}
	if c.NodeID < 1 || c.NodeID > 255 {
		return c, fmt.Errorf("config: --node-id %d: cluster mode needs a node number 1-255, unique in the cluster", c.NodeID)
	}
	for _, p := range c.Portals {
		if _, _, err := net.SplitHostPort(p); err != nil {
			return c, fmt.Errorf("config: --advertise-portal %q: %w", p, err)
		}
	}
	if c.LeaseTTL < 2*time.Second || c.LeaseTTL > time.Minute || c.LeaseTTL%time.Second != 0 {
		return c, fmt.Errorf("config: --cluster-lease-ttl %v: want whole seconds, 2s..1m", c.LeaseTTL)
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return c, fmt.Errorf("config: --cluster-prefix %q must start with /", c.Prefix)
	}
	for _, h := range []struct{ flag, path string }{{"cluster-takeover-hook", c.TakeoverHook}, {"cluster-release-hook", c.ReleaseHook}} {
		if err := checkHook(h.path); err != nil {
			return c, fmt.Errorf("config: --%s: %w", h.flag, err)
		}
	}
	if c.HookTimeout < time.Second || c.HookTimeout > 10*time.Minute {
		return c, fmt.Errorf("config: --cluster-hook-timeout %v: want 1s..10m", c.HookTimeout)
	}
	return c, nil
}

// checkHook refuses a hook that could not run: no shell parses it, so it
// must be an absolute path to an executable file.
func checkHook(path string) error {
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q: want an absolute path to an executable (it is not run by a shell)", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%q is not an executable file", path)
	}
	return nil
}

// splitList accepts repeated flags and comma separated values (env vars).
func splitList(in []string) []string {
	var out []string
	for _, p := range in {
		for _, q := range strings.Split(p, ",") {
			if q = strings.TrimSpace(q); q != "" {
				out = append(out, q)
			}
		}
	}
	return out
}
