package daemon

import (
	"context"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/internal/store"
	"github.com/costar-project/costar/portprovider/iscsi"
)

// portServer is a port provider's life cycle as the daemon drives it:
// started once the configuration is restored, shut down on exit.
type portServer interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// portProviders builds every port provider from its config section and
// returns the registry the manager routes targets by. This is the one
// place a port provider is added: build it, append it to d.servers and
// register it under its protocol.
func (d *Daemon) portProviders() (map[string]mgmt.Ports, error) {
	srv, err := iscsi.NewServer(d.fw, iscsi.Config{
		Portals: d.cfg.ISCSI.Portals,
		Auth:    iscsi.AuthFunc(d.loginAuth), // iscsi_ports.go
		Logger:  d.log.With("component", "iscsi"),

		AbortCompletedTask:      d.cfg.ISCSI.AbortCompletedTask,
		ResponseBudget:          d.cfg.ISCSI.ResponseBudget,
		MaxConnectionsPerPortal: d.cfg.ISCSI.MaxConnectionsPerPortal,
		MaxConnectionsPerSource: d.cfg.ISCSI.MaxConnectionsPerSource,
		MaxLoginsInProgress:     d.cfg.ISCSI.MaxLoginsInProgress,
		AuthFailDelay:           d.cfg.ISCSI.AuthFailDelay,
		IdlePoll:                d.cfg.ISCSI.IdlePoll,
	})
	if err != nil {
		return nil, err
	}
	d.iscsi = srv
	d.servers = append(d.servers, srv)
	ports := map[string]mgmt.Ports{
		store.ProtocolISCSI: {Provider: &iscsiPorts{srv: srv}, ProviderName: iscsiProviderName, ProtocolName: api.ProtocolISCSI},
	}
	// The Fibre Channel provider registers only when an adapter exists.
	fcp, err := d.fcPortProvider() // fc_ports.go
	if err != nil {
		return nil, err
	}
	if fcp != nil {
		ports[fcProtocol] = *fcp
	}
	return ports, nil
}
