package api

import "time"

// Cluster mode (stmfd --cluster-endpoints): nodes coordinated by etcd, one
// owner per LU; the owner's port groups are active/optimized for the LU,
// every other node's standby. stmfadm list-cluster and move-lu.

// Cluster calls.
const (
	MethodListCluster = "ListCluster"
	MethodMoveLU      = "MoveLU"
)

// Cluster error codes.
const (
	CodeNotClustered Code = "NOT_CLUSTERED" // stmfd runs as a single node
	CodeNoSuchNode   Code = "NO_SUCH_NODE"  // not a live member
	CodeClusterError Code = "CLUSTER_ERROR" // etcd did not answer or the move did not finish
)

// ClusterPortGroup is one of a node's target port groups.
type ClusterPortGroup struct {
	ID      uint16   `json:"id"`
	Ports   []uint16 `json:"ports"`             // relative target port ids
	Portals []string `json:"portals,omitempty"` // iSCSI portals listening for the group
}

// ClusterMember is a live node.
type ClusterMember struct {
	Name     string             `json:"name"`
	Self     bool               `json:"self"`    // the node that answered
	Portals  []string           `json:"portals"` // advertised (--advertise-portal, else every listening portal)
	Groups   []ClusterPortGroup `json:"groups"`
	Health   string             `json:"health"`
	Started  time.Time          `json:"started"`
	LeaseTTL int64              `json:"lease_ttl"` // seconds left on its membership lease
}

// ClusterNodeState is one node's ALUA state for an LU.
type ClusterNodeState struct {
	Node  string `json:"node"`
	Group uint16 `json:"group"`
	State string `json:"state"` // one of ALUAStateNames()
}

// LUCluster is an LU's ownership (list-lu -v, list-cluster).
type LUCluster struct {
	Owner    string             `json:"owner"`     // "" when nobody owns it
	Token    int64              `json:"token"`     // fencing token of the owner's tenure
	LeaseTTL int64              `json:"lease_ttl"` // seconds left (list-cluster; 0 in list-lu: not read)
	MovingTo string             `json:"moving_to,omitempty"`
	States   []ClusterNodeState `json:"states"`
}

// ClusterLU is one LU in list-cluster.
type ClusterLU struct {
	GUID string `json:"guid"`
	LUCluster
}

// ClusterStatus is stmfadm list-cluster.
type ClusterStatus struct {
	Node        string          `json:"node"`
	Endpoints   []string        `json:"endpoints"`
	LeaseTTL    float64         `json:"lease_ttl_seconds"`
	RenewEvery  float64         `json:"renew_seconds"`
	FenceMargin float64         `json:"fence_margin_seconds"`
	Members     []ClusterMember `json:"members"`
	LUs         []ClusterLU     `json:"lus"`
	EtcdHealthy bool            `json:"etcd_healthy"`
	EtcdProblem string          `json:"etcd_problem,omitempty"`
}

// MoveLURequest is stmfadm move-lu GUID NODE.
type MoveLURequest struct {
	GUID string `json:"guid"`
	Node string `json:"node"`
}
