package daemon

import (
	"context"
	"errors"
	"slices"

	"github.com/costar-project/costar/internal/daemon/mgmt"
	"github.com/costar-project/costar/portprovider/iscsi"
)

// iscsiProviderName is the iSCSI port provider's name in list-target -v,
// as COMSTAR's.
const iscsiProviderName = "iscsit"

// iscsiPorts adapts the iSCSI server to mgmt.PortProvider.
type iscsiPorts struct {
	srv *iscsi.Server
}

var _ mgmt.PortProvider = (*iscsiPorts)(nil)

// targetConfig is the iSCSI server's view of a target: its alias and the
// portal groups it is bound to (none: the default portal group, tag 1, on
// the daemon's --portal addresses). Authentication is not part of it: the
// server asks loginAuth at each login.
func targetConfig(s mgmt.TargetSpec) iscsi.TargetConfig {
	tc := iscsi.TargetConfig{Name: s.Name, Alias: s.Alias, TPGT: mgmt.DefaultTPGT}
	for _, pg := range s.ISCSI.PortalGroups {
		tc.PortalGroups = append(tc.PortalGroups, iscsi.PortalGroup{Tag: pg.Tag, Portals: slices.Clone(pg.Portals)})
	}
	return tc
}

func (p *iscsiPorts) AddTarget(_ context.Context, s mgmt.TargetSpec) error {
	return p.srv.AddTarget(targetConfig(s))
}

// UpdateTarget applies alias, portal group and authentication changes
// live; sessions that stay valid are kept.
func (p *iscsiPorts) UpdateTarget(_ context.Context, s mgmt.TargetSpec) error {
	return p.srv.UpdateTarget(targetConfig(s))
}

func (p *iscsiPorts) RemoveTarget(_ context.Context, name string) error {
	if err := p.srv.RemoveTarget(name); err != nil && !errors.Is(err, iscsi.ErrTargetNotFound) {
		return err
	}
	return nil
}

// Sessions reports the iSCSI sessions (for their initiator aliases).
func (p *iscsiPorts) Sessions() []mgmt.SessionInfo {
	var out []mgmt.SessionInfo
	for _, s := range p.srv.Sessions() {
		if !s.Discovery {
			out = append(out, mgmt.SessionInfo{Target: s.Target, Initiator: s.Initiator, Alias: s.Alias})
		}
	}
	return out
}

// loginAuth answers the iSCSI server's authentication questions from the
// configuration (target or default auth method, per-initiator CHAP).
func (d *Daemon) loginAuth(_ context.Context, r iscsi.AuthRequest) (iscsi.CHAPCredentials, error) {
	la, err := d.mgr.LoginAuth(r.InitiatorName, r.TargetName, r.Discovery)
	if err != nil {
		return iscsi.CHAPCredentials{}, err
	}
	creds := iscsi.CHAPCredentials{
		Required:        la.Required,
		InitiatorUser:   la.InitiatorUser,
		InitiatorSecret: la.InitiatorSecret,
		TargetUser:      la.TargetUser,
		TargetSecret:    la.TargetSecret,
	}
	if len(la.RadiusServers) > 0 {
		creds.Verifier = d.radius.client(la.RadiusServers, la.RadiusSecret) // iscsi_radius.go
	}
	return creds, nil
}
