package mgmt

import (
	"context"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/stmf"
)

// Cluster is what the management API shows of cluster mode; the daemon's
// cluster glue implements it (internal/daemon/cluster*.go). nil: a single
// node.
type Cluster interface {
	Status(ctx context.Context) (api.ClusterStatus, error)
	// MoveLU hands the LU to node and returns once node serves it.
	MoveLU(ctx context.Context, guid, node string) (api.ClusterLU, error)
	// LU is an LU's ownership as this node last heard (no etcd call: it
	// runs under the manager's lock).
	LU(guid string) *api.LUCluster
}

// SetCluster turns cluster mode on; the daemon calls it before the
// management API is served.
func (m *Manager) SetCluster(c Cluster) { m.cluster = c }

func (m *Manager) notClustered() error {
	return api.Errorf(api.CodeNotClustered, "", "stmfd runs as a single node (start it with --cluster-endpoints for cluster mode)")
}

// ListCluster is stmfadm list-cluster.
func (m *Manager) ListCluster(ctx context.Context, _ api.Empty) (api.ClusterStatus, error) {
	if m.cluster == nil {
		return api.ClusterStatus{}, m.notClustered()
	}
	return m.cluster.Status(ctx)
}

// MoveLU is stmfadm move-lu GUID NODE.
func (m *Manager) MoveLU(ctx context.Context, req api.MoveLURequest) (api.ClusterLU, error) {
	if m.cluster == nil {
		return api.ClusterLU{}, m.notClustered()
	}
	g, err := stmf.ParseGUID(req.GUID)
	if err != nil {
		return api.ClusterLU{}, api.Errorf(api.CodeInvalidArgument, req.GUID, "invalid GUID: %v", err)
	}
	m.mu.RLock()
	known := findLU(m.state, g) >= 0
	m.mu.RUnlock()
	if !known {
		return api.ClusterLU{}, api.Errorf(api.CodeLUNotFound, req.GUID, "no such LU")
	}
	if req.Node == "" {
		return api.ClusterLU{}, api.Errorf(api.CodeInvalidArgument, "", "no node named")
	}
	return m.cluster.MoveLU(ctx, g.String(), req.Node)
}

// clusterLULocked fills an LU's cluster fields for list-lu -v.
func (m *Manager) clusterLULocked(out *api.LU) {
	if m.cluster == nil {
		return
	}
	out.Cluster = m.cluster.LU(out.GUID)
	if out.Cluster == nil {
		return
	}
	if a := m.fw.LUAccessOf(guidOf(out.GUID)); a != nil && a.Local != stmf.ALUAActiveOptimized {
		out.AccessState = "Standby"
	}
}

func guidOf(s string) stmf.GUID {
	g, _ := stmf.ParseGUID(s)
	return g
}

// Exclusive runs f with every other management API call kept out (as
// the HTTP API runs an apply): a cluster node reads its configuration,
// takes another node's document as the one its next save is conditioned
// on, and applies it, with no local change in between (one that saved in
// between would have been committed on top of the other node's document,
// undoing it). f calls ExportConfig and ApplyConfig.
func (m *Manager) Exclusive(f func() error) error {
	m.api.Lock()
	defer m.api.Unlock()
	return f()
}
