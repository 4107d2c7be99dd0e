package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/costar-project/costar/test/harness"
)

// A node that serves a target through a target port group id another
// node already uses says so in list-cluster (RTPG would mix the two
// nodes' paths up), and says "ok" again once the clash is gone.
func TestClusterGroupClashHealth(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	n := startTwoNodes(ctx, t, 1, 16<<20)
	health := func(node string) string {
		for _, m := range listCluster(t, n.a).Members {
			if m.Name == node {
				return m.Health
			}
		}
		return ""
	}
	// Node b serves a target through its default portal group: tag 1,
	// which node a's target already uses.
	n.b.OK("itadm", "create-target", "-n", iqnB)
	waitFor(t, "node b reports the group clash", func() bool { return strings.Contains(health("b"), "already node a's") })
	n.b.OK("itadm", "delete-target", "-f", iqnB)
	waitFor(t, "node b is ok again", func() bool { return health("b") == "ok" })
	if h := health("a"); h != "ok" {
		t.Fatalf("node a's health: %q", h)
	}
}
