package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/costar-project/costar/api"
	"github.com/costar-project/costar/config"
	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/portprovider/fc"
	"github.com/costar-project/costar/portprovider/fc/fcoe"
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

// WithFCPortGroup puts the FC target of port name wwpn in ALUA target port
// group group, as an adapter's port-group setting does.
func WithFCPortGroup(wwpn fc.WWN, group uint16) Option {
	return func(d *Daemon) {
		if d.fcGroups == nil {
			d.fcGroups = map[string]uint16{}
		}
		d.fcGroups[wwpn.TargetName()] = group
	}
}

// buildFCAdapters builds the adapters of the fc config section and the
// ALUA target port group of each (by target name); a new kind adds its
// case here (and in config/fc.go).
func buildFCAdapters(c config.FCConfig, log *slog.Logger) ([]fc.Adapter, map[string]uint16, error) {
	var out []fc.Adapter
	groups := map[string]uint16{}
	for i, a := range c.Adapters {
		switch a.Kind {
		case config.FCAdapterFCoE:
			cfg := fcoe.Config{Interface: a.Interface, Beacon: time.Duration(a.BeaconSeconds) * time.Second,
				Logger: log.With("component", "fcoe")}
			var err error
			if a.PortWWN != "" {
				if cfg.PortName, err = fc.ParseWWN(a.PortWWN); err != nil {
					return nil, nil, fmt.Errorf("fc.adapters[%d]: %w", i, err)
				}
			}
			if a.NodeWWN != "" {
				if cfg.NodeName, err = fc.ParseWWN(a.NodeWWN); err != nil {
					return nil, nil, fmt.Errorf("fc.adapters[%d]: %w", i, err)
				}
			}
			ad, err := fcoe.New(cfg)
			if err != nil {
				return nil, nil, fmt.Errorf("fc.adapters[%d]: %w", i, err)
			}
			out = append(out, ad)
			if a.PortGroup > 0 {
				groups[ad.Info().PortName.TargetName()] = uint16(a.PortGroup)
			}
		default:
			return nil, nil, fmt.Errorf("fc.adapters[%d]: unknown adapter kind %q", i, a.Kind)
		}
	}
	return out, groups, nil
}

// fcPortProvider builds the FC provider when at least one adapter exists.
func (d *Daemon) fcPortProvider() (*mgmt.Ports, error) {
	ads, groups, err := buildFCAdapters(d.cfg.FC, d.log)
	if err != nil {
		return nil, err
	}
	ads = append(ads, d.fcAdapters...)
	for name, g := range d.fcGroups {
		groups[name] = g
	}
	if len(ads) == 0 {
		return nil, nil
	}
	srv, err := fc.NewServer(d.fw, ads, fc.Config{Logger: d.log.With("component", "fc")})
	if err != nil {
		return nil, err
	}
	d.fc = srv
	d.servers = append(d.servers, srv)
	return &mgmt.Ports{Provider: &fcPorts{srv: srv, groups: groups}, ProviderName: ads[0].Info().Driver, ProtocolName: api.ProtocolFC}, nil
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
	srv    *fc.Server
	groups map[string]uint16 // configured ALUA target port group by target name
}

var _ mgmt.PortProvider = (*fcPorts)(nil)

// AddTarget brings the adapter port online in its configured ALUA target
// port group (the default group unless the adapter names one).
func (p *fcPorts) AddTarget(_ context.Context, s mgmt.TargetSpec) error {
	g, ok := p.groups[s.Name]
	if !ok {
		g = stmf.DefaultPortGroup
	}
	return p.srv.AddTarget(s.Name, g)
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

var _ mgmt.PortGrouper = (*fcPorts)(nil)

// PortGroups is the target's configured ALUA target port group, so
// list-state and set-alua-state see the FC target where it serves.
func (p *fcPorts) PortGroups(name string) []uint16 {
	if g, ok := p.groups[name]; ok {
		return []uint16{g}
	}
	return nil
}
