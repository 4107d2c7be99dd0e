package cluster

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults. TTL is a whole number of seconds (etcd leases are).
const (
	DefaultPrefix = "/costar/"
	DefaultTTL    = 5 * time.Second
)

// Config is one node's cluster settings.
type Config struct {
	Endpoints []string // etcd client URLs
	Node      string   // this node's name, unique in the cluster
	Prefix    string   // key prefix (DefaultPrefix)
	// TTL of the per-LU ownership leases and of the node's membership.
	TTL time.Duration
	// Renew is how often an owner renews (TTL/5 by default).
	Renew time.Duration
	// Margin is how long before its lease can expire for the others an
	// owner stops serving (TTL/5 by default): it covers the clock rate
	// difference between this node and the etcd leader and the time to
	// stop the LU's in-flight commands.
	Margin time.Duration
	// DialTimeout bounds the first connection to etcd.
	DialTimeout time.Duration
}

// withDefaults fills the zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	if len(c.Endpoints) == 0 {
		return c, errors.New("cluster: no etcd endpoints")
	}
	if c.Node == "" || strings.ContainsAny(c.Node, "/ \t\n") {
		return c, fmt.Errorf("cluster: node name %q is empty or has a slash or space", c.Node)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < 2*time.Second || c.TTL%time.Second != 0 {
		return c, fmt.Errorf("cluster: lease TTL %v must be a whole number of seconds, at least 2s", c.TTL)
	}
	if c.Renew == 0 {
		c.Renew = c.TTL / 5
	}
	if c.Margin == 0 {
		c.Margin = c.TTL / 5
	}
	if c.Renew <= 0 || c.Margin <= 0 || c.Renew+c.Margin >= c.TTL {
		return c, fmt.Errorf("cluster: renew interval %v plus margin %v must be positive and below the TTL %v", c.Renew, c.Margin, c.TTL)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	return c, nil
}

func (c Config) nodeKey(name string) string  { return c.Prefix + "nodes/" + name }
func (c Config) ownerKey(guid string) string { return c.Prefix + "owners/" + guid }
func (c Config) fenceKey(guid string) string { return c.Prefix + "fence/" + guid }
func (c Config) moveKey(guid string) string  { return c.Prefix + "move/" + guid }
func (c Config) nodesPrefix() string         { return c.Prefix + "nodes/" }
func (c Config) ownersPrefix() string        { return c.Prefix + "owners/" }
