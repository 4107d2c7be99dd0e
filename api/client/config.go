package client

import (
	"context"

	"github.com/costar-project/costar/api"
)

// ExportConfig is stmfadm export.
func (c *Client) ExportConfig(ctx context.Context) (api.ExportResult, error) {
	return call[api.ExportResult](ctx, c, api.MethodExportConfig, api.Empty{})
}

// ApplyConfig is stmfadm apply (a dry run with r.DryRun).
func (c *Client) ApplyConfig(ctx context.Context, r api.ApplyRequest) (api.ApplyResult, error) {
	return call[api.ApplyResult](ctx, c, api.MethodApplyConfig, r)
}
