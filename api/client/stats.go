package client

import (
	"context"

	"github.com/costar-project/costar/api"
)

// GetStats returns the task counters of the LUs named by GUID or alias
// (all when none are named), for stmfadm list-stats.
func (c *Client) GetStats(ctx context.Context, r api.GetStatsRequest) (api.Stats, error) {
	return call[api.Stats](ctx, c, api.MethodGetStats, r)
}
