package cluster

import (
	"context"
	"strings"
	"testing"

	"github.com/costar-project/costar/internal/cluster/clustertest"
	"github.com/costar-project/costar/test/harness"
)

// twoNodes is the cluster every test here starts from (startTwoNodes):
// an embedded etcd, stmfd nodes a (id 1) and b (id 2), one LU on a
// backing file both share, created on a, in view at LUN 0, the target
// iqnA on a, and b already showing the view (the configuration went
// through etcd).
type twoNodes struct {
	etcd *clustertest.Etcd
	a, b *harness.Daemon
	guid string
}

func startTwoNodes(ctx context.Context, t *testing.T, members int, size int64) *twoNodes {
	t.Helper()
	return startTwoNodesArgs(ctx, t, members, size, nil)
}

// startTwoNodesArgs is startTwoNodes with extra stmfd flags for node a.
func startTwoNodesArgs(ctx context.Context, t *testing.T, members int, size int64, argsA []string) *twoNodes {
	t.Helper()
	etcd, err := clustertest.Start(t.TempDir(), members)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Close)
	n := &twoNodes{etcd: etcd}
	shared := harness.Backing(t, t.TempDir(), "shared.img", size)
	start := func(name string, id int, args []string) *harness.Daemon {
		return suite.Start(ctx, t, t.TempDir(), harness.Options{Args: args, Cluster: &harness.ClusterNode{
			Endpoints: etcd.Endpoints, Name: name, ID: id, LeaseTTL: leaseTTL}})
	}
	n.a, n.b = start("a", 1, argsA), start("b", 2, nil)
	n.guid = n.a.CreateLU(shared)
	n.a.OK("stmfadm", "add-view", "-n", "0", n.guid)
	n.a.OK("itadm", "create-target", "-n", iqnA)
	waitFor(t, "node b has the LU created on node a, with its view", func() bool {
		out, _, code := n.b.Run("", "stmfadm", "list-view", "-l", n.guid)
		return code == 0 && strings.Contains(strings.Join(strings.Fields(out), " "), "LUN : 0")
	})
	return n
}

// targetOnB serves iqnB on node b through its own portal group "b" (tag 2:
// target port group ids are unique across the cluster) on portals, or on
// one free loopback port; it returns the first portal.
func (n *twoNodes) targetOnB(t *testing.T, portals ...string) string {
	t.Helper()
	if len(portals) == 0 {
		portals = []string{"127.0.0.1:" + harness.FreePortOn(t, "127.0.0.1")}
	}
	n.b.OK("itadm", append([]string{"create-tpg", "b"}, portals...)...)
	n.b.OK("itadm", "create-target", "-n", iqnB, "-t", "b")
	return portals[0]
}
