package client

import (
	"context"

	"github.com/costar-project/costar/api"
)

// ListCluster is stmfadm list-cluster.
func (c *Client) ListCluster(ctx context.Context) (api.ClusterStatus, error) {
	return call[api.ClusterStatus](ctx, c, api.MethodListCluster, api.Empty{})
}

// MoveLU is stmfadm move-lu: it returns once the named node serves the LU.
func (c *Client) MoveLU(ctx context.Context, r api.MoveLURequest) (api.ClusterLU, error) {
	return call[api.ClusterLU](ctx, c, api.MethodMoveLU, r)
}
