package config

import (
	"fmt"
	"net"
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
}

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
	return c, nil
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
