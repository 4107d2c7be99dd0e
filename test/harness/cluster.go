package harness

import (
	"fmt"
	"strings"
	"time"
)

// ClusterNode starts stmfd in cluster mode (Options.Cluster): the etcd
// endpoints (tests embed etcd with internal/cluster/clustertest, which the
// harness does not import so that other suites do not compile etcd), the
// node's name and number, and the lease TTL (0: stmfd's default).
type ClusterNode struct {
	Endpoints []string
	Name      string
	ID        int
	LeaseTTL  time.Duration
}

// args are the stmfd flags for the node.
func (c *ClusterNode) args() []string {
	if c == nil {
		return nil
	}
	a := []string{"--cluster-endpoints", strings.Join(c.Endpoints, ","), "--node-name", c.Name, "--node-id", fmt.Sprint(c.ID)}
	if c.LeaseTTL > 0 {
		a = append(a, "--cluster-lease-ttl", c.LeaseTTL.String())
	}
	return a
}
