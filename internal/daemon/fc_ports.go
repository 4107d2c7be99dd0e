package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/stmf"
)

// fcProtocol is the registry key (and store.Target.Protocol) of FC targets.
const fcProtocol = "fc"

// Option changes how New builds a daemon.
type Option func(*Daemon)

// WithFCAdapters adds FC adapters beyond those the configuration names
// (tests pass the in-process loopback adapter; stmfd builds none itself
// until an adapter kind ships).
func WithFCAdapters(ads ...fc.Adapter) Option {
	return func(d *Daemon) { d.fcAdapters = append(d.fcAdapters, ads...) }
}

// buildFCAdapters builds the adapters of the fc config section. No kind is
// built in yet (config refuses them all); a new kind adds its case here.
func buildFCAdapters(c config.FCConfig) ([]fc.Adapter, error) {
	for i, a := range c.Adapters {
		switch a.Kind {
		default:
			return nil, fmt.Errorf("fc.adapters[%d]: unknown adapter kind %q", i, a.Kind)
		}
	}
	return nil, nil
}

// fcPortProvider builds the FC provider when at least one adapter exists.
func (d *Daemon) fcPortProvider() (*mgmt.Ports, error) {
	ads, err := buildFCAdapters(d.cfg.FC)
	if err != nil {
		return nil, err
	}
	ads = append(ads, d.fcAdapters...)
	if len(ads) == 0 {
		return nil, nil
	}
	srv, err := fc.NewServer(d.fw, ads, fc.Config{Logger: d.log.With("component", "fc")})
	if err != nil {
		return nil, err
	}
	d.fc = srv
	d.servers = append(d.servers, srv)
	return &mgmt.Ports{Provider: &fcPorts{srv: srv}, ProviderName: ads[0].Info().Driver, ProtocolName: api.ProtocolFC}, nil
}

// ensureFCTargets configures a target for each adapter port not in the
// persisted state yet: as in COMSTAR, an HBA port in target mode is a
// target from the start (online; offline-target takes it down).
func (d *Daemon) ensureFCTargets(ctx context.Context) error {
	if d.fc == nil {
		return nil
	}
	for _, p := range d.fc.Ports() {
		_, err := d.mgr.AddTarget(ctx, fcProtocol, p.Name())
		var ae *api.Error
		if err != nil && !(errors.As(err, &ae) && ae.Code == api.CodeTargetExists) {
			return fmt.Errorf("fc target %s: %w", p.Name(), err)
		}
	}
	return nil
}

// fcPorts adapts the FC server to mgmt.PortProvider.
type fcPorts struct {
	srv *fc.Server
}

var _ mgmt.PortProvider = (*fcPorts)(nil)

// AddTarget brings the adapter port online. FC ports join the default
// ALUA target port group.
func (p *fcPorts) AddTarget(_ context.Context, s mgmt.TargetSpec) error {
	return p.srv.AddTarget(s.Name, stmf.DefaultPortGroup)
}

// UpdateTarget has nothing to apply: an FC target has no setting beyond
// its alias, which FC does not carry on the wire.
func (p *fcPorts) UpdateTarget(context.Context, mgmt.TargetSpec) error { return nil }

func (p *fcPorts) RemoveTarget(_ context.Context, name string) error {
	if err := p.srv.RemoveTarget(name); err != nil && !errors.Is(err, fc.ErrNoAdapter) {
		return err
	}
	return nil
}

// Sessions: FC initiators have no alias; stmf's sessions are the list.
func (p *fcPorts) Sessions() []mgmt.SessionInfo { return nil }

// fcPortsInfo reports the adapter ports for fcinfo.
func (d *Daemon) fcPortsInfo() []api.FCPort {
	out := []api.FCPort{}
	if d.fc == nil {
		return out
	}
	for _, p := range d.fc.Ports() {
		st := p.State()
		fp := api.FCPort{PortWWN: st.Info.PortName.String(), NodeWWN: st.Info.NodeName.String(), Driver: st.Info.Driver,
			Mode: "Target", SpeedMbs: st.Link.SpeedMbs, Topology: st.Link.Topology, RemotePorts: []api.FCRemotePort{}}
		switch {
		case !st.Link.Up:
			fp.State = "link down"
		case !st.Online:
			fp.State = "offline"
		default:
			fp.State = "online"
		}
		if st.Link.Up {
			fp.PortID = fmt.Sprintf("%06x", st.Link.PortID)
		}
		for _, rp := range p.RemotePorts() {
			fp.RemotePorts = append(fp.RemotePorts, api.FCRemotePort{PortWWN: rp.PortName.String(), NodeWWN: rp.NodeName.String(),
				PortID: fmt.Sprintf("%06x", rp.PortID), Since: rp.LoginTime, Initiator: rp.Initiator})
		}
		sort.Slice(fp.RemotePorts, func(i, j int) bool { return fp.RemotePorts[i].PortWWN < fp.RemotePorts[j].PortWWN })
		out = append(out, fp)
	}
	return out
}
