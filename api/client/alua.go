package client

import (
	"context"

	"github.com/costar-project/costar/api"
)

// SetALUAState changes a target port group's asymmetric access state
// (stmfadm set-alua-state) and returns the group as it now is.
func (c *Client) SetALUAState(ctx context.Context, r api.SetALUAStateRequest) (api.ALUAGroup, error) {
	return call[api.ALUAGroup](ctx, c, api.MethodSetALUAState, r)
}
