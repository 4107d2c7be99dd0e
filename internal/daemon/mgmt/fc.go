package mgmt

import (
	"context"

	"github.com/costar-project/costar/api"
)

// ListFCPorts reports the FC HBA ports (none without the FC provider).
func (m *Manager) ListFCPorts(context.Context, api.Empty) ([]api.FCPort, error) {
	if m.fcPorts == nil {
		return []api.FCPort{}, nil
	}
	return m.fcPorts(), nil
}
